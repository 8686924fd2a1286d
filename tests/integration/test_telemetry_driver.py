"""drivers.telemetry against a real exporter process (the blackbox exporter binary) and the sandbox's
metrics proxies: faults, dry runs, idempotent undos."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from drivers.proxy import probes as proxy_probes
from drivers.telemetry import actions
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.lib.files import free_ports
from mlchaos.safety import changes
from mlchaos.safety.watchdog import pending
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox
from tests.support.components import require_monitoring
from tests.support.polling import poll


@pytest.fixture
def exporter(tmp_path) -> Iterator[tuple[int, str]]:
    require_monitoring()
    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  http_2xx:\n    prober: http\n", encoding="utf-8")
    (port,) = free_ports(1)
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
    assert record["environment"] == changes.local_environment() and record["population"] == []  # named by pid
    assert actions.resume_exporter(**record["undo"]["arguments"]) == {"resumed": [pid], "already": [], "gone": []}
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


def _pattern(url: str) -> str:
    return rf"blackbox-exporter.*127\.0\.0\.1:{url.split(':')[2].split('/')[0]}"


def test_stop_exporter_dry_run_resolves_and_changes_nothing(exporter):
    pid, url = exporter
    seen: list[changes.ChangeRecord] = []
    token = changes.set_sink(seen.append)
    try:
        by_pattern = actions.stop_exporter(name_pattern=_pattern(url), ttl=5, dry_run=True)
        by_pid = actions.stop_exporter(pid=pid, dry_run=True)
    finally:
        changes.reset_sink(token)
    assert [r.dry_run for r in seen] == [True, True]
    assert [t["details"]["pid"] for t in by_pattern["targets"]] == [pid]
    assert by_pattern["population"] == [by_pattern["targets"][0]["name"]]  # every matching exporter
    assert by_pid["targets"] == by_pattern["targets"] and by_pid["population"] == []
    assert "watchdog_pid" not in by_pattern["undo"]["arguments"]
    assert not [w for w, a in pending(actions.RESUME_FUNC) if pid in a.get("pids", [])]  # no watchdog started
    assert procs.proc_state(pid) not in ("T", "t") and _scrape(url)
    real = actions.stop_exporter(name_pattern=_pattern(url), ttl=None)
    try:
        assert sorted(real) == sorted(by_pattern) and real["targets"] == by_pattern["targets"]
        assert real["population"] == by_pattern["population"]
    finally:
        actions.resume_exporter(**real["undo"]["arguments"])


def test_resume_exporter_again_changes_nothing(exporter):
    pid, url = exporter
    record = actions.stop_exporter(pid=pid, ttl=60)
    watchdog = record["undo"]["arguments"]["watchdog_pid"]
    # a replay from the journal record announced before the watchdog started (no watchdog_pid) still stops it
    assert actions.resume_exporter(pids=[pid]) == {"resumed": [pid], "already": [], "gone": []}
    assert poll(lambda: procs.proc_state(watchdog) in (None, "Z"), timeout=5)
    for _ in range(2):
        assert actions.resume_exporter(**record["undo"]["arguments"]) == {"resumed": [], "already": [pid], "gone": []}
        assert procs.proc_state(pid) not in ("T", "t") and _scrape(url)
    gone = 2**22 + 4321
    assert actions.resume_exporter(pids=[gone]) == {"resumed": [], "already": [], "gone": [gone]}


def test_block_scrapes_dry_run_population_and_idempotent_restore(sandbox: Sandbox):
    api = sandbox.proxy_api_url()
    replica = sandbox.replicas("model")[1].name
    proxy = f"{replica}-metrics"
    dry = actions.block_scrapes(replica, mode="reset", ttl=30, dry_run=True)
    assert dry["dry_run"] is True and proxy_probes.list_toxics(proxy) == []
    assert dry["environment"] == api
    assert dry["population"] == sorted(f"{r.name}-metrics" for r in sandbox.replicas("model"))  # scrape proxies only
    record = actions.block_scrapes(replica, mode="reset", ttl=30)
    assert set(record) == set(dry) | {"toxic"} and record["population"] == dry["population"]
    assert [t["name"] for t in proxy_probes.list_toxics(proxy)] == ["telemetry-reset"]
    assert actions.restore_scrapes(replica) == {"replica": replica, "removed": ["telemetry-reset"], "already": []}
    for _ in range(2):
        assert actions.restore_scrapes(replica) == {"replica": replica, "removed": [], "already": [proxy]}
    assert proxy_probes.list_toxics(proxy) == []
