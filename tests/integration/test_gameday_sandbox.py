"""Game days against the real sandbox (model replicas, fault proxy, Prometheus, Alertmanager, blackbox
exporter): the bundled smoke suite through the real CLI, and a window that closes while a real fault is
in place."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from tests.support.environment import child_env
from tests.support.manual_clock import ManualClock
from tests.support.paths import ROOT
from tests.support.polling import wait_until


@pytest.mark.slow  # about 30 s on a 2-core machine
def test_the_smoke_game_day_runs_two_sandbox_drills_with_a_cool_down(monitored, tmp_path):
    monitored.up(replicas=3, timeout=90)
    env = child_env(monitored.state_dir)
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "gameday",
                           str(ROOT / "experiments" / "gamedays" / "sandbox-smoke.yaml"), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=400)
    took = time.monotonic() - started
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    print(f"sandbox smoke game day (kill, 5 s cool-down, latency): {took:.1f}s wall")
    suite = json.loads((out / "suite.json").read_text())
    kill, latency = suite["experiments"]
    assert (kill["verdict"], latency["verdict"]) == ("held", "held")
    assert datetime.fromisoformat(latency["started"]) >= datetime.fromisoformat(kill["ended"]), "one after another"
    gap = (datetime.fromisoformat(latency["started"]) - datetime.fromisoformat(kill["ended"])).total_seconds()
    assert gap >= 5, "the cool-down"
    kill_journal = json.loads((out / kill["journal"]).read_text())
    (change,) = kill_journal["mlchaos"]["changes"]
    assert change["action"] == "kill" and len(change["targets"]) == 1
    latency_journal = json.loads((out / latency["journal"]).read_text())
    assert "time_to_detect" in {m["kind"] for m in latency_journal["mlchaos"]["measurements"]}
    assert {Path(p).name for p in suite["reports"]} >= {"report.html", "junit.xml"}
    assert {row.state for row in monitored.status()} == {"ready"}


def test_a_window_closing_mid_drill_aborts_it_and_removes_the_real_fault(monitored, tmp_path, monkeypatch):
    from drivers.proxy.probes import toxic_count
    from mlchaos.gameday.progress import ProgressConsole
    from mlchaos.gameday.schedule import Calendar, Window
    from mlchaos.gameday.suite import load_suite
    from mlchaos.gameday.suite_runner import SuiteRunner

    monitored.up(replicas=3, timeout=90)
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(monitored.state_dir))
    path = tmp_path / "gameday.yaml"
    path.write_text(json.dumps({"title": "window", "experiments": [
        str(ROOT / "experiments" / "latency-one-replica.yaml"), str(ROOT / "experiments" / "kill-one-replica.yaml")]}))
    gameday, checked = load_suite(path)
    clock = ManualClock(datetime(2025, 1, 13, 9, 59, tzinfo=UTC))
    calendar = Calendar(windows=(Window(frozenset(range(7)), 9 * 60, 10 * 60),))
    runner = SuiteRunner(gameday, checked, tmp_path / "out", clock=clock, calendar=calendar,
                         console=ProgressConsole(io.StringIO(), tty=False, plain_interval=0))

    def close_the_window_once_the_latency_is_in_place() -> None:
        wait_until(lambda: toxic_count("model-1") == 1, timeout=60, what="the latency toxic")
        clock.set(datetime(2025, 1, 13, 10, 0, 1, tzinfo=UTC))

    threading.Thread(target=close_the_window_once_the_latency_is_in_place, daemon=True).start()
    result = runner.run()
    latency, kill = result.records
    assert (latency.verdict, latency.exit_code) == ("aborted", exit_codes.ABORTED), latency
    assert latency.reason == "the game day's window closed at 10:00 UTC"
    assert toxic_count("model-1") == 0, "the rollback removed the latency"
    journal = json.loads((tmp_path / "out" / "01-latency-one-replica.json").read_text())
    assert journal["mlchaos"]["aborted"]["kind"] == "window"
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    assert (kill.verdict, kill.reason) == ("skipped", "the game day's window closed")
    assert result.exit_code == exit_codes.ABORTED
    assert {row.state for row in monitored.status()} == {"ready"}, "nothing was killed"
