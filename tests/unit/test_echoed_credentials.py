"""A refusal that echoes the credential (vmauth 1.79's answer to an unknown bearer token, HTTP 400) is shown with
the credential masked, over real loopback HTTP; the body is the one vmauth 1.79 sent in
tests/integration/test_victoriametrics_drill.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.prometheus import probes
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from mlchaos.lib.endpoints import Endpoint, EndpointTable
from tests.support.fixtures_api import ReplayServer

TOKEN = "stale-token-9d1e5a"
PASSWORD = "pw-4b7c0e2d"


@pytest.fixture
def gateway() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.stop()


def _rules_with(spec: dict[str, object], tmp_path) -> str:
    table = EndpointTable({"prometheus": Endpoint.from_dict("prometheus", spec)}, base_dir=tmp_path)
    previous = endpoints.activate(table)
    try:
        with pytest.raises(DriverError) as error:
            probes.rule_is_healthy("ModelServerDown")
        return str(error.value)
    finally:
        endpoints.activate(previous)
        table.close()


def test_an_echoed_bearer_token_is_masked(gateway, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    gateway.serve_raw("/api/v1/rules", (400, f'cannot find the provided auth token "Bearer {TOKEN}" in config\n'
                                        .encode()))
    message = _rules_with({"url": gateway.url, "bearer_token_file": "token"}, tmp_path)
    assert TOKEN not in message
    assert message == (f"Prometheus at {gateway.url} refused /api/v1/rules: HTTP 400: 'cannot find the provided "
                       "auth token \"Bearer ***\" in config\\n' (the credential it echoed is masked)")


def test_an_echoed_basic_auth_password_is_masked(gateway, tmp_path):
    (tmp_path / "password").write_text(PASSWORD + "\n")
    gateway.serve_raw("/api/v1/rules", (400, f"no user with password {PASSWORD}".encode()))
    message = _rules_with({"url": gateway.url, "basic_auth": {"username": "u", "password_file": "password"}},
                          tmp_path)
    assert PASSWORD not in message and "no user with password ***" in message


def test_a_refusal_without_the_credential_is_shown_as_the_server_wrote_it(gateway, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    gateway.serve_raw("/api/v1/rules", (400, b"missing route for \"/api/v1/rules\""))
    message = _rules_with({"url": gateway.url, "bearer_token_file": "token"}, tmp_path)
    assert message == ("Prometheus /api/v1/rules answered HTTP 400 with no API body: "
                       "'missing route for \"/api/v1/rules\"'")
