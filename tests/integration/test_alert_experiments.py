"""The bundled monitoring drills, run by the real CLI against the sandbox with its real
Prometheus, Alertmanager and blackbox exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.paths import ROOT


def _run(sandbox: Sandbox, name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict, float]:
    env = child_env(sandbox.state_dir)
    journal = tmp_path / "journal.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(ROOT / "experiments" / name),
                           "--journal", str(journal)], env=env, capture_output=True, text=True, timeout=180)
    return proc, json.loads(journal.read_text()), time.monotonic() - started


@pytest.mark.slow  # about 15 s on a 2-core machine
def test_the_kill_drill_detects_notifies_and_resolves_within_budget(monitored, tmp_path):
    monitored.up(replicas=3, timeout=90)  # heal whatever an earlier test left
    proc, journal, seconds = _run(monitored, "kill-one-replica-alerts.yaml", tmp_path)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    print(f"kill drill with alert verification: {seconds:.1f}s wall")
    kinds = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    assert set(kinds) == {"time_to_detect", "time_to_notify", "time_to_recover", "time_to_notify_resolved"}
    exact = {m["kind"]: m for m in journal["mlchaos"]["measurements"] if m.get("method") == "prometheus timestamps"}
    assert set(exact) == {"time_to_detect", "time_to_recover"}, journal["mlchaos"]["measurements"]
    # the sandbox profile, read from Prometheus: scrape 1s + evaluation 1s + for 3s (ModelServerDown)
    assert (exact["time_to_detect"]["floor"], exact["time_to_recover"]["floor"]) == (5.0, 2.0)
    for kind, measurement in exact.items():  # Prometheus' time is never later than what polling saw
        assert 0 < measurement["seconds"] <= measurement["polled"], (kind, measurement)
    # the receiver's clock agrees: no notification arrives before Prometheus says the alert fired (resolved)
    assert kinds["time_to_notify"] >= kinds["time_to_detect"]
    assert kinds["time_to_notify_resolved"] >= kinds["time_to_recover"]
    assert all(b["met"] for b in journal["mlchaos"]["budgets"])
    (change,) = journal["mlchaos"]["changes"]
    killed = change["targets"][0]["details"]["instance"]
    statuses = {(n["alertname"], n["status"], n["labels"].get("instance"))
                for n in journal["mlchaos"]["notifications"]["notifications"]}
    assert ("ModelServerDown", "firing", killed) in statuses
    assert ("ModelServerDown", "resolved", killed) in statuses
    assert {name for name, _, _ in statuses} == {"ModelServerDown"}, "no unrelated alert was notified"
    assert "time to detect ModelServerDown" in proc.stdout
    # delivered with the run's own token: Alertmanager read it from its credentials_file
    assert journal["mlchaos"]["notifications"]["authenticated"] is True
    assert journal["mlchaos"]["notifications"]["rejections"] == []


@pytest.mark.slow  # about 22 s on a 2-core machine
def test_a_miswritten_rule_makes_the_drill_fail(monitored, tmp_path):
    monitored.up(replicas=3, timeout=90)
    proc, journal, _ = _run(monitored, "miswritten-alert-rule.yaml", tmp_path)
    assert proc.returncode == exit_codes.DEVIATED, proc.stdout + proc.stderr
    assert "alert ModelServerDownMiswritten on instance" in proc.stdout
    assert "did not fire within 8s" in proc.stdout
    assert journal["mlchaos"]["budgets"] == [{"alert": "ModelServerDownMiswritten", "kind": "time_to_detect",
                                              "budget": 10.0, "measured": None, "met": False}]
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded", "succeeded"]
    assert not list((monitored.state_dir / "monitoring" / "rules.d").glob("*.yml")), "injected rule removed"
    assert {row.state for row in monitored.status()} == {"ready"}


@pytest.mark.slow  # about 13 s on a 2-core machine
def test_an_expired_certificate_is_refused_and_detected(monitored, tmp_path):
    monitored.up(replicas=3, timeout=90)
    proc, journal, _ = _run(monitored, "expired-certificate.yaml", tmp_path)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert runs["verifying-client-refuses-the-expired-certificate"]["output"]["reason"] == "certificate has expired"
    assert runs["presented-certificate-is-expired"]["output"] < 0
    assert runs["verifying-tls-probe-of-monitoring-fails"]["output"] == 0
    (change,) = journal["mlchaos"]["changes"]
    tls_instance = next(t["details"]["instance"] for t in change["targets"] if "instance" in t["details"])
    fired = runs["certificate-expired-alert-fires-for-the-replica"]["output"]
    assert fired["labels"]["instance"] == tls_instance
    assert {m["kind"] for m in journal["mlchaos"]["measurements"]} == {"time_to_detect", "time_to_recover"}
    assert journal["mlchaos"]["recovery"]["recovered"] is True


@pytest.mark.slow  # about 14 s on a 2-core machine
def test_a_telemetry_outage_fires_only_telemetry_absent(monitored, tmp_path):
    monitored.up(replicas=3, timeout=90)
    proc, journal, _ = _run(monitored, "telemetry-outage.yaml", tmp_path)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    fired = runs["telemetry-absent-fires-for-that-replica"]["output"]
    assert fired["labels"]["replica"] == "model-1"
    assert runs["server-down-did-not-fire"]["output"] == 0
    accuracy = [p["output"] for p in journal["steady_states"]["after"]["probes"]
                if p["activity"]["name"] == "every-replica-predicts-accurately"]
    assert accuracy and accuracy[0] >= 0.9, "model-1 kept serving correct predictions during the outage"
    assert journal["mlchaos"]["recovery"]["recovered"] is True
    toxics = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from drivers.proxy.probes import list_toxics;"
         "print(json.dumps(list_toxics('model-1-metrics')))"],
        env=child_env(monitored.state_dir),
        capture_output=True, text=True, timeout=30, check=True).stdout)
    assert toxics == [], "the rollback removed the telemetry fault"


def test_block_scrapes_refuses_an_unknown_mode():
    from drivers.telemetry.actions import block_scrapes
    from mlchaos.errors import DriverError

    with pytest.raises(DriverError, match="mode must be one of hang, reset, slow"):
        block_scrapes("model-0", mode="drop")


SANDBOX_DRILLS = ["kill-one-replica.yaml", "kill-one-replica-alerts.yaml", "latency-one-replica.yaml",
                  "telemetry-outage.yaml", "expired-certificate.yaml", "miswritten-alert-rule.yaml"]


@pytest.mark.parametrize("name", SANDBOX_DRILLS)
def test_every_sandbox_drill_plans_cleanly_and_changes_nothing(monitored, name):
    """`mlchaos plan` resolves each drill's targets and runs its probes' dry runs: exit 0, nothing touched."""
    monitored.up(replicas=3, timeout=90)
    env = child_env(monitored.state_dir)
    before = {r.name: r.pid for r in monitored.recorded()}
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "plan", str(ROOT / "experiments" / name)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert "verdict: PLANNED (exit 0)" in proc.stdout and "would hit" in proc.stdout
    assert {r.name: r.pid for r in monitored.recorded()} == before
    assert all(row.state == "ready" for row in monitored.status())
