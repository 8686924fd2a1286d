"""The runner's safety: refused plans, guards, max_duration, the emergency stop, the safety net.

In process with the test drivers of tests/support (fake faults that create a marker file);
the same guarantees against real sandbox processes and containers are in
tests/integration/test_safety_*.py.
"""

from __future__ import annotations

import time

from mlchaos.engine import exit_codes
from mlchaos.journal.reader import is_automatic
from mlchaos.safety import emergency_stop, run_registry
from tests.support.builders import probe, py


def experiment(tmp_path, method, rollbacks=None, **settings):
    data = {
        "title": "safety",
        "description": "a safety drill",
        "steady-state-hypothesis": {"title": "ok", "probes": [probe("ok", "echo", True, value=True)]},
        "method": method,
        "rollbacks": rollbacks if rollbacks is not None else [py("undo", "remove_marker", path=str(tmp_path / "m"))],
    }
    if settings:
        data["extensions"] = [{"name": "mlchaos", **settings}]
    return data


def hit(tmp_path, *names, population=("m0", "m1", "m2"), func="hit_targets", **extra):
    return py(f"hit-{'-'.join(names)}", func, names=list(names), marker=str(tmp_path / "m"),
              population=list(population), **extra)


def test_a_plan_over_max_targets_is_refused_before_anything_runs(run_experiment, tmp_path):
    log = tmp_path / "probe.log"
    data = experiment(tmp_path, [hit(tmp_path, "m0"), hit(tmp_path, "m1")], blast_radius={"max_targets": 1})
    data["steady-state-hypothesis"]["probes"] = [probe("ok", "append_line", "x", path=str(log), text="x")]
    result, journal, out = run_experiment(data)
    assert (result.exit_code, result.verdict, journal["status"]) == (exit_codes.REFUSED, "refused", "aborted")
    assert "2 target(s) in this run, more than max_targets 1" in result.refusals[0]
    assert not (tmp_path / "m").exists() and not log.exists()  # not even the hypothesis ran
    assert journal["run"] == [] and journal["mlchaos"]["refused"] == result.refusals
    assert "refused:" in out


def test_a_plan_within_the_bounds_runs(run_experiment, tmp_path):
    data = experiment(tmp_path, [hit(tmp_path, "m0")], blast_radius={"max_targets": 1, "max_fraction": 0.34},
                      allowed_environments=["local:*"])
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.OK, result.failures
    assert "plan: 1 target(s) within the bounds" in out
    assert journal["mlchaos"]["blast_radius"]["by_kind"]["replica"]["affected"] == ["m0"]
    assert journal["mlchaos"]["blast_radius"]["by_kind"]["replica"]["eligible"] == 3


def test_a_change_that_cannot_be_planned_is_checked_when_announced(run_experiment, tmp_path):
    """The second fault has no dry run: it is refused when it announces itself, before it acts,
    and the first fault is rolled back."""
    data = experiment(tmp_path, [hit(tmp_path, "m0"), hit(tmp_path, "m1", func="hit_targets_unplanned"),
                                 py("after", "append_line", path=str(tmp_path / "after"), text="x")],
                      blast_radius={"max_fraction": 0.34})
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.REFUSED
    assert "cannot be resolved in advance" in out
    assert (tmp_path / "m").exists() is False  # rolled back
    assert [c["targets"][0]["name"] for c in journal["mlchaos"]["changes"]] == ["m0"]  # m1 never recorded
    assert not (tmp_path / "after").exists()  # the run stopped at the refusal


def test_environment_not_allowed_is_refused(run_experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHAOS_ALLOWED_ENVIRONMENTS", "docker:unix:///var/run/docker.sock")
    result, _, _ = run_experiment(experiment(tmp_path, [hit(tmp_path, "m0")]))
    assert result.exit_code == exit_codes.REFUSED
    assert "'local:test' is not allowed by MLCHAOS_ALLOWED_ENVIRONMENTS" in result.refusals[0]
    assert not (tmp_path / "m").exists()


def test_pauses_longer_than_max_duration_are_refused(run_experiment, tmp_path):
    action = {**hit(tmp_path, "m0"), "pauses": {"after": 30}}
    result, _, _ = run_experiment(experiment(tmp_path, [action], blast_radius={"max_duration": 10}))
    assert result.exit_code == exit_codes.REFUSED
    assert "pauses alone last 30s, more than max_duration 10s" in result.refusals[0]


def test_a_tripped_guard_aborts_at_once_and_rolls_back(run_experiment, tmp_path):
    health = tmp_path / "health"
    health.write_text("ok")
    method = [hit(tmp_path, "m0"), py("degrade", "write_text", path=str(health), text="degraded"),
              py("long-wait", "sleep", seconds=20)]
    data = experiment(tmp_path, method, guard_interval=0.2,
                      guards=[probe("others-healthy", "read_text", "ok", path=str(health))])
    started = time.monotonic()
    result, journal, out = run_experiment(data)
    elapsed = time.monotonic() - started
    assert (result.exit_code, result.verdict) == (exit_codes.ABORTED, "aborted")
    assert elapsed < 10, f"the guard should abort the 20 s wait at once, took {elapsed:.1f}s"
    assert not (tmp_path / "m").exists()
    guard = journal["mlchaos"]["guards"][0]
    assert guard["tripped"] and guard["last_value"] == "degraded" and "degraded" in guard["explanation"]
    assert journal["mlchaos"]["aborted"]["kind"] == "guard"
    assert "guard 'others-healthy' tripped" in result.abort.message


def test_guards_wait_for_the_first_fault(run_experiment, tmp_path):
    health = tmp_path / "health"
    health.write_text("bad before the fault")
    method = [py("quiet", "sleep", seconds=0.6), py("heal", "write_text", path=str(health), text="ok"),
              hit(tmp_path, "m0"), py("wait", "sleep", seconds=0.6)]
    data = experiment(tmp_path, method, guard_interval=0.1,
                      guards=[probe("healthy", "read_text", "ok", path=str(health))])
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.OK, result.failures
    assert journal["mlchaos"]["guards"][0]["checks"] >= 2


def test_max_duration_aborts_a_run_that_takes_too_long(run_experiment, tmp_path):
    data = experiment(tmp_path, [hit(tmp_path, "m0"), py("long", "sleep", seconds=20)],
                      blast_radius={"max_duration": 1.0})
    started = time.monotonic()
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.ABORTED and time.monotonic() - started < 8
    assert journal["mlchaos"]["aborted"]["kind"] == "max_duration"
    assert not (tmp_path / "m").exists()


def test_an_engaged_emergency_stop_refuses_new_runs_until_cleared(run_experiment, tmp_path):
    emergency_stop.engage("game day paused by the incident commander")
    result, journal, _ = run_experiment(experiment(tmp_path, [hit(tmp_path, "m0")]))
    assert result.exit_code == exit_codes.REFUSED
    assert "incident commander" in result.refusals[0] and "mlchaos stop --clear" in result.refusals[0]
    assert journal["run"] == [] and not (tmp_path / "m").exists()
    assert emergency_stop.clear()
    result, _, _ = run_experiment(experiment(tmp_path, [hit(tmp_path, "m0")]))
    assert result.exit_code == exit_codes.OK


def test_the_safety_net_undoes_changes_no_rollback_covered(run_experiment, tmp_path):
    result, journal, out = run_experiment(experiment(tmp_path, [hit(tmp_path, "m0")], rollbacks=[]))
    assert result.exit_code == exit_codes.OK
    assert not (tmp_path / "m").exists()
    automatic = journal["rollbacks"][0]
    assert automatic["mlchaos"] == {"automatic": True} and automatic["status"] == "succeeded"
    assert automatic["start"] <= automatic["end"] and "automatic" not in automatic  # a Chaos Toolkit entry
    assert automatic["activity"]["provider"]["func"] == "remove_marker"
    assert "automatic, from its change record" in out


def test_a_covered_change_is_not_undone_twice(run_experiment, tmp_path):
    result, journal, _ = run_experiment(experiment(tmp_path, [hit(tmp_path, "m0")]))
    assert result.exit_code == exit_codes.OK
    assert [is_automatic(r) for r in journal["rollbacks"]] == [False]


def test_the_run_is_registered_while_it_runs_and_unregistered_after(run_experiment, tmp_path):
    seen = tmp_path / "seen"
    method = [py("look", "append_line", path=str(seen), text="x")]
    result, journal, _ = run_experiment(experiment(tmp_path, method))
    assert result.exit_code == exit_codes.OK
    assert journal["mlchaos"]["run_id"]
    assert run_registry.registered() == []


def test_a_plan_evaluates_each_guard_once(run_experiment, tmp_path):
    data = experiment(tmp_path, [hit(tmp_path, "m0")],
                      guards=[probe("fine", "echo", True, value=True), probe("tripped", "echo", True, value=False)])
    result, journal, out = run_experiment(data, dry_run=True)
    assert result.exit_code == exit_codes.DEVIATED and not (tmp_path / "m").exists()
    assert [g["name"] for g in journal["mlchaos"]["guards"]] == ["fine", "tripped"]
    assert "guard 'tripped' would trip now" in " ".join(result.failures)


def test_dry_run_plans_and_checks_bounds_without_changing_anything(run_experiment, tmp_path):
    data = experiment(tmp_path, [hit(tmp_path, "m0"), hit(tmp_path, "m1")], blast_radius={"max_fraction": 0.34})
    result, journal, _ = run_experiment(data, dry_run=True)
    assert result.exit_code == exit_codes.REFUSED and result.dry_run
    assert not (tmp_path / "m").exists()
    assert [a.name for a, _ in result.planned] == ["hit-m0", "hit-m1"]  # the plan goes on past a refusal
    assert all(c["dry_run"] for c in journal["mlchaos"]["changes"])


def test_a_refused_run_that_changed_nothing_has_no_recovery_check_and_no_budget_failures(run_experiment, tmp_path):
    log = tmp_path / "recovery.log"
    data = experiment(tmp_path, [hit(tmp_path, "m0"), hit(tmp_path, "m1")], blast_radius={"max_targets": 1},
                      recovery=[probe("back", "append_line", "x", path=str(log), text="x")],
                      budgets=[{"alert": "ModelServerDown", "detect": 30}])
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.REFUSED
    assert not log.exists() and journal["mlchaos"]["recovery"] is None
    assert result.budgets == [] and all("not measured" not in f for f in result.failures)


def test_a_load_the_recovery_relies_on_is_undone_after_the_recovery_check(run_experiment, tmp_path):
    load = str(tmp_path / "load")
    data = experiment(tmp_path, [py("load", "start_load", path=load), hit(tmp_path, "m0")], rollbacks=[],
                      recovery=[probe("load-still-there", "marker_exists", True, path=load),
                                probe("fault-gone", "marker_exists", False, path=str(tmp_path / "m"))])
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.OK
    assert journal["mlchaos"]["recovery"]["recovered"] is True
    assert not (tmp_path / "load").exists()
    undone = [r["activity"]["provider"]["arguments"]["path"] for r in journal["rollbacks"] if is_automatic(r)]
    assert undone == [str(tmp_path / "m"), load]  # the fault before the recovery check, the load after it


def test_without_a_recovery_check_a_load_is_undone_with_the_other_changes(run_experiment, tmp_path):
    load = str(tmp_path / "load")
    result, _, _ = run_experiment(experiment(tmp_path, [py("load", "start_load", path=load)], rollbacks=[]))
    assert result.exit_code == exit_codes.OK and not (tmp_path / "load").exists()


def test_an_aborted_run_still_checks_recovery(run_experiment, tmp_path):
    log = tmp_path / "recovery.log"
    data = experiment(tmp_path, [hit(tmp_path, "m0"), py("long", "sleep", seconds=20)],
                      blast_radius={"max_duration": 1.0},
                      recovery=[probe("back", "append_line", "x", path=str(log), text="x")])
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.ABORTED
    assert journal["mlchaos"]["recovery"]["recovered"] is True and log.exists()


def test_the_journal_directory_is_created(write_experiment, tmp_path):
    import io

    from mlchaos.engine.console import Console
    from mlchaos.engine.runner import Runner
    from mlchaos.experiment.loader import load_document
    from mlchaos.experiment.models import build_experiment

    experiment_ = build_experiment(load_document(write_experiment(experiment(tmp_path, [hit(tmp_path, "m0")]))))
    journal = tmp_path / "new" / "dir" / "journal.json"
    result = Runner(experiment_, None, journal, Console(io.StringIO(), tty=False)).run()
    assert result.exit_code == exit_codes.OK and journal.exists()
