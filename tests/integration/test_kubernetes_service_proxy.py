"""In-cluster endpoints through the API server's service proxy, against real servers behind the API emulator.

No API server runs on this machine: the emulator (tests/support/kubernetes_emulator.py) plays
the service proxy (token checked, RBAC logged, the Authorization header removed, the request
forwarded). What it forwards to is real: the sandbox's Prometheus, Alertmanager, a model-server
replica and the sandbox's fault proxy API (with its token), each exposed as a Service port of
the emulated cluster. The transport is drivers/kubernetes/service_proxy.py, with the
kubeconfig's credentials; every answer below came from the real server through it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from drivers.kubernetes.service_proxy import open_service
from mlchaos.lib.proxy_token import proxy_api_headers
from mlchaos.sandbox.manager import Sandbox
from tests.support.kubernetes_emulator import EmulatedCluster
from tests.support.polling import wait_until

PROMETHEUS = "k8s://monitoring/prometheus-operated:9090"
ALERTMANAGER = "k8s://monitoring/alertmanager-operated:9093"
MODEL = "k8s://ml-serving/model-server:8000"
FAULT_PROXY = "k8s://ml-serving/fault-proxy:8474"


@pytest.fixture(scope="module")
def cluster(monitored: Sandbox, tmp_path_factory) -> Iterator[EmulatedCluster]:
    endpoints = monitored.monitoring().endpoints()
    replica = monitored.replicas("model")[0]
    with EmulatedCluster(tmp_path_factory.mktemp("k8s")) as found:
        found.expose("monitoring", "prometheus-operated", 9090, endpoints.prometheus_url, port_name="web")
        found.expose("monitoring", "alertmanager-operated", 9093, endpoints.alertmanager_url, port_name="web")
        found.expose("ml-serving", "model-server", 8000, replica.url, port_name="http")
        found.expose("ml-serving", "fault-proxy", 8474, monitored.proxy_api_url(), port_name="api")
        yield found


def test_a_prometheus_query_through_the_service_proxy(cluster):
    prom = open_service(url=PROMETHEUS, **cluster.connection())
    answer = prom.session.get(prom.base_url + "/api/v1/query", params={"query": 'up{job="model"}'}, timeout=5)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success"
    assert {r["metric"]["job"] for r in body["data"]["result"]} == {"model"}
    assert [c.name for c in cluster.calls if c.resource == "services/proxy"][-1] == "http:prometheus-operated:9090"


def test_alert_listings_through_the_service_proxy(cluster):
    prom = open_service(url=PROMETHEUS, **cluster.connection())
    alerts = prom.session.get(prom.base_url + "/api/v1/alerts", timeout=5).json()
    assert alerts["status"] == "success" and isinstance(alerts["data"]["alerts"], list)
    rules = prom.session.get(prom.base_url + "/api/v1/rules", timeout=5).json()
    assert "ModelServerDown" in {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    manager = open_service(url=ALERTMANAGER, **cluster.connection())
    listed = manager.session.get(manager.base_url + "/api/v2/alerts", timeout=5)
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    status = manager.session.get(manager.base_url + "/api/v2/status", timeout=5).json()
    assert status["cluster"]["status"] in ("ready", "disabled", "settling")


def test_a_model_server_health_check_and_inference_through_the_service_proxy(cluster):
    model = open_service(url=MODEL, **cluster.connection())
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready"):
        assert model.session.get(model.base_url + path, timeout=5).status_code == 200, path
    answer = model.session.post(model.base_url + "/v2/models/iris/infer", timeout=5, json={
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0]
    verbs = {c.verb for c in cluster.calls if c.name == "http:model-server:8000"}
    assert verbs == {"get", "create"}  # GET health and POST infer: what the Role must grant


def test_the_fault_proxy_api_through_the_service_proxy_with_its_token(cluster, monitored, monkeypatch):
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN_FILE", str(monitored.proxy().token_file))
    headers = proxy_api_headers()  # Authorization and X-Mlchaos-Proxy-Token: only the second survives the API server
    api = open_service(url=FAULT_PROXY, **cluster.connection())
    assert api.session.get(api.base_url + "/proxies", timeout=5, headers={"Authorization": "x",
                                                                          "X-Mlchaos-Proxy-Token": "x"}).status_code \
        == 401  # the proxy checks the forwarded token
    proxies = api.session.get(api.base_url + "/proxies", headers=headers, timeout=5).json()
    name = sorted(proxies)[0]
    toxic = {"name": "k8s-service-proxy-latency", "type": "latency", "stream": "downstream",
             "attributes": {"latency": 50}}
    created = api.session.post(f"{api.base_url}/proxies/{name}/toxics", json=toxic, headers=headers, timeout=5)
    assert created.status_code == 200, created.text
    try:
        direct = requests.get(f"{monitored.proxy_api_url()}/proxies/{name}/toxics",
                              headers=monitored.proxy().api_headers(), timeout=5).json()
        assert [t["name"] for t in direct] == ["k8s-service-proxy-latency"]
    finally:
        removed = api.session.delete(f"{api.base_url}/proxies/{name}/toxics/k8s-service-proxy-latency",
                                     headers=headers, timeout=5)
    assert removed.status_code in (200, 204)
    wait_until(lambda: requests.get(f"{monitored.proxy_api_url()}/proxies/{name}/toxics",
                                    headers=monitored.proxy().api_headers(), timeout=5).json() == [],
               what="toxic removed")
    verbs = {c.verb for c in cluster.calls if c.name == "http:fault-proxy:8474"}
    assert verbs == {"get", "create", "delete"}
