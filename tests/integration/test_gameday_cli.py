"""The real ``mlchaos gameday`` CLI in child processes with the test drivers: a suite run now, an invalid
suite, the exit-code order, a real schedule firing within seconds, two schedulers on one host, signals,
the emergency stop, windows. (In tests/integration: each test runs the CLI for seconds of real time.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes, verdicts
from tests.support.builders import probe, py
from tests.support.environment import child_env
from tests.support.polling import wait_until
from tests.support.runs import journal_so_far


@pytest.fixture
def env(state_dir):
    """Each test's own state directory (registered runs, the emergency stop, the scheduler's lock)."""
    return child_env(state_dir)


def _write(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path.name


def _held(tmp_path: Path, name: str) -> str:
    return _write(tmp_path / f"{name}.json", {"title": name, "description": "d",
                                              "method": [py("say", "echo", kind="probe")]})


def _faulty(tmp_path: Path, name: str, hold: float, **extra) -> str:
    marker = str(tmp_path / f"{name}.fault")
    return _write(tmp_path / f"{name}.json", {
        "title": name, "description": "d",
        "method": [{**py("inject", "inject_marker", path=marker, hold=hold), "timeout": 120}],
        "rollbacks": [py("remove", "remove_marker", path=marker)], **extra})


def _gameday(tmp_path: Path, experiments: list, **options) -> Path:
    path = tmp_path / "gameday.yaml"
    path.write_text(json.dumps({"title": "cli suite", "experiments": experiments, **options}), encoding="utf-8")
    return path


def _mlchaos(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _start(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlchaos", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _suite(out: Path) -> dict:
    return journal_so_far(out / "suite.json")


def test_a_suite_runs_now_and_leaves_its_journals_and_suite_json(tmp_path, env):
    path = _gameday(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")], cool_down=0.2)
    proc = _mlchaos("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite = _suite(tmp_path / "out")
    assert [(e["title"], e["verdict"]) for e in suite["experiments"]] == [("one", "held"), ("two", "held")]
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"01-one.json", "02-two.json", "suite.json",
                                                               "report.html", "junit.xml", "report.md"}
    assert [Path(p).name for p in suite["reports"]] == ["report.html", "junit.xml", "report.md"]
    assert "== experiment 2/2: two" in proc.stdout
    assert "verdict: HELD (exit 0)  2 held, 0 did not hold, 0 skipped" in proc.stdout


def test_the_default_results_directory_is_timestamped(tmp_path, env):
    path = _gameday(tmp_path, [_held(tmp_path, "one")])
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "gameday", str(path), "--no-report"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out,) = tmp_path.glob("gameday-*T*Z")
    assert _suite(out)["status"] == "held"
    assert sorted(p.name for p in out.iterdir()) == ["01-one.json", "suite.json"]


def test_an_unknown_report_format_is_refused_before_anything_runs(tmp_path, env):
    path = _gameday(tmp_path, [_held(tmp_path, "one")])
    proc = _mlchaos("gameday", str(path), "--report", "pdf", "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == exit_codes.INVALID
    assert "unknown report format 'pdf'" in proc.stderr and not (tmp_path / "out").exists()


def test_an_invalid_suite_executes_nothing(tmp_path, env):
    marker = tmp_path / "executed"
    env["MLCHAOS_TEST_MARKER"] = str(marker)
    good = _write(tmp_path / "good.json", {"title": "good", "description": "d",
                                           "method": [py("touch", "touch_marker")]})
    bad = _write(tmp_path / "bad.json", {"title": "bad", "description": "d",
                                         "method": [py("go", "typed", count="three")]})
    path = _gameday(tmp_path, [good, bad, "missing-*.json"])
    proc = _mlchaos("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == exit_codes.INVALID
    assert f"error: {path}:1: /experiments/2: glob 'missing-*.json' matches no experiment file" in proc.stderr
    assert f"error: {tmp_path / 'bad.json'}:1: /method/0/provider/arguments/count: " in proc.stderr
    assert "2 problems found; nothing was executed." in proc.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_the_suite_exits_with_the_most_severe_code(tmp_path, env):
    failing = _write(tmp_path / "failing.json", {"title": "failing", "description": "d", "method": [
        probe("no", "echo", True, value=False)]})
    bounded = [{"name": "mlchaos", "blast_radius": {"max_duration": 0.5}}]
    aborted = _faulty(tmp_path, "slow", hold=10, extensions=bounded)
    path = _gameday(tmp_path, [failing, aborted, _held(tmp_path, "fine")], stop_on_failure=False)
    proc = _mlchaos("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == exit_codes.ABORTED, proc.stdout + proc.stderr
    assert [e["exit_code"] for e in _suite(tmp_path / "out")["experiments"]] == [1, 5, 0]
    assert "verdict: ABORTED (exit 5)  1 held, 2 did not hold, 0 skipped" in proc.stdout


def test_a_real_schedule_fires_within_seconds(tmp_path, env):
    path = _gameday(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")], cool_down=0.2)
    started = time.monotonic()
    proc = _mlchaos("gameday", str(path), "--schedule", "*/2 * * * * *", "--max-runs", "2",
                    "--out", str(tmp_path / "runs"), env=env)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outs = sorted((tmp_path / "runs").iterdir())
    assert len(outs) == 2
    for out in outs:
        suite = _suite(out)
        assert suite["status"] == "held" and suite["trigger"].startswith("schedule '*/2 * * * * *' at ")
        assert int(out.name[-3:-1]) % 2 == 0, "fired on an even second"
    assert proc.stdout.count("scheduler: run at ") == 2
    print(f"two scheduled runs of a 2-experiment suite in {took:.1f}s")
    assert took < 30


def test_two_schedulers_on_one_host_never_run_the_suite_twice_at_once(tmp_path, env):
    path = _gameday(tmp_path, [_faulty(tmp_path, "hold", hold=3)])
    args = ("gameday", str(path), "--schedule", "*/2 * * * * *", "--max-runs", "1")
    first = _start(*args, "--out", str(tmp_path / "a"), env=env)
    second = _start(*args, "--out", str(tmp_path / "b"), env=env)
    outputs = [p.communicate(timeout=60) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert "not started: its previous run is still going (pid " in outputs[0][0] + outputs[1][0]
    spans = []
    for folder in ("a", "b"):
        (out,) = (tmp_path / folder).iterdir()
        suite = _suite(out)
        assert suite["status"] == "held"
        spans.append((suite["started"], suite["ended"]))
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert a_end <= b_start, f"the runs overlapped: {spans}"


def test_sigterm_stops_a_scheduler_mid_experiment_after_the_rollback(tmp_path, env):
    path = _gameday(tmp_path, [_faulty(tmp_path, "long", hold=60), _held(tmp_path, "next")])
    proc = _start("gameday", str(path), "--schedule", "* * * * * *", "--out", str(tmp_path / "runs"), env=env)
    wait_until((tmp_path / "long.fault").exists, timeout=30, what="the fault to be injected")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.TERMINATED, out + err
    assert not (tmp_path / "long.fault").exists(), "rolled back"
    (run,) = (tmp_path / "runs").iterdir()
    suite = _suite(run)
    assert [(e["verdict"], e["exit_code"]) for e in suite["experiments"]] == [("interrupted", 143),
                                                                              ("skipped", None)]
    assert suite["exit_code"] == 143
    assert "scheduler: stopped (SIGTERM received during an experiment)" in out


def test_a_sighup_mid_experiment_rolls_back_and_stops_the_suite(tmp_path, env):
    """SIGHUP (and SIGQUIT, SIGUSR2) is handled by the run like SIGTERM: the game day must stop after it too."""
    path = _gameday(tmp_path, [_faulty(tmp_path, "long", hold=60), _held(tmp_path, "next")])
    proc = _start("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    wait_until((tmp_path / "long.fault").exists, timeout=30, what="the fault to be injected")
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.HANGUP, out + err
    assert not (tmp_path / "long.fault").exists(), "rolled back"
    suite = _suite(tmp_path / "out")
    assert [(e["verdict"], e["exit_code"]) for e in suite["experiments"]] == [("interrupted", 129),
                                                                              ("skipped", None)]
    assert suite["stopped_by"] == "stopped: SIGHUP received during an experiment"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2])
def test_a_signal_during_the_cool_down_skips_the_rest_and_finishes_suite_json(tmp_path, env, signum):
    """Between experiments no fault is in place, but the suite must still end cleanly: every signal that
    interrupts a run stops the game day there too (before, SIGHUP, SIGQUIT and SIGUSR2 killed it)."""
    path = _gameday(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")], cool_down=60)
    proc = _start("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    wait_until(lambda: _suite(tmp_path / "out").get("experiments", [{}])[0].get("verdict") == "held",
               what="the first experiment to end")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == verdicts.SIGNAL_EXIT[signum], out + err
    suite = _suite(tmp_path / "out")
    assert [e["verdict"] for e in suite["experiments"]] == ["held", "skipped"]
    assert suite["stopped_by"] == f"stopped: {signal.Signals(signum).name} received"


def test_mlchaos_stop_aborts_the_running_experiment_and_the_rest_of_the_suite(tmp_path, env):
    path = _gameday(tmp_path, [_faulty(tmp_path, "long", hold=60), _held(tmp_path, "next")])
    proc = _start("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    wait_until((tmp_path / "long.fault").exists, timeout=30, what="the fault to be injected")
    stop = _mlchaos("stop", "--reason", "incident", "--wait", "30", env=env)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.ABORTED, out + err
    assert not (tmp_path / "long.fault").exists()
    experiments = _suite(tmp_path / "out")["experiments"]
    assert [(e["verdict"], e["exit_code"]) for e in experiments] == [("aborted", 5), ("skipped", None)]
    assert "incident" in experiments[1]["reason"]
    assert _mlchaos("stop", "--clear", env=env).returncode == 0


def test_a_game_day_that_is_already_running_is_refused(tmp_path, env):
    path = _gameday(tmp_path, [_faulty(tmp_path, "long", hold=60)])
    proc = _start("gameday", str(path), "--out", str(tmp_path / "first"), env=env)
    try:
        wait_until((tmp_path / "long.fault").exists, timeout=30, what="the fault to be injected")
        second = _mlchaos("gameday", str(path), "--out", str(tmp_path / "second"), env=env)
        assert second.returncode == exit_codes.REFUSED
        assert f"refused: game day {path}: its previous run is still going (pid {proc.pid}, since" in second.stderr
        assert not (tmp_path / "second").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert not (tmp_path / "long.fault").exists()


def test_outside_its_window_a_game_day_does_not_start_unless_told(tmp_path, env):
    today = datetime.now(UTC).date().isoformat()
    path = _gameday(tmp_path, [_held(tmp_path, "one")], schedule={"exclude": [{"date": today, "reason": "freeze"}]})
    proc = _mlchaos("gameday", str(path), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0
    assert f"game day not started: {today} is excluded: {today} (freeze)" in proc.stdout
    assert not (tmp_path / "out").exists()
    proc = _mlchaos("gameday", str(path), "--out", str(tmp_path / "out"), "--ignore-windows", env=env)
    assert proc.returncode == 0 and _suite(tmp_path / "out")["status"] == "held"


def test_check_validates_and_shows_the_next_fire_times(tmp_path, env):
    path = _gameday(tmp_path, [{"path": _held(tmp_path, "one"), "vars": {"word": "x"}}], schedule={
        "cron": "0 10 * * mon-thu", "timezone": "Europe/Berlin",
        "windows": [{"days": ["mon", "tue", "wed"], "start": "09:00", "end": "16:00"}]})
    proc = _mlchaos("gameday", str(path), "--check", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"ok: {path}: cli suite"
    assert "vars: word='x'" in lines[1]
    assert "  window: mon,tue,wed 09:00-16:00" in lines
    fires = [line for line in lines if line.startswith("    20")]
    assert len(fires) == 5 and all("10:00:00 CE" in f for f in fires)
    assert any(f.endswith("skipped: ") is False and "Thu 10:00 Europe/Berlin is outside its windows" in f
               for f in fires)
    assert not list(tmp_path.glob("gameday-*"))


def test_a_schedule_needs_a_cron_expression(tmp_path, env):
    path = _gameday(tmp_path, [_held(tmp_path, "one")])
    proc = _mlchaos("gameday", str(path), "--schedule", env=env)
    assert proc.returncode == exit_codes.INVALID
    assert "no cron expression: give one with --schedule CRON or as schedule.cron" in proc.stderr
    proc = _mlchaos("gameday", str(path), "--schedule", "61 * * * *", env=env)
    assert proc.returncode == exit_codes.INVALID and "invalid cron expression" in proc.stderr


def test_ctrl_c_stops_an_idle_scheduler_at_once(tmp_path, env):
    path = _gameday(tmp_path, [_held(tmp_path, "one")])
    proc = _start("gameday", str(path), "--schedule", "0 0 1 1 *", "--out", str(tmp_path / "runs"), env=env)
    line = proc.stdout.readline()
    assert line.startswith("scheduler: '0 0 1 1 *' (UTC); next run "), line
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert time.monotonic() - started < 5
    assert "scheduler: stopped (SIGINT received)" in out
    assert not (tmp_path / "runs").exists()
