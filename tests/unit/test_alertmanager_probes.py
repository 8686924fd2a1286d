"""drivers.alertmanager.probes over real HTTP: bodies recorded from Alertmanager 0.25, a real receiver."""

from __future__ import annotations

import json
import socket
import threading
import types
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from drivers.alertmanager import probes
from mlchaos.errors import DriverError
from mlchaos.monitoring.notifications import NotificationReceiver
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.run_context import RunContext
from tests.support import fixtures_api
from tests.support.fixtures_api import ReplayServer

INSTANCE = fixtures_api.recorded_instance()
ALERTS = "/api/v2/alerts"


@pytest.fixture
def am() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver() as running:
        yield running


@pytest.fixture
def run(receiver: NotificationReceiver) -> Iterator[RunContext]:
    """An active run with the receiver, whose last fault (1 s ago) hit the recorded instance."""
    context = RunContext(changes=[fault(INSTANCE, seconds_ago=1)], receiver=receiver)
    token = run_context.activate(context)
    yield context
    run_context.deactivate(token)


def fault(instance: str, seconds_ago: float = 0) -> ChangeRecord:
    announced = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    return ChangeRecord("process", "kill", [Target("process", "model-1", {"instance": instance})],
                        announced_at=announced)


def deliver(receiver: NotificationReceiver, fixture: str, began_ago: float = 0.0, **labels: str) -> None:
    """Post the recorded notification, of an alert that began ``began_ago`` seconds ago (resolved: ends now)."""
    data = fixtures_api.load(fixture)
    alert = data["alerts"][0]
    alert["labels"].update(labels)
    now = datetime.now(UTC)
    alert["startsAt"] = (now - timedelta(seconds=began_ago)).isoformat().replace("+00:00", "Z")
    if alert["status"] == "resolved":
        alert["endsAt"] = now.isoformat().replace("+00:00", "Z")
    resp = requests.post(receiver.url, data=json.dumps(data).encode(), timeout=5)
    assert resp.status_code == 200


# -- alert_is_active --------------------------------------------------------------------------


def test_alert_is_active(am: ReplayServer, run: RunContext) -> None:
    am.serve(ALERTS, "alertmanager_alerts_active.json")
    assert probes.alert_is_active("TestAlert", url=am.url) is True
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(am.requests[0]).query)
    assert query == {
        "active": ["true"], "silenced": ["false"], "inhibited": ["false"], "filter": ['alertname="TestAlert"']
    }
    assert probes.alert_is_active("TestAlert", labels={"severity": "page"}, match_fault_targets=True, url=am.url)
    assert not probes.alert_is_active("TestAlert", labels={"severity": "ticket"}, url=am.url)
    assert not probes.alert_is_active("OtherAlert", url=am.url)  # the filter is checked on our side too
    run.changes.append(fault("127.0.0.1:1"))
    assert not probes.alert_is_active("TestAlert", match_fault_targets=True, url=am.url)


def test_suppressed_alert_is_not_active(am: ReplayServer) -> None:
    data = fixtures_api.load("alertmanager_alerts_active.json")
    data[0]["status"] = {"inhibitedBy": [], "silencedBy": ["a1b2"], "state": "suppressed"}  # a silenced alert
    am.serve_raw(ALERTS, (200, json.dumps(data).encode()))
    assert probes.alert_is_active("TestAlert", url=am.url) is False


def test_no_active_alert(am: ReplayServer) -> None:
    am.serve(ALERTS, "alertmanager_alerts_none.json")
    assert probes.alert_is_active("NoSuchAlert", url=am.url) is False


def test_alertmanager_errors(am: ReplayServer) -> None:
    am.serve(ALERTS, "alertmanager_error_bad_filter.json")
    with pytest.raises(DriverError) as caught:
        probes.alert_is_active("TestAlert", url=am.url)
    assert str(caught.value) == "Alertmanager /api/v2/alerts failed (HTTP 400): bad matcher format: alertname~~"
    am.serve_raw(ALERTS, (500, b'{"code": 500, "message": "internal failure"}'))
    with pytest.raises(DriverError, match=r"failed \(HTTP 500\): internal failure"):
        probes.alert_is_active("TestAlert", url=am.url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(DriverError, match="Alertmanager at .* is unreachable"):
        probes.alert_is_active("TestAlert", url=closed)


def test_url_from_the_sandbox_monitoring_stack(am: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlchaos.sandbox import monitoring_stack

    monkeypatch.setattr(monitoring_stack, "endpoints",
                        lambda state_dir=None: types.SimpleNamespace(alertmanager_url=am.url))
    am.serve(ALERTS, "alertmanager_alerts_active.json")
    assert probes.alert_is_active("TestAlert") is True

    def not_running(state_dir: object = None) -> object:
        raise DriverError("the monitoring stack is not running")

    monkeypatch.setattr(monitoring_stack, "endpoints", not_running)
    with pytest.raises(DriverError, match="no Alertmanager url given and the sandbox monitoring stack is not running"):
        probes.alert_is_active("TestAlert")


# -- notifications ------------------------------------------------------------------------------


def test_firing_notification_after_the_fault(receiver: NotificationReceiver, run: RunContext) -> None:
    deliver(receiver, "webhook_firing.json")
    result = probes.notification_delivered_within("TestAlert", within=5, labels={"severity": "page"},
                                                  match_fault_targets=True)
    note = receiver.notifications()[0]
    seconds = result["measurement"]["seconds"]
    assert result == {
        "alert": "TestAlert",
        "status": "firing",
        "labels": note.labels,
        "received_at": note.received_at,
        "measured_from": "fault",
        "confirmed_by": None,  # no Alertmanager to ask here: the token is the proof
        "measurement": {"kind": "time_to_notify", "alert": "TestAlert", "seconds": seconds},
    }
    assert 1.0 <= seconds < 4
    assert json.loads(json.dumps(result)) == result


def test_notification_arriving_while_waiting(receiver: NotificationReceiver, run: RunContext) -> None:
    timer = threading.Timer(0.2, deliver, args=(receiver, "webhook_resolved.json"))
    timer.start()
    try:
        result = probes.resolved_notification_delivered_within("TestAlert", within=10, match_fault_targets=True)
    finally:
        timer.join()
    assert result["status"] == "resolved"
    assert result["measurement"]["kind"] == "time_to_notify_resolved"
    assert result["measurement"]["seconds"] >= 1.0


def test_notifications_before_the_fault_do_not_count(receiver: NotificationReceiver, run: RunContext) -> None:
    deliver(receiver, "webhook_firing.json")  # an earlier drill
    deliver(receiver, "webhook_resolved.json")
    run.changes.append(fault(INSTANCE))  # a new fault, after those notifications
    with pytest.raises(DriverError) as caught:
        probes.notification_delivered_within("TestAlert", within=0.2)
    assert str(caught.value) == (
        "no firing notification of TestAlert arrived within 0.2s (received since the fault: none)"
    )


def test_a_late_delivery_of_an_earlier_alert_does_not_count(receiver: NotificationReceiver, run: RunContext) -> None:
    """Alertmanager retries a failed delivery with backoff: an earlier drill's notifications of the same replica
    (its receiver gone) can arrive during the next drill, after its fault. A benchmark run saw both arrive
    0.07 s after a fault, before anything could have noticed it, and counted them. They began (startsAt)
    before the fault: they do not count, and the error says what came."""
    deliver(receiver, "webhook_firing.json", began_ago=20.0)
    deliver(receiver, "webhook_resolved.json", began_ago=20.0)
    with pytest.raises(DriverError) as caught:
        probes.notification_delivered_within("TestAlert", within=0.2, match_fault_targets=True)
    message = str(caught.value)
    assert message.startswith(f"no firing notification of TestAlert on instance {INSTANCE} arrived within 0.2s")
    assert message.endswith(")") and "of an alert that began before the fault (a late delivery of an earlier " \
        f'one): TestAlert{{instance="{INSTANCE}", job="flip", severity="page"}} firing since ' in message
    with pytest.raises(DriverError, match="began before the fault"):
        probes.resolved_notification_delivered_within("TestAlert", within=0.2, match_fault_targets=True)
    # within the rulers' clock slack (its clock a little behind this host's) it is this fault's alert
    deliver(receiver, "webhook_firing.json", began_ago=1.5)
    result = probes.notification_delivered_within("TestAlert", within=0.2, match_fault_targets=True)
    assert result["measurement"]["seconds"] >= 1.0


def test_timeout_lists_what_was_received(receiver: NotificationReceiver, run: RunContext) -> None:
    deliver(receiver, "webhook_firing.json", instance="127.0.0.1:1")  # another instance
    deliver(receiver, "webhook_resolved.json")  # the right instance, the wrong status
    requests.post(receiver.url, data=b"{not json", timeout=5)
    with pytest.raises(DriverError) as caught:
        probes.notification_delivered_within("TestAlert", within=0, match_fault_targets=True)
    message = str(caught.value)
    assert message.startswith(f"no firing notification of TestAlert on instance {INSTANCE} arrived within 0s ")
    assert 'TestAlert{instance="127.0.0.1:1", job="flip", severity="page"} firing at +1.' in message
    assert f'TestAlert{{instance="{INSTANCE}", job="flip", severity="page"}} resolved at +1.' in message
    assert message.endswith("; 1 requests refused, last: malformed JSON: Expecting property name enclosed in "
                            "double quotes: line 1 column 2 (char 1))")


def test_without_a_fault_only_notifications_since_the_probe_started_count(receiver: NotificationReceiver) -> None:
    deliver(receiver, "webhook_firing.json")
    token = run_context.activate(RunContext(receiver=receiver))
    try:
        with pytest.raises(DriverError, match=r"received since the probe start: none"):
            probes.notification_delivered_within("TestAlert", within=0)
        timer = threading.Timer(0.1, deliver, args=(receiver, "webhook_firing.json"))
        timer.start()
        result = probes.notification_delivered_within("TestAlert", within=10)
        timer.join()
    finally:
        run_context.deactivate(token)
    assert result["measured_from"] == "probe start" and 0 < result["measurement"]["seconds"] < 5


def test_no_receiver() -> None:
    message = "this experiment has no notification receiver: declare `notifications` in its mlchaos extension"
    with pytest.raises(DriverError) as caught:
        probes.notification_delivered_within("TestAlert")
    assert str(caught.value) == message
    token = run_context.activate(RunContext(changes=[fault(INSTANCE)]))
    try:
        with pytest.raises(DriverError) as caught:
            probes.resolved_notification_delivered_within("TestAlert")
    finally:
        run_context.deactivate(token)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "pending"}, "status must be 'firing' or 'resolved'"),
        ({"within": -1}, "within must be a non-negative number"),
        ({"labels": ["severity"]}, "labels must map label names"),
    ],
)
def test_bad_arguments(run: RunContext, kwargs: dict, message: str) -> None:
    with pytest.raises(DriverError, match=message):
        probes.notification_delivered_within("TestAlert", **kwargs)
