"""drivers.model.endpoints against the real compose stack: containers picked by label and seed, calls to the
public API and to the loopback-only admin endpoint through ``docker exec``, servers by URL (public API only)."""

from __future__ import annotations

import pytest
import requests

from drivers.model import endpoints
from mlchaos.containers import configs, stack
from mlchaos.errors import DriverError

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)
DOCKER = {"target": "docker", "project": stack.PROJECT}


def test_containers_are_picked_by_label_and_seed_and_named_as_prometheus_knows_them(compose_stack):
    chosen, population, seed = endpoints.select_endpoints(2, 7, **DOCKER)
    assert seed == 7 and len(population) == 3 and all("model-" in name for name in population)
    assert [e.name for e in endpoints.select_endpoints(2, 7, **DOCKER)[0]] == [e.name for e in chosen]
    picks = {endpoints.select_endpoints(1, s, **DOCKER)[0][0].name for s in range(12)}
    assert picks == set(population), "every replica can be picked"
    up = {inst for job, inst in stack.targets_up(compose_stack.prometheus_url) if job == "model"}
    assert {e.instance for e in chosen} <= up == {f"{r}:{configs.MODEL_PORT}" for r in configs.REPLICAS}
    for e in chosen:
        assert e.kind == "container" and e.environment.startswith("docker:") and e.alive()
        assert e.details["instance"] == e.instance and e.details["id"] and e.details["project"] == stack.PROJECT
        replica = e.instance.split(":")[0]
        assert e.url == compose_stack.direct_urls[replica], "the published port, for loads from this host"
    (only,) = endpoints.select_endpoints(1, 1, name_pattern="model-1", **DOCKER)[0]
    assert only.instance == "model-1:8000"


def test_the_admin_endpoint_answers_through_docker_exec_only(compose_stack):
    (replica,) = endpoints.named_endpoints([_container("model-0")], **DOCKER)
    direct = compose_stack.direct_urls["model-0"]
    assert requests.get(direct + "/admin/faults", timeout=5).status_code == 403, "not loopback from the host"
    try:
        assert replica.call("POST", "/admin/faults", {"nan_outputs": True})["faults"]["nan_outputs"] is True
        assert replica.call("GET", "/admin/faults")["faults"]["nan_outputs"] is True
        infer = requests.post(direct + "/v2/models/iris/infer", timeout=5, json={"inputs": [
            {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
        assert "NaN" in infer.text, "the fault set through exec is the server's own"
    finally:
        replica.call("DELETE", "/admin/faults")
    assert not any(replica.call("GET", "/admin/faults")["faults"].values())
    index = replica.repository_index("iris")
    assert {v for v, state in index.items() if state == "READY"} == {"2"}
    with pytest.raises(DriverError, match=r"^mlchaos\S*model-0\S*: GET /v2/nothing answered HTTP 404"):
        replica.call("GET", "/v2/nothing")


def test_an_undo_finds_its_containers_by_name_and_a_removed_one_is_gone(compose_stack):
    every = endpoints.named_endpoints(None, **DOCKER)
    assert sorted(e.instance for e in every) == [f"{r}:8000" for r in configs.REPLICAS]
    found = endpoints.named_endpoints([_container("model-2"), "mlchaos_model-9_1"], **DOCKER)
    assert [e.alive() for e in found] == [True, False]
    with pytest.raises(DriverError, match="no longer exists"):
        found[1].call("GET", "/admin/faults")


def test_a_paused_container_is_refused_by_the_engine_in_one_line(compose_stack):
    import docker

    (replica,) = endpoints.named_endpoints([_container("model-1")], **DOCKER)
    container = docker.from_env().containers.get(replica.details["id"])
    container.pause()
    try:
        assert replica.alive(), "its faults still live in its memory"
        with pytest.raises(DriverError, match="is paused") as info:
            replica.call("GET", "/admin/faults", timeout=2)
        assert "\n" not in str(info.value) and str(info.value).startswith(replica.name)
    finally:
        container.unpause()


def test_servers_by_url_answer_the_public_api_and_refuse_the_admin_one(compose_stack):
    urls = list(compose_stack.direct_urls.values())
    chosen, population, _ = endpoints.select_endpoints(1, 3, target="url", urls=urls)
    assert population == urls and chosen[0].instance == chosen[0].name.removeprefix("http://")
    assert chosen[0].call("GET", "/v2/models/iris/ready")["ready"] is True
    with pytest.raises(DriverError, match="loopback clients only"):
        chosen[0].call("POST", "/admin/faults", {"nan_outputs": True})


def _container(replica: str) -> str:
    """The container name of a compose replica (docker-compose 1.29: project_service_1; v2: project-service-1)."""
    names = endpoints.named_endpoints(None, **DOCKER)
    return next(e.name for e in names if e.instance == f"{replica}:{configs.MODEL_PORT}")
