"""The latency drill run by the real CLI against the sandbox: a latency toxic on one replica's
proxy fires the client-side ModelEndpointLatencyHigh for that replica, within budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from mlchaos.engine import exit_codes
from tests.support.environment import child_env
from tests.support.paths import ROOT


@pytest.mark.slow  # about 16 s on a 2-core machine
def test_the_latency_drill_detects_the_slow_replica_within_budget(monitored, tmp_path):
    env = child_env(monitored.state_dir)
    journal_path = tmp_path / "journal.json"
    started = time.monotonic()
    experiment = ROOT / "experiments" / "latency-one-replica.yaml"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal_path)],
                          env=env, capture_output=True, text=True, timeout=180)
    seconds = time.monotonic() - started
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    journal = json.loads(journal_path.read_text())
    kinds = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    print(f"latency drill: {seconds:.1f}s wall, measured {kinds}")
    assert set(kinds) == {"time_to_detect", "time_to_recover"}
    assert all(b["met"] for b in journal["mlchaos"]["budgets"])
    (change,) = journal["mlchaos"]["changes"]
    target = next(r for r in monitored.recorded() if r.name == "model-1")
    assert change["driver"] == "proxy" and change["targets"][0]["name"] == "model-1"
    assert change["targets"][0]["details"]["instance"] == f"{target.host}:{target.port}"
    assert change["parameters"]["ttl"] == 180
    outputs = {entry["activity"]["name"]: entry["output"] for entry in journal["run"]}
    assert 290 <= outputs["clients-see-the-latency"] <= 1000
    fired = outputs["endpoint-latency-alert-fires-for-that-replica"]
    assert fired["labels"]["instance"] == f"{target.host}:{target.port}" and fired["labels"]["replica"] == "model-1"
    recovery = {entry["activity"]["name"]: entry["output"] for entry in journal["mlchaos"]["recovery"]["probes"]}
    assert recovery["latency-gone-after-rollback"] < 50 and recovery["no-toxic-left"] == 0
    assert "time to detect ModelEndpointLatencyHigh" in proc.stdout
