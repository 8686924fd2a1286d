"""drivers.telemetry against a real exporter process (the blackbox exporter binary)."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from components import require_monitoring
from polling import poll

from drivers.telemetry import actions
from mlchaos import changes
from mlchaos.errors import DriverError, TargetNotFound

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def exporter(tmp_path) -> Iterator[tuple[int, str]]:
    require_monitoring()
    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  http_2xx:\n    prober: http\n", encoding="utf-8")
    port = _free_port()
    process = subprocess.Popen(["/usr/bin/prometheus-blackbox-exporter", f"--config.file={config}",
                                f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    assert poll(lambda: _scrape(url), timeout=15)
    yield process.pid, url
    process.kill()
    process.wait()


def _scrape(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_a_paused_exporter_cannot_be_scraped_until_resumed(exporter):
    pid, url = exporter
    seen: list[changes.ChangeRecord] = []
    token = changes.set_sink(seen.append)
    try:
        record = actions.stop_exporter(pid=pid, ttl=None)
    finally:
        changes.reset_sink(token)
    assert [t.details["pid"] for t in seen[0].targets] == [pid]
    assert not _scrape(url), "a scrape of the paused exporter must time out"
    assert actions.resume_exporter(**record["undo"]["arguments"]) == {"resumed": [pid], "gone": []}
    assert poll(lambda: _scrape(url), timeout=5)


def test_the_ttl_resumes_the_exporter_by_itself(exporter):
    pid, url = exporter
    actions.stop_exporter(name_pattern=rf"blackbox-exporter.*127\.0\.0\.1:{url.split(':')[2].split('/')[0]}", ttl=1)
    assert not _scrape(url)
    assert poll(lambda: _scrape(url), timeout=15), "the watchdog resumed the exporter"


def test_selection_errors():
    with pytest.raises(TargetNotFound, match="no process matches"):
        actions.stop_exporter(name_pattern="no-such-exporter-anywhere-[0-9]{9}")
    with pytest.raises(DriverError, match="exactly one of pid or name_pattern"):
        actions.stop_exporter()
    with pytest.raises(DriverError, match="not a valid regular expression"):
        actions.stop_exporter(name_pattern="((")
