"""Sandbox lifecycle with real processes: idempotent up, healing, down, status, restart."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mlchaos.errors import TargetNotFound
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Replica, Sandbox
from tests.support.polling import poll


@pytest.fixture
def fresh(state_dir: Path) -> Iterator[Sandbox]:
    """A sandbox of its own in a temp state dir, always brought down afterwards."""
    sandbox = Sandbox(state_dir)
    try:
        yield sandbox
    finally:
        sandbox.down()


def _states(sandbox: Sandbox) -> dict[str, str]:
    return {s.replica.name: s.state for s in sandbox.status()}


def test_up_is_idempotent_and_heals_only_the_killed_replica(fresh: Sandbox) -> None:
    first = fresh.up(replicas=2, monitoring=False)
    assert [r.name for r in first] == ["model-0", "model-1"]
    assert all(r.port > 0 and r.url == f"http://127.0.0.1:{r.port}" for r in first)
    assert fresh.state_file.exists() and first[0].log_path.parent == fresh.state_dir / "logs"
    assert fresh.up(replicas=2, monitoring=False) == first  # nothing restarted

    victim, survivor = first
    os.kill(victim.pid, signal.SIGKILL)
    assert poll(lambda: not fresh.is_alive(victim.pid))
    assert _states(fresh) == {"model-0": "dead", "model-1": "ready"}

    healed = fresh.up(replicas=2, monitoring=False)
    assert healed[1] == survivor
    assert healed[0].port == victim.port and healed[0].url == victim.url
    assert healed[0].pid != victim.pid
    assert requests.get(f"{victim.url}/v2/health/ready", timeout=5).ok
    assert fresh.replicas("model") == healed


def test_down_stops_a_paused_replica(fresh: Sandbox) -> None:
    replicas = fresh.up(replicas=2, monitoring=False)
    os.kill(replicas[0].pid, signal.SIGSTOP)
    assert poll(lambda: _states(fresh)["model-0"] == "stopped")
    stopped = fresh.down(timeout=5)
    assert {r.name for r in stopped} == {"model-0", "model-1"}
    assert not any(procs.is_alive(r.pid) for r in replicas)
    assert fresh.status() == []
    with pytest.raises(TargetNotFound, match="'model'"):
        fresh.replicas("model")


def test_restart_keeps_port_and_updates_state(fresh: Sandbox) -> None:
    old = fresh.up(replicas=1, base_port=0, monitoring=False)[0]
    new = fresh.restart(old, timeout=30)
    assert (new.port, new.url, new.name) == (old.port, old.url, old.name)
    assert new.pid != old.pid and not procs.is_alive(old.pid)
    assert fresh.replicas("model") == [new]
    assert _states(fresh) == {"model-0": "ready"}


def test_foreign_pid_in_state_is_never_signalled(fresh: Sandbox) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        fake = Replica(
            service="model", name="model-0", index=0, host="127.0.0.1", port=0,
            pid=bystander.pid, url="http://127.0.0.1:0",
            log_path=fresh.log_dir / "model-0.log", started_at=0.0,
        )
        fresh._write([fake])
        assert _states(fresh) == {"model-0": "dead"}
        replicas = fresh.up(replicas=1, monitoring=False)  # replaces the stale entry with a real replica
        assert replicas[0].pid != bystander.pid
        fresh.down()
        assert bystander.poll() is None  # the unrelated process was left alone
    finally:
        bystander.kill()
        bystander.wait()
