"""A real `mlchaos run` process dies, hangs or is stopped mid-fault: nothing is left behind.

Child processes of the real CLI with the test drivers (a fake fault = a marker file whose
undo removes it): the guardian recovers after SIGKILL or a stopped heartbeat, `mlchaos
recover` undoes a journal (twice, harmlessly), `mlchaos stop` aborts a running run and
refuses new ones. The same against real sandbox processes: tests/integration/test_safety_sandbox.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from mlchaos.safety import emergency_stop, run_registry
from tests.support.builders import py
from tests.support.polling import poll, wait_until
from tests.support.runs import journal_so_far, start_run


def _experiment(tmp_path: Path, heartbeat_timeout: float = 10.0, hold: float = 60.0) -> dict:
    marker = tmp_path / "fault"
    return {
        "title": "crash me", "description": "d",
        "method": [py("inject", "inject_marker", path=str(marker), hold=hold)],
        "rollbacks": [py("remove-fault", "remove_marker", path=str(marker))],
        "extensions": [{"name": "mlchaos", "heartbeat_timeout": heartbeat_timeout}],
    }


def _mlchaos(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def _start(tmp_path: Path, env: dict, **kwargs) -> tuple[subprocess.Popen, Path]:
    proc, journal = start_run(tmp_path, env, _experiment(tmp_path, **kwargs))
    wait_until((tmp_path / "fault").exists, what="the fault to be injected")
    return proc, journal


def _guardian_pid(journal: Path) -> int:
    wait_until(lambda: journal_so_far(journal)["mlchaos"].get("guardian_pid"), what="the guardian's pid in the journal")
    return journal_so_far(journal)["mlchaos"]["guardian_pid"]


@pytest.fixture
def env(subprocess_env, isolated_state):
    return subprocess_env


def test_the_guardian_undoes_the_fault_when_the_runner_is_killed(tmp_path, env):
    proc, journal = _start(tmp_path, env)
    proc.kill()
    proc.communicate(timeout=10)
    started = time.monotonic()
    wait_until(lambda: not (tmp_path / "fault").exists(), timeout=10, what="the guardian to remove the fault")
    print(f"guardian recovered {time.monotonic() - started:.2f}s after SIGKILL")
    wait_until(lambda: journal_so_far(journal)["mlchaos"].get("recoveries"), what="the recovery in the journal")
    (recovery,) = journal_so_far(journal)["mlchaos"]["recoveries"]
    assert recovery["by"] == "guardian (runner gone)" and recovery["ok"]
    assert [r["status"] for r in recovery["results"]] == ["undone"]
    wait_until(lambda: run_registry.registered() == [], what="the dead run to be unregistered")


def test_the_guardian_recovers_a_runner_whose_heartbeat_stopped(tmp_path, env):
    """A runner that hangs (here: SIGSTOP, as Ctrl-Z would) stops beating: its faults are undone."""
    proc, journal = _start(tmp_path, env, heartbeat_timeout=1.5)
    _guardian_pid(journal)
    proc.send_signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_until(lambda: not (tmp_path / "fault").exists(), timeout=10, what="the guardian to remove the fault")
        assert time.monotonic() - stopped >= 0.4  # the last beat was at most 1 s before the SIGSTOP
        # the guardian writes the journal after the undo: wait for it (read at once, it raced on a loaded machine)
        wait_until(lambda: journal_so_far(journal)["mlchaos"].get("recoveries"), what="the recovery in the journal")
        recovery = journal_so_far(journal)["mlchaos"]["recoveries"][0]
        assert recovery["by"].startswith("guardian (no heartbeat for")
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_recover_undoes_a_dead_runs_journal_and_is_idempotent(tmp_path, env):
    proc, journal = _start(tmp_path, env)
    os.kill(_guardian_pid(journal), signal.SIGKILL)  # the whole host went down: runner and guardian
    proc.kill()
    proc.communicate(timeout=10)
    assert (tmp_path / "fault").exists()
    first = _mlchaos("recover", str(journal), env=env)
    assert first.returncode == exit_codes.OK, first.stdout + first.stderr
    assert "undone  inject-marker" in first.stdout
    assert not (tmp_path / "fault").exists()
    second = _mlchaos("recover", str(journal), env=env)
    assert second.returncode == exit_codes.OK and "undone  inject-marker" in second.stdout
    assert [r["by"] for r in journal_so_far(journal)["mlchaos"]["recoveries"]] == ["mlchaos recover"] * 2


def test_recover_all_finds_the_dead_runs(tmp_path, env):
    proc, journal = _start(tmp_path, env)
    os.kill(_guardian_pid(journal), signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=10)
    result = _mlchaos("recover", "--all", env=env)
    assert result.returncode == exit_codes.OK, result.stdout + result.stderr
    assert not (tmp_path / "fault").exists() and run_registry.registered() == []
    again = _mlchaos("recover", "--all", env=env)
    assert "nothing to recover" in again.stdout


def test_recover_refuses_a_journal_whose_run_is_alive(tmp_path, env):
    proc, journal = _start(tmp_path, env)
    try:
        result = _mlchaos("recover", str(journal), env=env)
        assert result.returncode == exit_codes.INVALID
        assert "is still running and will roll back itself" in result.stderr
        assert (tmp_path / "fault").exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_recover_reports_an_unreadable_journal(tmp_path, env):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = _mlchaos("recover", str(bad), str(tmp_path / "missing.json"), env=env)
    assert result.returncode == exit_codes.INVALID
    assert "bad.json: not a JSON journal" in result.stderr and "missing.json: no such journal" in result.stderr


def test_mlchaos_stop_aborts_a_running_run_and_refuses_new_ones(tmp_path, env):
    proc, journal = _start(tmp_path, env)
    stop = _mlchaos("stop", "--reason", "incident in progress", "--wait", "30", env=env)
    assert stop.returncode == exit_codes.OK, stop.stdout + stop.stderr
    assert "aborting run" in stop.stdout
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.ABORTED, out + err
    assert "emergency stop" in out + err and not (tmp_path / "fault").exists()
    assert journal_so_far(journal)["mlchaos"]["verdict"] == "aborted"
    refused = _mlchaos("run", str(tmp_path / "experiment.json"), "--journal", str(tmp_path / "j2.json"), env=env)
    assert refused.returncode == exit_codes.REFUSED and "incident in progress" in refused.stdout + refused.stderr
    assert not (tmp_path / "fault").exists()
    assert "emergency stop cleared" in _mlchaos("stop", "--clear", env=env).stdout
    assert poll(lambda: not emergency_stop.engaged(), timeout=1)
