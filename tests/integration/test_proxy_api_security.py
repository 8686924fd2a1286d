"""Attacks on the fault proxy's API (issue 15), each against a real `python -m mlchaos.proxy` over real sockets.

A browser page posting across origins (a form, or JSON with its Origin), a page on a re-pointed name
(DNS rebinding), no or a wrong token on an API bound beyond loopback, a proxy to 127.0.0.1:22, 150
stalled connections, a reset with a proxy that cannot listen again, an update to a taken address;
and the real Toxiproxy client (PyPI toxiproxy-python) still working with the token.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.components import require_component
from tests.support.environment import child_env
from tests.support.polling import wait_until

TOKEN = "proxy-api-security-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    """A running proxy process: its API URL and port, its process."""

    url: str
    port: int
    proc: subprocess.Popen[str]

    def raw(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` as is on a new connection; (status, whole answer)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1]), answer

    def proxies(self) -> dict:
        return requests.get(f"{self.url}/proxies", headers=AUTH, timeout=5).json()


@pytest.fixture
def upstream() -> Iterator[str]:
    """A TCP server on loopback that answers every connection with b"pong" (a proxy's upstream)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    address = f"127.0.0.1:{server.getsockname()[1]}"
    try:
        yield address
    finally:
        server.close()


def launch(tmp_path: Path, *args: str, token: str | None = TOKEN, api: str = "127.0.0.1:0",
           proxies: list[dict] | None = None) -> subprocess.Popen[str]:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps(proxies or []))
    env = child_env(MLCHAOS_PROXY_TOKEN=token, MLCHAOS_PROXY_TOKEN_FILE=None)
    return subprocess.Popen([sys.executable, "-m", "mlchaos.proxy", "--api", api, "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """Start proxy processes (``start(*args, token=..., api=..., proxies=...)``); each is stopped after the test."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, **kwargs: object) -> Api:
        proc = launch(tmp_path, *args, **kwargs)
        started.append(proc)
        ready = proc.stdout.readline()
        assert ready.startswith("READY "), ready + proc.stdout.read()
        port = int(ready.split()[1])
        return Api(f"http://127.0.0.1:{port}", port, proc)

    yield run
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def post(api: Api, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A raw POST as a browser would send it (the headers exactly as given, Host the API's)."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{api.port}", f"Content-Length: {len(body)}",
            "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


SSH_RELAY = {"name": "ssh", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:22"}


# -- tokens --------------------------------------------------------------------------------------


@pytest.mark.parametrize("token, message", [
    (None, "beyond loopback, without a token"),
    ("short", "16 to 4096 visible ASCII characters"),
])
def test_an_api_beyond_loopback_refuses_to_start_without_a_valid_token(tmp_path, token, message):
    proc = launch(tmp_path, token=token, api="0.0.0.0:0")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "READY" not in out
    assert message in out


def test_no_or_a_wrong_token_is_refused_beyond_loopback(start, upstream):
    api = start(api="0.0.0.0:0", proxies=[{"name": "web", "listen": "127.0.0.1:0", "upstream": upstream}])
    wrong_basic = base64.b64encode(f"user:{TOKEN}x".encode()).decode()
    for headers in ({}, {"Authorization": "Bearer nope-nope-nope-nope"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": f"Basic {wrong_basic}"}, {"Authorization": TOKEN},
                    {"X-Token": TOKEN}):
        answer = requests.get(f"{api.url}/proxies", headers=headers, timeout=5)
        assert answer.status_code == 401, headers
        assert "token" in answer.json()["error"] and answer.headers["WWW-Authenticate"].startswith("Bearer")
        created = requests.post(f"{api.url}/proxies", json={**SSH_RELAY, "upstream": upstream}, headers=headers,
                                timeout=5)
        assert created.status_code == 401
    right_basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert requests.get(f"{api.url}/proxies", headers={"Authorization": f"Basic {right_basic}"}, timeout=5).ok
    assert sorted(api.proxies()) == ["web"], "nothing was created without the token"


def test_a_loopback_api_with_a_token_requires_it_too(start):
    api = start()
    assert requests.get(f"{api.url}/version", timeout=5).status_code == 401
    assert requests.get(f"{api.url}/version", headers=AUTH, timeout=5).json()["version"]


# -- browsers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers, status", [
    # a cross-origin HTML form: its content type, its Origin (the finding's case)
    ({"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}, 403),
    ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403),
    # the same, from an old browser that sends no Origin
    ({"Content-Type": "text/plain"}, 415),
    ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ({}, 415),  # a body with no content type at all
    # JSON from a foreign page (a fetch after a preflight the API never answers, or a lax client)
    ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
    ({"Content-Type": "application/json", "Origin": "null"}, 403),
    ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
])
def test_a_browser_style_cross_origin_post_creates_nothing(start, headers, status):
    api = start(token=None)  # loopback, no token: the browser is the only attacker left
    got, answer = api.raw(post(api, "/proxies", json.dumps(SSH_RELAY).encode(), headers))
    assert got == status, answer
    assert b'"error"' in answer
    assert requests.get(f"{api.url}/proxies", timeout=5).json() == {}


def test_an_allowed_origin_may_call(start, upstream):
    api = start("--allow-origin", "https://chaos-ui.example", token=None)
    headers = {"Content-Type": "application/json", "Origin": "https://chaos-ui.example"}
    body = json.dumps({**SSH_RELAY, "upstream": upstream}).encode()
    assert api.raw(post(api, "/proxies", body, headers))[0] == 201


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8474", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_a_rebound_dns_name_is_refused(start, host):
    api = start(token=None)
    status, answer = api.raw(f"GET /proxies HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    assert status == 403 and b"--allow-host" in answer
    status, _ = api.raw(f"GET /proxies HTTP/1.1\r\nHost: localhost:{api.port}\r\nConnection: close\r\n\r\n".encode())
    assert status == 200
    status, _ = api.raw(b"GET /proxies HTTP/1.0\r\n\r\n")
    assert status == 400, "no Host at all"


def test_a_configured_host_name_is_answered(start):
    api = start("--allow-host", "fault-proxy.ml-serving.svc", token=None)
    request = b"GET /version HTTP/1.1\r\nHost: fault-proxy.ml-serving.svc:8474\r\nConnection: close\r\n\r\n"
    assert api.raw(request)[0] == 200


# -- allow-lists ---------------------------------------------------------------------------------


def test_an_upstream_or_listen_address_outside_the_allow_list_is_refused(start, upstream):
    api = start(proxies=[{"name": "web", "listen": "127.0.0.1:0", "upstream": upstream}])
    before = api.proxies()
    refused = [
        requests.post(f"{api.url}/proxies", json=SSH_RELAY, headers=AUTH, timeout=5),
        requests.post(f"{api.url}/proxies", json={**SSH_RELAY, "upstream": "10.1.2.3:8000"}, headers=AUTH, timeout=5),
        requests.post(f"{api.url}/proxies", json={**SSH_RELAY, "upstream": "0.0.0.0:8000"}, headers=AUTH, timeout=5),
        requests.post(f"{api.url}/proxies", json={**SSH_RELAY, "upstream": upstream, "listen": "0.0.0.0:0"},
                      headers=AUTH, timeout=5),
        requests.post(f"{api.url}/proxies/web", json={"upstream": "127.0.0.1:22"}, headers=AUTH, timeout=5),
        requests.post(f"{api.url}/proxies/web", json={"upstream": "attacker.example:443"}, headers=AUTH, timeout=5),
        requests.post(f"{api.url}/proxies/web", json={"listen": "0.0.0.0:0"}, headers=AUTH, timeout=5),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "upstream 127.0.0.1:22 is not allowed" in refused[0].json()["error"]
    assert "--allow-upstream" in refused[0].json()["error"] and "--allow-listen" in refused[3].json()["error"]
    assert api.proxies() == before, "nothing changed"


def test_the_allow_lists_are_configurable(start, upstream):
    api = start("--allow-upstream", "127.0.0.1:22", "--strict-upstreams")
    assert requests.post(f"{api.url}/proxies", json=SSH_RELAY, headers=AUTH, timeout=5).status_code == 201
    strict = requests.post(f"{api.url}/proxies", json={**SSH_RELAY, "name": "x", "upstream": upstream},
                           headers=AUTH, timeout=5)
    assert strict.status_code == 403, "strict: loopback upstreams are not allowed by default"


# -- exhaustion ----------------------------------------------------------------------------------


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_150_stalled_connections_do_not_stop_the_api(start, upstream):
    cap = 32
    api = start("--max-connections", str(cap), proxies=[{"name": "web", "listen": "127.0.0.1:0",
                                                         "upstream": upstream}])
    baseline = _open_fds(api.proc.pid)
    stalled = []
    try:
        for i in range(150):
            sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
            if i % 2:  # half say nothing; half start a request and never finish it (slowloris)
                sock.sendall(b"POST /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n")
            stalled.append(sock)
        # the process closes the oldest stalled connections to stay under its cap...
        wait_until(lambda: _open_fds(api.proc.pid) <= baseline + cap, 30, "the proxy to shed stalled connections")
        # ...and keeps answering, reads and writes alike
        assert requests.get(f"{api.url}/version", headers=AUTH, timeout=10).ok
        toxic = requests.post(f"{api.url}/proxies/web/toxics", json={"type": "latency", "attributes": {"latency": 1}},
                              headers=AUTH, timeout=10)
        assert toxic.status_code == 200
        closed = sum(1 for sock in stalled[:100] if _closed_by_peer(sock))
        assert closed >= 100 - cap, closed
    finally:
        for sock in stalled:
            sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Did the proxy close ``sock`` (an answer then EOF, EOF, or a reset)? False when still open after 5 s."""
    sock.settimeout(5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_an_idle_api_connection_is_closed(start):
    api = start("--idle-timeout", "0.3", "--request-timeout", "0.3")
    idle = socket.create_connection(("127.0.0.1", api.port), timeout=20)
    slow = socket.create_connection(("127.0.0.1", api.port), timeout=20)
    slow.sendall(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
    with idle, slow:
        assert idle.recv(100) == b"", "closed without an answer"
        assert slow.recv(4096).startswith(b"HTTP/1.1 408 ")


# -- reset and update ----------------------------------------------------------------------------


def test_reset_goes_on_past_a_proxy_that_cannot_listen_and_removes_every_toxic(start, upstream):
    proxies = [{"name": name, "listen": "127.0.0.1:0", "upstream": upstream} for name in ("a", "b", "c")]
    api = start(proxies=proxies)
    b_listen = api.proxies()["b"]["listen"]
    requests.post(f"{api.url}/proxies/b", json={"enabled": False}, headers=AUTH, timeout=5).raise_for_status()
    squatter = socket.create_server(tuple_address(b_listen))  # b's address is taken meanwhile
    with squatter:
        for name in ("a", "b", "c"):
            requests.post(f"{api.url}/proxies/{name}/toxics", json={"type": "latency", "attributes": {"latency": 5000}},
                          headers=AUTH, timeout=5).raise_for_status()
        answer = requests.post(f"{api.url}/reset", headers=AUTH, timeout=5)
        assert answer.status_code == 409
        assert list(answer.json()["failed"]) == ["b"] and "cannot listen" in answer.json()["failed"]["b"]
        after = api.proxies()
        assert {name: p["toxics"] for name, p in after.items()} == {"a": [], "b": [], "c": []}
        assert {name: p["enabled"] for name, p in after.items()} == {"a": True, "b": False, "c": True}
    assert requests.post(f"{api.url}/reset", headers=AUTH, timeout=5).status_code == 204, "b's address is free again"
    assert api.proxies()["b"]["enabled"] is True


def test_a_failed_update_leaves_the_previous_state(start, upstream):
    proxies = [{"name": "a", "listen": "127.0.0.1:0", "upstream": upstream}]
    api = start(proxies=proxies)
    requests.post(f"{api.url}/proxies/a/toxics", json={"type": "latency", "attributes": {"latency": 10}},
                  headers=AUTH, timeout=5).raise_for_status()
    before = api.proxies()["a"]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        elsewhere = f"127.0.0.1:{taken.getsockname()[1]}"
        answer = requests.post(f"{api.url}/proxies/a", json={"listen": elsewhere, "upstream": "127.0.0.1:1024"},
                               headers=AUTH, timeout=5)
    assert answer.status_code == 409
    assert "nothing changed" in answer.json()["error"]
    after = api.proxies()["a"]
    assert (after["listen"], after["upstream"], after["enabled"], after["toxics"]) == (
        before["listen"], before["upstream"], True, before["toxics"])
    with socket.create_connection(tuple_address(after["listen"]), timeout=5):
        pass  # still listening where it was


def tuple_address(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


# -- Toxiproxy clients -----------------------------------------------------------------------------


def test_the_toxiproxy_python_client_works_with_the_token(start, upstream, tmp_path, monkeypatch):
    """PyPI toxiproxy-python knows nothing of tokens; `requests` sends basic auth from NETRC, which it reads."""
    found = importlib.util.find_spec("toxiproxy") is not None
    require_component("toxiproxy-python", found, "pip install toxiproxy-python (the PyPI Toxiproxy client)")
    import toxiproxy
    from toxiproxy.api import APIConsumer

    api = start(api="0.0.0.0:0")
    monkeypatch.setattr(APIConsumer, "host", "127.0.0.1")
    monkeypatch.setattr(APIConsumer, "port", api.port)
    server = toxiproxy.Toxiproxy()
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login toxiproxy password {TOKEN}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc / "missing"))
    assert APIConsumer.get("/proxies").status_code == 401, "without the token"
    monkeypatch.setenv("NETRC", str(netrc))
    assert server.running() and b"version" in server.version()
    proxy = server.create(upstream=upstream, name="tp", listen="127.0.0.1:0")
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    assert list(proxy.toxics()) == ["latency_downstream"]
    with proxy.down():
        assert server.get_proxy("tp").enabled is False
    assert server.get_proxy("tp").enabled is True
    assert server.reset() and server.get_proxy("tp").toxics() == {}
    proxy.destroy()
    assert server.proxies() == {}
