"""The reference model server over real HTTP: OIP endpoints, bad input, metrics, SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from mlchaos.lib.files import free_ports
from mlchaos.sandbox import dataset
from mlchaos.sandbox.manager import Replica, Sandbox

T = 5.0  # seconds, every HTTP call


@pytest.fixture
def replica(sandbox: Sandbox) -> Replica:
    return sandbox.replicas("model")[0]


def _metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=T).text
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def _infer(url: str, payload: object, model: str = "iris") -> requests.Response:
    return requests.post(f"{url}/v2/models/{model}/infer", json=payload, timeout=T)


def test_health_and_metadata(replica: Replica) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready"):
        assert requests.get(replica.url + path, timeout=T).status_code == 200, path
    meta = requests.get(f"{replica.url}/v2/models/iris", timeout=T).json()
    assert meta["name"] == "iris" and meta["versions"] == ["2"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"][0]["name"] == "predict"


def test_infer_predicts_holdout_and_echoes_id(replica: Replica) -> None:
    x, y = dataset.holdout_split()
    body = {"id": "req-1", "inputs": [
        {"name": "input-0", "shape": [len(x), 4], "datatype": "FP32", "data": x}
    ]}
    resp = _infer(replica.url, body)
    assert resp.status_code == 200
    answer = resp.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("iris", "2", "req-1")
    out = answer["outputs"][0]
    assert (out["name"], out["shape"], out["datatype"]) == ("predict", [len(x)], "INT64")
    assert sum(p == t for p, t in zip(out["data"], y, strict=True)) / len(y) > 0.9


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b'{"inputs": [{"name": "input-0", "shape": [1, 3], "data": [1, 2, 3]}]}', 400),
        (b'{"inputs": [{"name": "input-0", "shape": [1, 4], "data": ["a", 2, 3, 4]}]}', 400),
        (b'{"inputs": [{"name": "input-0", "shape": [1, 4], "data": [NaN, 2, 3, 4]}]}', 400),
        (b'{"inputs": "nope"}', 400),
    ],
    ids=["malformed-json", "wrong-shape", "non-numeric", "nan", "inputs-not-list"],
)
def test_bad_input_is_400_with_error(replica: Replica, raw: bytes, status: int) -> None:
    resp = requests.post(
        f"{replica.url}/v2/models/iris/infer", data=raw, timeout=T,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == status
    assert resp.json()["error"]


def test_unknown_model_and_route_are_404(replica: Replica) -> None:
    assert _infer(replica.url, {"inputs": []}, model="nope").status_code == 404
    assert requests.get(f"{replica.url}/v2/models/nope/ready", timeout=T).status_code == 404
    assert requests.get(f"{replica.url}/v2/models/iris/versions/9", timeout=T).status_code == 404
    resp = requests.get(f"{replica.url}/nowhere", timeout=T)
    assert resp.status_code == 404 and "error" in resp.json()


def test_metrics_are_exposed_and_incremented(replica: Replica) -> None:
    url = replica.url
    assert _metric(url, "model_info", model="iris", version="2") == 1
    assert _metric(url, "model_ready", model="iris") == 1
    assert _metric(url, "model_trained_timestamp_seconds", model="iris") > 1.6e9
    ok_before = _metric(url, "model_requests_total", model="iris", endpoint="infer", code="200")
    bad_before = _metric(url, "model_requests_total", model="iris", endpoint="infer", code="400")
    n_before = _metric(url, "model_inference_duration_seconds_count", model="iris")
    setosa_before = _metric(url, "model_predictions_total", model="iris", class_name="setosa")

    good = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                        "data": [5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4, 0.2]}]}
    assert _infer(url, good).json()["outputs"][0]["data"] == [0, 0]
    assert _infer(url, {"inputs": [{"shape": [1, 4], "data": [1, 2, 3]}]}).status_code == 400

    assert _metric(url, "model_requests_total", model="iris", endpoint="infer", code="200") == (
        ok_before + 1
    )
    assert _metric(url, "model_requests_total", model="iris", endpoint="infer", code="400") == (
        bad_before + 1
    )
    assert _metric(url, "model_inference_duration_seconds_count", model="iris") == n_before + 1
    assert _metric(url, "model_predictions_total", model="iris", class_name="setosa") == (
        setosa_before + 2
    )
    assert _metric(url, "model_invalid_inputs_total", model="iris", reason="wrong_shape") >= 1
    assert _metric(url, "model_inference_duration_seconds_bucket", model="iris", le="0.001") >= 0


def test_sigterm_exits_cleanly_and_ready_line_is_printed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlchaos.sandbox.model_server", "--port", "0", "--replica", "t"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert re.fullmatch(r"READY \d+\n", line)
        port = int(line.split()[1])
        assert requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=T).ok
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_starting_server_is_never_live_but_not_ready() -> None:
    """A (re)started replica trains before it listens: its first answers are already ready, so a restart
    cannot fire ModelNotReady (a loaded CI host once did, while the replica trained behind an open port)."""
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlchaos.sandbox.model_server", "--port", str(port), "--replica", "t"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    answers: list[tuple[int, int, float]] = []  # (live, ready, model_ready) for every time it answered
    try:
        deadline = time.monotonic() + 60
        while len(answers) < 20 and time.monotonic() < deadline and proc.poll() is None:
            try:
                live = requests.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=T).status_code
            except requests.ConnectionError:
                time.sleep(0.005)  # not listening yet: leave the CPU to the server's training
                continue
            ready = requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=T).status_code
            answers.append((live, ready, _metric(f"http://127.0.0.1:{port}", "model_ready", model="iris")))
        assert len(answers) == 20, f"the server answered {len(answers)} times before it stopped or 60 s passed"
        assert set(answers) == {(200, 200, 1.0)}
    finally:
        proc.kill()
        proc.wait()
