"""Docker certificate swap: copy a bad certificate into containers, and restore_container_certificate.

The files in each container are copied out first, to a backup on this host
(``<state dir>/docker-certificate-backups/<time_ns>-<pid>/<container id>/``: ``cert.pem``,
``key.pem`` and ``manifest.json`` with their paths, modes and owners; folders 0700, files 0600).
Once the files are back and read back equal to the backup, a ``RESTORED`` marker is written and
the backup is pruned to its manifest and marker (a restore that cannot be verified keeps it).
Part of :mod:`drivers.docker.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from drivers._common import checks
from drivers._common.errors import translated
from drivers._common.undo import already, prune_backup
from drivers.docker.archive import FileCopy, read_file, write_files
from drivers.docker.client import api, call
from drivers.docker.targets import GONE, ROLLBACKS, Labels, each, rollback_ids, select, status
from mlchaos.driver_kit import (
    DriverError,
    announce,
    atomic_write,
    certificates,
    private_dir,
    state_dir,
    undo_function,
)

RESTORED_MARKER = "RESTORED"
MANIFEST = "manifest.json"


def install_certificate(
    cert_path_in_container: str, key_path_in_container: str,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, kind: str = "expired", ca_dir: str | None = None, hosts: list[str] | None = None,
    days: int = 3, reload_signal: str = "SIGHUP", backup_dir: str | None = None, signer: str | None = None,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Swap a bad certificate (expired, expiring_soon, wrong_hostname, untrusted, valid) into the containers.

    The current files are copied out first (kept under `backup_dir`, default: the state
    directory), then the new ones are copied in and `reload_signal` is sent. `signer`:
    ``throwaway`` (default for expired, wrong_hostname, untrusted: a CA made for this fault) or
    ``trusted_ca`` (the CA in `ca_dir`: default for valid and expiring_soon, opt-in for the bad
    kinds). Undo: restore_container_certificate.
    """
    if kind not in certificates.KINDS:
        raise DriverError(f"kind must be one of {', '.join(certificates.KINDS)}, got {kind!r}")
    sig = checks.signal_name(reload_signal, checks.RELOAD_SIGNALS, "reload_signal")
    for name, path in (("cert_path_in_container", cert_path_in_container),
                       ("key_path_in_container", key_path_in_container)):
        if not isinstance(path, str) or not path.startswith("/"):
            raise DriverError(f"{name} must be an absolute path in the container, got {path!r}")
    with translated():
        signer = certificates.signer_for(kind, signer)
    ca = None
    if signer == certificates.TRUSTED_CA:  # only then is the CA's key read at all
        if ca_dir is None:
            raise DriverError(f"a {kind} certificate signed by the CA the clients trust (signer {signer}) "
                              "needs that CA: pass ca_dir")
        with translated():
            ca = certificates.CertificateAuthority.load(ca_dir)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    backup = Path(backup_dir) if backup_dir else _backup_root() / f"{time.time_ns():020d}-{os.getpid()}"
    undo_args = {"ids": sel.ids, "cert_path_in_container": cert_path_in_container,
                 "key_path_in_container": key_path_in_container, "backup_dir": str(backup), "reload_signal": sig}
    with translated():
        issued = {c["Id"]: certificates.issue_certificate(
            kind, hosts or ["localhost", "127.0.0.1", c["Name"].lstrip("/")], ca, days=days) for c in sel.containers}
    record = sel.record("install-certificate", ROLLBACKS.undo("restore_container_certificate", **undo_args), dry_run,
                        kind=kind, signer=signer, days=days, reload_signal=sig, ca_dir=ca_dir, backup_dir=str(backup),
                        cert_path_in_container=cert_path_in_container, key_path_in_container=key_path_in_container,
                        certificate=certificates.describe(next(iter(issued.values()))[0]))
    if not dry_run:  # the backup first: the announced undo must find it
        sel.concurrently(lambda cid: _back_up(sel.api, cid, backup, cert_path_in_container, key_path_in_container),
                         "back up the certificate")
    announce(record)
    if dry_run:
        return record.to_dict()

    def swap(cid: str) -> None:
        cert, key, _ = issued[cid]
        meta = json.loads((backup / cid[:12] / "manifest.json").read_text())
        write_files(sel.api, cid, [_copy(key_path_in_container, certificates.key_pem(key), meta["key"]),
                                   _copy(cert_path_in_container, certificates.cert_pem(cert), meta["cert"])])
        call(sel.api.kill, cid, f"send {sig} to {cid[:12]}", signal=sig)

    sel.concurrently(swap, "install the certificate")
    return record.to_dict()


@undo_function
def restore_container_certificate(
    ids: list[str] | None = None, cert_path_in_container: str | None = None,
    key_path_in_container: str | None = None, backup_dir: str | None = None, reload_signal: str = "SIGHUP",
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
) -> dict[str, Any]:
    """Roll back install_certificate: copy the backed-up files back into each container and signal it (idempotent).

    Give the change record's ``ids`` and ``backup_dir``, or a selector: each matching container
    with a backup not yet restored gets its oldest one back (the state before the first swap).
    The paths in the container are those recorded in the backup.
    """
    sig = checks.signal_name(reload_signal, checks.RELOAD_SIGNALS, "reload_signal")
    client = api()
    if ids is None:
        ids = [cid for cid in rollback_ids(client, None, labels, name_pattern, project, None)
               if _pending_backup(cid, backup_dir) is not None]
    else:
        ids = rollback_ids(client, ids, labels, name_pattern, project, None)

    def restore(cid: str) -> str:
        folder = Path(backup_dir) / cid[:12] if backup_dir else _pending_backup(cid, None)
        if folder is None or not (folder / "manifest.json").is_file():
            raise DriverError(f"no backup of container {cid[:12]} in {folder or _backup_root()}")
        if (folder / RESTORED_MARKER).exists():  # a second undo must not overwrite (or signal) again
            return "already restored"
        meta = json.loads((folder / "manifest.json").read_text())
        state = status(client, cid)
        if state is None:  # its files went with it: no bad certificate is left to undo
            return GONE
        saved = {meta["key"]["path"]: (folder / "key.pem").read_bytes(),
                 meta["cert"]["path"]: (folder / "cert.pem").read_bytes()}
        write_files(client, cid, [_copy(meta["key"]["path"], saved[meta["key"]["path"]], meta["key"]),
                                  _copy(meta["cert"]["path"], saved[meta["cert"]["path"]], meta["cert"])])
        changed = [path for path, data in saved.items() if read_file(client, cid, path).data != data]
        if changed:  # not verified: keep the backup (and no marker) for a retry
            raise DriverError(f"container {cid[:12]}: {', '.join(changed)} do not hold the backed-up files after"
                              f" the restore; the backup {folder} is kept")
        (folder / RESTORED_MARKER).write_text("restored\n")
        prune_backup(folder, (MANIFEST, RESTORED_MARKER))  # verified: no copy of the key outlives the fault
        if state != "running":
            return "restored (not running: not signalled)"
        call(client.kill, cid, f"send {sig} to {cid[:12]}", signal=sig)
        return "restored and signalled"

    results = each(ids, restore, "restore")
    return {"backup_dir": backup_dir, "containers": results, "already": already(results, "restored")}


def _back_up(client: Any, cid: str, backup: Path, cert_path: str, key_path: str) -> None:
    """Copy the container's certificate and key out, with a manifest of their paths, modes and owners."""
    folder = backup / cid[:12]
    private_dir(folder)
    cert, key = (read_file(client, cid, p) for p in (cert_path, key_path))
    # each file created exclusively and 0600 before it holds anything (atomic_write): never readable by others
    atomic_write(folder / "cert.pem", cert.data, mode=0o600)
    atomic_write(folder / "key.pem", key.data, mode=0o600)
    atomic_write(folder / MANIFEST, json.dumps({"id": cid, "cert": cert.meta(), "key": key.meta()}) + "\n",
                 mode=0o600)


def _copy(path: str, data: bytes, meta: dict[str, Any]) -> FileCopy:
    """The file to write at ``path``, with the mode and owner of the file it replaces (from a manifest)."""
    return FileCopy(path, data, meta["mode"], meta["uid"], meta["gid"])


def _backup_root() -> Path:
    return state_dir() / "docker-certificate-backups"


def _pending_backup(cid: str, backup_dir: str | None) -> Path | None:
    """The oldest backup of the container not restored yet (in ``backup_dir``, or under the default root)."""
    if backup_dir:
        folder = Path(backup_dir) / cid[:12]
        return folder if (folder / "manifest.json").is_file() else None
    root = _backup_root()
    runs = sorted(root.iterdir()) if root.is_dir() else []
    pending = [r / cid[:12] for r in runs
               if (r / cid[:12] / "manifest.json").is_file() and not (r / cid[:12] / RESTORED_MARKER).exists()]
    return pending[0] if pending else None
