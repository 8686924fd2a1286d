"""The model probes' two protocols: the Open Inference Protocol (v2, default) and KServe V1.

What each one sends and reads (the probes against real servers are tests/integration/test_model_servers.py's).
"""

from __future__ import annotations

import pytest
import requests

from drivers.model import probes
from drivers.model.probes import _infer_body, _infer_url, _predictions
from mlchaos.errors import DriverError

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def _response(status: int, body: bytes) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content = status, body
    return resp


def test_v2_infers_one_flat_tensor_and_v1_predicts_instances() -> None:
    assert _infer_url("http://h:1", "iris") == "http://h:1/v2/models/iris/infer"
    assert _infer_body(ROWS)["inputs"][0] == {"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                              "data": [v for row in ROWS for v in row]}
    assert _infer_url("http://h:1", "iris", "v1") == "http://h:1/v1/models/iris:predict"
    assert _infer_body(ROWS, "v1") == {"instances": ROWS}


def test_each_protocol_reads_its_own_answer() -> None:
    v2 = b'{"outputs": [{"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]}]}'
    assert _predictions(_response(200, v2), 2) == [0, 2]
    assert _predictions(_response(200, b'{"predictions": [0, 2]}'), 2, "v1") == [0, 2]
    assert _predictions(_response(200, v2), 2, "v1") is None  # a V2 answer is no V1 answer
    assert _predictions(_response(200, b'{"predictions": [0]}'), 2, "v1") is None  # one row short
    assert _predictions(_response(503, b'{"error": "model not ready"}'), 2, "v1") is None


@pytest.mark.parametrize("probe", [probes.all_replicas_healthy, probes.healthy_replica_count,
                                   probes.prediction_accuracy, probes.latency_percentile, probes.error_rate])
def test_an_unknown_protocol_is_refused_before_any_call(probe) -> None:
    with pytest.raises(DriverError, match=r"protocol must be v2 \(Open Inference Protocol\) or v1 \(KServe V1\)"):
        probe(urls=["http://127.0.0.1:9"], protocol="V1")
