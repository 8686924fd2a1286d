"""The reference server's ML signals over real HTTP: invalid inputs by reason, drift, feedback, NaN outputs,
readiness, version pinning, and the loopback-only admin endpoint (also refused to a non-loopback client)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from mlchaos.sandbox import dataset
from mlchaos.sandbox.manager import Replica, Sandbox
from mlchaos.sandbox.signals import WINDOW_SIZE
from tests.support.components import require_component

T = 5.0


@pytest.fixture
def replica(sandbox: Sandbox) -> Iterator[Replica]:
    replica = sandbox.replicas("model")[0]
    yield replica
    assert requests.post(f"{replica.url}/admin/reset", timeout=T).status_code == 200  # leave no fault behind


def metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=T).text
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match.group(3))
    raise AssertionError(f"{name}{labels} not exported")


def infer(url: str, rows: list[list[float]], datatype: str = "FP32", shape: list[int] | None = None,
          data: object = None) -> requests.Response:
    tensor = {"name": "input-0", "shape": shape or [len(rows), 4], "datatype": datatype,
              "data": data if data is not None else rows}
    return requests.post(f"{url}/v2/models/iris/infer", json={"inputs": [tensor]}, timeout=T)


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"rows": [[1, 2, 3, 4]], "data": [float("nan"), 2, 3, 4]}, "nan"),
    ({"rows": [[-1, 2, 3, 4]]}, "out_of_range"),
    ({"rows": [[1, 2, 3]], "shape": [1, 3]}, "wrong_shape"),
    ({"rows": [[1, 2, 3, 4]], "datatype": "BYTES"}, "wrong_datatype"),
])
def test_invalid_inputs_get_400_and_are_counted_by_reason(replica: Replica, kwargs: dict, reason: str) -> None:
    before = metric(replica.url, "model_invalid_inputs_total", reason=reason)
    predicted = sum(metric(replica.url, "model_predictions_total", class_name=c) for c in dataset.CLASS_NAMES)
    if reason == "nan":  # NaN is not JSON: send the literal the way a careless client would
        raw = '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[NaN,2,3,4]}]}'
        resp = requests.post(f"{replica.url}/v2/models/iris/infer", data=raw, timeout=T)
    else:
        resp = infer(replica.url, **kwargs)
    assert resp.status_code == 400 and "error" in resp.json() and "outputs" not in resp.json()
    assert metric(replica.url, "model_invalid_inputs_total", reason=reason) == before + 1
    assert sum(metric(replica.url, "model_predictions_total", class_name=c) for c in dataset.CLASS_NAMES) == predicted


def test_drift_score_stays_low_for_real_rows_and_rises_for_one_class(replica: Replica) -> None:
    x, _ = dataset.holdout_split()
    for _ in range(5):  # 225 rows: the window (signals.WINDOW_SIZE predictions) is full of holdout predictions
        assert infer(replica.url, x).status_code == 200
    assert metric(replica.url, "model_prediction_drift_window_predictions") == WINDOW_SIZE
    assert metric(replica.url, "model_prediction_drift_psi") < 0.1
    scaled = [[v * 10 for v in row] for row in x]  # a unit skew (cm read as mm): valid input, skewed classes
    for _ in range(5):
        assert infer(replica.url, scaled).status_code == 200
    assert metric(replica.url, "model_prediction_drift_psi") > 0.2


def test_feedback_is_counted_and_stamped(replica: Replica) -> None:
    before = metric(replica.url, "model_feedback_events_total")
    body = {"inputs": [{"name": "truth", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]}]}
    resp = requests.post(f"{replica.url}/v2/models/iris/feedback", json=body, timeout=T)
    assert resp.status_code == 200 and resp.json()["accepted"] == 3
    assert metric(replica.url, "model_feedback_events_total") == before + 3
    assert metric(replica.url, "model_feedback_last_timestamp_seconds") > 1.6e9
    bad = requests.post(f"{replica.url}/v2/models/iris/feedback", json={"inputs": [{"data": [7]}]}, timeout=T)
    assert bad.status_code == 400 and metric(replica.url, "model_feedback_events_total") == before + 3
    assert requests.post(f"{replica.url}/v2/models/nope/feedback", json=body, timeout=T).status_code == 404


def test_nan_fault_emits_counted_non_finite_outputs_and_clears_idempotently(replica: Replica) -> None:
    url, x = replica.url, dataset.holdout_split()[0][:4]
    before = metric(url, "model_non_finite_outputs_total")
    for _ in range(2):
        resp = requests.post(f"{url}/admin/faults", json={"nan_outputs": True}, timeout=T)
        assert resp.status_code == 200 and resp.json()["faults"]["nan_outputs"] is True
    answer = infer(url, x)
    assert answer.status_code == 200
    out = answer.json()["outputs"][0]  # requests' JSON accepts the NaN literal
    assert out["datatype"] == "FP64" and all(v != v for v in out["data"])
    assert metric(url, "model_non_finite_outputs_total") == before + 4
    for _ in range(2):
        assert requests.delete(f"{url}/admin/faults", timeout=T).json()["faults"] == {
            "nan_outputs": False, "not_ready": False, "fail_load": False}
    assert infer(url, x).json()["outputs"][0]["datatype"] == "INT64"
    assert requests.post(f"{url}/admin/faults", json={"nan_output": True}, timeout=T).status_code == 400


def test_not_ready_fault_reports_not_ready_but_live(replica: Replica) -> None:
    url = replica.url
    requests.post(f"{url}/admin/faults", json={"not_ready": True}, timeout=T).raise_for_status()
    assert requests.get(f"{url}/v2/health/ready", timeout=T).status_code == 503
    assert requests.get(f"{url}/v2/health/live", timeout=T).status_code == 200
    assert metric(url, "model_ready") == 0
    requests.post(f"{url}/admin/reset", timeout=T).raise_for_status()
    assert requests.get(f"{url}/v2/health/ready", timeout=T).status_code == 200 and metric(url, "model_ready") == 1


def test_version_pinning_and_failed_load(replica: Replica) -> None:
    url = replica.url
    fresh = metric(url, "model_trained_timestamp_seconds")
    resp = requests.post(f"{url}/v2/repository/models/iris/load", json={"parameters": {"version": "1"}}, timeout=T)
    assert resp.status_code == 200 and resp.json()["version"] == "1"
    assert metric(url, "model_info", version="1") == 1
    with pytest.raises(AssertionError, match="not exported"):
        metric(url, "model_info", version="2")  # one model_info series: the served version
    assert fresh - metric(url, "model_trained_timestamp_seconds") > 7 * 86400
    assert infer(url, [[5.1, 3.5, 1.4, 0.2]]).json()["model_version"] == "1"
    index = requests.post(f"{url}/v2/repository/index", json={}, timeout=T).json()
    assert {e["version"]: e["state"] for e in index} == {"1": "READY", "2": "UNAVAILABLE"}
    requests.post(f"{url}/admin/faults", json={"fail_load": True}, timeout=T).raise_for_status()
    failed = requests.post(f"{url}/v2/repository/models/iris/load", timeout=T)
    assert failed.status_code == 500 and "fail_load" in failed.json()["error"]
    assert metric(url, "model_info", version="1") == 1 and metric(url, "model_ready") == 1  # old version serves
    bad = requests.post(f"{url}/v2/repository/models/iris/load", json={"parameters": {"version": "9"}}, timeout=T)
    assert bad.status_code == 400
    reset = requests.post(f"{url}/admin/reset", timeout=T).json()
    assert reset["version"] == "2" and not any(reset["faults"].values())
    assert metric(url, "model_info", version="2") == 1


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_admin_endpoint_refuses_a_non_loopback_client() -> None:
    address = _non_loopback_address()
    require_component("a non-loopback IPv4 address", address is not None,
                      "a network interface with a non-loopback address "
                      "(the check itself is unit-tested: tests/unit/test_model_signals.py)")
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos.sandbox.model_server", "--host", "0.0.0.0",
                             "--port", "0", "--replica", "t"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        port = int(line.split()[1])
        remote, local = f"http://{address}:{port}", f"http://127.0.0.1:{port}"
        for method, path in (("POST", "/admin/faults"), ("DELETE", "/admin/faults"), ("POST", "/admin/reset"),
                             ("GET", "/admin/faults"), ("GET", "/admin/anything")):
            resp = requests.request(method, remote + path, json={"nan_outputs": True}, timeout=T)
            assert resp.status_code == 403, (method, path)
        assert requests.get(f"{local}/admin/faults", timeout=T).json()["faults"]["nan_outputs"] is False
        assert requests.get(f"{remote}/v2/health/ready", timeout=T).status_code == 200  # the rest stays open
        assert requests.post(f"{local}/admin/faults", json={"nan_outputs": True}, timeout=T).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
