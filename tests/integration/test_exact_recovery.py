"""A fault whose target came from env-backed configuration is recovered after SIGKILL, from the exact records.

The journal is redacted: a certificate path under an env-backed ``cert_dir`` is ``***/server.crt`` there,
which no undo can use (the guardian used to fail with "no certificate backup in ***/..." and leave the expired
certificate in place). Real `mlchaos run` processes, SIGKILLed mid-fault, against a real TLS model server
and the real sandbox's replicas: the guardian, or `mlchaos recover` when the guardian died too, undoes the
fault from the run's private exact records (0600); the journal never holds the secret value.
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.tls import probes
from mlchaos.engine import exit_codes
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.polling import wait_until
from tests.support.runs import journal_so_far, start_run
from tests.support.tls_server import HOST, TLSServer, start_tls_server, stop_tls_server

CERT_DIR_VARIABLE = "MLCHAOS_TEST_CERT_DIR"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """A TLS model server whose certificate directory has a name of its own: the secret of these tests."""
    srv = start_tls_server(tmp_path_factory.mktemp("tls"), replica=f"private-certs-{secrets.token_hex(4)}")
    try:
        yield srv
    finally:
        stop_tls_server(srv)


@pytest.fixture
def env(server: TLSServer, subprocess_env: dict[str, str], isolated_state: Path) -> dict[str, str]:
    """The environment of the run: the certificate directory in it. The server presents a valid certificate."""
    assert _handshake(server)["ok"], "a previous test left the certificate expired"
    return {**subprocess_env, CERT_DIR_VARIABLE: str(server.files.cert_path.parent)}


def _handshake(srv: TLSServer) -> dict:
    return probes.handshake_result(HOST, srv.tls_port, ca_file=str(srv.files.ca_path))


def _recorded(journal: Path) -> bool:
    """The run has announced its fault (the journal is written atomically: whole or not yet there)."""
    return journal.exists() and bool(journal_so_far(journal)["mlchaos"]["changes"])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(tmp_path: Path, env: dict[str, str], method: list[dict], hold: dict) -> tuple[subprocess.Popen, Path]:
    """Start `mlchaos run` with the method, then ``hold`` (a probe that pauses 120 s): killed meanwhile."""
    data = {"title": "a fault on targets from the environment", "description": "d",
            "configuration": {"cert_dir": {"type": "env", "key": CERT_DIR_VARIABLE},
                              "service": {"type": "env", "key": "MLCHAOS_TEST_SERVICE", "default": "none"}},
            "method": [*method, {**hold, "pauses": {"after": 120}}]}
    return start_run(tmp_path, env, data)


def _expire(srv: TLSServer) -> dict:
    arguments = {"cert_path": "${cert_dir}/server.crt", "key_path": "${cert_dir}/server.key", "kind": "expired",
                 "signer": "trusted_ca",
                 "reload_pid": srv.proc.pid, "ca_dir": str(srv.ca_dir), "tls_address": srv.address}
    return {"type": "action", "name": "expire-the-certificate",
            "provider": {"type": "python", "module": "drivers.tls.actions", "func": "install_certificate",
                         "arguments": arguments}}


def _tls_hold(srv: TLSServer) -> dict:
    return {"type": "probe", "name": "hold-the-fault", "provider": {
        "type": "python", "module": "drivers.tls.probes", "func": "days_until_expiry",
        "arguments": {"host": HOST, "port": srv.tls_port}}}


def _exact_file(journal: Path) -> Path:
    wait_until(lambda: journal_so_far(journal)["mlchaos"].get("guardian_pid"), what="the guardian's pid in the journal")
    return Path(journal_so_far(journal)["mlchaos"]["exact_records"]["path"])


def _assert_private_and_exact(exact: Path, secret: str) -> None:
    assert _mode(exact) == 0o600 and _mode(exact.parent) == 0o700
    assert f"{secret}/server.crt" in exact.read_text()  # exact: the path as the undo needs it


def _assert_redacted(journal: Path, secret: str) -> None:
    text = journal.read_text()
    assert secret not in text
    (change,) = journal_so_far(journal)["mlchaos"]["changes"]
    assert change["undo"]["arguments"]["cert_path"] == "***/server.crt"  # what recovery used to replay


def _kill(proc: subprocess.Popen) -> str:
    proc.kill()
    out, err = proc.communicate(timeout=10)
    return out + err


def test_the_guardian_restores_the_certificate_from_the_exact_records(server, env, tmp_path):
    secret = env[CERT_DIR_VARIABLE]
    original = server.files.cert_path.read_bytes()
    proc, journal = _run(tmp_path, env, [_expire(server)], _tls_hold(server))
    try:
        wait_until(lambda: _recorded(journal) and _handshake(server)["reason"] == "certificate has expired",
                   timeout=30, what="the expired certificate to be served")
        exact = _exact_file(journal)
        _assert_private_and_exact(exact, secret)
    finally:
        output = _kill(proc)
    wait_until(lambda: _handshake(server)["ok"], timeout=15, what="the guardian to restore the certificate")
    assert server.files.cert_path.read_bytes() == original
    wait_until(lambda: journal_so_far(journal)["mlchaos"].get("recoveries"), what="the recovery in the journal")
    (recovery,) = journal_so_far(journal)["mlchaos"]["recoveries"]
    assert recovery["by"] == "guardian (runner gone)" and recovery["ok"], recovery
    assert [r["status"] for r in recovery["results"]] == ["undone"]
    assert recovery["results"][0]["output"]["restored"] is True
    _assert_redacted(journal, secret)
    assert secret not in output
    run_id = journal_so_far(journal)["mlchaos"]["run_id"]
    guardian_log = exact.parent.parent / "runs" / f"{run_id}.guardian.log"
    # the guardian logs what it undid after recover() wrote the journal, and unregisters the run last
    wait_until(lambda: not guardian_log.with_name(f"{run_id}.json").exists(), what="the guardian to finish")
    assert "undone  install-certificate" in guardian_log.read_text() and secret not in guardian_log.read_text()
    assert not exact.exists()  # all undone: the exact records (and the secret in them) are gone


def test_mlchaos_recover_restores_the_certificate_when_the_guardian_died_too(server, env, tmp_path):
    secret = env[CERT_DIR_VARIABLE]
    original = server.files.cert_path.read_bytes()
    proc, journal = _run(tmp_path, env, [_expire(server)], _tls_hold(server))
    try:
        wait_until(lambda: _recorded(journal) and _handshake(server)["reason"] == "certificate has expired",
                   timeout=30, what="the expired certificate to be served")
        exact = _exact_file(journal)
        os.kill(journal_so_far(journal)["mlchaos"]["guardian_pid"], signal.SIGKILL)  # the host went down: both
    finally:
        output = _kill(proc)
    assert _handshake(server)["reason"] == "certificate has expired"  # nobody undid it
    _assert_private_and_exact(exact, secret)
    _assert_redacted(journal, secret)

    recovered = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=env,
                               capture_output=True, text=True, timeout=60)
    assert recovered.returncode == exit_codes.OK, recovered.stdout + recovered.stderr
    assert "undone  install-certificate" in recovered.stdout
    assert server.files.cert_path.read_bytes() == original and _handshake(server)["ok"]
    assert secret not in recovered.stdout + recovered.stderr + output
    _assert_redacted(journal, secret)
    assert not exact.exists()
    assert journal_so_far(journal)["mlchaos"]["recoveries"][0]["ok"]


# -- the process driver: a pause of the sandbox's replicas, whose service name came from the environment --


def _strings(value: object) -> list[str]:
    """Every string value (not key) in a journal."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def _paused(box: Sandbox) -> list[str]:
    return [r.name for r in box.recorded() if procs.is_alive(r.pid) and procs.is_stopped(r.pid)]


def test_mlchaos_recover_resumes_a_paused_replica_of_a_service_named_by_the_environment(sandbox, tmp_path):
    env = child_env(sandbox.state_dir, MLCHAOS_TEST_SERVICE="model", MLCHAOS_ALLOWED_ENVIRONMENTS=None)
    env[CERT_DIR_VARIABLE] = str(tmp_path)  # unused here
    pause = {"type": "action", "name": "pause-one", "provider": {
        "type": "python", "module": "drivers.process.actions", "func": "stop_replicas",
        "arguments": {"service": "${service}", "count": 1, "seed": 7, "ttl": None}}}
    hold = {"type": "probe", "name": "hold-the-fault", "provider": {
        "type": "python", "module": "drivers.process.probes", "func": "replicas_running",
        "arguments": {"service": "${service}"}}}
    proc, journal = _run(tmp_path, env, [pause], hold)
    try:
        wait_until(lambda: _recorded(journal) and _paused(sandbox), timeout=30, what="a paused replica")
        exact = _exact_file(journal)
        os.kill(journal_so_far(journal)["mlchaos"]["guardian_pid"], signal.SIGKILL)
    finally:
        _kill(proc)
    (paused,) = _paused(sandbox)
    assert _mode(exact) == 0o600
    (change,) = journal_so_far(journal)["mlchaos"]["changes"]
    assert change["undo"]["arguments"]["service"] == "***"  # redacted: the journal alone cannot resume it
    assert change["undo"]["func"] == "drivers.process.actions.continue_replicas"

    recovered = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=env,
                               capture_output=True, text=True, timeout=60)
    assert recovered.returncode == exit_codes.OK, recovered.stdout + recovered.stderr
    assert not _paused(sandbox), f"{paused} is still paused"
    assert not exact.exists()
    assert [text for text in _strings(journal_so_far(journal)) if "model" in text] == []  # a leaf never shows it
    sandbox.wait_ready(sandbox.recorded(), timeout=10)
