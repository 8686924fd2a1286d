"""Prometheus and Alertmanager probes against a real Prometheus, Alertmanager and webhook receiver.

The stack (module scope): two tiny metric servers exporting ``mlchaos_test_flip`` (0 or 1,
flipped by the test), a Prometheus scraping them every second with the rule
``TestAlert: mlchaos_test_flip == 1 for 1s``, and an Alertmanager (group_wait and
group_interval 1s, send_resolved) routing to a NotificationReceiver. Every server binds
127.0.0.1; readiness is polled, never slept for.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
import yaml

from drivers.alertmanager import probes as am
from drivers.prometheus import probes as prom
from mlchaos.errors import DriverError
from mlchaos.lib.files import free_ports
from mlchaos.monitoring.notifications import NotificationReceiver
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.run_context import RunContext
from mlchaos.sandbox.monitoring_stack import alertmanager_config
from tests.support import fixtures_api
from tests.support.components import require_component
from tests.support.http_server import LoopbackServer, reply

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or ""
METRIC = "mlchaos_test_flip"
TEST_RULES = [
    {
        "alert": "TestAlert",
        "expr": f"{METRIC} == 1",
        "for": "1s",
        "labels": {"severity": "page"},
        "annotations": {"summary": "flip is 1 on {{ $labels.instance }}"},
    },
]


class FlipTarget:
    """A /metrics endpoint exporting ``mlchaos_test_flip`` with a value the test sets."""

    def __init__(self) -> None:
        self.value = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"# TYPE {METRIC} gauge\n{METRIC} {target.value}\n".encode()
                reply(self, 200 if self.path == "/metrics" else 404, body, "text/plain; version=0.0.4")

            def log_message(self, *args: object) -> None:
                pass

        self._server = LoopbackServer(Handler)

    @property
    def instance(self) -> str:
        """The scrape address, i.e. the ``instance`` label Prometheus gives its series."""
        return f"127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Stack:
    """A running Prometheus + Alertmanager + receiver + metric targets."""

    prometheus_url: str
    alertmanager_url: str
    receiver: NotificationReceiver
    targets: list[FlipTarget]
    procs: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.receiver.stop()
        for target in self.targets:
            target.stop()


def _start(args: list[str], ready_url: str, log: Path, timeout: float = 30) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(ready_url, timeout=1).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{args[0]} not ready within {timeout}s:\n{log.read_text()[-3000:]}")


def start_stack(workdir: Path, rules: list[dict] | None = None, targets: int = 2) -> Stack:
    """Start targets, receiver, Alertmanager and Prometheus (in that order); stop all on failure."""
    stack = Stack("", "", NotificationReceiver().start(), [FlipTarget() for _ in range(targets)])
    try:
        am_port, prom_port = free_ports(2)
        am_config = alertmanager_config(stack.receiver.url)  # the sandbox's routing, to this test's receiver
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
        stack.procs.append(
            _start(
                [
                    ALERTMANAGER,
                    f"--config.file={workdir / 'alertmanager.yml'}",
                    f"--storage.path={workdir / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                f"http://127.0.0.1:{am_port}/-/ready",
                workdir / "alertmanager.log",
            )
        )
        stack.alertmanager_url = f"http://127.0.0.1:{am_port}"
        (workdir / "rules.yml").write_text(
            yaml.safe_dump({"groups": [{"name": "mlchaos-test", "rules": rules or TEST_RULES}]}, sort_keys=False)
        )
        prom_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(workdir / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [
                {"job_name": "flip", "static_configs": [{"targets": [t.instance for t in stack.targets]}]}
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        stack.procs.append(
            _start(
                [
                    PROMETHEUS,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                f"http://127.0.0.1:{prom_port}/-/ready",
                workdir / "prometheus.log",
            )
        )
        stack.prometheus_url = f"http://127.0.0.1:{prom_port}"
    except BaseException:
        stack.stop()
        raise
    return stack


def wait_until(condition, timeout: float = 15, what: str = "condition"):  # noqa: ANN001, ANN201 (test helper)
    """Poll ``condition()`` every 50 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def _evaluated_and_scraped(url: str, targets: int) -> bool:
    rules = requests.get(f"{url}/api/v1/rules", timeout=2).json()["data"]["groups"]
    evaluated = all(r["health"] == "ok" for g in rules for r in g["rules"])
    up = requests.get(f"{url}/api/v1/query", params={"query": METRIC}, timeout=2).json()["data"]["result"]
    return evaluated and len(up) == targets and all(s["value"][1] == "0" for s in up)


# -- tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_component("prometheus", Path(PROMETHEUS).exists(), "apt-get install prometheus")
    require_component("alertmanager", bool(ALERTMANAGER), "apt-get install prometheus-alertmanager")
    running = start_stack(tmp_path_factory.mktemp("alert-stack"))
    try:
        wait_until(
            lambda: _evaluated_and_scraped(running.prometheus_url, len(running.targets)),
            what="first rule evaluation and scrape",
        )
        yield running
    finally:
        running.stop()


@pytest.fixture
def fault(stack: Stack) -> Iterator[RunContext]:
    """A run context whose last fault hit the first target (by its scrape instance); flips reset after."""
    target = stack.targets[0]
    record = ChangeRecord(
        driver="test", action="flip", targets=[Target("process", "flip-0", {"instance": target.instance})]
    )
    context = RunContext(changes=[record], receiver=stack.receiver)
    token = run_context.activate(context)
    try:
        yield context
    finally:
        run_context.deactivate(token)
        for t in stack.targets:
            t.value = 0


def test_rule_health_and_missing_rule(stack: Stack) -> None:
    assert prom.rule_is_healthy("TestAlert", url=stack.prometheus_url) is True
    with pytest.raises(DriverError, match=r"'TestAlrt' is not loaded.*did you mean 'TestAlert'"):
        prom.rule_is_healthy("TestAlrt", url=stack.prometheus_url)


def test_queries(stack: Stack) -> None:
    assert prom.query_value(f"sum({METRIC})", url=stack.prometheus_url) == 0.0
    assert prom.query_value(f'{METRIC}{{instance="nowhere"}}', url=stack.prometheus_url) is None
    with pytest.raises(DriverError, match="2 series.*aggregate"):
        prom.query_value(METRIC, url=stack.prometheus_url)
    series = prom.query_series(METRIC, url=stack.prometheus_url)
    assert sorted(s["labels"]["instance"] for s in series) == sorted(t.instance for t in stack.targets)
    with pytest.raises(DriverError, match="bad_data"):
        prom.query_value("sum(", url=stack.prometheus_url)


def test_alert_fires_notifies_and_resolves(stack: Stack, fault: RunContext) -> None:
    p_url, a_url = stack.prometheus_url, stack.alertmanager_url
    stack.targets[0].value = 1
    fault.changes[-1].announced_at = _now_iso()  # the fault starts now

    with pytest.raises(DriverError, match=r"alert TestAlert on instance .* did not fire within 0.2s \(last seen: "):
        prom.alert_fires_within("TestAlert", within=0.2, match_fault_targets=True, url=p_url)
    with pytest.raises(DriverError, match=r"no firing notification of TestAlert .*within 0.2s"):
        am.notification_delivered_within("TestAlert", within=0.2)

    fired = prom.alert_fires_within(
        "TestAlert", within=20, labels={"severity": "page"}, match_fault_targets=True, poll=0.2, url=p_url
    )
    assert fired["state"] == "firing"
    assert fired["labels"]["instance"] == stack.targets[0].instance
    assert fired["measured_from"] == "fault"
    seconds = fired["measurement"]["seconds"]
    polled = fired["measurement"]["polled"]
    assert fired["measurement"] == {
        "kind": "time_to_detect", "alert": "TestAlert", "seconds": seconds, "polled": polled,
        "method": "prometheus timestamps", "floor": 3.0, "floor_text": "scrape 1s + evaluation 1s + for 1s",
    }
    # exact: the evaluation after activeAt + for (1 s, one evaluation), on Prometheus' evaluation grid
    fired_at = datetime.fromisoformat(fired["active_at"].replace("Z", "+00:00")).timestamp() + 1.0
    fault_at = datetime.fromisoformat(fault.changes[-1].announced_at).timestamp()
    assert seconds == round(fired_at - fault_at, 3)
    assert 1.0 <= seconds <= polled < 20 and fired["fired_after_fault"] == seconds  # it fired before it was seen
    assert fired["active_before_fault"] is False

    notified = am.notification_delivered_within("TestAlert", within=20, match_fault_targets=True, url=a_url)
    assert notified["status"] == "firing" and notified["labels"]["instance"] == stack.targets[0].instance
    assert notified["confirmed_by"] == a_url  # Alertmanager's API holds the alert it delivered
    assert notified["measurement"]["kind"] == "time_to_notify"
    assert notified["measurement"]["seconds"] >= seconds - 0.5
    assert am.alert_is_active("TestAlert", labels={"severity": "page"}, match_fault_targets=True, url=a_url) is True
    assert am.alert_is_active("TestAlert", labels={"severity": "ticket"}, url=a_url) is False
    assert prom.no_unexpected_alerts(allowed=["TestAlert"], url=p_url) == []
    assert prom.no_unexpected_alerts(url=p_url) == ["TestAlert"]
    assert prom.unexpected_alert_count(url=p_url) == 1
    here = {"instance": stack.targets[0].instance}
    assert prom.alerting_elsewhere_count("TestAlert", here, url=p_url) == 0
    assert prom.alerting_elsewhere_count("TestAlert", {"instance": "elsewhere:1"}, url=p_url) == 1
    assert prom.alerting_elsewhere_count("OtherAlert", {"instance": "elsewhere:1"}, url=p_url) == 0

    stack.targets[0].value = 0
    resolved = prom.alert_resolves_within("TestAlert", within=20, match_fault_targets=True, poll=0.2, url=p_url)
    assert resolved["measurement"]["kind"] == "time_to_recover"
    assert resolved["measurement"]["method"] == "prometheus timestamps", resolved["measurement"]
    assert seconds < resolved["measurement"]["seconds"] <= resolved["measurement"]["polled"]
    assert resolved["measurement"]["floor"] == 2.0  # scrape 1s + evaluation 1s + keep_firing_for 0s
    done = am.resolved_notification_delivered_within("TestAlert", within=20, match_fault_targets=True)
    assert done["status"] == "resolved"
    assert done["measurement"]["kind"] == "time_to_notify_resolved"
    wait_until(lambda: not am.alert_is_active("TestAlert", url=a_url), what="Alertmanager resolving TestAlert")

    # a new fault: the notifications of the drill above no longer count
    fault.changes.append(ChangeRecord(driver="test", action="flip", targets=fault.changes[-1].targets))
    with pytest.raises(DriverError, match=r"received since the fault: none"):
        am.notification_delivered_within("TestAlert", within=0.3)


def test_a_delivery_alertmanager_does_not_hold_never_counts(stack: Stack, fault: RunContext) -> None:
    """A stolen token is not enough: a firing notification must be an alert the reachable Alertmanager holds
    (same fingerprint, or same labels and startsAt). This one is posted with nothing firing at all."""
    fault.changes[-1].announced_at = _now_iso()
    forged = fixtures_api.load("webhook_firing.json")
    forged["alerts"][0]["labels"].update(alertname="TestAlert", instance=stack.targets[0].instance)
    forged["alerts"][0].update(fingerprint="00000000deadbeef", startsAt=_now_iso())
    assert requests.post(stack.receiver.url, json=forged, timeout=5).json() == {"accepted": 1}
    with pytest.raises(DriverError, match=r"not held by Alertmanager .*TestAlert.*fingerprint 00000000deadbeef"):
        am.notification_delivered_within("TestAlert", within=1, match_fault_targets=True, url=stack.alertmanager_url)


def test_other_instance_does_not_count(stack: Stack, fault: RunContext) -> None:
    stack.targets[1].value = 1  # an alert fires, but not for the instance the fault hit
    fired = prom.alert_fires_within("TestAlert", within=20, poll=0.2, url=stack.prometheus_url)
    assert fired["labels"]["instance"] == stack.targets[1].instance
    with pytest.raises(DriverError, match=r"firing alerts: \[TestAlert\{instance=\"" + stack.targets[1].instance):
        prom.alert_fires_within("TestAlert", within=0.3, match_fault_targets=True, url=stack.prometheus_url)
    assert am.alert_is_active("TestAlert", match_fault_targets=True, url=stack.alertmanager_url) is False
    stack.targets[1].value = 0
    prom.alert_resolves_within("TestAlert", within=20, poll=0.2, url=stack.prometheus_url)


def test_unreachable_prometheus_and_alertmanager() -> None:
    (port,) = free_ports(1)
    closed = f"http://127.0.0.1:{port}"
    with pytest.raises(DriverError, match="Prometheus at .* is unreachable"):
        prom.query_value("up", url=closed, timeout=1)
    with pytest.raises(DriverError, match="Alertmanager at .* is unreachable"):
        am.alert_is_active("X", url=closed, timeout=1)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
