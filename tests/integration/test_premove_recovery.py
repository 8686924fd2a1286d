"""``mlchaos recover`` on journals written before the layout of issue 14 undoes their faults for real.

The journals (tests/fixtures/journals/premove/) were written by the code of commit 72ff95a. The
faults they record are applied again to a live sandbox (same replica, same proxy, same toxic
name: what those journals name), then today's ``mlchaos recover`` undoes them from the pre-move
records alone, through the function paths those records name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from drivers.process.probes import replica_states
from drivers.proxy.actions import add_toxic, disable_proxy
from drivers.proxy.probes import list_toxics, proxy_enabled
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.paths import FIXTURES, ROOT

PREMOVE = FIXTURES / "journals" / "premove"


def _recover(journal: Path, state_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], cwd=ROOT,
                          env=child_env(state_dir=state_dir), capture_output=True, text=True, timeout=120)


def _copy(name: str, tmp_path: Path) -> Path:
    copy = tmp_path / f"{name}.json"
    shutil.copyfile(PREMOVE / f"{name}.json", copy)
    return copy


def test_a_pre_move_latency_journal_removes_its_toxic(sandbox: Sandbox, tmp_path: Path):
    (change,) = [c for c in json.loads((PREMOVE / "latency-one-replica.json").read_text())["mlchaos"]["changes"]
                 if not c["dry_run"]]
    parameters = change["parameters"]
    add_toxic(change["targets"][0]["name"], parameters["type"], parameters["attributes"],
              stream=parameters["stream"], name=parameters["name"], ttl=parameters["ttl"])
    assert [t["name"] for t in list_toxics("model-1")] == ["drill-latency"]
    result = _recover(_copy("latency-one-replica", tmp_path), sandbox.state_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "undone  add-toxic on model-1 (drivers.proxy.actions.remove_toxic" in result.stdout
    assert list_toxics("model-1") == []


def test_a_pre_move_journal_of_a_killed_runner_resumes_the_replica_and_enables_the_proxy(sandbox: Sandbox,
                                                                                         tmp_path: Path):
    replica = next(r for r in sandbox.replicas("model") if r.name == "model-1")
    os.kill(replica.pid, signal.SIGSTOP)
    disable_proxy("model-1")
    try:
        assert replica_states()["model-1"] == "stopped" and proxy_enabled("model-1") is False
        journal = _copy("process-pause-killed", tmp_path)
        result = _recover(journal, sandbox.state_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "drivers.process.actions.continue_replicas" in result.stdout
        assert "drivers.proxy.actions.enable_proxy" in result.stdout
        assert replica_states()["model-1"] != "stopped"
        assert proxy_enabled("model-1") is True
        recoveries = json.loads(journal.read_text())["mlchaos"]["recoveries"]
        assert recoveries[-1]["by"] == "mlchaos recover" and recoveries[-1]["ok"] is True
    finally:
        os.kill(replica.pid, signal.SIGCONT)
