"""The model probes through a declared ``serving`` endpoint: a real nginx in front of a sandbox replica, routing
by ``Host`` as KServe's ingress does and requiring basic auth.

nginx (Debian's nginx-light) answers only requests for ``model.default.example.com`` with the right
credentials and proxies them to the replica; any other Host gets 404, no credentials 401. The probes see
no replica without the endpoint, and the whole replica through it (health, accuracy, latency, errors).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from drivers.model import actions as model_actions
from drivers.model import probes
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from mlchaos.lib.files import free_ports
from mlchaos.sandbox.manager import Sandbox
from tests.support.components import require_component
from tests.support.polling import wait_until

NGINX = "/usr/sbin/nginx"
HOST_NAME = "model.default.example.com"
USER, PASSWORD = "serving-client", "nginx-basic-pw-91d0c2"


@pytest.fixture(scope="module")
def gateway(module_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_component("nginx", bool(shutil.which(NGINX)), "apt-get install nginx-light "
                                                           "(scripts/install-system-packages.sh)")
    tmp: Path = tmp_path_factory.mktemp("nginx")
    replica = module_sandbox.replicas("model")[0]
    (port,) = free_ports(1)
    (tmp / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    temp = "".join(f"{kind}_temp_path {tmp / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'};
events {{ worker_connections 64; }}
http {{
  access_log off;
  {temp}
  server {{ listen 127.0.0.1:{port} default_server; return 404; }}
  server {{
    listen 127.0.0.1:{port};
    server_name {HOST_NAME};
    auth_basic "model";
    auth_basic_user_file {tmp / 'htpasswd'};
    location / {{ proxy_pass {replica.client_url}; }}
  }}
}}
""")
    log = tmp / "nginx.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-g", "daemon off;"],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 404
        except requests.RequestException:
            return False

    try:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited: {log.read_text()}")
        wait_until(listening, timeout=20, what=f"nginx on {url} (its output: {log})")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


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
    """unload_model through the ingress (target url, endpoint serving); the recorded undo names the URL, which
    carries the endpoint's credentials again, as ``mlchaos recover`` would call it."""
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
        assert record["undo"]["arguments"]["urls"] == [gateway] and "endpoint" not in record["undo"]["arguments"]
        assert probes.served_versions(target="url") == dict.fromkeys(before)  # target url alone: serving's URL
        undo = getattr(model_actions, record["undo"]["func"].rsplit(".", 1)[1])
        undo(**record["undo"]["arguments"])
        assert probes.served_versions(target="url", endpoint="serving") == before
    finally:
        endpoints.activate(previous)
        table.close()
