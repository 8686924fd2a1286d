"""The training pipeline drill, run by the real CLI against the sandbox with its real Pushgateway,
Prometheus and pusher: pausing the pusher fires ModelPipelineNotPushing, the rollback resolves it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from mlchaos.monitoring.alert_rules.parameters import SANDBOX, parse_duration
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox
from mlchaos.sandbox.pipeline import pushgateway_binary
from tests.support.components import require_component, require_monitoring
from tests.support.environment import child_env
from tests.support.paths import ROOT


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    require_monitoring()
    require_component("Pushgateway", pushgateway_binary() is not None,
                      "apt-get install prometheus-pushgateway (scripts/install-system-packages.sh)")
    sandbox = Sandbox(tmp_path_factory.mktemp("pipeline-state"))
    try:
        sandbox.up(replicas=1, timeout=90)
        yield sandbox
    finally:
        sandbox.down()


@pytest.mark.slow  # about 23 s on a 2-core machine
def test_the_pipeline_drill_detects_and_resolves_within_budget(monitored: Sandbox, tmp_path: Path) -> None:
    env = child_env(monitored.state_dir)
    journal_path = tmp_path / "journal.json"
    started = time.monotonic()
    experiment = ROOT / "experiments" / "pipeline-not-pushing.yaml"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal_path)],
                          env=env, capture_output=True, text=True, timeout=240)
    print(f"pipeline drill: {time.monotonic() - started:.1f}s wall")
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    journal = json.loads(journal_path.read_text())
    kinds = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    # the rule cannot fire before the last push is older than the sandbox's pipeline_max_age
    assert set(kinds) == {"time_to_detect", "time_to_recover"}
    assert kinds["time_to_detect"] >= parse_duration(SANDBOX.pipeline_max_age)
    assert all(b["met"] for b in journal["mlchaos"]["budgets"])
    (change,) = journal["mlchaos"]["changes"]
    pusher = change["targets"][0]["details"]["pid"]
    assert change["driver"] == "pipeline" and pusher == monitored.pipeline().pusher_pid()
    assert procs.proc_state(pusher) not in ("T", "t"), "the rollback resumed the pusher"
    assert journal["rollbacks"][0]["status"] == "succeeded"


def test_stop_pushes_dry_run_and_resume_is_idempotent(monitored: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from drivers.pipeline.actions import resume_pushes, stop_pushes

    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(monitored.state_dir))
    pusher = monitored.pipeline().pusher_pid()
    record = stop_pushes(ttl=60, dry_run=True)
    assert record["dry_run"] and procs.proc_state(pusher) not in ("T", "t")
    assert resume_pushes(pid=pusher) == {"resumed": [], "already": [pusher], "gone": []}
    record = stop_pushes(ttl=60)
    assert procs.proc_state(pusher) in ("T", "t")
    assert resume_pushes(**record["undo"]["arguments"])["resumed"] == [pusher]
    assert resume_pushes(**record["undo"]["arguments"])["already"] == [pusher]
    watchdog, deadline = record["undo"]["arguments"]["watchdog_pid"], time.monotonic() + 10
    while procs.proc_state(watchdog) not in (None, "Z"):  # it was sent SIGTERM: it ends
        assert time.monotonic() < deadline, "the watchdog was not stopped"
        time.sleep(0.05)
