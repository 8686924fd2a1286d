"""The model probes, faults and traffic through a declared ``serving`` endpoint: a real nginx in front of a sandbox
replica, routing by ``Host`` as KServe's ingress does and requiring basic auth (tests/support/nginx_gateway.py).

nginx (Debian's nginx-light) answers only requests for ``model.default.example.com`` with the right
credentials and proxies them to the replica; any other Host gets 404, no credentials 401. The probes see
no replica without the endpoint, and the whole replica through it (health, accuracy, latency, errors).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from drivers.model import actions as model_actions
from drivers.model import probes, traffic
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from mlchaos.sandbox.manager import Sandbox
from tests.support import nginx_gateway
from tests.support.nginx_gateway import HOST_NAME, PASSWORD, USER
from tests.support.polling import wait_until


@pytest.fixture(scope="module")
def gateway(module_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("nginx")
    with nginx_gateway.gateway(tmp, module_sandbox.replicas("model")[0].client_url) as url:
        yield url


@pytest.fixture
def declared(gateway: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("MLCHAOS_TEST_SERVING_PASSWORD", PASSWORD)
    full = {"url": gateway, "headers": {"Host": HOST_NAME}, "timeout": 5,
            "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_SERVING_PASSWORD"}}
    table = endpoints.EndpointTable({
        "serving": endpoints.Endpoint.from_dict("serving", full),
        "no-host": endpoints.Endpoint.from_dict("no-host", {k: v for k, v in full.items() if k != "headers"}),
        "no-auth": endpoints.Endpoint.from_dict("no-auth", {k: v for k, v in full.items() if k != "basic_auth"}),
    })
    previous = endpoints.activate(table)
    yield {"url": gateway}
    endpoints.activate(previous)
    table.close()


def test_without_the_endpoint_no_replica_answers(gateway: str) -> None:
    assert requests.get(f"{gateway}/v2/health/live", headers={"Host": HOST_NAME}, timeout=5).status_code == 401
    assert probes.healthy_replica_count(urls=[gateway]) == 0
    assert probes.error_rate(requests=10, urls=[gateway]) == 1.0


def test_through_the_endpoint_the_replica_is_judged_as_a_client_sees_it(declared: dict[str, Any]) -> None:
    assert probes.healthy_replica_count() == 1  # neither urls nor endpoint: the endpoint named serving
    assert probes.all_replicas_healthy(endpoint="serving") is True
    assert probes.prediction_accuracy(endpoint="serving") >= 0.9
    assert probes.latency_percentile(requests=20, endpoint="serving") > 0
    assert probes.error_rate(requests=20, endpoint="serving") == 0.0
    # each half of the declaration matters: without the Host header the ingress has no route, without auth 401
    assert probes.healthy_replica_count(endpoint="no-host") == 0
    assert probes.healthy_replica_count(endpoint="no-auth") == 0


def test_a_url_under_the_declared_endpoint_carries_its_credentials(gateway: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The version probes (and the model faults by ``target: url``) name servers by URL: under a declared
    endpoint's URL, the call goes with its credentials and headers; elsewhere with none."""
    with pytest.raises(DriverError, match="answered HTTP 404"):  # no Host header: the ingress has no route
        probes.served_versions(target="url", urls=[gateway])
    monkeypatch.setenv("MLCHAOS_TEST_SERVING_PASSWORD", PASSWORD)
    table = endpoints.EndpointTable({"serving": endpoints.Endpoint.from_dict("serving", {
        "url": gateway, "headers": {"Host": HOST_NAME},
        "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_SERVING_PASSWORD"}})})
    previous = endpoints.activate(table)
    try:
        served = probes.served_versions(target="url", urls=[gateway])
    finally:
        endpoints.activate(previous)
        table.close()
    assert len(served) == 1 and all(served.values()), served


def test_a_version_fault_by_endpoint_goes_in_and_its_undo_takes_it_out(gateway: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """unload_model through the ingress (target url, endpoint serving); the recorded undo names the endpoint, so
    it is called with the endpoint's credentials again, as ``mlchaos recover`` calls it."""
    monkeypatch.setenv("MLCHAOS_TEST_SERVING_PASSWORD", PASSWORD)
    table = endpoints.EndpointTable({"serving": endpoints.Endpoint.from_dict("serving", {
        "url": gateway, "headers": {"Host": HOST_NAME},
        "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_SERVING_PASSWORD"}})})
    previous = endpoints.activate(table)
    try:
        with pytest.raises(DriverError, match="give it with target url"):
            model_actions.unload_model(endpoint="serving")
        before = probes.served_versions(target="url", endpoint="serving")
        record = model_actions.unload_model(target="url", endpoint="serving")
        assert record["undo"]["arguments"]["endpoint"] == "serving" and "urls" not in record["undo"]["arguments"]
        assert record["undo"]["arguments"]["replicas"] == [gateway] and record["parameters"]["endpoint"] == "serving"
        assert probes.served_versions(target="url") == dict.fromkeys(before)  # target url alone: serving's URL
        undo = getattr(model_actions, record["undo"]["func"].rsplit(".", 1)[1])
        undo(**record["undo"]["arguments"])
        assert probes.served_versions(target="url", endpoint="serving") == before
    finally:
        endpoints.activate(previous)
        table.close()


def test_invalid_inputs_by_endpoint_go_with_its_credentials(declared: dict[str, Any]) -> None:
    """Every call reaches the model (nginx would answer 401, a 4xx, to calls without the credentials): the valid
    rows are answered 200, the invalid ones refused by the model server."""
    record = model_actions.send_invalid_inputs(target="url", endpoint="serving", requests=10, rate=50, seed=3)
    answers = record["parameters"]["answers"]
    assert answers["valid"] == {"200": 5} and "401" not in answers["invalid"], answers
    assert record["parameters"]["endpoint"] == "serving"


# -- the traffic generator through the endpoint ---------------------------------------------------------------


def _proc_text(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def test_traffic_through_the_endpoint_goes_with_its_credentials_which_the_generator_shows_nowhere(
        declared: dict[str, Any]) -> None:
    """The generator gets the endpoint's credentials through a pipe on its stdin (closed once read): never on its
    command line, in its environment (the variable the password came from is not passed on), its plan or its
    stats; every call goes with basic auth and the Host header, so nginx answers 200."""
    record = traffic.start_traffic(target="url", endpoint="serving", rate=20, duration=60, names=["gateway"],
                                   seed=5)
    arguments = record["undo"]["arguments"]
    try:
        pid, stats_path = arguments["pid"], arguments["stats_path"]
        assert record["parameters"]["endpoint"] == "serving" and record["parameters"]["urls"] == [declared["url"]]
        wait_until(lambda: traffic.traffic_answers("200", stats_path=stats_path) >= 10
                   and traffic.traffic_answers("200", endpoint="feedback", stats_path=stats_path) >= 5,
                   timeout=30, what="infer and feedback answered 200 through the gateway")
        assert traffic.traffic_answers("4xx", stats_path=stats_path) == 0
        assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull, "the pipe is closed once the settings are read"
        for shown in (_proc_text(pid, "cmdline"), _proc_text(pid, "environ"), Path(stats_path).read_text(),
                      (Path(stats_path).parent / f"{arguments['token']}.plan.json").read_text(),
                      json.dumps(record)):
            assert PASSWORD not in shown
    finally:
        result = traffic.stop_traffic(**arguments)
    assert result["stopped"] == [arguments["pid"]]
    assert PASSWORD not in Path(record["parameters"]["log_path"]).read_text()


def test_traffic_without_the_credentials_is_refused_and_says_so(declared: dict[str, Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint without credentials: every call is answered 401, the stats' last error says so. A credential
    that cannot be read: start_traffic fails before anything starts, naming the endpoint and the variable."""
    record = traffic.start_traffic(target="url", endpoint="no-auth", rate=20, duration=60, feedback=False, seed=6)
    arguments = record["undo"]["arguments"]
    try:
        stats_path = arguments["stats_path"]
        wait_until(lambda: traffic.traffic_answers("any", stats_path=stats_path) >= 5, timeout=30,
                   what="answers from the gateway")
        assert traffic.traffic_answers("401", stats_path=stats_path) == traffic.traffic_answers(
            "any", stats_path=stats_path)
        last = traffic.traffic_stats(stats_path)["last_error"]
        assert last["status"] == "401" and "401 Authorization Required" in last["error"]
    finally:
        traffic.stop_traffic(**arguments)
    monkeypatch.delenv(nginx_gateway.PASSWORD_VARIABLE)
    with pytest.raises(DriverError, match=f"endpoint 'serving': environment variable "
                                          f"{nginx_gateway.PASSWORD_VARIABLE} is not set"):
        traffic.start_traffic(target="url", endpoint="serving", rate=5, duration=10)
    with pytest.raises(DriverError, match="give it with target url"):
        traffic.start_traffic(endpoint="serving", rate=5, duration=10)
