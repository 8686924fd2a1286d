"""The Prometheus and Alertmanager probes against the real binaries behind ``--web.config.file``.

Three set-ups, each a real Prometheus sending to a real Alertmanager with the same protection:
``basic`` (basic_auth_users, bcrypt hashes, plain HTTP), ``tls`` (tls_server_config: a private CA) and
``mtls`` (TLS with client_auth_type RequireAndVerifyClientCert). Without the endpoint's credentials a probe
fails naming the refusal (HTTP 401) or the TLS failure; through a declared endpoint it passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drivers._common.polling import poll
from drivers.alertmanager import probes as am_probes
from drivers.prometheus import probes
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from tests.support import auth_monitoring as am
from tests.support.components import require_component

USER, PASSWORD = "drill", "s3cret-basic-password-4711"
RULES = """groups:
- name: always
  rules:
  - alert: AlwaysFiring
    expr: vector(1)
    for: 0s
    labels: {severity: test}
"""
MODES = ("basic", "tls", "mtls")


def _client(mode: str, pki: am.PKI) -> dict[str, Any]:
    """Prometheus' own client settings towards Alertmanager (alerting.alertmanagers[])."""
    if mode == "basic":
        return {"scheme": "http", "basic_auth": {"username": USER, "password": PASSWORD}}
    tls: dict[str, Any] = {"ca_file": str(pki.ca)}
    if mode == "mtls":
        tls |= {"cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    return {"scheme": "https", "tls_config": tls}


def _requests_auth(mode: str, pki: am.PKI) -> dict[str, Any]:
    if mode == "basic":
        return {"auth": (USER, PASSWORD)}
    return {"verify": str(pki.ca), **({"cert": (str(pki.client_cert), str(pki.client_key))} if mode == "mtls" else {})}


def _declaration(mode: str, url: str, pki: am.PKI) -> dict[str, Any]:
    """The endpoint a user would declare for this set-up."""
    if mode == "basic":
        return {"url": url, "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_PROM_PASSWORD"}}
    found: dict[str, Any] = {"url": url, "ca_file": str(pki.ca), "timeout": 10}
    if mode == "mtls":
        found |= {"client_cert_file": str(pki.client_cert), "client_key_file": str(pki.client_key)}
    return found


@pytest.fixture(scope="module", params=MODES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_component("Prometheus and Alertmanager", am.binaries_present(),
                      "apt-get install prometheus prometheus-alertmanager (scripts/install-system-packages.sh)")
    mode = request.param
    tmp = tmp_path_factory.mktemp(f"auth-{mode}")
    pki = am.make_pki(tmp / "pki")
    users = {USER: PASSWORD} if mode == "basic" else None
    tls = pki if mode != "basic" else None
    web = am.web_config(tmp / "web.yml", users=users, pki=tls, client_certs=mode == "mtls")
    alertmanager = am.start_alertmanager(
        tmp / "alertmanager", {"route": {"receiver": "null", "group_wait": "1s", "group_interval": "1s"},
                               "receivers": [{"name": "null"}]}, web, ready_auth=_requests_auth(mode, pki))
    (tmp / "rules.yml").write_text(RULES)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yml")],
        "alerting": {"alertmanagers": [{**_client(mode, pki), "static_configs": [
            {"targets": [alertmanager.url.split("://")[1]]}]}]},
    }
    try:
        prometheus = am.start_prometheus(tmp / "prometheus", config, web, ready_auth=_requests_auth(mode, pki))
    except Exception:
        alertmanager.stop()
        raise
    yield {"mode": mode, "pki": pki, "prometheus": prometheus.url, "alertmanager": alertmanager.url, "tmp": tmp}
    prometheus.stop()
    alertmanager.stop()


@pytest.fixture
def declared(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[endpoints.EndpointTable]:
    monkeypatch.setenv("MLCHAOS_TEST_PROM_PASSWORD", PASSWORD)
    pki, mode = stack["pki"], stack["mode"]
    table = endpoints.EndpointTable({
        "prometheus": endpoints.Endpoint.from_dict("prometheus", _declaration(mode, stack["prometheus"], pki)),
        "am": endpoints.Endpoint.from_dict("am", _declaration(mode, stack["alertmanager"], pki)),
    })
    seen: list[str] = []
    table.on_secret = seen.append
    previous = endpoints.activate(table)
    yield table
    endpoints.activate(previous)
    table.close()
    if mode == "basic":
        assert set(seen) <= {PASSWORD}, "only the credential was handed to the redactor"


def test_without_credentials_the_probe_names_the_refusal(stack: dict[str, Any]) -> None:
    with pytest.raises(DriverError) as failure:
        probes.query_value("vector(1)", url=stack["prometheus"])
    message = str(failure.value)
    if stack["mode"] == "basic":
        assert f"Prometheus at {stack['prometheus']} refused /api/v1/query: HTTP 401 Unauthorized" in message
    else:
        assert f"Prometheus at {stack['prometheus']}: TLS failed (" in message
        assert "certificate verify failed" in message, message
    with pytest.raises(DriverError) as failure:
        am_probes.alert_is_active("AlwaysFiring", url=stack["alertmanager"])
    assert ("HTTP 401 Unauthorized" if stack["mode"] == "basic" else "TLS failed") in str(failure.value)


def test_through_the_declared_endpoint_every_probe_passes(stack: dict[str, Any], declared: endpoints.EndpointTable):
    assert probes.query_value("vector(1)", endpoint="prometheus") == 1.0
    if stack["mode"] == "basic":
        assert declared.on_secret.__self__ == [PASSWORD], "the password read went to the redactor"  # type: ignore
    assert probes.query_value("vector(2)") == 2.0  # neither url nor endpoint: the endpoint named prometheus
    # health "unknown" until its first evaluation (a second after start-up)
    assert poll(30, lambda: probes.rule_is_healthy("AlwaysFiring", endpoint="prometheus"), lambda ok: ok) is True
    fired = probes.alert_fires_within("AlwaysFiring", within=30, endpoint="prometheus")
    assert fired["state"] == "firing"
    # Prometheus delivered it to Alertmanager with its own client credentials; the probe reads it with the endpoint's
    assert poll(30, lambda: am_probes.alert_is_active("AlwaysFiring", endpoint="am"), lambda active: active) is True


@pytest.mark.parametrize("stack", ["mtls"], indirect=True)
def test_a_client_certificate_is_required_by_the_mtls_set_up(stack: dict[str, Any]) -> None:
    table = endpoints.EndpointTable({"prometheus": endpoints.Endpoint.from_dict(
        "prometheus", {"url": stack["prometheus"], "ca_file": str(stack["pki"].ca)})})
    previous = endpoints.activate(table)
    try:
        with pytest.raises(DriverError) as failure:
            probes.query_value("vector(1)", endpoint="prometheus")
    finally:
        endpoints.activate(previous)
    message = str(failure.value)
    assert f"Prometheus at {stack['prometheus']}: TLS failed (" in message, message
    assert "the server wants a client certificate it trusts (client_cert_file and client_key_file)" in message


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the point of the test
def test_a_wrong_password_is_refused_and_insecure_skip_verify_skips_the_ca(stack: dict[str, Any],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    mode = stack["mode"]
    if mode == "basic":
        monkeypatch.setenv("MLCHAOS_TEST_PROM_PASSWORD", "not-the-password")
        data = _declaration(mode, stack["prometheus"], stack["pki"])
    else:  # no CA given, verification off: TLS answers (a client certificate is still needed with mtls)
        data = {"url": stack["prometheus"], "insecure_skip_verify": True}
        if mode == "mtls":
            data |= {"client_cert_file": str(stack["pki"].client_cert),
                     "client_key_file": str(stack["pki"].client_key)}
    table = endpoints.EndpointTable({"prometheus": endpoints.Endpoint.from_dict("prometheus", data)})
    previous = endpoints.activate(table)
    try:
        if mode == "basic":
            with pytest.raises(DriverError, match="HTTP 401 Unauthorized"):
                probes.query_value("vector(1)", endpoint="prometheus")
        else:
            assert probes.query_value("vector(3)", endpoint="prometheus") == 3.0
    finally:
        endpoints.activate(previous)
        table.close()
