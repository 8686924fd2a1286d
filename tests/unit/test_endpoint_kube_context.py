"""A ``kubernetes`` endpoint's own ``context`` (and ``kubeconfig``): its calls go through that cluster's API server.

No API server runs on this machine: two Kubernetes API **emulators** (tests/support/kubernetes_emulator.py, kmock
over real HTTP, playing the service proxy: token checked, Authorization removed, the request forwarded) stand
for two clusters, each exposing a Service ``ml/metrics:9090`` backed by a real local HTTP server that answers
Prometheus queries with its own value (1 in cluster ``alpha``, 2 in cluster ``beta``). One kubeconfig names
both contexts, ``alpha`` current.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.prometheus import probes
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from mlchaos.lib.endpoints import Endpoint, EndpointTable
from tests.support.kubernetes_emulator import EmulatedCluster

SERVICE = {"namespace": "ml", "service": "metrics", "port": 9090}


def _answering(value: int) -> type[http.server.BaseHTTPRequestHandler]:
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = b'{"status":"success","data":{"resultType":"scalar","result":[0,"%d"]}}' % value
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Answer


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two emulated clusters and one kubeconfig (``kube/config`` in the returned folder) naming both."""
    folder = tmp_path_factory.mktemp("two-clusters")
    servers, started = [], []
    try:
        for value, name in ((1, "alpha"), (2, "beta")):
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _answering(value))
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            servers.append(httpd)
            cluster = EmulatedCluster(folder / name, contexts=(name,)).start()
            started.append(cluster)
            cluster.expose(SERVICE["namespace"], SERVICE["service"], SERVICE["port"],
                           f"http://127.0.0.1:{httpd.server_address[1]}")
        configs = [c.kubeconfig_data() for c in started]
        merged = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "alpha",
                  "clusters": [{"name": n, "cluster": c["clusters"][0]["cluster"]} for n, c in
                               zip(("alpha", "beta"), configs, strict=True)],
                  "users": configs[0]["users"],
                  "contexts": [{"name": n, "context": {"cluster": n, "user": "emulator"}} for n in ("alpha", "beta")]}
        (folder / "kube").mkdir()
        (folder / "kube" / "config").write_text(yaml.safe_dump(merged))
        yield folder
    finally:
        for cluster in started:
            cluster.stop()
        for httpd in servers:
            httpd.shutdown()
            httpd.server_close()


@pytest.fixture
def active(clusters: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EndpointTable]:
    monkeypatch.setenv("KUBECONFIG", str(clusters / "kube" / "config"))
    declared = {
        "current": {"kubernetes": SERVICE},
        "beta": {"kubernetes": SERVICE | {"context": "beta"}},
        "beta-by-file": {"kubernetes": SERVICE | {"context": "beta", "kubeconfig": "kube/config"}},
        "nowhere": {"kubernetes": SERVICE | {"context": "gamma"}},
    }
    table = EndpointTable({n: Endpoint.from_dict(n, d) for n, d in declared.items()}, base_dir=clusters)
    previous = endpoints.activate(table)
    yield table
    endpoints.activate(previous)
    table.close()


def test_an_endpoint_goes_through_the_context_it_names(active, monkeypatch):
    assert probes.query_value("up", endpoint="current") == 1.0  # KUBECONFIG's current context: alpha
    assert probes.query_value("up", endpoint="beta") == 2.0
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # its own kubeconfig, relative to the experiment
    assert probes.query_value("up", endpoint="beta-by-file") == 2.0
    assert active.endpoints["beta"].describe() == "k8s://ml/metrics:9090 (context beta)"


def test_a_context_the_kubeconfig_lacks_is_named(active, clusters):
    with pytest.raises(DriverError, match=r"no context 'gamma' in .*kube/config \(known: alpha, beta\)"):
        probes.query_value("up", endpoint="nowhere")
