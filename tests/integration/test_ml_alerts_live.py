"""ML alerts with the real sandbox monitoring stack (one sandbox for the module):

- ModelNonFiniteOutputs: the admin NaN fault fires it (and nothing else) for that replica's instance, and
  /admin/reset resolves it;
- ModelAccuracyLow: client traffic with request ids and the true labels fed back; a label_flipped push
  (push_bad_model) fires it for the replica hit only (no drift alert: its predictions stay
  class-balanced), and restore_pushed_model resolves it. It runs last: after it, the replicas have had
  feedback, and predictions without feedback would (rightly) fire ModelFeedbackAbsent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import count

import pytest
import requests

from drivers.model import actions
from mlchaos.sandbox import dataset, monitoring_stack
from mlchaos.sandbox.manager import Replica, Sandbox
from mlchaos.sandbox.monitoring_stack import MonitoringEndpoints
from tests.support.components import require_monitoring

T = 5.0
ALERT = "ModelNonFiniteOutputs"
ACCURACY_ALERT = "ModelAccuracyLow"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, MonitoringEndpoints]]:
    require_monitoring()
    path = tmp_path_factory.mktemp("ml-alerts-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCHAOS_STATE_DIR", str(path))
        sandbox = Sandbox(path)
        try:
            sandbox.up(replicas=2, timeout=60)
            yield sandbox, monitoring_stack.endpoints(path)
        finally:
            sandbox.down()


def alerts(ep: MonitoringEndpoints) -> set[tuple[str, str, str]]:
    data = requests.get(f"{ep.prometheus_url}/api/v1/alerts", timeout=T).json()["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("instance", ""), a["state"]) for a in data}


@pytest.mark.slow  # about 15 s on a 2-core machine
def test_nan_fault_fires_non_finite_outputs_and_reset_resolves_it(stack) -> None:
    sandbox, ep = stack
    victim = sandbox.replicas("model")[0]
    instance = f"{victim.host}:{victim.port}"
    groups = requests.get(f"{ep.prometheus_url}/api/v1/rules?type=alert", timeout=T).json()["data"]["groups"]
    rule = next(r for g in groups for r in g["rules"] if r["name"] == ALERT)
    assert rule["health"] == "ok" and rule["state"] == "inactive"  # the rule is loaded before the fault
    x = dataset.holdout_split()[0][:5]
    body = {"inputs": [{"name": "input-0", "shape": [len(x), 4], "datatype": "FP32", "data": x}]}
    requests.post(f"{victim.url}/admin/faults", json={"nan_outputs": True}, timeout=T).raise_for_status()
    injected, seen = time.monotonic(), set()
    try:
        while (ALERT, instance, "firing") not in seen:
            assert time.monotonic() - injected < 30, f"{ALERT} not firing within 30s; saw {seen}"
            requests.post(f"{victim.url}/v2/models/iris/infer", json=body, timeout=T).raise_for_status()
            seen |= alerts(ep)
            time.sleep(0.3)
        fired = time.monotonic() - injected
    finally:
        requests.post(f"{victim.url}/admin/reset", timeout=T).raise_for_status()
    assert {a[:2] for a in seen} == {(ALERT, instance)}, seen  # no ModelServerDown, error rate or drift
    reset = time.monotonic()
    while alerts(ep):
        assert time.monotonic() - reset < 30, f"not resolved within 30s: {alerts(ep)}"
        time.sleep(0.3)
    print(f"NaN fault -> {ALERT} firing {fired:.2f}s; reset -> resolved {time.monotonic() - reset:.2f}s")


class Traffic:
    """One holdout row per infer call with its own id, and its true label fed back naming that id."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.rows, self.labels = dataset.holdout_split()
        self.ids = count()
        self.session = requests.Session()

    def tick(self) -> None:
        for r in self.replicas:
            i = next(self.ids)
            row, label = self.rows[i % len(self.rows)], self.labels[i % len(self.rows)]
            body = {"id": f"t{i}", "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]}
            self.session.post(f"{r.url}/v2/models/iris/infer", json=body, timeout=T).raise_for_status()
            truth = {"id": f"t{i}", "inputs": [{"name": "truth", "shape": [1], "datatype": "INT64", "data": [label]}]}
            resp = self.session.post(f"{r.url}/v2/models/iris/feedback", json=truth, timeout=T)
            assert resp.json()["matched"] == 1

    def until(self, ep: MonitoringEndpoints, done, limit: float, what: str) -> tuple[float, set]:  # noqa: ANN001
        started, seen = time.monotonic(), set()
        while True:
            for _ in range(4):
                self.tick()
                time.sleep(0.05)
            now = alerts(ep)
            seen |= now
            if done(now):
                return time.monotonic() - started, seen
            assert time.monotonic() - started < limit, f"{what} not within {limit}s; saw {seen}"


@pytest.mark.slow  # about 22 s on a 2-core machine
def test_label_flipped_push_fires_accuracy_low_and_the_rollback_resolves_it(stack) -> None:
    sandbox, ep = stack
    traffic = Traffic(sandbox.replicas("model"))
    for _ in range(60):  # a healthy baseline with labels in every window first
        traffic.tick()
        time.sleep(0.05)
    assert not alerts(ep)
    record = actions.push_bad_model(defect="label_flipped", count=1, seed=1)
    (hit,) = record["undo"]["arguments"]["replicas"]
    victim = next(r for r in sandbox.replicas("model") if r.name == hit)
    instance = f"{victim.host}:{victim.port}"
    try:
        fired, seen = traffic.until(ep, lambda now: (ACCURACY_ALERT, instance, "firing") in now, 40,
                                    f"{ACCURACY_ALERT} firing")
    finally:
        undo = actions.restore_pushed_model(**record["undo"]["arguments"])
    assert undo["restored"] == [hit] and undo["removed"] == [hit]
    # no drift, no feedback alert, not the other replica
    assert {a[:2] for a in seen} == {(ACCURACY_ALERT, instance)}, seen
    resolved, _ = traffic.until(ep, lambda now: not now, 60, "resolved")
    print(f"label_flipped push -> {ACCURACY_ALERT} firing {fired:.1f}s; rollback -> resolved {resolved:.1f}s")
