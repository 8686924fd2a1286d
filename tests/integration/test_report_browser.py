"""The HTML report opened in a REAL headless browser (Debian's chromium): it renders, offline, what matters."""

from __future__ import annotations

import shutil
import subprocess
import zlib

import pytest

from mlchaos.reports.writer import write_reports
from tests.support.components import require_component
from tests.support.report_helpers import ALL, journal_path, parse_html, read_png


def chromium(*args: str, home) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    require_component("chromium", binary is not None,
                      "run scripts/install-system-packages.sh (Debian package chromium)")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={home / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={"HOME": str(home)},
                          check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    written = write_reports([journal_path(n) for n in ALL], out, ["html"])
    return written["html"]


@pytest.mark.slow  # about 21 s on a 2-core machine
def test_the_browser_builds_the_page_with_verdicts_and_timelines(report, tmp_path):
    proc = chromium("--dump-dom", report.as_uri(), home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = parse_html(proc.stdout)  # the DOM after the browser parsed it, not our text
    sections = dom.find_all("section", class_="experiment")
    assert [s.attrs["data-verdict"] for s in sections] == ["interrupted", "held", "deviated", "aborted", "refused"]
    held = dom.find("section", class_="experiment", data_experiment="latency-one-replica")
    assert held.find("span", class_="verdict-held").text() == "HELD"
    timeline = held.find("svg", class_="timeline")
    assert timeline.find_all("rect", class_="span-firing") and timeline.find_all("line", class_="marker-fault")
    assert len(dom.find_all("svg", class_="timeline")) == 5
    assert dom.find("svg", class_="sparkline").find_all("circle")
    assert dom.find("tr", data_test="monitoring-6").attrs["data-status"] == "passing"


def test_the_screenshot_shows_a_rendered_page(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = chromium(f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri(), home=tmp_path)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert len(data) > 50_000  # a blank 1280x2000 page compresses to a few kilobytes
    image = read_png(data, max_rows=700)  # the header, the summary and the start of the ML Test Score
    assert (image.width, image.height) == (1280, 2000)
    colours = image.colours()
    assert len(colours) > 50, f"{len(colours)} colours: a blank or single-colour page"
    rgb = {c[:3] for c in colours}
    green = any(g > r + 40 and g > b + 20 for r, g, b in rgb)  # the HELD badge and timeline spans
    red = any(r > g + 60 and r > b + 60 for r, g, b in rgb)  # DEVIATED / ABORTED badges
    assert green and red
    raw = zlib.decompress(b"".join(_chunks(data, b"IDAT")))
    assert len(raw) / len(data) < 60  # pixel variety: a single colour would compress far better


def _chunks(data: bytes, kind: bytes) -> list[bytes]:
    found, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == kind:
            found.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    return found
