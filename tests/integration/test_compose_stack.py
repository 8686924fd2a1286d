"""The reference stack (docker-compose.yml) on a real Docker engine, with the offline-built images.

One `compose up -d` for the module (`down -v` at the end): every replica predicts through the
fault proxy on 127.0.0.1, Prometheus scrapes and probes them all with the SANDBOX rules
loaded, a `docker kill` is undone by the restart policy, and a replica held down fires
ModelServerDown for its instance only, delivered by Alertmanager to a receiver on the host's
docker0 address (the sink address story of docker-compose.yml).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import docker
import pytest
import requests

from drivers.model import probes as model_probes
from drivers.prometheus import probes as prom_probes
from mlchaos.containers import configs, stack
from mlchaos.lib.proxy_token import proxy_api_headers
from mlchaos.monitoring.alert_rules import ALERT_NAMES, GROUP_NAME
from mlchaos.monitoring.notifications import NotificationReceiver

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]  # setosa: class 0


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env(timeout=30)
    yield c
    c.close()


def _container(client: docker.DockerClient, service: str) -> docker.models.containers.Container:
    found = client.containers.list(all=True, filters={
        "label": [f"com.docker.compose.project={stack.PROJECT}", f"com.docker.compose.service={service}"]})
    assert len(found) == 1, found
    return found[0]


def _infer(url: str) -> int:
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}
    resp = requests.post(f"{url}/v2/models/iris/infer", json=body, timeout=3)
    resp.raise_for_status()
    return resp.json()["outputs"][0]["data"][0]


def _wait(check, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        time.sleep(0.2)


def test_every_replica_predicts_through_the_fault_proxy(compose_stack: stack.StackEndpoints) -> None:
    urls = compose_stack.model_urls
    assert sorted(urls) == list(configs.REPLICAS)
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    assert [_infer(url) for url in urls.values()] == [0, 0, 0]
    assert model_probes.prediction_accuracy(urls=list(urls.values())) >= 0.9
    # the path goes through the proxy: disabling model-0's proxy cuts its clients off, not the replica
    api, auth = compose_stack.proxy_api_url, proxy_api_headers()  # the token the compose_stack fixture set
    assert requests.get(f"{api}/proxies", timeout=3).status_code == 401, "the API needs the token"
    assert sorted(requests.get(f"{api}/proxies", headers=auth, timeout=3).json()) == list(configs.REPLICAS)
    requests.post(f"{api}/proxies/model-0", json={"enabled": False}, headers=auth, timeout=3).raise_for_status()
    try:
        with pytest.raises(requests.ConnectionError):
            _infer(urls["model-0"])
        assert _infer(compose_stack.direct_urls["model-0"]) == 0
    finally:
        requests.post(f"{api}/proxies/model-0", json={"enabled": True}, headers=auth, timeout=3).raise_for_status()
    assert _infer(urls["model-0"]) == 0


def test_prometheus_scrapes_every_replica_with_the_sandbox_rules(compose_stack: stack.StackEndpoints) -> None:
    up = stack.targets_up(compose_stack.prometheus_url)
    for job in ("model", "model-live", "model-ready"):
        assert {inst for j, inst in up if j == job} == {f"{r}:8000" for r in configs.REPLICAS}, job
    series = prom_probes.query_series('up{job="model"}', url=compose_stack.prometheus_url)
    assert sorted(s["labels"]["replica"] for s in series) == list(configs.REPLICAS)
    rules = requests.get(f"{compose_stack.prometheus_url}/api/v1/rules", timeout=3).json()["data"]["groups"]
    group = next(g for g in rules if g["name"] == GROUP_NAME)
    assert sorted(r["name"] for r in group["rules"]) == sorted(ALERT_NAMES)
    assert all(r["health"] == "ok" for r in group["rules"])
    down = next(r for r in group["rules"] if r["name"] == "ModelServerDown")
    assert down["duration"] == 3  # the SANDBOX profile (staging: 60)
    # a fresh stack on a loaded host may be honestly slow for its first seconds (ModelEndpointLatencyHigh looks at
    # the probes' last 10 s): what must not happen is an alert that stays once those windows have passed
    assert prom_probes.unexpected_alert_count(allowed=[], url=compose_stack.prometheus_url, within=60) == 0, \
        prom_probes.no_unexpected_alerts(allowed=[], url=compose_stack.prometheus_url)


def _ensure_running(container: docker.models.containers.Container) -> None:
    container.reload()
    if container.status != "running":
        container.start()


def test_the_restart_policy_brings_a_crashed_replica_back(compose_stack: stack.StackEndpoints,
                                                          client: docker.DockerClient) -> None:
    """A crash (SIGKILL to the container's process, not through the engine) is what the policy restarts."""
    victim = _container(client, "model-2")
    assert victim.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert victim.labels["mlchaos.target"] == "model"
    before, pid = victim.attrs["RestartCount"], victim.attrs["State"]["Pid"]
    try:
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: (victim.reload() or victim.attrs["RestartCount"]) > before, 15, "model-2 restarted")
        _wait(lambda: model_probes.all_replicas_healthy(urls=[compose_stack.model_urls["model-2"]]), 20,
              "model-2 ready again through the proxy")
        assert victim.attrs["State"]["Pid"] != pid
        assert _infer(compose_stack.model_urls["model-2"]) == 0
    finally:
        _ensure_running(victim)


def test_docker_kill_fires_model_server_down_and_notifies_the_host(
        compose_stack: stack.StackEndpoints, client: docker.DockerClient) -> None:
    """`docker kill` through the engine counts as a manual stop: the restart policy leaves the replica
    down (seen on Docker 20.10), ModelServerDown fires for its instance only, Alertmanager delivers
    it to a receiver on the host's docker0 address, and `docker start` resolves it."""
    victim = _container(client, "model-1")
    instance = f"model-1:{configs.MODEL_PORT}"
    prom = compose_stack.prometheus_url
    with NotificationReceiver(host=compose_stack.sink_host, port=compose_stack.sink_port) as sink:
        try:
            victim.kill()
            fired = prom_probes.alert_fires_within("ModelServerDown", within=30, labels={"instance": instance},
                                                   url=prom)
            assert fired["labels"]["replica"] == "model-1"
            victim.reload()
            assert victim.status == "exited"  # not restarted by the unless-stopped policy
            note = sink.wait_for(lambda n: n.alertname == "ModelServerDown" and n.status == "firing"
                                 and n.labels.get("instance") == instance, timeout=20)
            assert note is not None, f"no notification at {sink.url}; rejections: {sink.rejections()}"
            # only the killed replica is down; the others keep serving
            firing = prom_probes.query_series('ALERTS{alertstate="firing"}', url=prom)
            assert {(s["labels"]["alertname"], s["labels"].get("instance")) for s in firing} == {
                ("ModelServerDown", instance)}
            assert [_infer(compose_stack.model_urls[r]) for r in ("model-0", "model-2")] == [0, 0]
        finally:
            _ensure_running(victim)
        prom_probes.alert_resolves_within("ModelServerDown", within=30, labels={"instance": instance}, url=prom)
        resolved = sink.wait_for(lambda n: n.alertname == "ModelServerDown" and n.status == "resolved"
                                 and n.labels.get("instance") == instance, timeout=20)
        assert resolved is not None
    _wait(lambda: model_probes.all_replicas_healthy(urls=list(compose_stack.model_urls.values())), 20,
          "every replica ready again")

