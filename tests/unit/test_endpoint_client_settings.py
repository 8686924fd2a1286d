"""What a child process is handed to call a declared endpoint (the traffic generator), over real loopback HTTP, and
which endpoint the model faults' undos name."""

from __future__ import annotations

import base64
import http.server
import io
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from drivers._common.endpoints import client_settings
from drivers.model.endpoints import parse_scope
from drivers.model.traffic_process import HttpPoster, read_access
from mlchaos.lib import endpoints
from mlchaos.lib.endpoints import Endpoint, EndpointTable

USER, PASSWORD = "svc", "client-settings-pw-3e1f"
GOOD = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class _Gate(http.server.BaseHTTPRequestHandler):
    """200 with the right basic auth and tenant header; 401 without; /echo answers 403 repeating what it got."""

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        given = self.headers.get("Authorization")
        if self.path.startswith("/echo"):
            status, body = 403, f"refused {given}"
        elif given == GOOD and self.headers.get("X-Scope-OrgID") == "team-a":
            status, body = 200, "{}"
        else:
            status, body = 401, "no"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gate() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def table(gate: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EndpointTable]:
    monkeypatch.setenv("MLCHAOS_TEST_GATE_PW", PASSWORD)
    found = EndpointTable({"serving": Endpoint.from_dict("serving", {
        "url": f"{gate}/tenant", "headers": {"X-Scope-OrgID": "team-a"}, "timeout": 3,
        "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_GATE_PW"}})})
    previous = endpoints.activate(found)
    yield found
    endpoints.activate(previous)
    found.close()


def test_the_settings_carry_the_credentials_and_name_what_to_mask(gate, table):
    settings = client_settings(f"{gate}/tenant")
    assert settings is not None
    assert settings["headers"] == {"Authorization": GOOD, "X-Scope-OrgID": "team-a"}
    assert settings["base_url"] == f"{gate}/tenant" and settings["timeout"] == 3 and settings["verify"] is True
    assert set(settings["mask"]) == {GOOD, GOOD.split(" ", 1)[1], PASSWORD}
    assert client_settings(f"{gate}/elsewhere") is None  # no declared endpoint covers it: nothing to hand over


def test_the_poster_sends_them_under_the_endpoint_only_and_masks_an_echo(gate, table):
    settings = client_settings(f"{gate}/tenant")
    assert settings is not None
    poster = HttpPoster({f"{gate}/tenant": settings})
    assert poster(f"{gate}/tenant/v2/models/iris/infer", {}, 5) == ("200", None)
    assert poster(f"{gate}/other/v2/models/iris/infer", {}, 5) == ("401", "401: no")  # not under it: no credentials
    table.endpoints = {}  # the child has no table: what it sends comes from the settings alone
    status, error = HttpPoster({f"{gate}/echo": settings})(f"{gate}/echo/v2/x", {}, 5)
    assert status == "403" and error == "403: refused ***" and PASSWORD not in str(error)


def test_the_settings_on_stdin_must_be_a_mapping_of_settings():
    assert read_access(io.StringIO('{"http://a": {"headers": {}}}')) == {"http://a": {"headers": {}}}
    assert read_access(io.StringIO("")) == {}
    with pytest.raises(ValueError, match="not a mapping of base URLs to settings"):
        read_access(io.StringIO('["http://a"]'))


def test_a_model_faults_scope_names_the_endpoint_its_undo_reaches_again(gate, table):
    """Named, or the declared ``serving`` standing for it: the undo is given the endpoint's name (its credentials
    come from the journal's declarations); servers given by URL are named by URL."""
    for scope in (parse_scope("url", endpoint="serving"), parse_scope("url")):
        assert scope.arguments() == {"target": "url", "endpoint": "serving"}
        assert scope.urls == (f"{gate}/tenant",)
    assert parse_scope("url", urls=[f"{gate}/x"]).arguments() == {"target": "url", "urls": [f"{gate}/x"]}
