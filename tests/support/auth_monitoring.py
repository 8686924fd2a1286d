"""Real Prometheus and Alertmanager behind ``--web.config.file``: basic auth (bcrypt), TLS, client certificates.

:func:`make_pki` writes a private CA, a server certificate for 127.0.0.1 and a client certificate (clientAuth)
with :mod:`mlchaos.lib.certificates`; :func:`web_config` writes the exporter-toolkit web configuration both
binaries read; :func:`start_prometheus` / :func:`start_alertmanager` run the Debian binaries on a free
loopback port and wait until ``/-/ready`` answers (with the credentials it needs).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import requests
import yaml

from mlchaos.lib import certificates as certs
from mlchaos.lib.files import free_ports

HOST = "127.0.0.1"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


@dataclass(frozen=True)
class PKI:
    """A CA, the server's certificate (127.0.0.1, localhost) and a client certificate signed by the same CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(folder: Path) -> PKI:
    folder.mkdir(parents=True, exist_ok=True)
    ca = certs.CertificateAuthority.create("mlchaos test monitoring CA")
    ca_path = ca.write(folder / "ca")
    now = datetime.now(UTC)
    paths = {}
    for name, client in (("server", False), ("client", True)):
        cert, key = ca.issue(list(certs.DEFAULT_HOSTS), now - timedelta(minutes=5), now + timedelta(days=1),
                             common_name=f"mlchaos test {name}", client=client)
        (folder / f"{name}.crt").write_bytes(certs.cert_pem(cert))
        (folder / f"{name}.key").write_bytes(certs.key_pem(key))
        (folder / f"{name}.key").chmod(0o600)
        paths[name] = (folder / f"{name}.crt", folder / f"{name}.key")
    return PKI(ca_path, *paths["server"], *paths["client"])


def web_config(path: Path, *, users: dict[str, str] | None = None, pki: PKI | None = None,
               client_certs: bool = False) -> Path:
    """The web config file: ``users`` (name -> password, stored as bcrypt hashes), TLS with ``pki``'s server
    certificate, and with ``client_certs`` a verified client certificate required."""
    data: dict[str, Any] = {}
    if users:
        data["basic_auth_users"] = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
                                    for u, p in users.items()}
    if pki is not None:
        tls: dict[str, Any] = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
        if client_certs:
            tls |= {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca)}
        data["tls_server_config"] = tls
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Server:
    """One running binary: its process, URL and log."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def binaries_present() -> bool:
    return bool(shutil.which(PROMETHEUS) and shutil.which(ALERTMANAGER))


def start_prometheus(folder: Path, config: dict[str, Any], web: Path | None, *, ready_auth: dict[str, Any],
                     timeout: float = 60) -> Server:
    """Prometheus with ``config`` (its prometheus.yml), ``--web.config.file=web``; ready within ``timeout``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    (port,) = free_ports(1)
    argv = [PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={HOST}:{port}", "--web.enable-lifecycle", "--rules.alert.resend-delay=2s"]
    return _start(argv, folder, "prometheus", port, web, ready_auth, timeout)


def start_alertmanager(folder: Path, config: dict[str, Any], web: Path | None, *, ready_auth: dict[str, Any],
                       timeout: float = 60) -> Server:
    """Alertmanager with ``config`` (alertmanager.yml), no cluster, ``--web.config.file=web``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    (port,) = free_ports(1)
    argv = [ALERTMANAGER, f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder / 'data'}",
            f"--web.listen-address={HOST}:{port}", "--cluster.listen-address="]
    return _start(argv, folder, "alertmanager", port, web, ready_auth, timeout)


def _start(argv: list[str], folder: Path, name: str, port: int, web: Path | None, ready_auth: dict[str, Any],
           timeout: float) -> Server:
    if web is not None:
        argv.append(f"--web.config.file={web}")
    scheme = "https" if web is not None and "tls_server_config" in (yaml.safe_load(web.read_text()) or {}) else "http"
    log = folder / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=folder,
                                start_new_session=True)
    server = Server(proc, f"{scheme}://{HOST}:{port}", log)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/-/ready", timeout=2, **ready_auth).ok:
                return server
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not get ready at {server.url}: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path
