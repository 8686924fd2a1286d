"""The typed report built from journals of real sandbox runs (tests/fixtures/journals)."""

from __future__ import annotations

import json

import pytest

from mlchaos.errors import InvalidInput
from mlchaos.reports.reader import build_suite, exception_message, experiment_id, load_journal, read_run
from mlchaos.reports.types import FAILED, INCOMPLETE, PASSED, RunReport
from tests.support.report_helpers import HELD, journal, journal_path


def report(name: str) -> RunReport:
    return read_run(journal(name))


@pytest.mark.parametrize(("name", "experiment", "verdict", "exit_code", "outcome"), [
    ("kill-alerts-held-1", "kill-one-replica-alerts", "held", 0, PASSED),
    ("latency-held", "latency-one-replica", "held", 0, PASSED),
    ("miswritten-alert-rule-deviated", "miswritten-alert-rule", "deviated", 1, FAILED),
    ("kill-guarded-aborted", "kill-one-replica-guarded", "aborted", 5, FAILED),
    ("latency-bounded-refused", "latency-one-replica-bounded", "refused", 4, INCOMPLETE),
    ("kill-alerts-interrupted", "kill-one-replica-alerts", "interrupted", 130, INCOMPLETE),
])
def test_every_fixture_reads_with_its_real_verdict(name, experiment, verdict, exit_code, outcome):
    run = report(name)
    assert (run.experiment_id, run.verdict, run.exit_code, run.outcome) == (experiment, verdict, exit_code, outcome)
    assert run.start is not None and run.end is not None and run.duration > 0
    assert run.run_id


def test_a_held_kill_drill_shows_its_fault_alert_notification_and_recovery_in_order():
    run = report("kill-alerts-held-1")
    assert run.failures == ()
    (target,) = run.targets
    assert (target.action, target.kind, target.name) == ("kill", "process", "model-0")
    assert "pid" in target.detail and not target.dry_run
    assert [(b.kind, b.met) for b in run.budgets] == [("time_to_detect", True), ("time_to_notify", True),
                                                      ("time_to_recover", True), ("time_to_notify_resolved", True)]
    assert run.measured("time_to_detect") == pytest.approx(4.568)
    markers = {m.kind: m.at for m in run.timeline.markers}
    assert markers["fault"] < markers["detected"] < markers["resolved"]
    assert markers["fault"] < markers["notified"] < markers["notified-resolved"]
    assert markers["detected"] - markers["fault"] == pytest.approx(4.568, abs=0.01)  # measured from the fault
    alert = [s for s in run.timeline.spans if s.lane == "alert ModelServerDown"]
    assert [s.status for s in alert] == ["pending", "firing"]
    assert alert[0].start > markers["fault"] and alert[0].end == alert[1].start
    assert run.timeline.lanes[:5] == ["steady state before", "method", "steady state after", "rollbacks",
                                      "recovery"]
    assert run.blast_radius.targets == 1 and run.blast_radius.kinds[0].eligible == 3
    assert {a.labels["ml_test_score"] for a in run.fired_alerts} == {"Infrastructure"}


def test_a_guard_abort_names_the_guard_its_value_and_the_probe_it_cut_short():
    run = report("kill-guarded-aborted")
    (guard,) = run.guards
    assert (guard.name, guard.tripped, guard.last_value, guard.explanation) == (
        "every-replica-running", True, "2", "expected 3, got 2")
    assert run.aborted_kind == "guard" and "every-replica-running" in run.aborted
    assert "method: probe server-down-alert-fires-for-the-killed-replica: still running when the run stopped" \
        in run.failures
    cut = next(s for s in run.timeline.spans if s.status == "running")
    rollback = next(s for s in run.timeline.spans if s.lane == "rollbacks")
    assert cut.end == rollback.start  # it lasted until the rollbacks began, not until the end of the run
    assert any(m.kind == "guard" and m.at == pytest.approx(1.653) for m in run.timeline.markers)


def test_a_refused_run_touched_nothing_and_says_why():
    run = report("latency-bounded-refused")
    assert run.refusals == ("refused proxy add-toxic: it would affect 1 of 3 proxy(s) (33%), more than "
                            "max_fraction 0.1",)
    assert run.targets == () and run.blast_radius.bounds == ("max_fraction 0.1: nothing",)
    assert "ml-test-score:monitoring-6" in run.tags


def test_an_interrupted_run_says_by_what_and_marks_when_it_rolled_back():
    run = report("kill-alerts-interrupted")
    assert run.interrupted_by == "SIGINT"
    stop = next(m for m in run.timeline.markers if m.kind == "stop")
    assert stop.label == "interrupted by SIGINT: rolling back"
    assert stop.at == next(s.start for s in run.timeline.spans if s.lane == "rollbacks")


def test_a_failed_probe_shows_the_driver_message_without_traceback_or_module_paths():
    run = report("miswritten-alert-rule-deviated")
    failure = next(f for f in run.failures if "miswritten-alert-fires" in f)
    assert failure.startswith("method: probe miswritten-alert-fires failed: DriverError: alert "
                              "ModelServerDownMiswritten on instance")
    assert "did not fire within 12s" in failure and "Traceback" not in failure
    assert "time to detect ModelServerDownMiswritten: not measured (budget 10s)" in run.failures


def test_a_tolerance_failure_shows_the_tolerance_and_the_actual_value():
    data = journal("kill-alerts-held-1")
    probe = data["steady_states"]["after"]["probes"][1]
    probe.update(output=1, tolerance_met=False)
    run = read_run(data)
    assert "steady state after: probe enough-replicas-serving: tolerance " \
           '{"type":"range","range":[2,3]} not met, actual value 1' in run.failures


def test_suite_groups_runs_by_experiment_oldest_first():
    names = ["kill-alerts-held-3", "latency-held", "kill-alerts-held-1", "kill-alerts-held-2"]
    suite = build_suite([journal_path(n) for n in names])
    groups = suite.experiments
    assert [g.experiment_id for g in groups] == ["kill-one-replica-alerts", "latency-one-replica"]
    assert [r.run_id for r in groups[0].runs] == [report(n).run_id for n in HELD]
    assert groups[0].latest.run_id == report("kill-alerts-held-3").run_id
    assert suite.outcome_counts() == {"passed": 2, "failed": 0, "incomplete": 0}


def test_a_journal_cut_short_by_a_killed_runner_still_reports():
    data = journal("kill-alerts-held-1")
    for key in ("end", "duration"):
        data.pop(key)
    data["status"] = "running"
    data["mlchaos"].update(verdict=None, exit_code=None, budgets=None, recovery=None)
    data["rollbacks"] = []
    run = read_run(data)
    assert (run.verdict, run.outcome, run.exit_code) == ("unfinished", INCOMPLETE, None)
    assert run.timeline.duration > 0


@pytest.mark.parametrize("mangle", [
    lambda d: d.update(run="not a list", rollbacks=[None, 3, "x"]),
    lambda d: d["mlchaos"].update(changes=[{"targets": "x", "announced_at": "yesterday"}], budgets=[{"budget": "a"}]),
    lambda d: d["mlchaos"].update(measurements=[{"seconds": float("nan")}], guards=[None],
                                  notifications={"notifications": [{"received_at": "x"}]}),
    lambda d: d.update(steady_states=None, start=12, duration=-3),
    lambda d: d["experiment"].update(title=None, tags="not-a-list"),
])
def test_malformed_journal_fields_never_crash_the_report(mangle):
    data = journal("kill-alerts-held-1")
    mangle(data)
    run = read_run(data)
    assert run.verdict == "held"


def test_load_journal_names_the_file_when_it_is_not_a_journal(tmp_path):
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe")
    for name, words in (("text.json", "not a JSON journal"), ("list.json", "no 'experiment' object"),
                        ("bytes.json", "not UTF-8"), ("missing.json", "no such journal")):
        with pytest.raises(InvalidInput, match=words) as caught:
            load_journal(tmp_path / name)
        assert name in str(caught.value)
    assert load_journal(journal_path("latency-held"))["mlchaos"]["verdict"] == "held"


def test_experiment_id_is_the_file_stem_else_a_slug_of_the_title():
    assert experiment_id("experiments/kill-one-replica.yaml", "x") == "kill-one-replica"
    assert experiment_id("", "A <b>Latency</b> drill!") == "a-b-latency-b-drill"


def test_exception_message_keeps_the_last_line_and_drops_module_paths():
    traceback = ["Traceback (most recent call last):\n", '  File "x.py", line 1\n',
                 "chaoslib.exceptions.ActivityFailed: mlchaos.errors.DriverError: it broke\n"]
    assert exception_message(traceback) == "DriverError: it broke"
    assert exception_message("ValueError: x") == "ValueError: x"
    assert exception_message(None) == ""


def test_fixtures_are_real_journals_written_by_mlchaos_run():
    for path in sorted(journal_path("x").parent.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["mlchaos"]["run_id"] and data["mlchaos"]["pid"], path
        assert data["chaoslib-version"] and data["experiment"]["title"], path
