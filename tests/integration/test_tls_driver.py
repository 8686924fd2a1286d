"""drivers.tls against a real model server serving TLS: real handshakes, SIGHUP reloads, rollback."""

from __future__ import annotations

import os
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from cryptography import x509

from drivers.tls import actions, probes
from mlchaos.errors import DriverError
from mlchaos.lib import certificates as certs
from mlchaos.safety import changes
from mlchaos.sandbox import dataset
from tests.support.polling import wait_until
from tests.support.tls_server import HOST, TLSServer, start_tls_server, stop_tls_server

T = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    srv = start_tls_server(tmp_path_factory.mktemp("tls"))
    try:
        yield srv
    finally:
        stop_tls_server(srv)


@pytest.fixture
def fresh(server: TLSServer) -> TLSServer:
    """The module's server, presenting a valid certificate when the test starts."""
    assert probes.handshake_result(HOST, server.tls_port, ca_file=str(server.files.ca_path))["ok"]
    return server


def _predicts(port: int, scheme: str = "http", ca: str | None = None) -> bool:
    x, _ = dataset.holdout_split()
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": x[:2]}]}
    resp = requests.post(f"{scheme}://{HOST}:{port}/v2/models/iris/infer", json=body, timeout=T,
                         verify=ca if ca else True)
    return resp.status_code == 200 and len(resp.json()["outputs"][0]["data"]) == 2


def test_valid_certificate_serves_the_same_endpoints(fresh: TLSServer) -> None:
    ca = str(fresh.files.ca_path)
    result = probes.handshake_result(HOST, fresh.tls_port, ca_file=ca)
    assert result["ok"] and result["reason"] is None
    assert probes.handshake_result("localhost", fresh.tls_port, ca_file=ca)["ok"]
    assert _predicts(fresh.tls_port, "https", ca) and _predicts(fresh.port)
    assert 364 < probes.days_until_expiry(HOST, fresh.tls_port) < 366
    assert not probes.verifying_client_refused(HOST, fresh.tls_port, ca_file=ca)


@pytest.mark.parametrize(
    ("kind", "signer", "reason", "codes"),
    [("expired", "trusted_ca", "certificate has expired", {10}),
     ("wrong_hostname", "trusted_ca", "hostname mismatch", {62, 64}),
     ("expired", None, "unknown issuer", {20}),
     ("wrong_hostname", None, "unknown issuer", {20}),
     ("untrusted", None, "unknown issuer", {20})],
)
def test_each_bad_kind_is_refused_with_its_reason(fresh: TLSServer, kind: str, signer: str | None, reason: str,
                                                  codes: set[int]) -> None:
    """By default a bad certificate comes from a throw-away CA (clients say "unknown issuer" first); with
    ``signer: trusted_ca`` the serving CA signs it and clients refuse it for its dates or its name alone."""
    record = fresh.install(kind, **({"signer": signer} if signer else {}))
    try:
        result = probes.handshake_result(HOST, fresh.tls_port, ca_file=str(fresh.files.ca_path))
        assert (result["ok"], result["reason"]) == (False, reason), result
        assert result["verify_code"] in codes and result["detail"]
        assert probes.verifying_client_refused(HOST, fresh.tls_port, ca_file=str(fresh.files.ca_path))
        assert probes.presented_certificate(HOST, fresh.tls_port)["sha256"] == \
            record["parameters"]["certificate"]["sha256"]
        served = certs.read_certificate(fresh.files.cert_path)
        serving_ca = certs.CertificateAuthority.load(fresh.ca_dir)
        assert certs.fingerprint(served) == record["parameters"]["certificate"]["sha256"]
        if signer is None:  # a throw-away CA made for this fault, never the serving CA
            assert not serving_ca.signed(served) and served.issuer != serving_ca.certificate.subject
            assert record["parameters"]["signed_by"] == "a throw-away CA"
            assert record["parameters"]["signer"] == "throwaway"
        else:  # the drill opted in: a valid chain, refused for its dates or its name alone
            assert serving_ca.signed(served) and record["parameters"]["signed_by"] == "the trusted CA"
        if kind == "expired":  # monitoring that reads without verifying sees the expiry whoever signed it
            assert probes.days_until_expiry(HOST, fresh.tls_port) < 0
    finally:
        fresh.restore(record)


def test_a_throwaway_signed_fault_never_reads_the_serving_ca(fresh: TLSServer, tmp_path: Path) -> None:
    """The default signer needs no CA at all: no ca_dir, and a CA directory without its key, both work."""
    record = actions.install_certificate(str(fresh.files.cert_path), str(fresh.files.key_path), kind="expired",
                                         reload_pid=fresh.proc.pid, tls_address=fresh.address)
    try:
        assert record["parameters"]["signer"] == "throwaway" and record["parameters"]["ca_dir"] is None
    finally:
        fresh.restore(record)
    with pytest.raises(DriverError, match="not allowed"):
        fresh.install("untrusted", signer="trusted_ca")


def test_every_untrusted_fault_has_its_own_throw_away_ca(fresh: TLSServer) -> None:
    serving_ca = certs.CertificateAuthority.load(fresh.ca_dir)
    issuers = []
    for _ in range(2):
        record = fresh.install("untrusted")
        try:
            served = certs.read_certificate(fresh.files.cert_path)
            assert not serving_ca.signed(served)
            assert probes.handshake_result(HOST, fresh.tls_port, ca_file=str(fresh.files.ca_path))["reason"] == \
                "unknown issuer"
            issuers.append(served.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier)
        finally:
            fresh.restore(record)
    assert issuers[0] != issuers[1]


def test_an_expired_certificate_was_valid_for_one_hour_long_ago(fresh: TLSServer) -> None:
    record = fresh.install("expired", days=30, signer="trusted_ca")
    try:
        served = certs.read_certificate(fresh.files.cert_path)
        assert served.not_valid_after_utc - served.not_valid_before_utc == certs.EXPIRED_WINDOW
        assert -30.01 < probes.days_until_expiry(HOST, fresh.tls_port) < -29.99
        assert probes.handshake_result(HOST, fresh.tls_port, ca_file=str(fresh.files.ca_path))["reason"] == \
            "certificate has expired"
    finally:
        fresh.restore(record)


def test_expiring_soon_is_still_accepted(fresh: TLSServer) -> None:
    record = fresh.install("expiring_soon", days=2)
    try:
        assert probes.handshake_result(HOST, fresh.tls_port, ca_file=str(fresh.files.ca_path))["ok"]
        assert 1.9 < probes.days_until_expiry(HOST, fresh.tls_port) <= 2.0
    finally:
        fresh.restore(record)


def test_no_trusted_ca_means_unknown_issuer(fresh: TLSServer) -> None:
    # the system trust store does not know the sandbox CA: verifying clients fail closed
    assert probes.handshake_result(HOST, fresh.tls_port)["reason"] == "unknown issuer"


def test_expired_certificate_swap_and_rollback(fresh: TLSServer) -> None:
    ca = str(fresh.files.ca_path)
    original = fresh.files.cert_path.read_bytes()
    seen: list[dict[str, Any]] = []

    def sink(record: changes.ChangeRecord) -> None:
        backup = Path(record.undo["arguments"]["backup_dir"])
        seen.append({"record": record, "files_unchanged": fresh.files.cert_path.read_bytes() == original,
                     "backup_ready": (backup / "cert.pem").read_bytes() == original})

    token = changes.set_sink(sink)
    try:
        record = fresh.install("expired", signer="trusted_ca")
    finally:
        changes.reset_sink(token)
    assert len(seen) == 1 and seen[0]["files_unchanged"] and seen[0]["backup_ready"]
    assert changes.is_change_record(record) and record["action"] == "install-certificate"
    assert [t["kind"] for t in record["targets"]] == ["file", "file", "process"]
    assert record["targets"][2]["details"]["instance"] == fresh.address
    assert record["undo"]["func"] == "drivers.tls.actions.restore_certificate"
    assert stat_mode(fresh.files.key_path) == 0o600

    # clients fail closed: the CA is trusted and the host matches, the certificate is simply expired
    result = probes.handshake_result(HOST, fresh.tls_port, ca_file=ca)
    assert (result["ok"], result["reason"], result["verify_code"]) == (False, "certificate has expired", 10)
    assert probes.verifying_client_refused(HOST, fresh.tls_port, ca_file=ca)
    with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
        requests.get(f"https://{HOST}:{fresh.tls_port}/v2/health/ready", verify=ca, timeout=T)
    strict = ssl.create_default_context(cafile=ca)
    with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection((HOST, fresh.tls_port), T) as sock:
        strict.wrap_socket(sock, server_hostname=HOST)
    assert -3.01 < probes.days_until_expiry(HOST, fresh.tls_port) < -2.99
    assert _predicts(fresh.port)  # the plain port is untouched
    assert "TLS certificate reloaded" in fresh.log.read_text()

    undone = fresh.restore(record)
    assert undone["restored"] and undone["reloaded"]
    assert fresh.files.cert_path.read_bytes() == original
    assert probes.handshake_result(HOST, fresh.tls_port, ca_file=ca)["ok"]
    assert _predicts(fresh.tls_port, "https", ca)
    for _ in range(2):  # idempotent: `mlchaos recover` may replay it after the rollback, more than once
        again = fresh.restore(record)
        assert not again["restored"] and "already restored" in again["note"]
        assert again["already"] == [str(fresh.files.cert_path)] and not again["reloaded"]
        assert fresh.files.cert_path.read_bytes() == original
    # the undo without a backup_dir (a rollback by files) finds nothing pending either
    assert actions.restore_certificate(str(fresh.files.cert_path), str(fresh.files.key_path),
                                       reload_pid=fresh.proc.pid, tls_address=fresh.address)["already"]
    assert probes.handshake_result(HOST, fresh.tls_port, ca_file=ca)["ok"]


def test_restore_without_backup_dir_goes_back_to_before_the_first_fault(fresh: TLSServer) -> None:
    original = fresh.files.cert_path.read_bytes()
    first = fresh.install("expired")
    second = fresh.install("untrusted")
    healed = actions.restore_certificate(str(fresh.files.cert_path), str(fresh.files.key_path),
                                         reload_pid=fresh.proc.pid, tls_address=fresh.address)
    assert healed["backup_dir"] == first["undo"]["arguments"]["backup_dir"]
    assert fresh.files.cert_path.read_bytes() == original
    # the records' own undos, run afterwards (newest first), bring no fault back
    assert not fresh.restore(second)["restored"]
    assert not fresh.restore(first)["restored"]
    assert fresh.files.cert_path.read_bytes() == original
    assert probes.handshake_result(HOST, fresh.tls_port, ca_file=str(fresh.files.ca_path))["ok"]


def test_a_failed_reload_keeps_the_old_certificate(fresh: TLSServer) -> None:
    before = probes.presented_certificate(HOST, fresh.tls_port)["sha256"]
    original = fresh.files.cert_path.read_bytes()
    try:
        fresh.files.cert_path.write_text("not a certificate\n")
        fresh.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS reload failed" in fresh.log.read_text(), 5, "the failed reload in the log")
        assert probes.presented_certificate(HOST, fresh.tls_port)["sha256"] == before
        assert fresh.proc.poll() is None
    finally:
        fresh.files.cert_path.write_bytes(original)
        fresh.proc.send_signal(signal.SIGHUP)


def test_dry_run_changes_nothing(fresh: TLSServer) -> None:
    original = fresh.files.cert_path.read_bytes(), fresh.files.key_path.read_bytes()
    presented = probes.presented_certificate(HOST, fresh.tls_port)["sha256"]
    backups = fresh.files.cert_path.parent / actions.BACKUP_DIR
    backups_before = sorted(backups.iterdir()) if backups.is_dir() else []
    announced: list[changes.ChangeRecord] = []
    token = changes.set_sink(announced.append)
    try:
        record = fresh.install("expired", dry_run=True)
    finally:
        changes.reset_sink(token)
    assert record["dry_run"] is True and [r.dry_run for r in announced] == [True]
    assert (fresh.files.cert_path.read_bytes(), fresh.files.key_path.read_bytes()) == original
    assert (sorted(backups.iterdir()) if backups.is_dir() else []) == backups_before  # no backup either
    assert probes.presented_certificate(HOST, fresh.tls_port)["sha256"] == presented  # no reload
    assert record["targets"][2]["details"]["pid"] == fresh.proc.pid  # resolved against the live server
    assert record["environment"] == changes.local_environment() and record["population"] == []  # files: no choice
    real = fresh.install("expired")
    try:
        assert set(real) == set(record) and [t["name"] for t in real["targets"]] == [
            t["name"] for t in record["targets"]]
        assert set(real["undo"]["arguments"]) == set(record["undo"]["arguments"])
    finally:
        fresh.restore(real)


def test_refusals_change_nothing(fresh: TLSServer, tmp_path: Path) -> None:
    original = fresh.files.cert_path.read_bytes()
    cert, key = str(fresh.files.cert_path), str(fresh.files.key_path)
    with pytest.raises(DriverError, match="not a live sandbox model server"):
        actions.install_certificate(cert, key, reload_pid=os.getpid(), ca_dir=str(fresh.ca_dir))
    other = certs.issue_sandbox_certificates(tmp_path / "other", ca_dir=fresh.ca_dir)
    with pytest.raises(DriverError, match="does not serve"):
        actions.install_certificate(str(other.cert_path), str(other.key_path), reload_pid=fresh.proc.pid,
                                    ca_dir=str(fresh.ca_dir))
    with pytest.raises(DriverError, match="pass ca_dir"):
        actions.install_certificate(cert, key, kind="expired", signer="trusted_ca")
    with pytest.raises(DriverError, match="no usable CA"):
        actions.install_certificate(cert, key, ca_dir=str(tmp_path / "no-ca"), signer="trusted_ca")
    with pytest.raises(DriverError, match="kind must be one of"):
        actions.install_certificate(cert, key, kind="stale", ca_dir=str(fresh.ca_dir))
    with pytest.raises(DriverError, match="reload_signal must be one of"):
        actions.install_certificate(cert, key, reload_signal="SIGKILL", ca_dir=str(fresh.ca_dir))
    assert fresh.files.cert_path.read_bytes() == original
    assert fresh.proc.poll() is None


def test_sandbox_targets_say_tls_is_not_wired(state_dir: Path) -> None:
    with pytest.raises(DriverError, match="no replicas of service 'model'"):
        actions.install_certificate(service="model", replica="model-0")
    with pytest.raises(DriverError, match="either"):
        probes.handshake_result(HOST, 1, service="model", replica="model-0")


def test_sandbox_replica_path_once_the_state_records_tls(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """service/replica resolve the sandbox layout (<state>/tls/...) and a recorded tls_port."""
    from mlchaos.sandbox.manager import Sandbox

    srv = start_tls_server(state_dir / "tls", replica="model-0")  # files in <state>/tls/model-0, CA in <state>/tls/ca
    try:
        recorded = SimpleNamespace(service="model", name="model-0", pid=srv.proc.pid, host=HOST,
                                   port=srv.port, tls_port=srv.tls_port)
        monkeypatch.setattr(Sandbox, "replicas", lambda self, service: [recorded])  # what the lead's state will hold
        where = {"service": "model", "replica": "model-0"}
        assert probes.handshake_result(**where)["ok"]  # the sandbox CA is the default trust
        record = actions.install_certificate(**where, kind="expired", signer="trusted_ca")
        assert record["targets"][2]["name"] == "model-0"
        assert record["population"] == ["model-0"]  # every replica of the service (one here)
        assert record["targets"][2]["details"]["service"] == "model"
        assert record["targets"][2]["details"]["instance"] == srv.address
        assert probes.handshake_result(**where)["reason"] == "certificate has expired"
        assert probes.days_until_expiry(**where) < 0
        assert actions.restore_certificate(**where)["restored"]
        assert probes.handshake_result(**where)["ok"]
        assert not actions.restore_certificate(**where)["restored"]
        with pytest.raises(DriverError, match="no replica 'model-9'"):
            probes.handshake_result(service="model", replica="model-9")
    finally:
        stop_tls_server(srv)


def test_unreachable_endpoint_is_an_error_not_a_verdict() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(DriverError, match="cannot connect"):
            probes.verifying_client_refused(HOST, port)


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
