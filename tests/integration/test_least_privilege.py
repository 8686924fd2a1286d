"""Least privilege, attacked through the real CLI: a journal cannot make `mlchaos recover` run arbitrary code,
and what a run leaves in the state directory is private to its user."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from mlchaos.lib import certificates as certs
from mlchaos.safety.changes import ChangeRecord, Target

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit


def _mlchaos(env: dict[str, str], *args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlchaos", *args]
    if umask is not None:  # the child's own umask, whatever the test runner's is
        command = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "mlchaos", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _journal_naming(path: Path, func: str, arguments: dict) -> Path:
    record = ChangeRecord(driver="test", action="inject-marker", targets=[Target(kind="file", name="x")],
                          undo={"func": func, "arguments": arguments})
    path.write_text(json.dumps({"title": "edited", "mlchaos": {"changes": [record.to_dict()]}}))
    return path


def test_recover_refuses_a_journal_whose_undo_is_os_mkdir(tmp_path, subprocess_env):
    planted = tmp_path / "planted"
    journal = _journal_naming(tmp_path / "journal.json", "os.mkdir", {"path": str(planted)})
    proc = _mlchaos(subprocess_env, "recover", str(journal))
    assert proc.returncode == exit_codes.ROLLBACK_FAILED, proc.stdout + proc.stderr
    assert not planted.exists()
    assert "FAILED" in proc.stdout and "os.mkdir" in proc.stdout
    assert "refused: os.mkdir is in Python's standard library" in proc.stdout
    assert "nothing was run" in proc.stdout and "undo it by hand" in proc.stdout
    (recovery,) = json.loads(journal.read_text())["mlchaos"]["recoveries"]
    assert not recovery["ok"] and recovery["results"][0]["status"] == "failed"


def test_recover_refuses_a_real_driver_fault_named_as_an_undo(tmp_path, subprocess_env):
    """The TLS driver's own fault, named as the undo: it would swap in an untrusted certificate."""
    files = certs.issue_sandbox_certificates(tmp_path / "srv", ca_dir=tmp_path / "ca")
    before = files.cert_path.read_bytes(), files.key_path.read_bytes()
    journal = _journal_naming(tmp_path / "journal.json", "drivers.tls.actions.install_certificate",
                              {"cert_path": str(files.cert_path), "key_path": str(files.key_path),
                               "kind": "untrusted"})
    proc = _mlchaos(subprocess_env, "recover", str(journal))
    assert proc.returncode == exit_codes.ROLLBACK_FAILED, proc.stdout + proc.stderr
    assert (files.cert_path.read_bytes(), files.key_path.read_bytes()) == before
    assert not (files.cert_path.parent / ".mlchaos-backups").exists()
    assert "drivers.tls.actions.install_certificate is not declared as an undo by its driver" in proc.stdout
