"""drivers.tls on plain files (no server to reload): how keys are written, and the backups' lifetime.

A key is only ever created exclusively (O_EXCL) and 0600, then renamed into place; a backup holds the
original key while the fault is in place and is pruned once the restore is verified, never before.
The real handshakes and reloads are in tests/integration/test_tls_driver.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from drivers._common.undo import prune_backup
from drivers.tls import actions
from mlchaos.errors import DriverError
from mlchaos.lib import certificates as certs


@pytest.fixture
def served(tmp_path: Path) -> certs.CertificateFiles:
    return certs.issue_sandbox_certificates(tmp_path / "srv", ca_dir=tmp_path / "ca")


def _install(files: certs.CertificateFiles, kind: str = "expired") -> dict[str, Any]:
    return actions.install_certificate(str(files.cert_path), str(files.key_path), kind=kind,
                                       ca_dir=str(files.ca_path.parent))


def _restore(record: dict[str, Any]) -> dict[str, Any]:
    return actions.restore_certificate(**record["undo"]["arguments"])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_keys_are_only_ever_created_exclusively_and_private(served, monkeypatch, tmp_path):
    """Every file the swap and the restore create next to the key (temporaries, backups) is created with O_EXCL
    and mode 0600 before it holds a byte: a key restored from a backup is never readable by others."""
    created: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and str(path).startswith(str(tmp_path)):
            created.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    old_umask = os.umask(0)  # the worst umask: only the mode asked for protects the key
    try:
        record = _install(served)
        _restore(record)
    finally:
        os.umask(old_umask)
    keys = [c for c in created if ".key." in c[0] or "key.pem" in c[0]]
    assert len(keys) >= 3  # the backup's key, the fault's key, the restored key
    loose = [(p, oct(m)) for p, f, m in created if not (f & os.O_EXCL) or m & 0o077]
    assert loose == []
    assert _mode(served.key_path) == 0o600


def test_a_verified_restore_prunes_its_backup_and_a_replay_still_finds_nothing_to_do(served):
    original = served.cert_path.read_bytes(), served.key_path.read_bytes()
    record = _install(served)
    backup = Path(record["undo"]["arguments"]["backup_dir"])
    assert (backup / "key.pem").read_bytes() == original[1] and _mode(backup / "key.pem") == 0o600
    assert _mode(backup) == _mode(backup.parent) == 0o700
    done = _restore(record)
    assert done["restored"] and (served.cert_path.read_bytes(), served.key_path.read_bytes()) == original
    assert sorted(p.name for p in backup.iterdir()) == ["RESTORED", "manifest.json"]  # no key, no certificate
    # the throw-away CA's certificate (kept for inspection, an expired fault's default signer) goes too
    assert sorted(Path(p).name for p in done["pruned"]) == ["cert.pem", "key.pem", "throwaway-ca.crt"]
    again = _restore(record)
    assert not again["restored"] and "already restored" in again["note"] and again["already"]


def test_restoring_the_oldest_backup_prunes_the_newer_ones_too(served):
    original = served.key_path.read_bytes()
    first, second = _install(served), _install(served, kind="untrusted")
    newer = Path(second["undo"]["arguments"]["backup_dir"])
    assert (newer / "throwaway-ca.crt").exists() and (newer / "key.pem").exists()  # the first fault's key
    healed = actions.restore_certificate(str(served.cert_path), str(served.key_path))
    assert healed["backup_dir"] == first["undo"]["arguments"]["backup_dir"] and served.key_path.read_bytes() == original
    for record in (first, second):
        folder = Path(record["undo"]["arguments"]["backup_dir"])
        assert sorted(p.name for p in folder.iterdir()) == ["RESTORED", "manifest.json"]
    assert not _restore(second)["restored"] and not _restore(first)["restored"]


def test_a_restore_that_fails_keeps_its_backup_for_a_retry(served):
    original = served.key_path.read_bytes()
    record = _install(served)
    backup = Path(record["undo"]["arguments"]["backup_dir"])
    served.key_path.unlink()
    served.key_path.mkdir()  # the key's place is taken by a folder: the restore cannot put the key back
    with pytest.raises(DriverError, match="cannot copy"):
        _restore(record)
    assert (backup / "key.pem").read_bytes() == original and not (backup / "RESTORED").exists()
    served.key_path.rmdir()
    assert _restore(record)["restored"] and served.key_path.read_bytes() == original  # the retry restores it
    assert not (backup / "key.pem").exists()


def test_prune_keeps_only_what_it_is_told_and_follows_no_link(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("not the backup's")
    folder = tmp_path / "backup"
    folder.mkdir()
    for name in ("manifest.json", "RESTORED", "key.pem", "cert.pem"):
        (folder / name).write_text(name)
    (folder / "link").symlink_to(outside)
    assert prune_backup(folder, ("manifest.json", "RESTORED")) == ["cert.pem", "key.pem", "link"]
    assert sorted(p.name for p in folder.iterdir()) == ["RESTORED", "manifest.json"]
    assert outside.read_text() == "not the backup's"
    assert prune_backup(tmp_path / "gone", ()) == []
