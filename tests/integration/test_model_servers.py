"""The model probes and the version faults against the model servers people run, by URL.

Each test runs against a real MLServer 1.7 (Seldon; a scikit-learn iris model this module trains, see
tests/support/mlserver.py) and against the reference server (``python -m mlchaos.sandbox.model_server``),
through nothing but the Open Inference Protocol and its model repository extension: health, accuracy,
latency and error-rate probes; the served versions (``POST /v2/repository/index``); and a version fault
through the repository API (``unload_model``: unload, the model is not ready, its undo loads it back)
restored exactly: the index after the undo is the index before the fault. The probes' KServe V1 mode runs
against a real KServe model server (tests/support/kserve.py; it has no repository index) and the reference
server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from drivers.model import actions, probes
from drivers.model.endpoints import named_endpoints
from mlchaos.errors import DriverError
from tests.support import kserve, mlserver
from tests.support.components import require_component
from tests.support.environment import child_env


@dataclass(frozen=True)
class Server:
    """One server under test: its base URL, the model's served version and every version its index lists."""

    kind: str
    url: str
    served: str
    index: dict[str, str]


def _reference(state: Path) -> Iterator[Server]:
    process = subprocess.Popen([sys.executable, "-m", "mlchaos.sandbox.model_server", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env(state), text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints READY <port> once its model is trained
        assert line.startswith("READY "), f"the reference server did not start: {line!r}"
        yield Server("reference", f"http://127.0.0.1:{line.split()[1]}", "2", {"1": "UNAVAILABLE", "2": "READY"})
    finally:
        process.terminate()
        process.wait(timeout=20)


def _mlserver(folder: Path) -> Iterator[Server]:
    executable = mlserver.binary()
    require_component("MLServer", executable is not None, mlserver.HOW_TO_GET_IT)
    assert executable is not None
    server = mlserver.start(executable, folder)
    try:
        yield Server("mlserver", server.url, mlserver.VERSION, {mlserver.VERSION: "READY"})
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["mlserver", "reference"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running MLServer or reference server, once per module for each."""
    folder = tmp_path_factory.mktemp(request.param)
    yield from (_mlserver(folder) if request.param == "mlserver" else _reference(folder))


def _index(server: Server) -> dict[str, str]:
    (endpoint,) = named_endpoints(None, target="url", urls=[server.url])
    return endpoint.repository_index("iris")


def test_health_accuracy_latency_and_error_rate_probes(server: Server, state_dir: Path) -> None:
    urls = [server.url]
    assert probes.all_replicas_healthy(urls=urls) is True
    assert probes.healthy_replica_count(urls=urls) == 1
    assert probes.prediction_accuracy(urls=urls) > 0.9
    assert probes.error_rate(requests=20, urls=urls) == 0.0
    assert probes.latency_percentile(percentile=95, requests=20, urls=urls) > 0


def test_the_served_version_is_read_from_the_repository_index(server: Server, state_dir: Path) -> None:
    assert _index(server) == server.index
    assert probes.served_versions(target="url", urls=[server.url]) == {server.url: server.served}
    assert probes.served_version_count(server.served, target="url", urls=[server.url]) == 1
    ready = requests.post(f"{server.url}/v2/repository/index", json={"ready": True}, timeout=5).json()
    assert [(e["name"], e["version"], e["state"]) for e in ready] == [("iris", server.served, "READY")]


def test_unloading_the_model_through_the_repository_api_is_undone_exactly(server: Server, state_dir: Path) -> None:
    where = {"target": "url", "urls": [server.url]}
    before = _index(server)
    planned = actions.unload_model(**where, dry_run=True)
    assert planned["parameters"]["previous"] == {server.url: server.served} and _index(server) == before

    record = actions.unload_model(**where)
    assert record["undo"]["func"] == "drivers.model.actions.restore_model_version"
    assert _index(server)[server.served] == "UNAVAILABLE"
    assert requests.get(f"{server.url}/v2/models/iris/ready", timeout=5).status_code != 200
    assert probes.all_replicas_healthy(urls=[server.url]) is False
    assert probes.error_rate(requests=5, urls=[server.url]) == 1.0
    assert probes.served_versions(**where) == {server.url: None}
    with pytest.raises(DriverError, match="no READY version"):
        actions.unload_model(**where)  # nothing left to unload: refused before anything is announced

    undone = actions.restore_model_version(**record["undo"]["arguments"])
    assert undone["restored"] == [server.url]
    assert _index(server) == before
    assert probes.all_replicas_healthy(urls=[server.url]) is True
    assert probes.prediction_accuracy(urls=[server.url]) > 0.9
    assert actions.restore_model_version(**record["undo"]["arguments"])["already"] == [server.url]


def test_a_roll_out_loads_through_the_repository_api_and_keeps_the_version(server: Server, state_dir: Path) -> None:
    before = _index(server)
    result = actions.roll_out_model(target="url", urls=[server.url])
    assert result["loaded"] == [server.url] and result["failed"] == {}
    assert _index(server) == before


def test_the_kserve_v1_protocol_mode_of_the_probes(server: Server, state_dir: Path) -> None:
    urls = [server.url]
    if server.kind == "mlserver":  # MLServer speaks V2 only: by V1 it is simply not healthy
        assert requests.get(f"{server.url}/v1/models/iris", timeout=5).status_code == 404
        assert probes.all_replicas_healthy(urls=urls, protocol="v1") is False
        assert probes.error_rate(requests=5, urls=urls, protocol="v1") == 1.0
        return
    assert probes.all_replicas_healthy(urls=urls, protocol="v1") is True
    assert probes.healthy_replica_count(urls=urls, protocol="v1") == 1
    assert probes.prediction_accuracy(urls=urls, protocol="v1") == probes.prediction_accuracy(urls=urls) > 0.9
    assert probes.error_rate(requests=10, urls=urls, protocol="v1") == 0.0
    assert probes.latency_percentile(requests=10, urls=urls, protocol="v1") > 0
    with pytest.raises(DriverError, match="protocol must be v2 .* or v1"):
        probes.error_rate(urls=urls, protocol="v3")


@pytest.fixture(scope="module")
def kserve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real KServe model server with the iris model, once per module."""
    interpreter = kserve.python()
    require_component("KServe", interpreter is not None, kserve.HOW_TO_GET_IT)
    assert interpreter is not None
    server = kserve.start(interpreter, tmp_path_factory.mktemp("kserve"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_the_probes_against_a_real_kserve_server_in_both_protocols(kserve_url: str, protocol: str,
                                                                    state_dir: Path) -> None:
    urls = [kserve_url]
    assert probes.all_replicas_healthy(urls=urls, protocol=protocol) is True
    assert probes.healthy_replica_count(urls=urls, protocol=protocol) == 1
    assert probes.prediction_accuracy(urls=urls, protocol=protocol) > 0.9
    assert probes.error_rate(requests=10, urls=urls, protocol=protocol) == 0.0
    assert probes.latency_percentile(requests=10, urls=urls, protocol=protocol) > 0
    assert probes.healthy_replica_count(urls=urls, model="nope", protocol=protocol) == 0
