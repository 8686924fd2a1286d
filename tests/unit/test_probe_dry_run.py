"""Dry runs (a plan) of the probes that wait for a fault's consequence: they check and return, never wait.

Prometheus and Alertmanager answer with bodies recorded from Prometheus 2.42 and
Alertmanager 0.25 (``tests/support/fixtures_api``) over real HTTP; the receiver is real.
Every waiting probe gets a 30 s deadline, so a probe that waited would be seen at once.
"""

from __future__ import annotations

import json
import socket
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from drivers.alertmanager import probes as am
from drivers.prometheus import probes as prom
from mlchaos.errors import DriverError
from mlchaos.monitoring.notifications import NotificationReceiver
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.run_context import RunContext
from tests.support import fixtures_api
from tests.support.fixtures_api import ReplayServer

DEADLINE = 30  # seconds the probes would wait outside a dry run
QUICK = 2.0  # a dry run returns well within this, loosely measured
RULES, ALERTS, STATUS = "/api/v1/rules", "/api/v1/alerts", "/api/v2/status"


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    replay = ReplayServer()
    yield replay
    replay.stop()


@pytest.fixture
def prometheus(server: ReplayServer) -> ReplayServer:
    """Prometheus with TestAlert/SlowAlert healthy, BrokenRule failing, nothing pending or firing."""
    server.serve(RULES, "prometheus_rules_alert.json")
    server.serve(ALERTS, "prometheus_alerts_none.json")
    return server


@pytest.fixture
def alertmanager(server: ReplayServer) -> ReplayServer:
    server.serve_raw(STATUS, (200, fixtures_api.body("alertmanager_status.json")))
    return server


@pytest.fixture
def plan() -> Iterator[RunContext]:
    """A run in a plan: its only change record is a dry run (no fault was injected), with a receiver."""
    planned = ChangeRecord("process", "kill", [Target("process", "model-1", {"instance": "127.0.0.1:1"})],
                           dry_run=True, announced_at=datetime.now(UTC).isoformat())
    with NotificationReceiver() as receiver:
        context = RunContext(changes=[planned], receiver=receiver)
        token = run_context.activate(context)
        yield context
        run_context.deactivate(token)


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def timed(call, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 (test helper)
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


# -- Prometheus -----------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [prom.alert_fires_within, prom.alert_resolves_within])
def test_prometheus_dry_run_checks_the_rule_and_returns_at_once(prometheus: ReplayServer, probe) -> None:  # noqa: ANN001
    result, elapsed = timed(probe, "TestAlert", within=DEADLINE, labels={"severity": "page"}, url=prometheus.url,
                            dry_run=True)
    assert result == {
        "dry_run": True,
        "alert": "TestAlert",
        "labels": {"severity": "page"},
        "match_fault_targets": False,
        "prometheus": prometheus.url,
        "rule_found": True,
        "rule_health": "ok",
        "state_now": "inactive",
    }
    assert "measurement" not in result  # nothing was measured: no budget may count it
    assert elapsed < QUICK
    assert prometheus.requests == ["/api/v1/rules?type=alert", "/api/v1/alerts"]


def test_prometheus_dry_run_needs_no_real_fault_for_match_fault_targets(prometheus: ReplayServer,
                                                                       plan: RunContext) -> None:
    result = prom.alert_fires_within("TestAlert", within=DEADLINE, match_fault_targets=True, url=prometheus.url,
                                     dry_run=True)
    assert result["match_fault_targets"] is True and result["rule_found"] is True
    with pytest.raises(DriverError, match="no fault has been injected"):  # a real run still insists
        prom.alert_fires_within("TestAlert", within=0, match_fault_targets=True, url=prometheus.url)


def test_prometheus_dry_run_reports_an_alert_already_firing(prometheus: ReplayServer) -> None:
    prometheus.serve(ALERTS, "prometheus_alerts_firing.json")  # TestAlert firing, SlowAlert pending
    assert prom.alert_fires_within("TestAlert", url=prometheus.url, dry_run=True)["state_now"] == "firing"
    assert prom.alert_resolves_within("SlowAlert", url=prometheus.url, dry_run=True)["state_now"] == "pending"
    ticket = prom.alert_fires_within("TestAlert", labels={"severity": "ticket"}, url=prometheus.url, dry_run=True)
    assert ticket["state_now"] == "inactive"  # only a TestAlert with other labels fires


def test_prometheus_dry_run_refuses_an_alert_no_rule_defines(prometheus: ReplayServer) -> None:
    for probe in (prom.alert_fires_within, prom.alert_resolves_within):
        with pytest.raises(DriverError) as caught:
            probe("TestAlrt", within=DEADLINE, url=prometheus.url, dry_run=True)
        assert str(caught.value) == (
            f"alerting rule 'TestAlrt' is not loaded in Prometheus at {prometheus.url} (did you mean 'TestAlert'?)"
        )
    with pytest.raises(DriverError, match=r"'ModelDriftHigh' is not loaded .*\(loaded: BrokenRule, SlowAlert"):
        prom.alert_fires_within("ModelDriftHigh", url=prometheus.url, dry_run=True)
    assert ALERTS not in prometheus.requests  # refused on the rules alone


def test_prometheus_dry_run_refuses_a_rule_that_fails_to_evaluate(prometheus: ReplayServer) -> None:
    with pytest.raises(DriverError) as caught:
        prom.alert_fires_within("BrokenRule", within=DEADLINE, url=prometheus.url, dry_run=True)
    assert str(caught.value) == (
        f"alerting rule 'BrokenRule' in Prometheus at {prometheus.url} fails to evaluate: "
        "vector cannot contain metrics with the same labelset"
    )


def test_prometheus_dry_run_reports_a_rule_not_evaluated_yet(server: ReplayServer) -> None:
    body = fixtures_api.load("prometheus_rules_alert.json")
    body["data"]["groups"][0]["rules"][0]["health"] = "unknown"  # just loaded, before its first evaluation
    server.serve_raw(RULES, (200, json.dumps(body).encode()))
    server.serve(ALERTS, "prometheus_alerts_none.json")
    assert prom.alert_fires_within("TestAlert", url=server.url, dry_run=True)["rule_health"] == "unknown"


def test_prometheus_dry_run_with_the_endpoint_down(server: ReplayServer) -> None:
    started = time.monotonic()
    with pytest.raises(DriverError, match=r"Prometheus at http://127\.0\.0\.1:\d+ is unreachable"):
        prom.alert_fires_within("TestAlert", within=DEADLINE, url=closed_url(), dry_run=True)
    server.serve_raw(RULES, (502, b"<html>Bad Gateway</html>"))
    with pytest.raises(DriverError, match="answered HTTP 502 with no API body"):
        prom.alert_resolves_within("TestAlert", within=DEADLINE, url=server.url, dry_run=True)
    assert time.monotonic() - started < QUICK


def test_prometheus_dry_run_still_validates_arguments(prometheus: ReplayServer) -> None:
    with pytest.raises(DriverError, match="within must be a non-negative number"):
        prom.alert_fires_within("TestAlert", within=-1, url=prometheus.url, dry_run=True)
    with pytest.raises(DriverError, match="labels must map label names to string values"):
        prom.alert_resolves_within("TestAlert", labels={"severity": 1}, url=prometheus.url, dry_run=True)
    assert prometheus.requests == []


def test_prometheus_dry_run_uses_the_sandbox_url(prometheus: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlchaos.sandbox import monitoring_stack

    monkeypatch.setattr(monitoring_stack, "endpoints", lambda state_dir=None: types.SimpleNamespace(
        prometheus_url=prometheus.url + "/"))
    assert prom.alert_fires_within("TestAlert", dry_run=True)["prometheus"] == prometheus.url


# -- Alertmanager ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "status"),
    [(am.notification_delivered_within, "firing"), (am.resolved_notification_delivered_within, "resolved")],
)
def test_notification_dry_run_checks_receiver_and_alertmanager(alertmanager: ReplayServer, plan: RunContext,
                                                               probe, status: str) -> None:  # noqa: ANN001
    result, elapsed = timed(probe, "TestAlert", within=DEADLINE, match_fault_targets=True, url=alertmanager.url,
                            dry_run=True)
    assert result == {
        "dry_run": True,
        "alert": "TestAlert",
        "status": status,
        "labels": {},
        "match_fault_targets": True,
        "receiver": plan.receiver.url,
        "alertmanager": alertmanager.url,
        "alertmanager_version": "0.25.0",
    }
    assert elapsed < QUICK
    assert alertmanager.requests == [STATUS]


def test_notification_dry_run_needs_a_receiver(alertmanager: ReplayServer) -> None:
    token = run_context.activate(RunContext())
    try:
        with pytest.raises(DriverError, match="this experiment has no notification receiver"):
            am.notification_delivered_within("TestAlert", within=DEADLINE, url=alertmanager.url, dry_run=True)
    finally:
        run_context.deactivate(token)
    with pytest.raises(DriverError, match="this experiment has no notification receiver"):  # outside a run
        am.resolved_notification_delivered_within("TestAlert", url=alertmanager.url, dry_run=True)
    assert alertmanager.requests == []


def test_notification_dry_run_with_alertmanager_down(server: ReplayServer, plan: RunContext) -> None:
    started = time.monotonic()
    with pytest.raises(DriverError, match=r"Alertmanager at http://127\.0\.0\.1:\d+ is unreachable"):
        am.notification_delivered_within("TestAlert", within=DEADLINE, url=closed_url(), dry_run=True)
    server.serve_raw(STATUS, (500, b'{"code": 500, "message": "internal failure"}'))
    with pytest.raises(DriverError, match=r"Alertmanager /api/v2/status failed \(HTTP 500\): internal failure"):
        am.resolved_notification_delivered_within("TestAlert", within=DEADLINE, url=server.url, dry_run=True)
    assert time.monotonic() - started < QUICK


def test_notification_dry_run_uses_the_sandbox_alertmanager_of_its_sink(
    alertmanager: ReplayServer, plan: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlchaos.sandbox import monitoring_stack

    receiver = plan.receiver
    sandbox = types.SimpleNamespace(alertmanager_url=alertmanager.url, sink_host=receiver.host,
                                    sink_port=receiver.port)
    monkeypatch.setattr(monitoring_stack, "endpoints", lambda state_dir=None: sandbox)
    assert am.notification_delivered_within("TestAlert", dry_run=True)["alertmanager"] == alertmanager.url

    sandbox.sink_port = receiver.port + 1  # the receiver listens elsewhere: another Alertmanager posts to it
    with pytest.raises(DriverError) as caught:
        am.notification_delivered_within("TestAlert", dry_run=True)
    assert str(caught.value) == (
        f"the receiver at {receiver.url} is not the sandbox Alertmanager's sink "
        f"({receiver.host}:{receiver.port + 1}): give url, the Alertmanager that notifies it"
    )

    def not_running(state_dir: object = None) -> object:
        raise DriverError("the monitoring stack is not running")

    monkeypatch.setattr(monitoring_stack, "endpoints", not_running)
    with pytest.raises(DriverError, match="no Alertmanager url given and the sandbox monitoring stack is not running"):
        am.notification_delivered_within("TestAlert", dry_run=True)


def test_notification_dry_run_still_validates_arguments(alertmanager: ReplayServer, plan: RunContext) -> None:
    with pytest.raises(DriverError, match="status must be 'firing' or 'resolved'"):
        am.notification_delivered_within("TestAlert", status="pending", url=alertmanager.url, dry_run=True)
    with pytest.raises(DriverError, match="alert must be a non-empty alert name"):
        am.notification_delivered_within("", url=alertmanager.url, dry_run=True)
    with pytest.raises(DriverError, match="url must be an http"):
        am.notification_delivered_within("TestAlert", url="localhost:9093", dry_run=True)
    assert alertmanager.requests == []
