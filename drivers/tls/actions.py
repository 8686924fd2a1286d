"""TLS certificate faults: swap in an expired (or otherwise bad) certificate, and put the old one back.

:func:`install_certificate` backs the current files up, announces a
:class:`~mlchaos.driver_kit.ChangeRecord` *before* it writes anything, replaces the
certificate and key atomically and has the server reload them (SIGHUP, sent only to a
live sandbox model server that serves exactly these files). Its undo is
:func:`restore_certificate`, which is idempotent.

Backups live next to the files: ``<cert dir>/.mlchaos-backups/`` (0700) holds one folder per
fault, ``<time_ns>-<pid>/`` (0700), with ``cert.pem``, ``key.pem`` (0600, created exclusively)
and ``manifest.json``. Once they have been put back and the restore is verified (the files
read back equal the backup's; with ``tls_address``, the server presents the certificate), a
``RESTORED`` marker is written and the backup is pruned to its manifest and marker. Restoring a
backup also marks (and prunes) every newer backup of the same files, so undoing out of order
never brings a fault back. A restore that fails keeps its backup, for a retry.

Targets are given either as files (``cert_path``, ``key_path``, ``reload_pid``) or as a
sandbox replica (``service``, ``replica``), whose files follow
:func:`mlchaos.lib.certificates.sandbox_tls_paths` and whose pid and TLS port come from the
sandbox state (``tls_port`` on the replica record).
"""

from __future__ import annotations

import json
import os
import signal as signals
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers._common import checks
from drivers._common.errors import translated
from drivers._common.undo import prune_backup
from drivers.tls import sandbox
from mlchaos.driver_kit import (
    ChangeRecord,
    DriverError,
    Target,
    announce,
    atomic_write,
    local_environment,
    private_dir,
    procfs,
    undo_function,
)
from mlchaos.driver_kit import certificates as certs

UNDO_FUNC = "drivers.tls.actions.restore_certificate"
RELOAD_SIGNALS = checks.RELOAD_SIGNALS
BACKUP_DIR = ".mlchaos-backups"
RESTORED_MARKER = "RESTORED"
BACKUP_KEEP = ("manifest.json", RESTORED_MARKER)  # what a restored backup keeps: no key, no certificate


@dataclass(frozen=True)
class _Target:
    cert_path: Path
    key_path: Path
    pid: int | None
    replica: str | None
    service: str | None
    ca_dir: Path | None
    tls_address: str | None  # host:port where the server presents the certificate
    hosts: list[str]
    population: tuple[str, ...] = ()  # a sandbox replica's: every replica of its service


def install_certificate(
    cert_path: str | None = None, key_path: str | None = None, kind: str = "expired", hosts: list[str] | None = None,
    reload_pid: int | None = None, reload_signal: str = "SIGHUP", service: str | None = None,
    replica: str | None = None, ca_dir: str | None = None, days: int = 3, tls_address: str | None = None,
    timeout: float = 10.0, signer: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Replace a server's certificate with an expired (or expiring_soon, wrong_hostname, untrusted, valid) one.

    ``signer``: ``throwaway`` (the default for expired, wrong_hostname and untrusted: a CA made for this
    fault, whose key is never written; the CA in ``ca_dir`` is not read) or ``trusted_ca`` (the CA in
    ``ca_dir``, which clients trust: the default for valid and expiring_soon, and an opt-in for a drill
    whose clients must refuse an expired or wrong-host certificate for that reason alone; see
    mlchaos.lib.certificates). ``days``: how long ago an expired certificate ended, or how soon an
    expiring one ends.
    With ``tls_address`` (``host:port``; known for a sandbox replica) the action waits up to
    ``timeout`` s until the server presents the new certificate.
    """
    if kind not in certs.KINDS:
        raise DriverError(f"kind must be one of {', '.join(certs.KINDS)}, got {kind!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise DriverError(f"days must be an integer >= 1, got {days!r}")
    sig_name = checks.signal_name(reload_signal, RELOAD_SIGNALS, "reload_signal")
    target = _resolve(cert_path, key_path, reload_pid, service, replica, ca_dir, hosts, tls_address)
    _check_reload_target(target)
    with translated():
        signer = certs.signer_for(kind, signer)
    ca = None
    if signer == certs.TRUSTED_CA:  # only then is the serving CA's key read at all
        if target.ca_dir is None:
            raise DriverError(f"a {kind} certificate signed by the CA the clients trust (signer {signer}) "
                              "needs that CA: pass ca_dir")
        with translated():
            ca = certs.CertificateAuthority.load(target.ca_dir)
    with translated():
        cert, key, issuer = certs.issue_certificate(kind, target.hosts, ca, days=days)
    backup = _backup_path(target.cert_path)
    record = ChangeRecord(
        driver="tls",
        action="install-certificate",
        targets=_targets(target),
        parameters={"kind": kind, "hosts": target.hosts, "days": days, "reload_signal": sig_name,
                    "ca_dir": str(target.ca_dir) if target.ca_dir else None,
                    "certificate": certs.describe(cert),
                    "signer": signer, "signed_by": "the trusted CA" if issuer is ca else "a throw-away CA"},
        undo={"func": UNDO_FUNC, "arguments": {
            "cert_path": str(target.cert_path), "key_path": str(target.key_path), "backup_dir": str(backup),
            "reload_pid": target.pid, "reload_signal": sig_name, "tls_address": target.tls_address}},
        dry_run=dry_run, environment=local_environment(), population=list(target.population),
    )
    if dry_run:
        announce(record)
        return record.to_dict()
    _write_backup(backup, target)  # before the announcement: its undo must be able to find the backup
    announce(record)
    if issuer is not ca:  # keep the throw-away CA for inspection; no client trusts it
        atomic_write(backup / "throwaway-ca.crt", certs.cert_pem(issuer.certificate), mode=0o644)
    # only the two files the server reads (and the backup holds) change; key first, then certificate
    atomic_write(target.key_path, certs.key_pem(key), mode=0o600)
    atomic_write(target.cert_path, certs.cert_pem(cert), mode=0o644)
    _reload(target, sig_name, certs.fingerprint(cert), timeout)
    return record.to_dict()


@undo_function
def restore_certificate(
    cert_path: str | None = None, key_path: str | None = None, backup_dir: str | None = None,
    reload_pid: int | None = None, reload_signal: str = "SIGHUP", service: str | None = None,
    replica: str | None = None, tls_address: str | None = None, timeout: float = 10.0,
) -> dict[str, Any]:
    """Roll back install_certificate: put the backed-up certificate and key back and reload (idempotent).

    Without ``backup_dir``, the oldest backup of these files that was not restored yet is
    used (the state before the first fault); with none pending nothing changes.
    """
    sig_name = checks.signal_name(reload_signal, RELOAD_SIGNALS, "reload_signal")
    target = _resolve(cert_path, key_path, reload_pid, service, replica, None, None, tls_address)
    if backup_dir is not None:
        backup: Path | None = Path(backup_dir)
        if not (backup / "manifest.json").is_file():
            raise DriverError(f"no certificate backup in {backup} (manifest.json missing)")
        if _manifest(backup).get("cert_path") != str(target.cert_path):
            raise DriverError(f"backup {backup} is not a backup of {target.cert_path}")
    else:
        pending = [b for b in _backups(target.cert_path) if not (b / RESTORED_MARKER).exists()]
        backup = pending[0] if pending else None
    result: dict[str, Any] = {"cert_path": str(target.cert_path), "key_path": str(target.key_path),
                              "backup_dir": str(backup) if backup else None, "restored": False, "reloaded": False}
    if backup is None or (backup / RESTORED_MARKER).exists():
        result["note"] = "nothing to restore: already restored" if backup else "nothing to restore: no backup"
        result["already"] = [str(target.cert_path)]
        return result
    _check_reload_target(target, must_be_alive=False)
    _copy_atomic(backup / "key.pem", target.key_path, 0o600)
    _copy_atomic(backup / "cert.pem", target.cert_path, 0o644)
    _verify_restored(backup, target)
    with translated():
        restored = certs.read_certificate(target.cert_path)
    result.update(restored=True, certificate=certs.describe(restored), already=[])
    result["reloaded"] = _reload(target, sig_name, certs.fingerprint(restored), timeout, must_be_alive=False)
    # verified (and reloaded): only now is the backup marked restored and pruned, and every newer one with it
    result["pruned"] = []
    for newer in [b for b in _backups(target.cert_path) if b.name >= backup.name]:
        (newer / RESTORED_MARKER).write_text(f"restored from {backup.name}\n")
        result["pruned"] += [str(newer / name) for name in prune_backup(newer, BACKUP_KEEP)]
    return result


# -- targets -------------------------------------------------------------------------------


def _resolve(cert_path: str | None, key_path: str | None, pid: int | None, service: str | None,
             replica: str | None, ca_dir: str | None, hosts: list[str] | None,
             tls_address: str | None) -> _Target:
    if service is not None or replica is not None:
        if cert_path is not None or key_path is not None or pid is not None:
            raise DriverError("give either cert_path/key_path/reload_pid or service/replica, not both")
        return _resolve_replica(service, replica, ca_dir, hosts, tls_address)
    if not cert_path or not key_path:
        raise DriverError("cert_path and key_path are required (or service and replica of the sandbox)")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise DriverError(f"reload_pid must be a positive integer, got {pid!r}")
    cert, key = Path(cert_path).absolute(), Path(key_path).absolute()
    if hosts is None:  # keep the names the current certificate is valid for
        try:
            hosts = certs.certificate_hosts(certs.read_certificate(cert)) or None
        except certs.CertificateError:
            hosts = None
    return _Target(cert, key, pid, None, None, Path(ca_dir).absolute() if ca_dir else None,
                   _address(tls_address), list(hosts or ["127.0.0.1", "localhost"]))


def _resolve_replica(service: str | None, replica: str | None, ca_dir: str | None, hosts: list[str] | None,
                     tls_address: str | None) -> _Target:
    """A sandbox replica's files, pid and TLS address (the sandbox must serve TLS)."""
    rec = sandbox.replica_tls(service, replica)
    return _Target(rec.paths.cert_path.absolute(), rec.paths.key_path.absolute(), rec.pid, rec.name, rec.service,
                   Path(ca_dir).absolute() if ca_dir else rec.paths.ca_dir.absolute(),
                   _address(tls_address) or rec.address, list(hosts or [rec.host, "localhost"]), rec.siblings)


def _check_reload_target(target: _Target, must_be_alive: bool = True) -> None:
    """The pid must be a live model server serving these very files (SIGHUP kills one without TLS)."""
    if target.pid is None:
        return
    if not sandbox.is_alive(target.pid, target.replica):
        if must_be_alive:
            raise DriverError(f"pid {target.pid} is not a live sandbox model server: nothing changed")
        return
    argv = procfs.cmdline(target.pid) or []
    served = [b for a, b in zip(argv, argv[1:], strict=False) if a == "--tls-cert"]
    if not served or Path(served[0]).absolute() != target.cert_path:
        raise DriverError(f"pid {target.pid} does not serve {target.cert_path} (its --tls-cert:"
                          f" {served[0] if served else 'none'}); it would not reload it: nothing changed")


def _targets(target: _Target) -> list[Target]:
    found = [Target(kind="file", name=str(target.cert_path), details={"role": "certificate"}),
             Target(kind="file", name=str(target.key_path), details={"role": "key"})]
    if target.pid is not None or target.tls_address:
        details: dict[str, Any] = {"pid": target.pid, "service": target.service}
        if target.tls_address:
            details |= {"instance": target.tls_address, "url": f"https://{target.tls_address}"}
        found.append(Target(kind="process", name=target.replica or f"pid {target.pid}", details=details))
    return found


# -- reload --------------------------------------------------------------------------------


def _reload(target: _Target, sig_name: str, expected_sha256: str, timeout: float,
            must_be_alive: bool = True) -> bool:
    """Signal the server; with a TLS address, wait until it presents the expected certificate."""
    if target.pid is None:
        return False
    if not sandbox.signal_model_server(target.pid, signals.Signals[sig_name], target.replica):
        if must_be_alive:
            raise DriverError(f"pid {target.pid} exited before it could reload the certificate")
        return False
    if target.tls_address:
        from drivers.tls.probes import presented_certificate

        host, port = target.tls_address.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = presented_certificate(host, int(port), timeout=min(2.0, timeout))["sha256"]
            except DriverError:
                seen = None
            if seen == expected_sha256:
                return True
            time.sleep(0.05)
        raise DriverError(f"{target.tls_address} does not present the new certificate {timeout} s after"
                          f" {sig_name} (presents {seen or 'nothing'}); see the server's log")
    return True


# -- backups -------------------------------------------------------------------------------


def _backup_path(cert_path: Path) -> Path:
    return cert_path.parent / BACKUP_DIR / f"{time.time_ns():020d}-{os.getpid()}"


def _write_backup(backup: Path, target: _Target) -> None:
    if not target.cert_path.is_file() or not target.key_path.is_file():
        raise DriverError(f"nothing to back up: {target.cert_path} or {target.key_path} does not exist")
    private_dir(backup.parent)
    backup.mkdir(mode=0o700)
    _copy_atomic(target.cert_path, backup / "cert.pem", 0o644)
    _copy_atomic(target.key_path, backup / "key.pem", 0o600)
    manifest = {"cert_path": str(target.cert_path), "key_path": str(target.key_path),
                "created": time.time(), "replica": target.replica}
    atomic_write(backup / "manifest.json", json.dumps(manifest, indent=2) + "\n", mode=0o600)


def _backups(cert_path: Path) -> list[Path]:
    """Backups of ``cert_path``, oldest first."""
    root = cert_path.parent / BACKUP_DIR
    if not root.is_dir():
        return []
    return sorted(b for b in root.iterdir()
                  if (b / "manifest.json").is_file() and _manifest(b).get("cert_path") == str(cert_path))


def _manifest(backup: Path) -> dict[str, Any]:
    try:
        data = json.loads((backup / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise DriverError(f"unreadable backup manifest in {backup}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _verify_restored(backup: Path, target: _Target) -> None:
    """The target's files read back equal the backup's; DriverError (the backup is kept) when they do not."""
    for saved, path in ((backup / "key.pem", target.key_path), (backup / "cert.pem", target.cert_path)):
        try:
            same = path.read_bytes() == saved.read_bytes()
        except OSError as exc:
            raise DriverError(f"cannot verify the restored {path}: {exc}; the backup {backup} is kept") from exc
        if not same:
            raise DriverError(f"{path} does not hold the backed-up file after the restore (changed meanwhile?);"
                              f" the backup {backup} is kept")


def _copy_atomic(source: Path, dest: Path, mode: int) -> None:
    """Copy ``source`` over ``dest`` atomically: a temporary file created exclusively (O_EXCL) and 0600, given
    ``mode`` before it is renamed over ``dest``, so a key is never readable by others, not even briefly."""
    try:
        atomic_write(dest, source.read_bytes(), mode)
    except OSError as exc:
        raise DriverError(f"cannot copy {source} to {dest}: {exc}") from exc


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DriverError(f"tls_address must be HOST:PORT, got {value!r}")
    return value
