"""The service-proxy transport (drivers/kubernetes/service_proxy.py) against the API emulator, over real HTTP.

No API server runs on this machine: the emulator (tests/support/kubernetes_emulator.py) plays
its service proxy -- bearer token checked, RBAC logged (and enforced where a test says so),
404/503 ``Status`` failures, the Authorization header removed before forwarding -- in front of
a real local HTTP server (a stdlib ``http.server`` here that echoes what it received; the
integration test tests/integration/test_kubernetes_service_proxy.py puts real Prometheus,
Alertmanager, a model server and the fault proxy behind it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests
import yaml

from drivers._common.errors import http_errors
from drivers.kubernetes import service_proxy
from drivers.kubernetes.service_proxy import PROXY_TOKEN_HEADER, ServiceUnreachable, open_service, parse_k8s_url
from mlchaos.errors import DriverError, TargetNotFound
from tests.support.http_server import LoopbackServer, reply
from tests.support.kubernetes_emulator import EmulatedCluster


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received (method, path, headers, body) as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        status = 418 if self.path.startswith("/teapot") else 200
        data = json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                           "body": body}).encode()
        reply(self, status, data)

    do_GET = do_POST = do_DELETE = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with LoopbackServer(Echo) as server:
        yield server.url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, upstream) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path_factory.mktemp("k8s")) as found:
        found.expose("monitoring", "prometheus-operated", 9090, upstream, port_name="web")
        found.expose("monitoring", "no-endpoints", 9093, None)
        found.expose("monitoring", "refused", 9091, "http://127.0.0.1:1")  # nothing listens on port 1
        yield found


def test_k8s_urls_parse_and_bad_ones_are_named():
    ref = parse_k8s_url("k8s://monitoring/prometheus-operated:9090")
    assert (ref.namespace, ref.service, ref.port, ref.scheme, ref.path) == ("monitoring", "prometheus-operated",
                                                                          "9090", "http", "")
    assert ref.proxy_name == "http:prometheus-operated:9090"
    assert ref.proxy_path() == "/api/v1/namespaces/monitoring/services/http:prometheus-operated:9090/proxy"
    https = parse_k8s_url("k8s+https://ml-serving/model-server:https/prefix/")
    assert https.proxy_path() == "/api/v1/namespaces/ml-serving/services/https:model-server:https/proxy/prefix"
    assert https.label == "k8s+https://ml-serving/model-server:https/prefix"
    for bad, problem in (("http://x/y:1", "not a k8s:// URL"), ("k8s://monitoring/prometheus", "needs a port"),
                         ("k8s://Monitoring/p:1", "namespace must be a DNS label"),
                         ("k8s://m/p:0", "port must be 1-65535"), ("k8s://m/p:1?x=1", "no credentials, query"),
                         ("k8s://user:pw@m/p:1", "no credentials"), ("k8s://m/p:Web_1", "port must be a number")):
        with pytest.raises(DriverError, match=problem):
            parse_k8s_url(bad)
    with pytest.raises(DriverError, match="scheme must be one of"):
        service_proxy.service_ref("m", "p", 1, scheme="ftp")


def test_a_request_reaches_the_service_with_the_kubeconfig_token_and_without_it_upstream(cluster):
    cluster.clear_calls()
    endpoint = open_service("monitoring", "prometheus-operated", 9090, **cluster.connection())
    assert endpoint.base_url == f"{cluster.url}/api/v1/namespaces/monitoring/services/" \
                                "http:prometheus-operated:9090/proxy"
    assert endpoint.environment == "kubernetes:staging-emulator"
    answer = endpoint.session.get(endpoint.base_url + "/api/v1/query", params={"query": "up"},
                                  headers={"X-Scope-OrgID": "tenant-a"})
    seen = answer.json()
    assert answer.status_code == 200 and seen["path"] == "/api/v1/query?query=up"
    assert seen["headers"]["X-Scope-OrgID"] == "tenant-a"  # tenant headers travel
    assert "Authorization" not in seen["headers"]  # the API server keeps its credential to itself
    (call,) = cluster.calls
    assert (call.verb, call.resource, call.namespace, call.name) == ("get", "services/proxy", "monitoring",
                                                                     "http:prometheus-operated:9090")
    posted = endpoint.session.post(endpoint.base_url + "/api/v1/query", data={"query": "up"}).json()
    assert posted["method"] == "POST" and posted["body"] == "query=up"
    assert cluster.calls[-1].verb == "create"  # what RBAC calls a POST through the proxy
    named = open_service(url="k8s://monitoring/prometheus-operated:web", **cluster.connection())
    assert named.session.get(named.base_url + "/-/ready").json()["path"] == "/-/ready"


def test_an_upstream_error_passes_unchanged(cluster):
    endpoint = open_service(url="k8s://monitoring/prometheus-operated:9090", **cluster.connection())
    answer = endpoint.session.get(endpoint.base_url + "/teapot")
    assert answer.status_code == 418 and answer.json()["path"] == "/teapot"


def test_the_api_servers_own_failures_become_clear_errors(cluster):
    conn = cluster.connection()
    missing = open_service("monitoring", "nothing-here", 9090, **conn)
    with pytest.raises(TargetNotFound, match='services "nothing-here" not found'):
        missing.session.get(missing.base_url + "/")
    for ref, reason in (("k8s://monitoring/no-endpoints:9093", "no endpoints available"),
                        ("k8s://monitoring/prometheus-operated:9999", 'no service port "9999"'),
                        ("k8s://monitoring/refused:9091", "error trying to reach service")):
        endpoint = open_service(url=ref, **conn)
        with pytest.raises(ServiceUnreachable, match=reason) as caught:
            endpoint.session.get(endpoint.base_url + "/")
        assert isinstance(caught.value, requests.ConnectionError)  # a probe sees "unreachable", as with a URL
        with pytest.raises(DriverError, match=f"Prometheus at {ref} is unreachable: .*{reason}"), \
                http_errors(f"Prometheus at {ref}", "GET /", 5):
            endpoint.session.get(endpoint.base_url + "/")


def test_wrong_credentials_and_rbac_refusals_name_what_is_missing(cluster, tmp_path):
    data = cluster.kubeconfig_data()
    data["users"][0]["user"]["token"] = "wrong-token"
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(yaml.safe_dump(data))
    endpoint = open_service(url="k8s://monitoring/prometheus-operated:9090", kubeconfig=str(wrong))
    with pytest.raises(DriverError, match="not authenticated .* check the kubeconfig's credentials") as caught:
        endpoint.session.get(endpoint.base_url + "/")
    assert "wrong-token" not in str(caught.value)
    assert cluster.emulator is not None
    cluster.emulator.authorize = lambda call: call.verb == "get"
    try:
        endpoint = open_service(url="k8s://monitoring/prometheus-operated:9090", **cluster.connection())
        assert endpoint.session.get(endpoint.base_url + "/").ok
        with pytest.raises(DriverError, match="forbidden by RBAC .* needs create on services/proxy named "
                                              "http:prometheus-operated:9090 in namespace monitoring"):
            endpoint.session.post(endpoint.base_url + "/api/v1/query", json={})
    finally:
        cluster.emulator.authorize = None


def test_an_upstream_authorization_header_is_refused_unless_it_also_travels_forwarded(cluster):
    endpoint = open_service(url="k8s://monitoring/prometheus-operated:9090", **cluster.connection())
    with pytest.raises(DriverError, match="cannot carry an Authorization header for the upstream"):
        endpoint.session.get(endpoint.base_url + "/", headers={"Authorization": "Bearer upstream-secret"})
    seen = endpoint.session.get(endpoint.base_url + "/", headers={"Authorization": "Bearer upstream-secret",
                                                                  PROXY_TOKEN_HEADER: "upstream-secret"}).json()
    assert seen["headers"][PROXY_TOKEN_HEADER] == "upstream-secret" and "Authorization" not in seen["headers"]


def test_credentials_never_show_in_the_endpoint_or_its_session(cluster):
    endpoint = open_service(url="k8s://monitoring/prometheus-operated:9090", **cluster.connection())
    shown = f"{endpoint!r} {endpoint.base_url} {endpoint.session.auth!r} {endpoint.session.headers!r}"
    assert "emulator-token" not in shown and "k8s://monitoring/prometheus-operated:9090" in repr(endpoint)


def test_a_request_without_a_timeout_gets_the_default(cluster, monkeypatch):
    seen: list[object] = []
    original = requests.Session.send

    def send(self, request, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    endpoint = open_service(url="k8s://monitoring/prometheus-operated:9090", **cluster.connection())
    endpoint.session.get(endpoint.base_url + "/")
    endpoint.session.get(endpoint.base_url + "/", timeout=2)
    assert seen == [service_proxy.DEFAULT_TIMEOUT, 2]


def test_bad_arguments_are_refused_before_any_request(cluster):
    cluster.clear_calls()
    with pytest.raises(DriverError, match="either url"):
        open_service("monitoring", url="k8s://monitoring/p:1", **cluster.connection())
    with pytest.raises(DriverError, match="namespace, service and port are required"):
        open_service("monitoring", "p", **cluster.connection())
    assert cluster.calls == []
