"""Running a suite in process with the real Runner and the test drivers: verdicts, exit-code order,
suite.json, cool-down, stop_on_failure, a window that closes mid-run, the emergency stop, reports."""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import threading
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from mlchaos.gameday.progress import ProgressConsole
from mlchaos.gameday.schedule import Calendar, Window
from mlchaos.gameday.suite import check_suite, load_gameday
from mlchaos.gameday.suite_runner import SuiteRunner, most_severe, report_formats
from mlchaos.safety import emergency_stop
from tests.support.builders import probe, py
from tests.support.manual_clock import ManualClock
from tests.support.polling import wait_until

EVERY_DAY = frozenset(range(7))
NINE_TO_TEN = Calendar(windows=(Window(EVERY_DAY, 9 * 60, 10 * 60),))


def _write(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path.name


def _held(tmp_path: Path, name: str = "held", **extra) -> str:
    return _write(tmp_path / f"{name}.json", {"title": name, "description": "d",
                                              "method": [py("say", "echo", kind="probe")], **extra})


def _failing(tmp_path: Path) -> str:
    return _write(tmp_path / "failing.json", {
        "title": "failing", "description": "d",
        "steady-state-hypothesis": {"title": "h", "probes": [probe("no", "echo", True, value=False)]},
        "method": [py("say", "echo", kind="probe")]})


def _faulty(tmp_path: Path, name: str, hold: float = 0.0, **extra) -> str:
    """A fake fault (a marker file) with its rollback; ``extra`` goes into the experiment."""
    marker = str(tmp_path / f"{name}.fault")
    return _write(tmp_path / f"{name}.json", {
        "title": name, "description": "d",
        "method": [{**py("inject", "inject_marker", path=marker, hold=hold), "timeout": 60}],
        "rollbacks": [py("remove", "remove_marker", path=marker)], **extra})


def _suite(tmp_path: Path, experiments: list, clock=None, calendar=None, console=None, **options):
    data = {"title": "suite", "experiments": experiments, **options}
    path = tmp_path / "gameday.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    gameday = load_gameday(path)
    out = io.StringIO()
    runner = SuiteRunner(gameday, check_suite(gameday), tmp_path / "out",
                         console=console or ProgressConsole(out, tty=False, plain_interval=0),
                         clock=clock, calendar=calendar)
    return runner, out


def _suite_json(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "suite.json").read_text())


def test_the_exit_code_order():
    assert most_severe([]) == 0
    assert most_severe([0, 0]) == 0
    assert most_severe([1, 0, 4]) == 4
    assert most_severe([4, 5, 1]) == 5
    assert most_severe([5, 130]) == 130
    assert most_severe([130, 143]) == 143
    assert most_severe([143, 3, 1]) == 3
    assert most_severe([2, 1]) == 2
    assert most_severe([1, 4, 2]) == 4
    # the other signals a run handles (SIGHUP 129, SIGQUIT 131, SIGUSR1 138, SIGUSR2 140) rank among the signals
    assert most_severe([5, 129]) == 129
    assert most_severe([129, 130, 131]) == 131
    assert most_severe([131, 138, 140]) == 140
    assert most_severe([140, 143]) == 143


def test_a_suite_runs_every_experiment_with_a_cool_down_and_writes_suite_json(tmp_path, capsys):
    clock = ManualClock(datetime(2025, 1, 13, 9, 0, tzinfo=UTC))
    runner, out = _suite(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")], clock=clock, cool_down=30)
    result = runner.run()
    assert result.exit_code == exit_codes.OK and result.verdict == "held"
    assert sum(clock.waits) == pytest.approx(30)
    data = _suite_json(tmp_path)
    assert data["status"] == "held" and data["exit_code"] == 0 and data["trigger"] == "now"
    assert [(e["title"], e["verdict"], e["exit_code"], e["journal"]) for e in data["experiments"]] == [
        ("one", "held", 0, "01-one.json"), ("two", "held", 0, "02-two.json")]
    for entry in data["experiments"]:
        journal = json.loads((tmp_path / "out" / entry["journal"]).read_text())
        assert journal["mlchaos"]["verdict"] == "held"
        assert entry["started"] <= entry["ended"]
    assert "cool-down: 30s before the next experiment" in out.getvalue()
    summary = capsys.readouterr().out
    assert "verdict: HELD (exit 0)  2 held, 0 did not hold, 0 skipped" in summary


def test_stop_on_failure_skips_the_rest(tmp_path):
    runner, _ = _suite(tmp_path, [_failing(tmp_path), _held(tmp_path)])
    result = runner.run()
    assert result.exit_code == exit_codes.DEVIATED
    assert [(r.verdict, r.exit_code) for r in result.records] == [("deviated", 1), ("skipped", None)]
    assert "stop_on_failure" in result.records[1].reason
    assert not (tmp_path / "out" / "02-held.json").exists()
    assert _suite_json(tmp_path)["experiments"][1]["journal"] is None


def test_without_stop_on_failure_the_suite_goes_on_and_keeps_the_most_severe_code(tmp_path):
    aborted = _faulty(tmp_path, "slow", hold=10, extensions=[{"name": "mlchaos",
                                                             "blast_radius": {"max_duration": 0.5}}])
    runner, _ = _suite(tmp_path, [_failing(tmp_path), aborted, _held(tmp_path)], stop_on_failure=False)
    result = runner.run()
    assert [r.exit_code for r in result.records] == [exit_codes.DEVIATED, exit_codes.ABORTED, exit_codes.OK]
    assert result.exit_code == exit_codes.ABORTED and result.verdict == "aborted"
    assert not (tmp_path / "slow.fault").exists(), "the aborted experiment rolled back"


def test_a_failed_rollback_always_ends_the_suite(tmp_path):
    broken = _write(tmp_path / "broken.json", {
        "title": "broken", "description": "d", "method": [py("say", "echo", kind="probe")],
        "rollbacks": [py("undo", "fail", message="cannot undo")]})
    runner, _ = _suite(tmp_path, [broken, _held(tmp_path)], stop_on_failure=False)
    result = runner.run()
    assert result.exit_code == exit_codes.ROLLBACK_FAILED
    assert result.records[1].verdict == "skipped" and "a rollback failed" in result.records[1].reason


def test_a_window_closing_mid_run_aborts_and_rolls_back_and_skips_the_rest(tmp_path):
    clock = ManualClock(datetime(2025, 1, 13, 9, 59, 50, tzinfo=UTC))
    runner, _ = _suite(tmp_path, [_faulty(tmp_path, "long", hold=20), _held(tmp_path)], clock=clock,
                       calendar=NINE_TO_TEN, stop_on_failure=False)
    marker = tmp_path / "long.fault"

    def close_the_window() -> None:
        wait_until(marker.exists, what="the fault to be injected")
        clock.set(datetime(2025, 1, 13, 10, 0, 1, tzinfo=UTC))

    threading.Thread(target=close_the_window, daemon=True).start()
    started = datetime.now(UTC)
    result = runner.run()
    took = (datetime.now(UTC) - started).total_seconds()
    assert took < 10, "aborted at once, not after the 20 s hold"
    assert not marker.exists(), "rolled back"
    first, second = result.records
    assert (first.verdict, first.exit_code) == ("aborted", exit_codes.ABORTED)
    assert first.reason == "the game day's window closed at 10:00 UTC"
    journal = json.loads((tmp_path / "out" / "01-long.json").read_text())
    assert journal["mlchaos"]["aborted"] == {"kind": "window", "message": first.reason}
    # the fault's undo, then once more after the action the abort cut short (it was still holding its fault)
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded", "succeeded"]
    assert "again, after the abandoned cut-short action" in journal["rollbacks"][1]["mlchaos"]["reason"]
    assert (second.verdict, second.reason) == ("skipped", "the game day's window closed")
    assert result.exit_code == exit_codes.ABORTED


def test_a_window_that_closes_during_the_cool_down_skips_the_rest(tmp_path):
    clock = ManualClock(datetime(2025, 1, 13, 9, 58, tzinfo=UTC))
    runner, _ = _suite(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")], clock=clock,
                       calendar=NINE_TO_TEN, cool_down=300)
    result = runner.run()
    assert [r.verdict for r in result.records] == ["held", "skipped"]
    assert "the window closed: Mon 10:0" in result.records[1].reason
    assert result.exit_code == exit_codes.ABORTED, "a suite cut short by its window did not all hold"
    assert sum(clock.waits) < 300, "the cool-down ended with the window"


def test_the_emergency_stop_between_experiments_skips_the_rest(tmp_path):
    runner, _ = _suite(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")])
    runner.on_experiment = lambda record: emergency_stop.engage("incident")
    result = runner.run()
    assert [r.verdict for r in result.records] == ["held", "skipped"]
    assert "the emergency stop is engaged" in result.records[1].reason and "incident" in result.records[1].reason
    assert result.exit_code == exit_codes.REFUSED


def test_an_experiment_that_cannot_start_counts_as_invalid(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        listening = _held(tmp_path, "listening", extensions=[{"name": "mlchaos", "notifications": {
            "listen": f"127.0.0.1:{port}", "token_file": str(tmp_path / "token")}}])
        runner, _ = _suite(tmp_path, [listening, _held(tmp_path)], stop_on_failure=False)
        result = runner.run()
    assert [(r.verdict, r.exit_code) for r in result.records] == [("invalid", 2), ("held", 0)]
    assert "cannot listen for notifications" in result.records[0].reason
    assert result.exit_code == exit_codes.INVALID


def test_a_dotenv_var_file_of_one_experiment_does_not_leak_into_the_next(tmp_path, monkeypatch):
    monkeypatch.delenv("MLCHAOS_GAMEDAY_LEAK", raising=False)
    (tmp_path / "one.env").write_text("MLCHAOS_GAMEDAY_LEAK=yes\n")
    reader = _write(tmp_path / "reader.json", {
        "title": "reader", "description": "d", "configuration": {"leak": {"type": "env", "key": "MLCHAOS_GAMEDAY_LEAK",
                                                      "default": "absent"}},
        "method": [probe("leak", "echo", "absent", value="${leak}")]})
    runner, _ = _suite(tmp_path, [{"path": _held(tmp_path), "var_files": ["one.env"]}, reader])
    result = runner.run()
    assert [r.exit_code for r in result.records] == [0, 0]
    assert "MLCHAOS_GAMEDAY_LEAK" not in os.environ


def test_reports_are_written_through_mlchaos_reports_when_it_exists(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("mlchaos.reports")

    def write_reports(journals, out_dir, formats):
        calls.append(([p.name for p in journals], out_dir, formats))
        return {"html": out_dir / "report.html"}

    fake.write_reports = write_reports
    monkeypatch.setitem(sys.modules, "mlchaos.reports", fake)
    runner, _ = _suite(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")])
    runner.report_formats = ["html"]
    result = runner.run()
    assert calls == [(["01-one.json", "02-two.json"], tmp_path / "out", ["html"])]
    assert result.reports == [str(tmp_path / "out" / "report.html")]
    assert _suite_json(tmp_path)["reports"] == result.reports


def test_the_suite_writes_the_reports_of_mlchaos_reports(tmp_path):
    runner, _ = _suite(tmp_path, [_held(tmp_path, "one"), _failing(tmp_path)], stop_on_failure=False)
    runner.report_formats = report_formats([])
    result = runner.run()
    assert {Path(p).name for p in result.reports} >= {"report.html", "junit.xml"}
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert "one" in junit and "failing" in junit
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        report_formats(["pdf"])


def test_without_mlchaos_reports_the_suite_says_so_and_still_holds(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlchaos.reports", None)  # import fails
    runner, _ = _suite(tmp_path, [_held(tmp_path)])
    runner.report_formats = ["html"]
    assert runner.run().exit_code == 0
    assert "reports (html) not written" in capsys.readouterr().out


def test_on_a_terminal_a_status_line_shows_the_step_time_and_guards_while_a_fault_is_active(tmp_path):
    value = tmp_path / "guard.txt"
    value.write_text("fine")
    guarded = _faulty(tmp_path, "guarded", hold=1.5, extensions=[{"name": "mlchaos", "guard_interval": 0.1,
                                                                 "blast_radius": {"max_duration": 60},
                                                                 "guards": [probe("calm", "read_text", "fine",
                                                                                  path=str(value))]}])
    out = io.StringIO()
    console = ProgressConsole(out, tty=True, interval=0.05)
    runner, _ = _suite(tmp_path, [guarded], console=console)
    assert runner.run().exit_code == 0
    text = out.getvalue()
    lines = [chunk for chunk in text.split("\r\033[K") if chunk.startswith("  [1/1] guarded")]
    assert lines, text
    assert any("method: action inject" in line and "s/60s max" in line and "guards: calm=fine" in line
               for line in lines), lines


def test_elsewhere_plain_progress_lines(tmp_path):
    out = io.StringIO()
    console = ProgressConsole(out, tty=False, plain_interval=0.2)
    runner, _ = _suite(tmp_path, [_faulty(tmp_path, "slowish", hold=1.0)], console=console)
    assert runner.run().exit_code == 0
    text = out.getvalue()
    assert "\r" not in text and "\033" not in text
    assert "  progress [1/1] slowish | method: action inject | " in text


def test_a_bug_in_the_runner_ends_the_suite_as_a_possible_fault_left_in_place(tmp_path, monkeypatch):
    from mlchaos.engine.runner import Runner

    def broken(self):
        raise RuntimeError("bug")

    monkeypatch.setattr(Runner, "run", broken)
    runner, _ = _suite(tmp_path, [_held(tmp_path, "one"), _held(tmp_path, "two")], stop_on_failure=False)
    result = runner.run()
    assert [(r.verdict, r.exit_code) for r in result.records] == [("error", 3), ("skipped", None)]
    assert result.records[0].reason.startswith("internal error: RuntimeError: bug; a fault may still be in place")
    assert result.exit_code == exit_codes.ROLLBACK_FAILED and _suite_json(tmp_path)["status"] == "rollback-failed"
