"""drivers.model.endpoints without a server or engine: the "where" arguments are validated before anything
is asked, URL replicas are named as Prometheus would, the admin endpoint is refused by URL, and a call's
answers become one-line DriverErrors (a fake transport stands in for answers no real server gives on demand)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest

from drivers.model import endpoints
from drivers.model.endpoints import Endpoint, Response
from mlchaos.errors import DriverError, TargetNotFound
from tests.support.http_server import LoopbackServer, reply

URLS = ["http://127.0.0.1:18100", "http://127.0.0.1:18101/", "https://model.example:8443"]


@pytest.mark.parametrize(("where", "message"), [
    ({"target": "k8s"}, "target must be one of sandbox, docker, url, got 'k8s'"),
    ({"labels": {"app": "x"}}, "labels select containers: give them with target docker, not sandbox"),
    ({"target": "url", "urls": URLS, "project": "p"}, "project select containers: give them with target docker"),
    ({"urls": URLS}, "urls name servers by URL: give them with target url, not sandbox"),
    ({"target": "docker", "urls": URLS}, "urls name servers by URL: give them with target url, not docker"),
    ({"service": ""}, "service must be a non-empty service name"),
    ({"target": "docker", "labels": {}}, "an empty selector would target every container"),
    ({"target": "docker", "name_pattern": "("}, "is not a valid regular expression"),
    ({"target": "docker", "project": ""}, "project must be a non-empty compose project name"),
    ({"target": "url"}, "urls must be a non-empty list of server base URLs"),
    ({"target": "url", "urls": []}, "urls must be a non-empty list"),
    ({"target": "url", "urls": "http://127.0.0.1:1"}, "urls must be a non-empty list"),
    ({"target": "url", "urls": ["127.0.0.1:18100"]}, "is not an http\\(s\\)://host\\[:port\\] base URL"),
    ({"target": "url", "urls": ["ftp://host"]}, "is not an http"),
    ({"target": "url", "urls": ["http://host:99999"]}, "is not an http"),
    ({"target": "url", "urls": ["http://host?x=1"]}, "is not an http"),
    ({"target": "url", "urls": [7]}, "is not an http"),
    ({"target": "url", "urls": ["http://h:1", "http://h:1/"]}, "is given twice"),
])
def test_bad_where_arguments_are_refused_in_one_line_before_anything_is_asked(where, message):
    with pytest.raises(DriverError, match=message) as info:
        endpoints.parse_scope(**where)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["sandbox", "url"])
@pytest.mark.parametrize(("count", "seed", "message"), [
    (0, None, "count must be an integer >= 1, got 0"),
    (True, None, "count must be an integer >= 1"),
    (1, "7", "seed must be an integer or null"),
])
def test_count_and_seed_are_checked_first(state_dir, target, count, seed, message):
    urls = URLS if target == "url" else None
    with pytest.raises(DriverError, match=message):
        endpoints.select_endpoints(count, seed, target=target, urls=urls)


def test_the_docker_scope_defaults_to_the_model_label_and_records_what_an_undo_needs():
    scope = endpoints.parse_scope("docker", project="mlchaos")
    assert scope.labels == {"mlchaos.target": "model"}
    assert scope.arguments() == {"target": "docker", "labels": {"mlchaos.target": "model"},
                                 "name_pattern": None, "project": "mlchaos"}
    assert endpoints.parse_scope().arguments() == {}, "the sandbox is the default: its undo stays as it was"
    assert endpoints.parse_scope("url", urls=URLS).arguments() == {
        "target": "url", "urls": ["http://127.0.0.1:18100", "http://127.0.0.1:18101", "https://model.example:8443"]}


def test_url_replicas_are_named_by_url_with_the_instance_prometheus_gives_them():
    scope = endpoints.parse_scope("url", urls=["http://127.0.0.1:18100/", "http://[::1]", "https://model.example"])
    found = scope.named(None)
    assert [e.name for e in found] == ["http://127.0.0.1:18100", "http://[::1]", "https://model.example"]
    assert [e.instance for e in found] == ["127.0.0.1:18100", "[::1]:80", "model.example:443"]
    assert [e.environment for e in found] == ["http://127.0.0.1:18100", "http://[::1]:80",
                                              "https://model.example:443"]
    assert all(e.kind == "url" and e.alive() and e.url == e.name for e in found)
    assert found[0].target().details == {"url": "http://127.0.0.1:18100", "instance": "127.0.0.1:18100"}
    with pytest.raises(TargetNotFound, match="no replica"):
        scope.named(["http://127.0.0.1:1"])
    with pytest.raises(DriverError, match="replicas must be a list of replica names"):
        scope.named("http://[::1]")


def test_a_url_pick_is_seeded_and_stays_in_one_environment():
    urls = ["http://127.0.0.1:18100", "http://127.0.0.1:18101", "http://127.0.0.1:18102"]
    picks = {tuple(e.name for e in endpoints.select_endpoints(1, seed, target="url", urls=urls)[0])
             for seed in range(20)}
    assert len(picks) == 3, "every URL can be picked"
    first = endpoints.select_endpoints(1, 11, target="url", urls=urls)
    assert first == endpoints.select_endpoints(1, 11, target="url", urls=urls)
    assert first[1] == urls and first[2] == 11
    with pytest.raises(DriverError, match="count=4 but only 3 URL"):
        endpoints.select_endpoints(4, 1, target="url", urls=urls)
    with pytest.raises(DriverError, match="one change record names one environment"):
        endpoints.select_endpoints(2, 1, target="url", urls=urls[:2])


def test_the_admin_endpoint_is_refused_by_url_before_anything_is_sent():
    (server,) = endpoints.named_endpoints(None, target="url", urls=["http://127.0.0.1:9"])
    with pytest.raises(DriverError, match="answers loopback clients only.*use target sandbox or docker") as info:
        server.call("POST", "/admin/faults", {"nan_outputs": True})
    assert str(info.value).startswith("http://127.0.0.1:9: POST /admin/faults failed: ")
    # the public API is tried (nothing listens)
    with pytest.raises(DriverError, match="failed: http://127.0.0.1:9 is unreachable"):
        server.call("GET", "/v2/health/ready", timeout=1)


@dataclass(frozen=True)
class Canned:
    answer: Response | Exception

    def request(self, method, path, data, timeout):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def alive(self):
        return True


def _endpoint(answer: Response | Exception) -> Endpoint:
    return Endpoint("r0", "r0:8000", "container", "docker:x", {}, Canned(answer))


@pytest.mark.parametrize(("answer", "message"), [
    (Response(403, '{"error": "the admin endpoint\n answers loopback clients only"}'),
     r"^r0: GET /p answered HTTP 403: \{\"error\": \"the admin endpoint answers loopback clients only\"\}$"),
    (Response(200, "<html>"), r"^r0: GET /p answered no JSON object: '<html>'$"),
    (Response(200, "[1, 2]"), "answered no JSON object"),
    (DriverError("docker exec in abc: the Docker engine refused (paused)"),
     r"^r0: GET /p failed: docker exec in abc: the Docker engine refused \(paused\)$"),
    (TargetNotFound("r0 no longer exists"), "no longer exists"),
])
def test_every_failed_call_is_one_driver_error_line_naming_the_replica(answer, message):
    with pytest.raises(DriverError, match=message) as info:
        _endpoint(answer).call("GET", "/p")
    assert "\n" not in str(info.value)
    assert type(info.value) is type(answer) if isinstance(answer, Exception) else DriverError


def test_a_call_returns_the_json_object_and_request_returns_any_status():
    assert _endpoint(Response(200, '{"a": NaN}')).call("GET", "/p")["a"] != 0
    assert _endpoint(Response(400, "bad")).request("POST", "/p", {"x": float("nan")}) == Response(400, "bad")


def test_a_gone_replica_is_not_alive_and_cannot_be_called():
    gone = Endpoint("c", "", "container", "docker:x", {}, endpoints.GoneTransport("c"))
    assert not gone.alive()
    with pytest.raises(TargetNotFound, match="c: GET /p failed: c no longer exists"):
        gone.call("GET", "/p")


class LocalExec:
    """The exec calls of the Docker API, run here: the snippet goes through a real interpreter."""

    def __init__(self) -> None:
        self.argv: list[str] = []
        self.code = 0

    def exec_create(self, container, argv, stdout, stderr):
        assert argv[:2] == ["python3", "-c"]
        self.argv = [sys.executable, *argv[1:]]
        return {"Id": "e1"}

    def exec_start(self, exec_id, demux):
        proc = subprocess.run(self.argv, capture_output=True, timeout=30, check=False)
        self.code = proc.returncode
        return proc.stdout or None, proc.stderr or None

    def exec_inspect(self, exec_id):
        return {"ExitCode": self.code}


@pytest.fixture
def echo_server():
    class Echo(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = 404 if self.path == "/missing" else 200
            data = json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                               "type": self.headers.get("Content-Type")}).encode()
            reply(self, status, data, content_type=None)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args):
            pass

    with LoopbackServer(Echo) as server:
        yield server.port


def test_the_exec_snippet_carries_method_path_and_body_and_returns_the_status(echo_server):
    api = LocalExec()
    replica = Endpoint("c", "c:8000", "container", "docker:x", {},
                       endpoints.ContainerTransport(api, "abc", port=echo_server))
    answer = replica.call("POST", "/admin/faults", {"nan_outputs": True, "x": "'; rm -rf / #"})
    assert answer == {"method": "POST", "path": "/admin/faults", "type": "application/json",
                      "body": '{"nan_outputs": true, "x": "\'; rm -rf / #"}'}
    assert replica.call("DELETE", "/admin/faults")["body"] == ""
    assert replica.request("GET", "/missing").status == 404
    with pytest.raises(DriverError, match="c: GET /missing answered HTTP 404"):
        replica.call("GET", "/missing")


def test_an_exec_that_gets_no_answer_is_one_line_naming_the_replica():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    replica = Endpoint("c", "c:8000", "container", "docker:x", {},
                       endpoints.ContainerTransport(LocalExec(), "abc", port=port))
    with pytest.raises(DriverError, match=r"^c: GET /v2/health/ready failed: URLError: .*refused") as info:
        replica.call("GET", "/v2/health/ready", timeout=2)
    assert "\n" not in str(info.value)
