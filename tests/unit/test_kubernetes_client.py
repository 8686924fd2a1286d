"""The Kubernetes connection: which cluster and context, the environment id, timeouts, one-line errors.

Against kmock's emulator over real HTTP (drivers.kubernetes.emulator), a closed port and a
server that accepts but never answers; the in-cluster path is resolved from the environment
(its HTTPS service-account endpoint cannot run here).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from drivers.kubernetes import client
from mlchaos.errors import DriverError, TargetNotFound
from tests.support.kubernetes_emulator import EmulatedCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with EmulatedCluster(tmp_path_factory.mktemp("k8s"), contexts=("staging-emulator", "production")) as found:
        yield found


@pytest.fixture(autouse=True)
def no_ambient_cluster(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config


def test_the_context_is_resolved_to_its_name_and_names_the_environment(cluster):
    where = client.resolve(kubeconfig=str(cluster.kubeconfig))
    assert where.context == "staging-emulator" and where.environment == "kubernetes:staging-emulator"
    assert where.kubeconfig == str(cluster.kubeconfig.resolve())
    assert client.resolve(kubeconfig=str(cluster.kubeconfig), context="production").environment == \
        "kubernetes:production"
    assert where.arguments() == {"kubeconfig": where.kubeconfig, "context": "staging-emulator", "in_cluster": False}


def test_arguments_win_over_configuration_and_configuration_over_the_environment(cluster, monkeypatch, tmp_path):
    other = tmp_path / "other-kubeconfig"
    data = cluster.kubeconfig_data()
    data["contexts"].append({"name": "from-env", "context": {"cluster": "emulator", "user": "emulator"}})
    data["current-context"] = "from-env"
    other.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("KUBECONFIG", str(other))
    assert client.resolve().context == "from-env"
    configuration = {"kubeconfig": str(cluster.kubeconfig), "kube_context": "production"}
    assert client.resolve(configuration=configuration).environment == "kubernetes:production"
    assert client.resolve(context="staging-emulator", configuration=configuration).context == "staging-emulator"


def test_kubeconfig_problems_are_one_line_errors(cluster, tmp_path):
    with pytest.raises(DriverError, match="kubeconfig file not found"):
        client.resolve(kubeconfig=str(tmp_path / "missing"))
    with pytest.raises(DriverError, match=r"no context 'prod' in .* \(known: staging-emulator, production\)"):
        client.resolve(kubeconfig=str(cluster.kubeconfig), context="prod")
    with pytest.raises(DriverError, match="no kubeconfig file at .* and not running in a pod"):
        client.resolve()
    with pytest.raises(DriverError, match="either in_cluster"):
        client.resolve(kubeconfig=str(cluster.kubeconfig), in_cluster=True)


def test_in_cluster_is_used_as_a_pod_and_named_in_cluster(monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    where = client.resolve()
    assert where.in_cluster and where.environment == "kubernetes:in-cluster"
    assert client.resolve(configuration={"kube_in_cluster": True}).in_cluster
    with pytest.raises(DriverError, match="in-cluster credentials"):  # no service-account token on this machine
        client.connect(in_cluster=True)


def test_calls_return_the_servers_json_and_missing_objects_are_target_not_found(cluster):
    conn = client.connect(**cluster.connection())
    assert conn.call("list pods", "core", "list_namespaced_pod", "nowhere")["items"] == []
    with pytest.raises(TargetNotFound) as caught:
        conn.call("get deployment nowhere/x", "apps", "read_namespaced_deployment", "x", "nowhere")
    assert str(caught.value).startswith("get deployment nowhere/x: not found (")
    assert "\n" not in str(caught.value)


def test_a_closed_port_is_a_driver_error_naming_the_api(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    where = client.Where(kubeconfig=str(_kubeconfig(tmp_path, f"http://127.0.0.1:{port}")), context="dead")
    conn = client.Connection(where, client._api_client(where))
    start = time.monotonic()
    with pytest.raises(DriverError, match=rf"list pods: cannot talk to the Kubernetes API at http://127.0.0.1:{port}"):
        conn.call("list pods", "core", "list_namespaced_pod", "ml")
    assert time.monotonic() - start < 10


def test_every_call_has_a_timeout(tmp_path):
    """A server that accepts the connection and never answers: the read timeout ends the call."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    where = client.Where(kubeconfig=str(_kubeconfig(tmp_path, url)), context="dead")
    conn = client.Connection(where, client._api_client(where), timeout=(0.5, 0.5))
    start = time.monotonic()
    try:
        with pytest.raises(DriverError, match="did not answer in time"):
            conn.call("list pods", "core", "list_namespaced_pod", "ml")
    finally:
        server.close()
        for sock in accepted:
            sock.close()
    assert time.monotonic() - start < 5


def test_every_api_call_of_the_driver_goes_through_connection_call():
    """No module but client.py touches the generated API classes: every call gets the timeout and translation."""
    root = Path(client.__file__).parent
    for path in root.glob("*.py"):
        if path.name in ("client.py", "emulator.py"):
            continue
        text = path.read_text()
        assert "_request_timeout" not in text and "CoreV1Api" not in text and "ApiClient" not in text, path.name


def test_api_errors_become_one_line_driver_errors():
    from kubernetes.client.exceptions import ApiException

    def api_error(status: int, message: str) -> ApiException:
        exc = ApiException(status=status, reason="x")
        exc.body = json.dumps({"kind": "Status", "message": message})
        return exc

    forbidden = client.translate(api_error(403, 'pods is forbidden: User "x" cannot delete\n resource'), "delete pod")
    assert "forbidden by RBAC" in str(forbidden) and "\n" not in str(forbidden)
    denied = client.translate(api_error(403, 'pods "x" is forbidden: ValidatingAdmissionPolicy \'mlchaos-pods\' '
                                             "with binding 'mlchaos-pods' denied request: no image"), "patch pod")
    assert "denied by an admission policy" in str(denied) and "RBAC" not in str(denied) and "no image" in str(denied)
    assert isinstance(client.translate(api_error(409, "conflict"), "patch"), client.ApiConflict)
    assert "rejected the request" in str(client.translate(api_error(422, "bad"), "create"))
    assert "answered HTTP 500" in str(client.translate(api_error(500, "boom"), "list"))
    assert "not authenticated" in str(client.translate(api_error(401, "token"), "list"))


def _kubeconfig(tmp_path: Path, url: str) -> Path:
    path = tmp_path / f"kubeconfig-{abs(hash(url))}"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "c", "cluster": {"server": url}}], "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "c", "user": "u"}}]}))
    return path
