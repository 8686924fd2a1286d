"""Exact detection and recovery times (drivers.prometheus.timing), on API bodies recorded from Prometheus 2.42.

The sandbox bodies were recorded after three real kill drills: the ALERTS samples of ModelServerDown
(``for: 3s``, evaluated every second) and the running configuration (scrape every second).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from drivers.prometheus import probes, timing
from mlchaos.errors import DriverError
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.run_context import RunContext
from tests.support import fixtures_api
from tests.support.fixtures_api import ReplayServer

SANDBOX = {
    "/api/v1/rules": "prometheus_rules_sandbox.json",
    "/api/v1/status/config": "prometheus_status_config_sandbox.json",
    "/api/v1/query": "prometheus_query_alerts_range_sandbox.json",
}
MODEL_0, MODEL_2 = "127.0.0.1:43505", "127.0.0.1:42451"
LAST_FIRING_MODEL_0 = 1796207631.887  # the last ALERTS sample of model-0 in the recording


def recorded(bodies: dict[str, str]) -> tuple[timing.Get, list[tuple[str, Any]]]:
    """A ``get`` answering each API path with the ``data`` of its recorded body; the requests it saw."""
    asked: list[tuple[str, Any]] = []

    def get(path: str, params: dict[str, str] | None) -> Any:
        asked.append((path, params))
        if path not in bodies:
            raise DriverError(f"Prometheus {path} failed (HTTP 404, error): not found")
        return fixtures_api.load(bodies[path])["data"]

    return get, asked


def sandbox_timing() -> timing.RuleTiming:
    return timing.rule_timing(recorded(SANDBOX)[0], "ModelServerDown", {"job": "model"})


def test_the_timing_of_the_sandbox_rule_is_read_from_prometheus() -> None:
    assert sandbox_timing() == timing.RuleTiming(for_seconds=3.0, keep_firing_for=0.0, evaluation_interval=1.0,
                                                 scrape_interval=1.0)
    assert sandbox_timing().floor("time_to_detect") == {"seconds": 5.0,
                                                        "text": "scrape 1s + evaluation 1s + for 3s"}
    assert sandbox_timing().floor("time_to_recover") == {"seconds": 2.0,
                                                         "text": "scrape 1s + evaluation 1s + keep_firing_for 0s"}


def test_without_the_configuration_the_floor_is_unknown_but_the_rule_is_not() -> None:
    get, asked = recorded({"/api/v1/rules": "prometheus_rules_sandbox.json"})
    rule = timing.rule_timing(get, "ModelServerDown", {"job": "model"})
    assert [path for path, _ in asked] == ["/api/v1/rules", "/api/v1/status/config"]
    assert (rule.for_seconds, rule.evaluation_interval, rule.scrape_interval) == (3.0, 1.0, None)
    assert rule.floor("time_to_detect") is None


def test_an_unknown_rule_has_no_duration() -> None:
    rule = timing.rule_timing(recorded(SANDBOX)[0], "NoSuchAlert", {})
    assert rule.for_seconds is None and rule.keep_firing_for is None
    assert rule.evaluation_interval == 1.0  # the global evaluation interval stands in for the group's


@pytest.mark.parametrize(("text", "seconds"), [
    ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), (3, 3.0), (0.5, 0.5), ("", None), ("3x", None),
    ("1m junk", None), (None, None), (True, None),
])
def test_durations(text: Any, seconds: float | None) -> None:
    assert timing.parse_duration(text) == seconds


@pytest.mark.parametrize(("for_seconds", "interval", "after"), [
    (3.0, 1.0, 3.0),   # a multiple of the interval: activeAt + for
    (2.5, 1.0, 3.0),   # not a multiple: the first evaluation at least `for` after activeAt
    (0.0, 1.0, 0.0),   # for: 0 fires at the evaluation that made it active
    (30.0, 15.0, 30.0),
    (20.0, 15.0, 30.0),
])
def test_fired_at_is_the_first_evaluation_after_for(for_seconds: float, interval: float, after: float) -> None:
    rule = timing.RuleTiming(for_seconds, 0.0, interval, 1.0)
    exact = timing.fired_at({"activeAt": "2026-12-02T10:00:00Z"}, rule, origin=0.0, seen=2e9)
    assert exact == timing.Exact(datetime.fromisoformat("2026-12-02T10:00:00+00:00").timestamp() + after)


def test_fired_at_falls_back_with_a_reason() -> None:
    rule = timing.RuleTiming(3.0, 0.0, 1.0, 1.0)
    active = "2026-12-02T10:00:00.5Z"
    at = datetime.fromisoformat("2026-12-02T10:00:00.5+00:00").timestamp()
    cases = [
        ({}, rule, 0.0, 2e9, "Prometheus gave no activeAt"),
        ({"activeAt": "0001-01-01T00:00:00Z"}, rule, 0.0, 2e9, "Prometheus gave no activeAt"),
        ({"activeAt": active}, timing.RuleTiming(None, None, 1.0, 1.0), 0.0, 2e9,
         "Prometheus gave no rule duration (for)"),
        ({"activeAt": active, "keepFiringSince": "2026-12-02T10:00:09Z"}, rule, 0.0, 2e9,
         "kept firing (keep_firing_for) since 2026-12-02T10:00:09Z"),
        ({"activeAt": active}, rule, at + 1, 2e9, f"active since {active}, before the fault: not caused by it"),
        ({"activeAt": active}, rule, at - 1, at + 2.0,
         "Prometheus says it fired 1.000s after this host saw it: clocks disagree"),
    ]
    for alert, rule_timing, origin, seen, note in cases:
        assert timing.fired_at(alert, rule_timing, origin, seen) == timing.Exact(None, note)


def test_resolved_one_evaluation_after_the_last_alerts_sample() -> None:
    get, asked = recorded(SANDBOX)
    instance_0 = lambda name, labels: labels.get("instance") == MODEL_0  # noqa: E731
    exact = timing.resolved_at(get, instance_0, "ModelServerDown", sandbox_timing(),
                               origin=LAST_FIRING_MODEL_0 - 10, seen=LAST_FIRING_MODEL_0 + 1.5)
    assert exact == timing.Exact(LAST_FIRING_MODEL_0 + 1.0)
    assert asked == [("/api/v1/query", {"query": 'ALERTS{alertname="ModelServerDown"}[14s]',
                                        "time": f"{LAST_FIRING_MODEL_0 + 1.5:.3f}", "nocache": "1"})]
    # model-2's episode (pending, then firing until .560.887) is a series of its own
    instance_2 = lambda name, labels: labels.get("instance") == MODEL_2  # noqa: E731
    assert timing.resolved_at(get, instance_2, "ModelServerDown", sandbox_timing(), origin=1796207550.0,
                              seen=1796207562.0) == timing.Exact(1796207561.887)


def test_resolved_at_falls_back_with_a_reason() -> None:
    get, _ = recorded(SANDBOX)
    nowhere = lambda name, labels: labels.get("instance") == "elsewhere:1"  # noqa: E731
    assert timing.resolved_at(get, nowhere, "ModelServerDown", sandbox_timing(), 0.0, 2e9) == timing.Exact(
        None, "no ALERTS sample since the fault: it was never active, or the ruler does not write ALERTS where "
              "it is queried (vmalert without -remoteWrite.url)")
    anywhere = lambda name, labels: True  # noqa: E731
    assert timing.resolved_at(get, anywhere, "ModelServerDown", sandbox_timing(), LAST_FIRING_MODEL_0 + 60,
                              LAST_FIRING_MODEL_0 + 61) == timing.Exact(
        None, "Prometheus says it resolved 59.000s before the fault")  # an earlier drill's episode
    assert timing.resolved_at(get, anywhere, "ModelServerDown", sandbox_timing(), 0.0,
                              LAST_FIRING_MODEL_0) == timing.Exact(
        None, "Prometheus says it resolved 1.000s after this host saw it: clocks disagree")
    no_interval = timing.RuleTiming(3.0, 0.0, None, 1.0)
    assert timing.resolved_at(get, anywhere, "ModelServerDown", no_interval, 0.0, 2e9) == timing.Exact(
        None, "Prometheus gave no evaluation interval")


# -- the probe, end to end over real HTTP ----------------------------------------------------


@pytest.fixture
def prom() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.stop()


def test_the_probe_measures_from_prometheus_timestamps(prom: ReplayServer) -> None:
    """The recorded TestAlert (for 3s, evaluated every second) became active at .57.346677605: with the fault
    announced one second before, it fired 4.347 s after the fault, though the probe saw it days later."""
    prom.serve("/api/v1/alerts", "prometheus_alerts_firing.json")
    prom.serve("/api/v1/rules", "prometheus_rules_alert.json")
    target = Target("process", "flip-0", {"instance": fixtures_api.recorded_instance()})
    record = ChangeRecord("test", "flip", [target], announced_at="2026-11-26T16:19:56.346677+00:00")
    token = run_context.activate(RunContext(changes=[record]))
    try:
        result = probes.alert_fires_within("TestAlert", within=5, match_fault_targets=True, poll=0.01, url=prom.url)
    finally:
        run_context.deactivate(token)
    measurement = result["measurement"]
    assert measurement["method"] == "prometheus timestamps"
    assert measurement["seconds"] == 4.0 and result["fired_after_fault"] == 4.0  # activeAt + 3 s - fault
    assert measurement["polled"] > 86400  # recorded long before this test ran
    assert "floor" not in measurement  # the configuration was not served: its scrape interval is unknown
    assert result["active_before_fault"] is False


# -- vmalert and VictoriaMetrics (bodies recorded from Debian's 1.79.5 over the sandbox) -----------------

VMALERT = {
    "/api/v1/rules": "vmalert_rules_sandbox.json",
    "/api/v1/status/config": "victoriametrics_status_config_sandbox.json",
    "/api/v1/query": "victoriametrics_query_alerts_range_sandbox.json",
}
VM_KILLED = "127.0.0.1:42667"
VM_FAULT = 1796213808.015  # SIGKILL of model-2
VM_ACTIVE_AT = datetime.fromisoformat("2026-12-02T12:16:50.506822+00:00").timestamp()


def vmalert_timing() -> timing.RuleTiming:
    return timing.rule_timing(recorded(VMALERT)[0], "ModelServerDown", {"job": "model"})


def test_vmalert_gives_durations_as_numbers_of_seconds() -> None:
    """vmalert's rules API writes ``duration: 3`` and the group's ``interval: 1`` (Prometheus: "3s", 1s);
    victoria-metrics' /api/v1/status/config is its -promscrape.config."""
    assert vmalert_timing() == timing.RuleTiming(for_seconds=3.0, keep_firing_for=0.0, evaluation_interval=1.0,
                                                 scrape_interval=1.0)


def test_vmalert_fired_at_its_active_at_plus_for() -> None:
    (alert,) = fixtures_api.load("vmalert_alerts_firing.json")["data"]["alerts"]
    assert timing.fired_at(alert, vmalert_timing(), VM_FAULT, 2e9) == timing.Exact(VM_ACTIVE_AT + 3.0)


def test_vmalert_resolved_at_its_staleness_marker_back_on_the_evaluation_grid() -> None:
    """The recorded ALERTS samples are whole seconds (vmalert truncates its evaluation time) and end in a NaN
    staleness marker at 1796213816: the evaluation at 12:16:56.507 (activeAt + 6 s) found the alert gone."""
    killed = lambda name, labels: labels.get("instance") == VM_KILLED  # noqa: E731
    exact = timing.resolved_at(recorded(VMALERT)[0], killed, "ModelServerDown", vmalert_timing(),
                               VM_FAULT, 1796213826.104, active_at=VM_ACTIVE_AT)
    assert exact == timing.Exact(VM_ACTIVE_AT + 6.0)
    # without the alert's activeAt the second it happened in is all the timestamps say
    exact = timing.resolved_at(recorded(VMALERT)[0], killed, "ModelServerDown", vmalert_timing(),
                               VM_FAULT, 1796213826.104)
    assert (exact.at, exact.resolution) == (1796213816.0, 1.0)
    assert "whole-second timestamps" in exact.note


def test_without_a_staleness_marker_it_is_one_interval_after_the_last_sample() -> None:
    """Prometheus' API never returns staleness markers; with whole seconds the grid still applies."""
    body = fixtures_api.load("victoriametrics_query_alerts_range_sandbox.json")
    for series in body["data"]["result"]:
        series["values"] = [v for v in series["values"] if v[1] != "NaN"]
    get = lambda path, params: body["data"]  # noqa: E731
    anywhere = lambda name, labels: True  # noqa: E731
    exact = timing.resolved_at(get, anywhere, "ModelServerDown", vmalert_timing(), VM_FAULT, 1796213826.104,
                               active_at=VM_ACTIVE_AT)
    assert exact == timing.Exact(VM_ACTIVE_AT + 6.0)  # last sample 815 is the evaluation at .507, + 1 s


def lagging(body: dict[str, Any], until: float, states: tuple[str, ...] = ("pending", "firing")) -> dict[str, Any]:
    """``body`` (a recorded ALERTS range answer) as it reads while the ruler has written back only the samples
    up to ``until`` of the series in ``states``: vmalert sends what it evaluated every
    -remoteWrite.flushInterval (5 s), and VictoriaMetrics shows a new series a little after its samples came."""
    early = copy.deepcopy(body)
    for series in early["data"]["result"]:
        series["values"] = [v for v in series["values"] if float(v[0]) <= until]
    early["data"]["result"] = [series for series in early["data"]["result"]
                               if series["values"] and series["metric"].get("alertstate") in states]
    return early


def test_a_recovery_waits_for_alerts_written_back_late() -> None:
    """When the probe saw the alert go, VictoriaMetrics often showed only part of what vmalert had evaluated:
    no firing sample at all (a CI run's drill fell back to the polled time), or the pending series' marker
    (when the alert began firing) passed for its end, seconds early. The firing series must end in a marker
    of its own: it is asked again until it does, whether or not the probe saw the alert active."""
    body = fixtures_api.load("victoriametrics_query_alerts_range_sandbox.json")
    answers = [lagging(body, 1796213813, ("pending",))["data"], lagging(body, 1796213815)["data"], body["data"]]
    asked: list[float] = []

    def get(path: str, params: dict[str, str] | None) -> Any:
        asked.append(time.monotonic())
        return answers[min(len(asked), len(answers)) - 1]

    killed = lambda name, labels: labels.get("instance") == VM_KILLED  # noqa: E731
    firing = timing.LastActive("firing", 1796213816.3)
    for last_active, active_at in ((firing, VM_ACTIVE_AT), (None, None)):
        asked.clear()
        exact = timing.resolved_at(get, killed, "ModelServerDown", vmalert_timing(), VM_FAULT, 1796213816.6,
                                   active_at=active_at, last_active=last_active, wait=5.0, poll=0.01)
        assert exact.at == (VM_ACTIVE_AT + 6.0 if active_at else 1796213816.0) and len(asked) == 3
    # the first answer read as complete gave the moment it began firing; now it is the reason to ask again
    exact = timing.resolved_at(lambda path, params: answers[0], killed, "ModelServerDown", vmalert_timing(),
                               VM_FAULT, 1796213816.6, active_at=VM_ACTIVE_AT, wait=0.0)
    assert exact == timing.Exact(None, "ALERTS was still incomplete after 0s (the pending series lasted its for, "
                                       "so the alert fired, but no firing sample is there yet): the ruler writes "
                                       "it back late (vmalert's -remoteWrite.flushInterval), or missed evaluations")
    # never complete within the wait: the polled time stands, and the note says why
    exact = timing.resolved_at(lambda path, params: answers[1], killed, "ModelServerDown", vmalert_timing(),
                               VM_FAULT, 1796213816.6, active_at=VM_ACTIVE_AT, last_active=firing, wait=0.05,
                               poll=0.01)
    assert exact == timing.Exact(None, "ALERTS was still incomplete after 0.05s (no staleness marker yet after its "
                                       "last firing sample): the ruler writes it back late (vmalert's "
                                       "-remoteWrite.flushInterval), or missed evaluations")
    nothing = {"resultType": "matrix", "result": []}
    assert timing.resolved_at(lambda path, params: nothing, killed, "ModelServerDown", vmalert_timing(), VM_FAULT,
                              1796213816.6, last_active=firing, wait=0.0) == timing.Exact(None, timing.NO_SAMPLES)


def test_an_alert_that_went_while_pending_ends_at_its_pending_marker() -> None:
    """Two pending evaluations of a ``for: 3s`` rule evaluated every second, then gone: it never fired, so no
    firing series is awaited."""
    pending = {"metric": {"alertname": "ModelServerDown", "alertstate": "pending", "instance": VM_KILLED},
               "values": [[1796213810, "1"], [1796213811, "1"], [1796213812, "NaN"]]}
    data = {"resultType": "matrix", "result": [pending]}
    anywhere = lambda name, labels: True  # noqa: E731
    exact = timing.resolved_at(lambda path, params: data, anywhere, "ModelServerDown", vmalert_timing(), VM_FAULT,
                               1796213813.0, active_at=VM_ACTIVE_AT,
                               last_active=timing.LastActive("pending", 1796213811.7), wait=0.0)
    assert exact == timing.Exact(VM_ACTIVE_AT + 2.0)  # the evaluation at 12:16:52.507, in the second of 812


def test_without_staleness_markers_the_last_sample_must_reach_the_probes_last_sight() -> None:
    """Prometheus' API drops staleness markers: its own ALERTS are complete (written as it evaluates); a series
    whose last sample is older than the evaluation behind what the probe last saw is not."""
    get, asked = recorded(SANDBOX)
    instance_0 = lambda name, labels: labels.get("instance") == MODEL_0  # noqa: E731
    seen_firing = timing.LastActive("firing", LAST_FIRING_MODEL_0 + 0.9)
    exact = timing.resolved_at(get, instance_0, "ModelServerDown", sandbox_timing(), LAST_FIRING_MODEL_0 - 10,
                               LAST_FIRING_MODEL_0 + 1.5, last_active=seen_firing, wait=5.0)
    assert exact == timing.Exact(LAST_FIRING_MODEL_0 + 1.0) and len(asked) == 1
    later = timing.LastActive("firing", LAST_FIRING_MODEL_0 + 3.5)  # 2 evaluations later: samples are missing
    exact = timing.resolved_at(get, instance_0, "ModelServerDown", sandbox_timing(), LAST_FIRING_MODEL_0 - 10,
                               LAST_FIRING_MODEL_0 + 4.0, last_active=later, wait=0.02, poll=0.01)
    assert exact.at is None and "its last firing sample is 3.500s older than the probe's last sight" in exact.note


def test_the_probes_measure_vmalert_alerts_end_to_end(prom: ReplayServer) -> None:
    """Over real HTTP, as through victoria-metrics' -vmalert.proxyURL: the alert fires (vmalert's activeAt),
    then resolves (the ALERTS staleness marker, put on the grid of the activeAt the probe saw)."""
    prom.serve("/api/v1/alerts", "vmalert_alerts_firing.json")
    for path, name in VMALERT.items():
        prom.serve(path, name)
    target = Target("process", "model-2", {"instance": VM_KILLED})
    announced = datetime.fromtimestamp(VM_FAULT).astimezone().isoformat()
    token = run_context.activate(RunContext(changes=[ChangeRecord("test", "kill", [target], announced_at=announced)]))
    try:
        fired = probes.alert_fires_within("ModelServerDown", within=5, match_fault_targets=True, poll=0.01,
                                          url=prom.url)
        prom.serve("/api/v1/alerts", "vmalert_alerts_firing.json", "vmalert_alerts_none.json")
        resolved = probes.alert_resolves_within("ModelServerDown", within=5, match_fault_targets=True, poll=0.01,
                                                url=prom.url)
    finally:
        run_context.deactivate(token)
    assert fired["measurement"]["method"] == "prometheus timestamps"
    assert fired["measurement"]["seconds"] == round(VM_ACTIVE_AT + 3.0 - VM_FAULT, 3)
    assert fired["measurement"]["floor"] == 5.0  # scrape 1 s + evaluation 1 s + for 3 s
    assert fired["labels"]["alertgroup"] == "ml-serving"  # vmalert's own label, kept
    measurement = resolved["measurement"]
    assert measurement["method"] == "prometheus timestamps" and "resolution" not in measurement
    assert measurement["seconds"] == round(VM_ACTIVE_AT + 6.0 - VM_FAULT, 3)
