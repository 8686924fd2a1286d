"""The bundled kill-one-replica experiment, run by the real CLI against a real sandbox."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from mlchaos.engine import exit_codes
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.paths import ROOT
from tests.support.polling import wait_until

EXPERIMENT = ROOT / "experiments" / "kill-one-replica.yaml"


def _env(state: Path) -> dict[str, str]:
    env = child_env(state)
    return env


def _states(sandbox: Sandbox) -> dict[str, str]:
    return {row.replica.name: row.state for row in sandbox.status()}


def test_kill_one_replica_holds_and_the_replica_comes_back(sandbox, tmp_path):
    before = {r.name: (r.pid, r.port) for r in sandbox.replicas("model")}
    journal = tmp_path / "journal.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mlchaos", "run", str(EXPERIMENT), "--journal", str(journal)],
        env=_env(sandbox.state_dir), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    data = json.loads(journal.read_text())
    (change,) = data["mlchaos"]["changes"]
    (killed,) = [t["name"] for t in change["targets"]]
    after = {r.name: (r.pid, r.port) for r in sandbox.replicas("model")}
    assert after[killed][0] != before[killed][0], "the killed replica has a new process"
    assert after[killed][1] == before[killed][1], "and listens on its old port"
    assert _states(sandbox) == {name: "ready" for name in before}
    assert data["steady_states"]["after"]["probes"][0]["output"] == 2
    assert data["mlchaos"]["recovery"]["recovered"] is True


def test_sigterm_after_the_kill_still_restarts_the_replica(sandbox, tmp_path):
    """The hypothesis is made to wait after the kill, and the runner is stopped right then."""
    data = json.loads(json.dumps(__import__("yaml").safe_load(EXPERIMENT.read_text())))
    data["method"][0]["pauses"] = {"after": 60}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
        env=_env(sandbox.state_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_until(lambda: "dead" in _states(sandbox).values(), timeout=60, what="a replica to be killed")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_codes.TERMINATED, out + err
    assert set(_states(sandbox).values()) == {"ready"}
    assert json.loads(journal.read_text())["rollbacks"][0]["status"] == "succeeded"


def test_dry_run_selects_a_target_but_kills_nothing(sandbox, tmp_path):
    before = {r.name: r.pid for r in sandbox.replicas("model")}
    journal = tmp_path / "journal.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mlchaos", "run", str(EXPERIMENT), "--dry-run", "--journal", str(journal)],
        env=_env(sandbox.state_dir), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert "dry run" in proc.stdout
    (change,) = json.loads(journal.read_text())["mlchaos"]["changes"]
    assert change["dry_run"] is True and len(change["targets"]) == 1
    assert {r.name: r.pid for r in sandbox.replicas("model")} == before
    assert set(_states(sandbox).values()) == {"ready"}
