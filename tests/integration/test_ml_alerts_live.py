"""ModelNonFiniteOutputs with the real sandbox monitoring stack: the admin NaN fault fires it (and nothing else)
for that replica's instance, and /admin/reset resolves it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from components import require_monitoring

from mlchaos.sandbox import dataset, monitoring
from mlchaos.sandbox.manager import Sandbox
from mlchaos.sandbox.monitoring import MonitoringEndpoints

pytestmark = pytest.mark.integration
T = 5.0
ALERT = "ModelNonFiniteOutputs"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, MonitoringEndpoints]]:
    require_monitoring()
    path = tmp_path_factory.mktemp("ml-alerts-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCHAOS_STATE_DIR", str(path))
        sandbox = Sandbox(path)
        try:
            sandbox.up(replicas=2, timeout=60)
            yield sandbox, monitoring.endpoints(path)
        finally:
            sandbox.down()


def alerts(ep: MonitoringEndpoints) -> set[tuple[str, str, str]]:
    data = requests.get(f"{ep.prometheus_url}/api/v1/alerts", timeout=T).json()["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("instance", ""), a["state"]) for a in data}


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
