"""Least privilege, attacked through the real CLI: a journal cannot make `mlchaos recover` run arbitrary code,
and what a run leaves in the state directory is private to its user."""

from __future__ import annotations

import json
import stat
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


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_leaves_its_journal_and_state_directory_private_under_umask_022(tmp_path, subprocess_env):
    state = Path(subprocess_env["MLCHAOS_STATE_DIR"])
    state.chmod(0o755)  # it exists already, looser than it should be: mlchaos owns it and tightens it
    marker = tmp_path / "fault"
    experiment = tmp_path / "experiment.json"
    experiment.write_text(json.dumps({"title": "private", "description": "d", "method": [
        {"type": "action", "name": "inject", "provider": {
            "type": "python", "module": "testdrivers", "func": "inject_marker", "arguments": {"path": str(marker)}}},
    ]}))
    journal = tmp_path / "out" / "journal.json"
    proc = _mlchaos(subprocess_env, "run", str(experiment), "--journal", str(journal), umask=0o022)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert not marker.exists()  # the safety net undid it (no rollback declared)
    assert _mode(journal) == 0o600
    assert _mode(journal.parent) == 0o755  # the user's own folder: not mlchaos' to tighten
    folders = [state, *(p for p in state.rglob("*") if p.is_dir())]
    assert len(folders) >= 2  # the state dir and runs/ (the run registered itself)
    assert {str(p.relative_to(state)): oct(_mode(p)) for p in folders} == {
        str(p.relative_to(state)): oct(0o700) for p in folders}
    loose = {str(p): oct(_mode(p)) for p in state.rglob("*") if p.is_file() and _mode(p) & 0o077}
    assert loose == {}


def test_recovery_keeps_the_journal_private(tmp_path, subprocess_env):
    marker = tmp_path / "marker"
    marker.write_text("fault\n")
    journal = _journal_naming(tmp_path / "journal.json", "testdrivers.remove_marker", {"path": str(marker)})
    journal.chmod(0o600)
    proc = _mlchaos(subprocess_env, "recover", str(journal), umask=0o022)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert not marker.exists() and _mode(journal) == 0o600
