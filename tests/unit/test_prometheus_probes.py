"""drivers.prometheus.probes over real HTTP, against bodies recorded from Prometheus 2.42."""

from __future__ import annotations

import math
import socket
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from drivers.prometheus import probes
from mlchaos.errors import DriverError
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.run_context import RunContext
from tests.support import fixtures_api
from tests.support.fixtures_api import ReplayServer

INSTANCE = fixtures_api.recorded_instance()
ALERTS = "/api/v1/alerts"


@pytest.fixture
def prom() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.stop()


@pytest.fixture
def run() -> Iterator[RunContext]:
    """An active run context whose last fault (2 s ago) hit the recorded instance."""
    context = RunContext(changes=[fault(INSTANCE, seconds_ago=2)])
    token = run_context.activate(context)
    yield context
    run_context.deactivate(token)


def fault(instance: str | None, seconds_ago: float = 0, dry_run: bool = False) -> ChangeRecord:
    details = {"instance": instance} if instance else {}
    announced = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    return ChangeRecord("process", "kill", [Target("process", "model-1", details)], dry_run=dry_run,
                        announced_at=announced)


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# -- queries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("prometheus_query_vector_one.json", 0.0),
        ("prometheus_query_scalar.json", 2.0),
        ("prometheus_query_vector_empty.json", None),
    ],
)
def test_query_value(prom: ReplayServer, fixture: str, expected: float | None) -> None:
    prom.serve("/api/v1/query", fixture)
    assert probes.query_value("q", url=prom.url) == expected
    assert prom.requests == ["/api/v1/query?query=q"]


def test_query_value_nan(prom: ReplayServer) -> None:
    prom.serve("/api/v1/query", "prometheus_query_nan.json")
    assert math.isnan(probes.query_value("sum(x) / 0", url=prom.url))


def test_query_value_with_several_series_asks_to_aggregate(prom: ReplayServer) -> None:
    prom.serve("/api/v1/query", "prometheus_query_vector_many.json")
    with pytest.raises(DriverError) as caught:
        probes.query_value("mlchaos_test_flip", url=prom.url)
    message = str(caught.value)
    assert "returned 2 series" in message and "aggregate it to one value" in message
    for instance in fixtures_api.MANIFEST["stack"]["targets"]:
        assert f'instance="{instance}"' in message


def test_query_series(prom: ReplayServer) -> None:
    prom.serve("/api/v1/query", "prometheus_query_vector_many.json")
    series = probes.query_series("mlchaos_test_flip", url=prom.url + "/")
    assert sorted(s["labels"]["instance"] for s in series) == sorted(fixtures_api.MANIFEST["stack"]["targets"])
    assert all(s["value"] == 0.0 and s["labels"]["job"] == "flip" for s in series)
    prom.serve("/api/v1/query", "prometheus_query_scalar.json")
    assert probes.query_series("scalar(...)", url=prom.url) == [{"labels": {}, "value": 2.0}]


def test_range_vector_is_refused(prom: ReplayServer) -> None:
    prom.serve("/api/v1/query", "prometheus_query_matrix.json")
    with pytest.raises(DriverError, match="returned a matrix, not an instant vector or scalar"):
        probes.query_value("mlchaos_test_flip[3s]", url=prom.url)


def test_api_error_carries_prometheus_text(prom: ReplayServer) -> None:
    prom.serve("/api/v1/query", "prometheus_query_error_bad_data.json")
    with pytest.raises(DriverError) as caught:
        probes.query_value("sum(", url=prom.url)
    assert str(caught.value) == (
        'Prometheus /api/v1/query failed (HTTP 400, bad_data): invalid parameter "query": 1:5: '
        "parse error: unclosed left parenthesis"
    )


def test_non_api_answers_and_unreachable_server(prom: ReplayServer) -> None:
    prom.serve_raw("/api/v1/query", (502, b"<html>Bad Gateway</html>"))
    with pytest.raises(DriverError, match="answered HTTP 502 with no API body: '<html>Bad Gateway"):
        probes.query_value("up", url=prom.url)
    with pytest.raises(DriverError, match=r"Prometheus at http://127\.0\.0\.1:\d+ is unreachable"):
        probes.query_value("up", url=closed_url())
    with pytest.raises(DriverError, match="url must be an http"):
        probes.query_value("up", url="localhost:9090")
    with pytest.raises(DriverError, match="query must be a non-empty PromQL expression"):
        probes.query_value(" ", url=prom.url)


def test_url_from_the_sandbox_monitoring_stack(prom: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlchaos.sandbox import monitoring_stack

    running = types.SimpleNamespace(prometheus_url=prom.url + "/")
    monkeypatch.setattr(monitoring_stack, "endpoints", lambda state_dir=None: running)
    prom.serve("/api/v1/query", "prometheus_query_vector_one.json")
    assert probes.query_value("sum(mlchaos_test_flip)") == 0.0

    def not_running(state_dir: object = None) -> object:
        raise DriverError("the monitoring stack is not running (mlchaos sandbox up --monitoring)")

    monkeypatch.setattr(monitoring_stack, "endpoints", not_running)
    with pytest.raises(DriverError, match="no Prometheus url given and the sandbox monitoring stack is not running"):
        probes.query_value("up")


# -- rules ----------------------------------------------------------------------------------


def test_rule_is_healthy(prom: ReplayServer) -> None:
    prom.serve("/api/v1/rules", "prometheus_rules_alert.json")
    assert probes.rule_is_healthy("TestAlert", url=prom.url) is True
    assert probes.rule_is_healthy("BrokenRule", url=prom.url) is False  # health "err"
    assert prom.requests[0] == "/api/v1/rules?type=alert"


def test_missing_rule_names_close_matches(prom: ReplayServer) -> None:
    prom.serve("/api/v1/rules", "prometheus_rules_alert.json")
    with pytest.raises(DriverError) as caught:
        probes.rule_is_healthy("TestAlrt", url=prom.url)
    assert str(caught.value) == (
        f"alerting rule 'TestAlrt' is not loaded in Prometheus at {prom.url} (did you mean 'TestAlert'?)"
    )
    with pytest.raises(DriverError, match=r"\(loaded: BrokenRule, SlowAlert, TestAlert\)"):
        probes.rule_is_healthy("ModelDriftHigh", url=prom.url)
    prom.serve_raw("/api/v1/rules", (200, b'{"status":"success","data":{"groups":[]}}'))
    with pytest.raises(DriverError, match="no alerting rules are loaded at all"):
        probes.rule_is_healthy("TestAlert", url=prom.url)


# -- alerts firing ----------------------------------------------------------------------------


def test_fires_after_pending_measured_from_the_fault(prom: ReplayServer, run: RunContext) -> None:
    prom.serve(ALERTS, "prometheus_alerts_none.json", "prometheus_alerts_pending.json",
               "prometheus_alerts_firing.json")
    prom.serve("/api/v1/rules", "prometheus_rules_alert.json")
    result = probes.alert_fires_within("TestAlert", within=10, labels={"severity": "page"},
                                       match_fault_targets=True, poll=0.01, url=prom.url)
    assert prom.requests[:4] == [ALERTS] * 3 + ["/api/v1/rules?type=alert"]  # pending was not taken for firing
    seconds = result["measurement"]["seconds"]
    active_at = fixtures_api.load("prometheus_alerts_firing.json")["data"]["alerts"][0]["activeAt"]
    assert result == {
        "alert": "TestAlert",
        "state": "firing",
        "labels": fixtures_api.load("prometheus_alerts_firing.json")["data"]["alerts"][0]["labels"],
        "active_at": active_at,
        "fired_after_fault": seconds,
        "active_before_fault": True,  # the recording is older than this test's fault
        "measured_from": "fault",
        # an alert active before the fault was not caused by it: its activeAt says nothing of this fault
        "measurement": {"kind": "time_to_detect", "alert": "TestAlert", "seconds": seconds, "polled": seconds,
                        "method": "polled",
                        "note": f"active since {active_at}, before the fault: not caused by it"},
    }
    assert 2.0 <= seconds < 5


def test_fires_outside_a_run_measures_from_the_probe_start(prom: ReplayServer) -> None:
    prom.serve(ALERTS, "prometheus_alerts_pending.json", "prometheus_alerts_firing.json")
    result = probes.alert_fires_within("TestAlert", within=10, poll=0.01, url=prom.url)
    assert result["measured_from"] == "probe start" and result["fired_after_fault"] is None
    assert result["active_before_fault"] is None
    assert 0 <= result["measurement"]["seconds"] < 2


def test_pending_is_not_firing(prom: ReplayServer) -> None:
    prom.serve(ALERTS, "prometheus_alerts_pending.json")
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        probes.alert_fires_within("TestAlert", within=0.3, poll=0.05, url=prom.url)
    assert 0.3 <= time.monotonic() - started < 2
    active_at = fixtures_api.load("prometheus_alerts_pending.json")["data"]["alerts"][0]["activeAt"]
    assert str(caught.value) == (
        f"alert TestAlert did not fire within 0.3s (last seen: pending since {active_at}); firing alerts: []"
    )


def test_absent_alert_lists_what_is_firing(prom: ReplayServer) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json")
    with pytest.raises(DriverError) as caught:
        probes.alert_fires_within("ModelDriftHigh", within=0, url=prom.url)
    assert str(caught.value) == (
        "alert ModelDriftHigh did not fire within 0s (last seen: not present); firing alerts: "
        f'[TestAlert{{instance="{INSTANCE}", job="flip", severity="page"}}]'
    )


def test_labels_and_fault_instance_must_match(prom: ReplayServer, run: RunContext) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json")
    ticket = r"alert TestAlert\{severity=\"ticket\"\} did not fire .*only for other labels"
    with pytest.raises(DriverError, match=ticket):
        probes.alert_fires_within("TestAlert", within=0, labels={"severity": "ticket"}, url=prom.url)
    run.changes.append(fault("127.0.0.1:1"))
    with pytest.raises(DriverError, match=r"alert TestAlert on instance 127\.0\.0\.1:1 did not fire within 0s"):
        probes.alert_fires_within("TestAlert", within=0, match_fault_targets=True, url=prom.url)
    run.changes.append(fault("127.0.0.1:2", dry_run=True))  # a dry run is not a fault
    with pytest.raises(DriverError, match=r"on instance 127\.0\.0\.1:1 did"):
        probes.alert_fires_within("TestAlert", within=0, match_fault_targets=True, url=prom.url)
    traffic = fault("127.0.0.1:3")
    traffic.targets = [Target("traffic", "model-1", {"instance": "127.0.0.1:3"})]
    run.changes.append(traffic)  # client traffic started after the fault is a load, not a fault
    with pytest.raises(DriverError, match=r"on instance 127\.0\.0\.1:1 did"):
        probes.alert_fires_within("TestAlert", within=0, match_fault_targets=True, url=prom.url)


def test_match_fault_targets_needs_a_run_a_fault_and_instances(prom: ReplayServer) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json")
    with pytest.raises(DriverError, match="needs a running experiment"):
        probes.alert_fires_within("TestAlert", within=0, match_fault_targets=True, url=prom.url)
    for changes, message in (
        ([], "no fault has been injected"),
        ([fault(INSTANCE, dry_run=True)], "no fault has been injected"),
        ([fault(None)], r"the targets of the last fault \(kill: model-1\) carry no 'instance'"),
    ):
        token = run_context.activate(RunContext(changes=changes))
        try:
            with pytest.raises(DriverError, match=message):
                probes.alert_fires_within("TestAlert", within=0, match_fault_targets=True, url=prom.url)
        finally:
            run_context.deactivate(token)
    assert prom.requests == []  # nothing asked before the arguments made sense


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"within": -1}, "within must be a non-negative number"),
        ({"within": float("inf")}, "within must be"),
        ({"poll": 0}, "poll must be > 0"),
        ({"labels": {"severity": 1}}, "labels must map label names to string values"),
        ({"alert": ""}, "alert must be a non-empty alert name"),
    ],
)
def test_bad_arguments(prom: ReplayServer, kwargs: dict, message: str) -> None:
    args = {"alert": "TestAlert", **kwargs}
    with pytest.raises(DriverError, match=message):
        probes.alert_fires_within(url=prom.url, **args)
    with pytest.raises(DriverError, match=message):
        probes.alert_resolves_within(url=prom.url, **args)


# -- alerts resolving -------------------------------------------------------------------------


def test_resolves_measured_from_the_fault(prom: ReplayServer, run: RunContext) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json", "prometheus_alerts_pending.json",
               "prometheus_alerts_resolved.json")
    result = probes.alert_resolves_within("TestAlert", within=10, match_fault_targets=True, poll=0.01, url=prom.url)
    assert prom.requests[:4] == [ALERTS] * 3 + ["/api/v1/rules?type=alert"]  # pending still counts as not resolved
    seconds = result["measurement"]["seconds"]
    assert result == {
        "alert": "TestAlert",
        "state": "inactive",
        "labels": {},
        "resolved_after_fault": seconds,
        "measured_from": "fault",
        # a Prometheus without the rules API (here: 404) leaves the polled time, and says so
        "measurement": {"kind": "time_to_recover", "alert": "TestAlert", "seconds": seconds, "polled": seconds,
                        "method": "polled", "note": result["measurement"]["note"]},
    }
    assert result["measurement"]["note"].startswith("the rule's timing could not be read: Prometheus /api/v1/rules")
    assert 2.0 <= seconds < 5


def test_not_resolved_in_time(prom: ReplayServer) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json")
    with pytest.raises(DriverError) as caught:
        probes.alert_resolves_within("SlowAlert", within=0.2, poll=0.05, url=prom.url)
    assert str(caught.value).startswith(
        f'alert SlowAlert did not resolve within 0.2s (still: SlowAlert{{instance="{INSTANCE}", job="flip", '
        'severity="ticket"} pending since 2'
    )


def test_resolved_when_only_other_instances_alert(prom: ReplayServer, run: RunContext) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json")
    run.changes.append(fault("127.0.0.1:1"))
    result = probes.alert_resolves_within("TestAlert", within=0, match_fault_targets=True, url=prom.url)
    assert result["state"] == "inactive"


# -- unexpected alerts ------------------------------------------------------------------------


def test_unexpected_alerts(prom: ReplayServer) -> None:
    prom.serve(ALERTS, "prometheus_alerts_firing.json")  # TestAlert firing, SlowAlert only pending
    assert probes.no_unexpected_alerts(url=prom.url) == ["TestAlert"]
    assert probes.no_unexpected_alerts(allowed=["TestAlert"], url=prom.url) == []
    assert probes.unexpected_alert_count(url=prom.url) == 1
    assert probes.unexpected_alert_count(allowed=["TestAlert", "Other"], url=prom.url) == 0
    # with pending, an alert about to fire counts too (a drill's last check leaves nothing for the next drill)
    assert probes.no_unexpected_alerts(url=prom.url, pending=True) == ["SlowAlert", "TestAlert"]
    assert probes.unexpected_alert_count(allowed=["TestAlert"], url=prom.url, pending=True) == 1
    with pytest.raises(DriverError, match="pending must be true or false"):
        probes.no_unexpected_alerts(url=prom.url, pending="yes")  # type: ignore[arg-type]
    prom.serve(ALERTS, "prometheus_alerts_none.json")
    assert probes.no_unexpected_alerts(url=prom.url) == []
    with pytest.raises(DriverError, match="allowed must be a list of alert names"):
        probes.no_unexpected_alerts(allowed="TestAlert", url=prom.url)  # type: ignore[arg-type]
