"""Sandbox state: where it lives, how it is stored, and how stale pids are judged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlchaos.errors import SandboxError, TargetNotFound
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Replica, Sandbox, state_dir


def _replica(tmp_path: Path, pid: int, index: int = 0) -> Replica:
    return Replica(
        service="model", name=f"model-{index}", index=index, host="127.0.0.1", port=1,
        pid=pid, url="http://127.0.0.1:1", log_path=tmp_path / f"model-{index}.log",
        started_at=1.0,
    )


def test_state_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "explicit"
    monkeypatch.delenv("MLCHAOS_STATE_DIR")
    assert state_dir() == tmp_path / "xdg" / "mlchaos"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "mlchaos"
    assert Sandbox().state_file == tmp_path / "home" / ".local" / "state" / "mlchaos" / "sandbox.json"


def test_replica_round_trips_through_json(tmp_path: Path) -> None:
    replica = _replica(tmp_path, pid=123)
    assert Replica.from_dict(json.loads(json.dumps(replica.to_dict()))) == replica


def test_stale_and_foreign_pids_count_as_dead(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    # our own pid exists but is not a model server: it must never be trusted (or signalled)
    sandbox._write([_replica(tmp_path, pid=os.getpid()), _replica(tmp_path, pid=2**22 + 7, index=1)])
    assert [s.state for s in sandbox.status()] == ["dead", "dead"]
    assert not sandbox.is_alive(os.getpid())
    assert not procs.signal_model_server(os.getpid(), procs.signal.SIGTERM)
    assert [r.name for r in sandbox.down()] == ["model-0", "model-1"]
    assert not sandbox.state_file.exists()


def test_replicas_of_unknown_service_names_service_and_state_file(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    with pytest.raises(TargetNotFound, match=r"'ghost'.*sandbox\.json"):
        sandbox.replicas("ghost")


def test_corrupt_state_file_is_a_sandbox_error(tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text("{not json")
    with pytest.raises(SandboxError, match="sandbox.json"):
        Sandbox(tmp_path).status()


def test_proc_state_of_live_and_missing_pids() -> None:
    assert procs.proc_state(os.getpid()) in {"R", "S"}
    assert procs.proc_state(2**22 + 7) is None
