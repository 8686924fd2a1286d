"""The sandbox monitoring stack with real Prometheus, Alertmanager and blackbox exporter processes:
every replica is scraped and probed, a SIGKILLed replica fires ModelServerDown (and not
ModelTelemetryAbsent) for its instance, Alertmanager holds it, and it resolves after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlchaos.errors import DriverError, SandboxError
from mlchaos.monitoring.alert_rules import ALERT_NAMES
from mlchaos.sandbox import monitoring_stack
from mlchaos.sandbox.manager import Sandbox
from mlchaos.sandbox.monitoring_stack import Monitoring, MonitoringEndpoints
from tests.support.components import require_monitoring
from tests.support.environment import child_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, MonitoringEndpoints]]:
    """Three replicas with the monitoring stack, in a state dir of their own (exported in the env)."""
    require_monitoring()
    path = tmp_path_factory.mktemp("monitored-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCHAOS_STATE_DIR", str(path))
        sandbox = Sandbox(path)
        try:
            started = time.monotonic()
            sandbox.up(replicas=3, timeout=60)
            print(f"sandbox + monitoring up in {time.monotonic() - started:.2f}s")
            yield sandbox, monitoring_stack.endpoints(path)
        finally:
            sandbox.down()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.2)


def alerts(ep: MonitoringEndpoints) -> list[tuple[str, str, str]]:
    data = get(f"{ep.prometheus_url}/api/v1/alerts")["data"]["alerts"]
    return [(a["labels"]["alertname"], a["labels"].get("instance", ""), a["state"]) for a in data]


def test_prometheus_starts_before_the_replicas_and_no_alert_is_left_from_the_start(stack) -> None:
    """`sandbox up` starts the monitoring first and the replicas on ports chosen beforehand, so that Prometheus'
    first target update (5 s after it starts) finds them; nothing it saw before they were ready may linger
    (the first test of the module: nothing has been done to the stack yet)."""
    sandbox, ep = stack
    state = json.loads(sandbox.monitoring().state_file.read_text())
    replicas = sandbox.replicas("model")
    assert all(state["processes"]["prometheus"]["started_at"] < r.started_at for r in replicas)
    ports = [p for r in replicas for p in (r.port, r.proxy_port, r.tls_port, r.metrics_proxy_port)]
    assert len(set(ports)) == len(ports)
    assert not set(ports) & {int(i["port"]) for i in state["processes"].values()}
    assert alerts(ep) == []


def test_every_replica_is_scraped_and_probed_under_its_own_instance(stack) -> None:
    sandbox, ep = stack
    targets = get(f"{ep.prometheus_url}/api/v1/targets?state=active")["data"]["activeTargets"]
    by_job: dict[str, dict[str, dict]] = {}
    for t in targets:
        by_job.setdefault(t["labels"]["job"], {})[t["labels"]["instance"]] = t
    replicas = {f"{r.host}:{r.port}": r.name for r in sandbox.replicas("model")}
    for job in ("model", "model-live", "model-ready"):
        assert set(by_job[job]) == set(replicas), job
        for instance, target in by_job[job].items():
            assert target["health"] == "up", target
            assert target["labels"]["replica"] == replicas[instance]
    assert by_job["blackbox"][ep.blackbox_url.removeprefix("http://")]["health"] == "up"
    # the probe result joins the scrape on `instance` (what ModelServerDown / ModelTelemetryAbsent rely on)
    joined = get(f"{ep.prometheus_url}/api/v1/query?query="
                 + urllib.request.quote('up{job="model"} == 1 and on(instance) probe_success{job="model-live"} == 1'))
    assert len(joined["data"]["result"]) == 3
    groups = get(f"{ep.prometheus_url}/api/v1/rules?type=alert")["data"]["groups"]
    group = next(g for g in groups if g["name"] == "ml-serving")
    assert len(group["rules"]) == len(ALERT_NAMES) and all(r["health"] == "ok" for r in group["rules"])
    # the probes reach each replica through its fault proxy, the scrape reaches it directly
    proxied = {f"{r.host}:{r.port}": f"http://{r.host}:{r.proxy_port}/v2/health/live"
               for r in sandbox.replicas("model")}
    for instance, target in by_job["model-live"].items():
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(target["scrapeUrl"]).query)["target"] == [proxied[instance]]
        assert "__proxy_address__" not in target["labels"]
    assert get(f"{ep.alertmanager_url}/api/v2/status")["config"]["original"]


def test_generated_configs_and_recorded_endpoints(stack) -> None:
    sandbox, ep = stack
    config_dir = sandbox.state_dir / "monitoring"
    prom = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    assert prom["global"]["scrape_interval"] == "1s" and prom["global"]["evaluation_interval"] == "1s"
    assert str(config_dir / "rules.d" / "*.yml") in prom["rule_files"]
    am = yaml.safe_load((config_dir / "alertmanager.yml").read_text())
    hook = am["receivers"][0]["webhook_configs"][0]
    assert am["receivers"][0]["name"] == "mlchaos" and hook["send_resolved"] is True
    assert hook["url"] == f"http://{ep.sink_host}:{ep.sink_port}/alerts" == ep.sink_url
    assert am["route"]["group_by"] == ["alertname", "instance"]
    assert set(yaml.safe_load((config_dir / "blackbox.yml").read_text())["modules"]) == {
        "http_2xx", "tls_verify", "tls_insecure"}
    state = json.loads((sandbox.state_dir / "monitoring.json").read_text())
    assert state["endpoints"]["prometheus_url"] == ep.prometheus_url and state["endpoints"]["sink_port"] == ep.sink_port
    assert set(state["processes"]) == {"prometheus", "alertmanager", "blackbox"}


def test_kill_fires_only_server_down_for_that_instance_and_resolves_after_restart(stack) -> None:
    sandbox, ep = stack
    victim = sandbox.replicas("model")[1]
    instance = f"{victim.host}:{victim.port}"
    assert alerts(ep) == []
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    seen: set[tuple[str, str, str]] = set()

    def fired() -> bool:
        now = alerts(ep)
        seen.update(now)
        return ("ModelServerDown", instance, "firing") in now

    poll(fired, 15, "ModelServerDown firing")
    detect = time.monotonic() - killed
    assert not [a for a in seen if a[0] != "ModelServerDown"], seen  # no ModelTelemetryAbsent, not even pending
    assert {a[1] for a in seen} == {instance}
    active = poll(lambda: get(f"{ep.alertmanager_url}/api/v2/alerts?active=true"
                              f"&filter=alertname%3D%22ModelServerDown%22"), 10, "alert active in Alertmanager")
    assert [a["labels"]["instance"] for a in active] == [instance]
    assert active[0]["status"]["state"] == "active" and active[0]["receivers"] == [{"name": "mlchaos"}]
    assert active[0]["labels"]["ml_test_score"] == "Infrastructure" and active[0]["labels"]["replica"] == victim.name

    restarted_at = time.monotonic()
    sandbox.restart(victim)
    poll(lambda: alerts(ep) == [], 15, "alert resolved in Prometheus")
    resolved = time.monotonic() - restarted_at
    poll(lambda: get(f"{ep.alertmanager_url}/api/v2/alerts?active=true") == [], 10, "resolved in Alertmanager")
    print(f"kill -> ModelServerDown firing {detect:.2f}s; restart -> resolved {resolved:.2f}s")


@pytest.mark.slow  # about 14 s on a 2-core machine
def test_up_keeps_a_healthy_stack_and_heals_a_dead_component(stack) -> None:
    sandbox, ep = stack
    before = {row.name: row.pid for row in sandbox.monitoring().status()}
    assert all(row.state == "ready" for row in sandbox.monitoring().status())
    sandbox.up(replicas=3)
    assert {row.name: row.pid for row in sandbox.monitoring().status()} == before
    os.kill(before["prometheus"], signal.SIGKILL)
    poll(lambda: {r.name: r.state for r in sandbox.monitoring().status()}["prometheus"] == "dead", 5, "seen dead")
    with pytest.raises(DriverError, match="prometheus not running"):
        monitoring_stack.endpoints(sandbox.state_dir)
    sandbox.up(replicas=3)
    after = {row.name: row.pid for row in sandbox.monitoring().status()}
    assert after["prometheus"] != before["prometheus"]
    assert after["alertmanager"] == before["alertmanager"] and after["blackbox"] == before["blackbox"]
    assert monitoring_stack.endpoints(sandbox.state_dir) == ep  # same ports, same sink address


def test_sandbox_status_command_shows_monitoring(stack, subprocess_env_for_state: dict[str, str]) -> None:
    sandbox, ep = stack
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "sandbox", "status"], env=subprocess_env_for_state,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    for text in ("prometheus", "alertmanager", "blackbox", ep.prometheus_url, ep.alertmanager_url, ep.blackbox_url,
                 ep.sink_url, "model-0"):
        assert text in proc.stdout, (text, proc.stdout)


@pytest.fixture
def subprocess_env_for_state(stack) -> dict[str, str]:
    return child_env(stack[0].state_dir)


def test_down_stops_the_stack_and_endpoints_say_so(stack) -> None:
    sandbox, ep = stack
    pids = [row.pid for row in sandbox.monitoring().status()]
    sandbox.down()
    assert all(row.state == "stopped" for row in sandbox.monitoring().status())
    assert all(not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
               for pid in pids)
    with pytest.raises(DriverError, match="not running.*mlchaos sandbox up"):
        monitoring_stack.endpoints(sandbox.state_dir)
    assert sandbox.monitoring().recorded_endpoints() == ep  # ports and sink kept for the next up


def test_missing_binaries_are_named_with_the_apt_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = [("/nonexistent/mlchaos-alertmanager", "prometheus-alertmanager"),
            ("/nonexistent/mlchaos-blackbox", "prometheus-blackbox-exporter")]
    monkeypatch.setitem(monitoring_stack.BINARIES, "alertmanager", gone[0])
    monkeypatch.setitem(monitoring_stack.BINARIES, "blackbox", gone[1])
    assert [m for m in monitoring_stack.missing_binaries() if m != monitoring_stack.PROMTOOL] == gone
    hint = "apt-get install prometheus-alertmanager prometheus-blackbox-exporter"
    with pytest.raises(SandboxError, match=hint):
        Sandbox(tmp_path).up(replicas=1)
    assert not (tmp_path / "sandbox.json").exists()  # refused before any replica started
    with pytest.raises(SandboxError, match=hint):
        Monitoring(tmp_path).up([])


def test_sandbox_up_parses_no_monitoring() -> None:
    from mlchaos.cli import build_parser

    assert build_parser().parse_args(["sandbox", "up", "--no-monitoring"]).monitoring is False
    assert build_parser().parse_args(["sandbox", "up"]).monitoring is True
