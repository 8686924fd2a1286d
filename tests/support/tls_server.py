"""A real sandbox model server serving TLS (``--tls-cert``/``--tls-key``), for the TLS driver's tests."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.tls import actions
from mlchaos.lib import certificates as certs

HOST = "127.0.0.1"


@dataclass
class TLSServer:
    proc: subprocess.Popen[bytes]
    port: int
    tls_port: int
    files: certs.CertificateFiles
    ca_dir: Path
    log: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.tls_port}"

    def install(self, kind: str, **extra: Any) -> dict[str, Any]:
        return actions.install_certificate(
            str(self.files.cert_path), str(self.files.key_path), kind=kind, reload_pid=self.proc.pid,
            ca_dir=str(self.ca_dir), tls_address=self.address, **extra)

    def restore(self, record: dict[str, Any]) -> dict[str, Any]:
        return actions.restore_certificate(**record["undo"]["arguments"])


def start_tls_server(tmp: Path, replica: str = "tls-test") -> TLSServer:
    files = certs.issue_sandbox_certificates(tmp / replica, ca_dir=tmp / "ca")
    log = tmp / f"{replica}.log"
    argv = [sys.executable, "-m", "mlchaos.sandbox.model_server", "--host", HOST, "--port", "0",
            "--replica", replica, "--tls-port", "0", "--tls-cert", str(files.cert_path),
            "--tls-key", str(files.key_path)]
    with open(log, "wb") as err:
        # unbuffered: select() must see every line still unread (a buffered reader would hide the second)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, bufsize=0)
    lines: dict[str, int] = {}
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while "READY" not in lines:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"model server not ready: {lines}; log: {log.read_text()}")
        if select.select([proc.stdout], [], [], 0.1)[0]:
            word, _, port = proc.stdout.readline().decode().strip().partition(" ")
            lines[word] = int(port)
    assert list(lines) == ["TLS", "READY"]  # the TLS line comes first
    return TLSServer(proc, lines["READY"], lines["TLS"], files, tmp / "ca", log)


def stop_tls_server(srv: TLSServer) -> None:
    srv.proc.send_signal(signal.SIGTERM)
    try:
        assert srv.proc.wait(10) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
