"""The ML fault drills, run by the real CLI against one monitored sandbox (real Prometheus,
Alertmanager and blackbox exporter): each fires its own alert for the replica it hit, nothing
else, and recovers within budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from mlchaos.engine import exit_codes
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.paths import ROOT

# drill -> the alert it must fire (any order holds: tests/integration/test_drill_order.py)
DRILLS = {"nan-outputs.yaml": "ModelNonFiniteOutputs", "stale-model.yaml": "ModelStale",
          "invalid-inputs.yaml": "ModelInvalidInputRatioHigh", "model-not-ready.yaml": "ModelNotReady",
          "failed-rollout.yaml": "ModelLoadFailed", "train-serve-skew.yaml": "ModelPredictionDrift",
          "bad-model-rollback.yaml": "ModelAccuracyLow", "canary-bad-model.yaml": "ModelAccuracyLow",
          "feedback-loss.yaml": "ModelFeedbackAbsent"}


def _env(sandbox: Sandbox) -> dict[str, str]:
    env = child_env(sandbox.state_dir)
    return env


def _quiet(sandbox: Sandbox, timeout: float = 60) -> None:
    """Wait until no alert is pending or firing (an earlier drill's alert may still be resolving)."""
    code = "from drivers.prometheus.probes import unexpected_alert_count as n; print(n([]))"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", code], env=_env(sandbox), capture_output=True, text=True,
                             timeout=30)
        if out.stdout.strip() == "0":
            return
        time.sleep(1)
    pytest.fail(f"alerts still active {timeout}s before the drill: {out.stdout} {out.stderr}")


@pytest.mark.parametrize("name", list(DRILLS))
def test_the_ml_drill_validates_and_plans_cleanly_and_changes_nothing(monitored, name):
    """A plan resolves the drill's targets for real and changes nothing."""
    monitored.up(replicas=3, timeout=90)
    path = str(ROOT / "experiments" / name)
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "validate", path], env=_env(monitored),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "plan", path], env=_env(monitored),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert "verdict: PLANNED (exit 0)" in proc.stdout and "would hit" in proc.stdout
    assert all(row.state == "ready" for row in monitored.status())


@pytest.mark.slow  # 11-46 s a drill on a 2-core machine
@pytest.mark.parametrize("name", list(DRILLS))
def test_the_ml_drill_fires_its_alert_for_the_replica_hit_and_recovers(monitored, name, tmp_path):
    monitored.up(replicas=3, timeout=90)  # heal whatever an earlier test left
    _quiet(monitored)
    journal_path = tmp_path / "journal.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(ROOT / "experiments" / name),
                           "--journal", str(journal_path)], env=_env(monitored), capture_output=True, text=True,
                          timeout=240)
    seconds = time.monotonic() - started
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    journal = json.loads(journal_path.read_text())
    kinds = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    print(f"{name}: {seconds:.1f}s wall; " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(kinds.items())))
    assert {"time_to_detect", "time_to_recover"} <= set(kinds)
    assert all(b["met"] for b in journal["mlchaos"]["budgets"])
    assert journal["mlchaos"]["recovery"]["recovered"] is True
    faults = [c for c in journal["mlchaos"]["changes"] if all(t["kind"] != "traffic" for t in c["targets"])]
    change = faults[-1]  # the client traffic some drills start is a load, not a fault
    hit = {t["details"]["instance"] for c in faults for t in c["targets"]}
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    fired = next(r["output"] for n, r in runs.items() if "-alert-fires" in n)
    assert fired["alert"] == DRILLS[name] and fired["labels"]["instance"] in hit
    assert all(row.state == "ready" for row in monitored.status())
    traffic = [c for c in journal["mlchaos"]["changes"] if c not in faults]
    if traffic:  # stopped after the recovery check, and no client ever saw a server error
        (stop,) = [r for r in journal["rollbacks"] if r["activity"]["provider"]["func"] == "stop_traffic"]
        answers = stop["output"]["stats"]["answers"]
        assert not [code for per in answers.values() for calls in per.values() for code in calls
                    if code.startswith("5")], answers
    if name == "invalid-inputs.yaml":
        answers = change["parameters"].get("answers") or runs["send-nan-inputs-to-one-replica"]["output"][
            "parameters"]["answers"]
        assert answers["invalid"] == {"400": 60} and answers["valid"] == {"200": 60}  # 120 requests, half invalid
