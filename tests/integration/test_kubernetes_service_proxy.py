"""In-cluster endpoints through the API server's service proxy, against real servers behind the API emulator.

No API server runs on this machine: the emulator (tests/support/kubernetes_emulator.py) plays
the service proxy (token checked, RBAC logged, the Authorization header removed, the request
forwarded). What it forwards to is real: the sandbox's Prometheus, Alertmanager, a model-server
replica and the sandbox's fault proxy API (with its token), each exposed as a Service port of
the emulated cluster. The transport is drivers/kubernetes/service_proxy.py, with the
kubeconfig's credentials; every answer below came from the real server through it.

The last tests use it as the experiment sees it: endpoints declared once with ``k8s://`` URLs or
``kubernetes: {namespace, service, port}`` (extensions: mlchaos: endpoints), probes naming them
with ``endpoint:``, the cluster found through ``KUBECONFIG`` (the emulator's), in process and then
as a whole alert drill by the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from drivers.kubernetes.service_proxy import open_service
from drivers.model import probes as model_probes
from drivers.prometheus import probes as prometheus_probes
from drivers.proxy import probes as proxy_probes
from mlchaos.engine import exit_codes
from mlchaos.lib import endpoints
from mlchaos.lib.proxy_token import proxy_api_headers
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.kubernetes_emulator import EmulatedCluster
from tests.support.paths import ROOT
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


DECLARED = {"prom": {"url": PROMETHEUS, "headers": {"X-Scope-OrgID": "staging"}},
            "am": {"kubernetes": {"namespace": "monitoring", "service": "alertmanager-operated", "port": 9093}},
            "faults": {"url": FAULT_PROXY}, "model": {"url": MODEL}}


def test_probes_naming_kubernetes_endpoints_go_through_the_service_proxy(cluster, monitored, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN_FILE", str(monitored.proxy().token_file))
    table = endpoints.EndpointTable({n: endpoints.Endpoint.from_dict(n, d) for n, d in DECLARED.items()})
    previous = endpoints.activate(table)
    cluster.clear_calls()
    try:
        replicas = prometheus_probes.query_value('count(up{job="model"})', endpoint="prom")
        proxies = sorted(requests.get(f"{monitored.proxy_api_url()}/proxies", headers=monitored.proxy().api_headers(),
                                      timeout=5).json())
        assert proxy_probes.toxic_count(proxies[0], endpoint="faults") == 0
        assert proxy_probes.proxy_enabled(proxies[0], endpoint="faults") is True
        healthy = model_probes.all_replicas_healthy(endpoint="model", model="iris")
        base = table.connection("prom").base_url
    finally:
        endpoints.activate(previous)
        table.close()
    assert replicas == 3.0 and healthy is True
    assert base == f"{cluster.url}/api/v1/namespaces/monitoring/services/http:prometheus-operated:9090/proxy"
    assert {(c.verb, c.namespace, c.name) for c in cluster.calls} == {
        ("get", "monitoring", "http:prometheus-operated:9090"), ("get", "ml-serving", "http:fault-proxy:8474"),
        ("get", "ml-serving", "http:model-server:8000")}


def _drill(folder: Path) -> Path:
    """The bundled kill drill with Prometheus and Alertmanager declared as in-cluster endpoints (default names)."""
    data = yaml.safe_load((ROOT / "experiments" / "kill-one-replica-alerts.yaml").read_text())
    ext = next(e for e in data["extensions"] if e["name"] == "mlchaos")
    ext["endpoints"] = {"prometheus": {"url": PROMETHEUS, "timeout": 10}, "alertmanager": DECLARED["am"]}
    data["steady-state-hypothesis"]["probes"].append(
        {"type": "probe", "name": "prometheus-through-the-api-server", "tolerance": 3, "provider": {
            "type": "python", "module": "drivers.prometheus.probes", "func": "query_value",
            "arguments": {"query": 'count(up{job="model"})', "endpoint": "prometheus"}}})
    path = folder / "k8s-endpoints-kill-drill.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow  # about 30 s on a 2-core machine
def test_an_alert_drill_reads_prometheus_and_alertmanager_through_the_api_server(cluster, monitored, tmp_path):
    monitored.up(replicas=3, timeout=90)
    experiment = _drill(tmp_path)
    journal_path = tmp_path / "journal.json"
    env = child_env(monitored.state_dir) | {"KUBECONFIG": str(cluster.kubeconfig)}
    cluster.clear_calls()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal_path)],
                          env=env, capture_output=True, text=True, timeout=240)
    wall = time.monotonic() - started
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    journal = json.loads(journal_path.read_text())
    kinds = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    print(f"kill drill through the emulated API server: {wall:.1f}s wall; "
          + ", ".join(f"{k} {v:.2f}s" for k, v in kinds.items()))
    assert {"time_to_detect", "time_to_notify", "time_to_recover"} <= set(kinds)
    proxied = {(c.namespace, c.name) for c in cluster.calls if c.resource == "services/proxy"}
    assert proxied == {("monitoring", "http:prometheus-operated:9090"),
                       ("monitoring", "http:alertmanager-operated:9093")}
    delivered = next(r["output"] for r in journal["run"] if r["activity"]["name"] == "on-call-is-notified")
    assert "/services/http:alertmanager-operated:9093/proxy" in delivered["confirmed_by"]
    assert "emulator-token" not in journal_path.read_text() + proc.stdout + proc.stderr
