"""Safety against the real sandbox: model-server processes and the fault proxy.

* the runner is SIGKILLed (or hangs) in the middle of a latency fault and of a pause
  fault, and the service recovers by itself within the deadline (the guardian);
* bounds, scopes and the environment allow-list refuse a run before a replica is touched;
* a guard trips on a real probe and the run aborts and rolls back;
* `mlchaos plan` names the replica a run would kill and kills nothing;
* `mlchaos stop` aborts a real run mid-fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.proxy.probes import list_toxics
from mlchaos.engine import exit_codes
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.paths import ROOT
from tests.support.polling import wait_until


def _env(box: Sandbox) -> dict[str, str]:
    env = child_env(box.state_dir)
    env.pop("MLCHAOS_ALLOWED_ENVIRONMENTS", None)
    return env


def _action(label: str, module: str, func: str, **arguments) -> dict:
    return {"type": "action", "name": label,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}


def _probe(label: str, module: str, func: str, tolerance, **arguments) -> dict:
    return {**_action(label, module, func, **arguments), "type": "probe", "tolerance": tolerance}


def _write(tmp_path: Path, method: list, rollbacks: list | None = None, **settings) -> Path:
    data = {"title": "safety drill", "description": "d", "method": method, "rollbacks": rollbacks or []}
    if settings:
        data["extensions"] = [{"name": "mlchaos", **settings}]
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _start(box: Sandbox, experiment: Path, journal: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal)],
                            env=_env(box), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _mlchaos(box: Sandbox, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=_env(box), capture_output=True, text=True,
                          timeout=120)


def _changes(journal: Path) -> list[dict]:
    try:
        return json.loads(journal.read_text())["mlchaos"]["changes"]
    except (OSError, ValueError, KeyError):
        return []


def _paused(box: Sandbox) -> list[str]:
    return [r.name for r in box.recorded() if procs.is_alive(r.pid) and procs.is_stopped(r.pid)]


def _pids(box: Sandbox) -> dict[str, int]:
    return {r.name: r.pid for r in box.recorded()}


def _hold(seconds: float = 120) -> dict:
    return {**_action("hold-the-fault", "drivers.process.probes", "replicas_running"), "type": "probe",
            "pauses": {"after": seconds}}


LATENCY = _action("slow-model-1", "drivers.proxy.actions", "add_toxic", proxy="model-1", type="latency",
                  attributes={"latency": 500}, name="safety-latency")  # no ttl: only the guardian can undo it
PAUSE = _action("pause-one", "drivers.process.actions", "stop_replicas", count=1, seed=7, ttl=None)


def test_sigkill_mid_latency_fault_the_guardian_removes_the_toxic(sandbox, tmp_path):
    url = sandbox.proxy().api_url()
    journal = tmp_path / "journal.json"
    proc = _start(sandbox, _write(tmp_path, [LATENCY, _hold()], heartbeat_timeout=3), journal)
    wait_until(lambda: any(t["name"] == "safety-latency" for t in list_toxics("model-1", url)), timeout=30,
               what="the latency toxic")
    proc.kill()
    proc.communicate(timeout=10)
    killed = time.monotonic()
    wait_until(lambda: not list_toxics("model-1", url), timeout=15, what="the guardian to remove the toxic")
    print(f"latency fault removed {time.monotonic() - killed:.2f}s after the runner's SIGKILL")
    # the guardian writes the journal after the undo: wait for it (read at once, it raced on a loaded machine)
    wait_until(lambda: json.loads(journal.read_text())["mlchaos"].get("recoveries"), what="the recovery in the journal")
    recovery = json.loads(journal.read_text())["mlchaos"]["recoveries"][0]
    assert recovery["by"] == "guardian (runner gone)" and recovery["ok"]


def test_sigkill_mid_pause_fault_the_replica_resumes(sandbox, tmp_path):
    journal = tmp_path / "journal.json"
    proc = _start(sandbox, _write(tmp_path, [PAUSE, _hold()], heartbeat_timeout=3), journal)
    wait_until(lambda: _paused(sandbox), timeout=30, what="a paused replica")
    (paused,) = _paused(sandbox)
    proc.kill()
    proc.communicate(timeout=10)
    killed = time.monotonic()
    wait_until(lambda: not _paused(sandbox), timeout=15, what="the guardian to resume the replica")
    print(f"pause fault on {paused} undone {time.monotonic() - killed:.2f}s after the runner's SIGKILL")
    sandbox.wait_ready(sandbox.recorded(), timeout=10)


def test_a_hung_runner_stops_beating_and_its_pause_is_undone(sandbox, tmp_path):
    journal = tmp_path / "journal.json"
    proc = _start(sandbox, _write(tmp_path, [PAUSE, _hold()], heartbeat_timeout=2), journal)
    wait_until(lambda: _paused(sandbox), timeout=30, what="a paused replica")
    proc.send_signal(signal.SIGSTOP)
    try:
        hung = time.monotonic()
        wait_until(lambda: not _paused(sandbox), timeout=15, what="the guardian to resume the replica")
        waited = time.monotonic() - hung
        print(f"hung runner: pause undone {waited:.2f}s after its last heartbeat could be sent")
        assert waited >= 0.9  # timeout 2 s after the last beat, which was at most 1 s before the SIGSTOP
    finally:
        proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.parametrize(("settings", "reason"), [
    ({"blast_radius": {"max_fraction": 0.34}}, "2 of 3 process(s) (67%), more than max_fraction 0.34"),
    ({"blast_radius": {"max_targets": 1}}, "2 target(s) in this run, more than max_targets 1"),
    ({"blast_radius": {"scopes": [{"kind": "process", "service": "payments"}]}}, "outside every allowed scope"),
    ({"allowed_environments": ["docker:*"]}, "is not allowed by the experiment's allowed_environments"),
])
def test_a_run_over_its_bounds_touches_no_replica(sandbox, tmp_path, settings, reason):
    before = _pids(sandbox)
    kill = _action("kill-two", "drivers.process.actions", "kill_replicas", count=2)
    experiment = _write(tmp_path, [kill], [_action("restart", "drivers.process.actions", "restart_replicas")],
                        **settings)
    result = _mlchaos(sandbox, "run", str(experiment), "--journal", str(tmp_path / "j.json"))
    assert result.returncode == exit_codes.REFUSED, result.stdout + result.stderr
    assert reason in result.stdout + result.stderr
    assert _pids(sandbox) == before and all(procs.is_alive(pid) for pid in before.values())


def test_the_same_run_within_its_bounds_goes_ahead(sandbox, tmp_path):
    kill = _action("kill-one", "drivers.process.actions", "kill_replicas", count=1)
    experiment = _write(tmp_path, [kill], [_action("restart", "drivers.process.actions", "restart_replicas")],
                        blast_radius={"max_fraction": 0.34, "max_targets": 1,
                                      "scopes": [{"kind": "process", "service": "model"}]},
                        allowed_environments=["local:*"])
    result = _mlchaos(sandbox, "run", str(experiment), "--journal", str(tmp_path / "j.json"))
    assert result.returncode == exit_codes.OK, result.stdout + result.stderr
    journal = json.loads((tmp_path / "j.json").read_text())
    assert journal["mlchaos"]["blast_radius"]["by_kind"]["process"]["eligible"] == 3


def test_a_guard_on_a_real_probe_aborts_the_run_and_rolls_back(sandbox, tmp_path):
    guard = _probe("all-replicas-running", "drivers.process.probes", "replicas_running", 3)
    continue_all = _action("resume", "drivers.process.actions", "continue_replicas")
    experiment = _write(tmp_path, [PAUSE, _hold(60)], [continue_all], guards=[guard], guard_interval=0.5)
    started = time.monotonic()
    result = _mlchaos(sandbox, "run", str(experiment), "--journal", str(tmp_path / "j.json"))
    elapsed = time.monotonic() - started
    assert result.returncode == exit_codes.ABORTED, result.stdout + result.stderr
    assert "guard 'all-replicas-running' tripped" in result.stdout and elapsed < 30
    assert not _paused(sandbox)
    (guard_state,) = json.loads((tmp_path / "j.json").read_text())["mlchaos"]["guards"]
    assert guard_state["tripped"] and guard_state["last_value"] == 2
    print(f"guard tripped after {guard_state['tripped_at']}s; run took {elapsed:.1f}s")


def test_plan_names_the_replica_a_run_would_kill_and_kills_nothing(sandbox, tmp_path):
    before = _pids(sandbox)
    result = _mlchaos(sandbox, "plan", str(ROOT / "experiments" / "kill-one-replica.yaml"))
    assert result.returncode == exit_codes.OK, result.stdout + result.stderr
    assert "would hit process model-" in result.stdout
    assert "undo: drivers.process.actions.restart_replicas" in result.stdout
    assert "chosen from 3 eligible" in result.stdout
    assert _pids(sandbox) == before and not _paused(sandbox)


def test_mlchaos_stop_aborts_a_real_run_mid_fault(sandbox, tmp_path):
    journal = tmp_path / "journal.json"
    resume = _action("resume", "drivers.process.actions", "continue_replicas")
    proc = _start(sandbox, _write(tmp_path, [PAUSE, _hold()], [resume]), journal)
    wait_until(lambda: _paused(sandbox), timeout=30, what="a paused replica")
    try:
        stop = _mlchaos(sandbox, "stop", "--reason", "drill test", "--wait", "60")
        assert stop.returncode == exit_codes.OK, stop.stdout + stop.stderr
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == exit_codes.ABORTED, out + err
        assert not _paused(sandbox)
    finally:
        _mlchaos(sandbox, "stop", "--clear")
        if proc.poll() is None:
            proc.kill()


def test_recover_resumes_what_a_dead_run_left_and_is_idempotent(sandbox, tmp_path):
    journal = tmp_path / "journal.json"
    resume = _action("resume", "drivers.process.actions", "continue_replicas")
    proc = _start(sandbox, _write(tmp_path, [PAUSE, _hold()], [resume]), journal)
    try:
        wait_until(lambda: _paused(sandbox), timeout=30, what="a paused replica")
        wait_until(lambda: json.loads(journal.read_text())["mlchaos"].get("guardian_pid"), what="the guardian")
        os.kill(json.loads(journal.read_text())["mlchaos"]["guardian_pid"], signal.SIGKILL)  # both die
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert _paused(sandbox)
    for _ in range(2):
        result = _mlchaos(sandbox, "recover", str(journal))
        assert result.returncode == exit_codes.OK, result.stdout + result.stderr
        assert "undone  stop" in result.stdout and not _paused(sandbox)
