"""Named endpoints: the typed model, what a connection sends (over real loopback HTTP), the Kubernetes seam,
credential errors, which server a call's credentials go to, and validation's warnings."""

from __future__ import annotations

import copy
import http.server
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers._common import endpoints as driver_endpoints
from drivers.prometheus import probes
from mlchaos.driver_kit import DriverError
from mlchaos.experiment.endpoints import endpoint_table
from mlchaos.experiment.loader import load_document
from mlchaos.experiment.validation import examine
from mlchaos.lib import endpoints
from mlchaos.lib.endpoints import Endpoint, EndpointTable, EndpointUnavailable, KubernetesService
from tests.support.bad_experiments import valid
from tests.support.builders import py
from tests.support.http_server import LoopbackServer, reply

TOKEN = "tok-3f9a0c77-projected"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        body = b'{"status":"success","data":{"resultType":"scalar","result":[0,"7"]}}'
        reply(self, 200, body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    handler = type("Recorder", (_Recorder,), {"seen": []})
    with LoopbackServer(handler) as httpd:
        yield httpd.url, handler.seen


@pytest.fixture
def active() -> Iterator[list[EndpointTable]]:
    """Activate tables in a test; the previous one comes back after it."""
    tables: list[EndpointTable] = []
    previous = endpoints.active()
    yield tables
    endpoints.activate(previous)
    for table in tables:
        table.close()


def _activate(active: list[EndpointTable], table: EndpointTable) -> EndpointTable:
    active.append(table)
    endpoints.activate(table)
    return table


def test_a_declared_endpoint_sends_its_token_and_headers_and_no_other_server_sees_them(server, active, tmp_path):
    url, seen = server
    (tmp_path / "token").write_text(TOKEN + "\n")
    secrets: list[str] = []
    table = _activate(active, EndpointTable({"prometheus": Endpoint.from_dict("prometheus", {
        "url": url, "bearer_token_file": "token", "headers": {"X-Scope-OrgID": "team-a"}})},
        base_dir=tmp_path, on_secret=secrets.append))
    assert probes.query_value("up", endpoint="prometheus") == 7.0
    assert probes.query_value("up") == 7.0  # neither url nor endpoint: the endpoint named prometheus
    assert probes.query_value("up", url=url) == 7.0  # its URL given: the same credentials go with it
    assert [(s["authorization"], s["x-scope-orgid"]) for s in seen] == [(f"Bearer {TOKEN}", "team-a")] * 3
    assert secrets == [TOKEN]  # read once, handed to the redactor before it was sent
    table.endpoints = {}  # another server (same host, other port would be another origin): nothing is sent
    assert driver_endpoints.http_for("http://127.0.0.1:1/api")[0].__name__ == "requests"


def test_a_url_elsewhere_gets_no_credentials(server, active, tmp_path):
    url, seen = server
    _activate(active, EndpointTable({"other": Endpoint.from_dict("other", {
        "url": "http://127.0.0.2:9/prefix", "bearer_token_env": "MLCHAOS_UNUSED"})}))
    assert probes.query_value("up", url=url) == 7.0
    assert "authorization" not in seen[0]
    assert endpoints.session_for("http://127.0.0.2:9/prefixed/x") is None  # a path prefix is a whole segment


def test_url_and_endpoint_together_and_unknown_names_are_errors(active):
    _activate(active, EndpointTable({"prometheus": Endpoint.from_dict("prometheus", {"url": "http://p:1"})}))
    with pytest.raises(DriverError, match="give url or endpoint, not both"):
        probes.query_value("up", url="http://p:1", endpoint="prometheus")
    with pytest.raises(DriverError, match=r"no endpoint named 'prom' is declared \(declared: prometheus\)"):
        probes.query_value("up", endpoint="prom")


def test_credentials_that_cannot_be_read_name_the_endpoint_and_the_source(active, tmp_path, monkeypatch):
    monkeypatch.delenv("MLCHAOS_UNSET_TOKEN", raising=False)
    cases = {
        "f": ({"bearer_token_file": "missing/token"}, f"endpoint 'f': file missing/token: cannot read "
                                                       f"{tmp_path / 'missing' / 'token'}"),
        "e": ({"bearer_token_env": "MLCHAOS_UNSET_TOKEN"}, "endpoint 'e': environment variable MLCHAOS_UNSET_TOKEN "
                                                          "is not set"),
        "s": ({"basic_auth": {"username": "u", "password_secret": "prom.password"}},
              "endpoint 's': secret prom.password: no such secret"),
        "c": ({"ca_file": "ca.crt"}, f"endpoint 'c': ca_file {tmp_path / 'ca.crt'} does not exist"),
    }
    table = _activate(active, EndpointTable({name: Endpoint.from_dict(name, {"url": "https://p:1", **data})
                                             for name, (data, _) in cases.items()}, base_dir=tmp_path))
    for name, (_, message) in cases.items():
        with pytest.raises(EndpointUnavailable) as failure:
            table.connection(name)
        assert message in str(failure.value)
        with pytest.raises(DriverError, match="endpoint '"):
            probes.query_value("up", endpoint=name)
    assert list(table.credentials()) == []  # nothing readable: nothing to redact, nothing raised


def test_kubernetes_endpoints_go_through_the_registered_connector(server, active):
    url, seen = server
    declared = {"k": Endpoint.from_dict("k", {"url": "k8s://monitoring/prometheus-operated:web"}),
                "s": Endpoint.from_dict("s", {"kubernetes": {"namespace": "monitoring", "service": "am",
                                                             "port": 9093, "scheme": "https"},
                                              "headers": {"X-Scope-OrgID": "t"}})}
    assert declared["k"].kubernetes == KubernetesService("monitoring", "prometheus-operated", "web", "http")
    assert declared["s"].describe() == "k8s://monitoring/am:9093"
    table = _activate(active, EndpointTable(declared))
    registered = endpoints.kubernetes_connector()  # the Kubernetes driver's, when it registers one: restored below
    endpoints.register_kubernetes_connector(None)
    try:
        with pytest.raises(EndpointUnavailable, match="in-cluster endpoints are not available in this installation"):
            table.connection("k")
    finally:
        endpoints.register_kubernetes_connector(registered)
    asked: list[tuple[str, str]] = []

    def connector(endpoint: Endpoint, session: Any) -> str:
        assert endpoint.kubernetes is not None
        asked.append((endpoint.name, f"{endpoint.kubernetes.scheme}:{endpoint.kubernetes.service}"))
        session.headers["Authorization"] = "Bearer kubeconfig-token"
        return f"{url}/api/v1/namespaces/{endpoint.kubernetes.namespace}/services/x/proxy/"

    endpoints.register_kubernetes_connector(connector)
    try:
        assert probes.query_value("up", endpoint="s") == 7.0
    finally:
        endpoints.register_kubernetes_connector(registered)
    assert asked == [("s", "https:am")]
    assert seen[0]["path"].startswith("/api/v1/namespaces/monitoring/services/x/proxy/api/v1/query?")
    assert (seen[0]["authorization"], seen[0]["x-scope-orgid"]) == ("Bearer kubeconfig-token", "t")


def test_the_endpoint_timeout_caps_each_request():
    conn = endpoints.Connection("p", "http://p", session=None, timeout=2.0)  # type: ignore[arg-type]
    assert (conn.request_timeout(5.0), conn.request_timeout(1.0)) == (2.0, 1.0)


def test_validation_warns_of_missing_files_and_insecure_tls_and_the_table_builds(tmp_path):
    data = valid()
    data["extensions"] = [{"name": "mlchaos", "endpoints": {
        "prometheus": {"url": "https://prom.example:9090", "insecure_skip_verify": True,
                       "bearer_token_file": "/var/run/secrets/kubernetes.io/serviceaccount/token-absent",
                       "headers": {"Host": "model.default.example.com"}, "timeout": 10},
        "in-cluster": {"kubernetes": {"namespace": "monitoring", "service": "prometheus-operated", "port": 9090}},
    }}]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    findings = examine(load_document(path))
    assert findings.problems == []
    warnings = {w.pointer: w.message for w in findings.warnings}
    assert "INSECURE: endpoint 'prometheus' skips TLS verification" in \
        warnings["/extensions/0/endpoints/prometheus/insecure_skip_verify"]
    assert "does not exist here" in warnings["/extensions/0/endpoints/prometheus/bearer_token_file"]
    table = endpoint_table(data, {}, tmp_path)
    assert table is not None and sorted(table.endpoints) == ["in-cluster", "prometheus"]
    assert table.endpoints["prometheus"].headers == (("Host", "model.default.example.com"),)
    assert table.endpoints["in-cluster"].kubernetes == KubernetesService("monitoring", "prometheus-operated", 9090)


def test_another_drivers_endpoint_argument_is_left_alone(tmp_path):
    """The traffic probes' ``endpoint`` (infer or feedback) is not a declared endpoint's name."""
    data = valid()
    data["method"] = [{"type": "probe", "name": "t", "provider": {
        "type": "python", "module": "drivers.model.traffic", "func": "traffic_answers",
        "arguments": {"status": "5xx", "endpoint": "infer"}}}]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    assert [p.message for p in examine(load_document(path)).problems] == []


def test_a_declared_default_stands_for_the_sandbox_in_preflight(tmp_path, monkeypatch):
    """With an endpoint named prometheus, a probe without url needs no sandbox binaries at validation."""
    from mlchaos.sandbox import monitoring_stack

    monkeypatch.setattr(monitoring_stack, "missing_binaries", lambda: [("/usr/bin/prometheus", "prometheus")])
    data = valid()
    data["method"] = [{"type": "probe", "name": "q", "provider": {
        "type": "python", "module": "drivers.prometheus.probes", "func": "query_value", "arguments": {"query": "up"}}}]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    assert any("needs the sandbox monitoring stack" in p.message for p in examine(load_document(path)).problems)
    data["extensions"] = [{"name": "mlchaos", "endpoints": {"prometheus": {"url": "https://prom:9090"}}}]
    path.write_text(json.dumps(data))
    assert examine(load_document(path)).problems == []


def test_a_path_is_relative_to_the_experiment(tmp_path):
    assert endpoints.resolve_path("t", tmp_path) == tmp_path / "t"
    assert endpoints.resolve_path("/abs/t", tmp_path) == Path("/abs/t")


def test_two_tenants_on_one_url_each_send_their_own_header(server, active):
    """Two endpoints may share a URL (tenants of one Mimir): each call goes with the endpoint it named."""
    url, seen = server
    _activate(active, EndpointTable({name: Endpoint.from_dict(name, {"url": url, "headers": {"X-Scope-OrgID": name}})
                                     for name in ("team-a", "team-b")}))
    assert probes.query_value("up", endpoint="team-b") == 7.0
    assert probes.query_value("up", endpoint="team-a") == 7.0
    assert probes.query_value("up", endpoint="team-b") == 7.0
    assert [s["x-scope-orgid"] for s in seen] == ["team-b", "team-a", "team-b"]
    bound = driver_endpoints.base_url("team-a", None, "prometheus", lambda u: "unused")
    assert type(copy.deepcopy(bound)) is str and type(pickle.loads(pickle.dumps(bound))) is str
    assert json.dumps({"u": bound}) == json.dumps({"u": url})


def test_a_run_whose_endpoint_cannot_be_used_is_refused_before_anything_runs(tmp_path, subprocess_env):
    """Validation only warns (the token may exist where the run happens); where it runs, it must."""
    marker = tmp_path / "marker"
    data = valid()
    data["method"] = [py("hit", "hit_targets", names=["t"], marker=str(marker), population=["t"])]
    data["extensions"] = [{"name": "mlchaos", "endpoints": {
        "prometheus": {"url": "https://prom:9090", "bearer_token_file": "absent.token"},
        "alertmanager": {"url": "https://am:9093", "ca_file": "absent-ca.crt"}}}]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(tmp_path / "j.json")],
                          env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"endpoint 'prometheus': file absent.token: cannot read {tmp_path / 'absent.token'}" in proc.stderr
    assert f"endpoint 'alertmanager': ca_file {tmp_path / 'absent-ca.crt'} does not exist" in proc.stderr
    assert not marker.exists() and not (tmp_path / "j.json").exists()


@pytest.mark.parametrize("header", ["Authorization", "cookie", "X-API-Key", "X-Auth-Token", "X-Vault-Secret"])
def test_a_header_that_looks_like_a_credential_is_refused(tmp_path, header):
    data = valid()
    data["extensions"] = [{"name": "mlchaos", "endpoints": {"p": {"url": "https://p", "headers": {header: "v"}}}}]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    (problem,) = examine(load_document(path)).problems
    assert problem.pointer == f"/extensions/0/endpoints/p/headers/{header}"
    assert "would write a credential into the experiment" in problem.message
