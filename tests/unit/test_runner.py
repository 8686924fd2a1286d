"""The runner's guarantees, in process, with the test drivers of tests/support."""

from __future__ import annotations

import io
import json
import stat
import time
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes, summary
from mlchaos.engine.console import Console
from mlchaos.engine.runner import Runner
from mlchaos.errors import InvalidInput
from mlchaos.experiment.loader import load_document
from mlchaos.experiment.models import build_experiment
from mlchaos.experiment.variables import Variables
from mlchaos.journal.redaction import Redactor
from mlchaos.journal.writer import Journal
from tests.support.bad_experiments import valid
from tests.support.builders import probe, py


def test_a_held_hypothesis_exits_zero_with_a_complete_journal(run_experiment):
    result, journal, out = run_experiment(valid())
    assert (result.exit_code, result.verdict, journal["status"]) == (exit_codes.OK, "held", "completed")
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    assert [r["status"] for r in journal["run"]] == ["succeeded"]
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    assert journal["mlchaos"]["exit_code"] == 0
    assert "ok   probe  ok" in out


def test_deviation_before_skips_the_method_but_runs_rollbacks(run_experiment, tmp_path):
    log = tmp_path / "rollback.log"
    data = valid()
    data["steady-state-hypothesis"]["probes"] = [probe("two", "echo", [2, 3], value=1)]
    data["method"] = [py("must-not-run", "append_line", path=str(tmp_path / "method.log"), text="ran")]
    data["rollbacks"] = [py("undo", "append_line", path=str(log), text="rolled back")]
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.DEVIATED and result.deviated
    assert not (tmp_path / "method.log").exists()
    assert log.read_text() == "rolled back\n"
    assert "expected a value in [2, 3], got 1" in out


def test_deviation_after_the_method_still_rolls_back(run_experiment, tmp_path):
    state = tmp_path / "state"
    log = tmp_path / "rollback.log"
    data = valid()
    data["steady-state-hypothesis"]["probes"] = [probe("no-marker", "echo", True, value=True)]
    data["method"] = [py("break", "inject_marker", path=str(state))]
    data["rollbacks"] = [py("repair", "remove_marker", path=str(state)),
                         py("log", "append_line", path=str(log), text="done")]
    # the after-hypothesis fails because a probe raises (as a killed server would)
    data["steady-state-hypothesis"]["probes"].append(probe("raises", "fail", True, message="connection refused"))
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.DEVIATED
    assert not state.exists() and log.read_text() == "done\n"
    assert "connection refused" in out


def test_a_raising_action_fails_the_run_and_rollbacks_run(run_experiment, tmp_path):
    log = tmp_path / "rollback.log"
    data = valid()
    data["method"] = [py("explode", "fail", message="driver exploded")]
    data["rollbacks"] = [py("log", "append_line", path=str(log), text="x")]
    result, journal, _ = run_experiment(data)
    assert (result.exit_code, result.verdict, journal["status"]) == (1, "activity-failed", "failed")
    assert journal["run"][0]["status"] == "failed"
    assert "driver exploded" in "".join(journal["run"][0]["exception"])
    assert log.exists()


def test_python_activity_timeout_is_enforced(run_experiment):
    data = valid()
    data["method"] = [{**py("hangs", "sleep", seconds=30), "timeout": 0.3}]
    started = time.monotonic()
    result, journal, out = run_experiment(data)
    assert time.monotonic() - started < 10
    assert journal["run"][0]["status"] == "failed"
    assert "timed out after 0.3s" in out and result.exit_code == 1


def test_default_timeout_comes_from_the_mlchaos_extension(run_experiment):
    data = valid()
    data["method"] = [py("hangs", "sleep", seconds=30)]
    data["extensions"] = [{"name": "mlchaos", "activity_timeout": 0.2}]
    result, journal, out = run_experiment(data)
    assert "timed out after 0.2s" in out


def test_a_failed_rollback_exits_three_and_is_named(run_experiment):
    data = valid()
    data["rollbacks"] = [py("cannot-undo", "fail", message="nope")]
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.ROLLBACK_FAILED
    assert journal["mlchaos"]["rollbacks_left_undone"] == ["cannot-undo"]


def test_secrets_never_reach_the_journal_or_the_output(run_experiment):
    data = valid()
    data["secrets"] = {"auth": {"token": "hunter2-very-secret"}}
    data["method"] = [{**py("use", "read_secret", token="${token}")}]
    data["method"].append(py("fails-with-secret", "fail", message="bad token ${token}"))
    result, journal, out = run_experiment(data)
    text = json.dumps(journal)
    assert "hunter2-very-secret" not in text and "hunter2-very-secret" not in out
    assert journal["run"][0]["output"] == "token was ***"
    assert journal["experiment"]["secrets"] == {"auth": {"token": "***"}}


def test_the_experiment_is_never_mutated_and_two_runs_behave_the_same(write_experiment, tmp_path):
    data = valid()
    data["configuration"] = {"limit": 1}
    data["steady-state-hypothesis"]["probes"] = [
        probe("two", "echo", {"type": "probe", "name": "gt1", "provider": {
            "type": "python", "module": "testdrivers", "func": "greater_than_one"}}, value=2),
    ]
    data["method"] = [py("echo", "echo", value="${limit}")]
    experiment = build_experiment(load_document(write_experiment(data)))
    before = json.dumps(experiment.raw, sort_keys=True)
    results = []
    for index in range(2):
        path = tmp_path / f"j{index}.json"
        result = Runner(experiment, None, path, Console(io.StringIO(), tty=False)).run()
        journal = json.loads(path.read_text())
        results.append((result.exit_code, [r["output"] for r in journal["run"]]))
    assert json.dumps(experiment.raw, sort_keys=True) == before
    assert results[0] == results[1] == (0, [1])


def test_var_overrides_configuration(run_experiment):
    data = valid()
    data["configuration"] = {"value": "from-file"}
    data["method"] = [py("echo", "echo", value="${value}")]
    result, journal, _ = run_experiment(data, Variables(configuration={"value": "from-cli"}))
    assert journal["run"][0]["output"] == "from-cli"


def test_recovery_probes_run_after_rollbacks(run_experiment, tmp_path):
    state = tmp_path / "state"
    data = valid()
    data["method"] = [py("break", "inject_marker", path=str(state))]
    data["rollbacks"] = []
    data["extensions"] = [{"name": "mlchaos", "recovery": [probe("repaired", "echo", False, value=True)]}]
    result, journal, out = run_experiment(data)
    assert result.exit_code == 1
    assert journal["mlchaos"]["recovery"]["recovered"] is False
    assert "did not return to its steady state" in " ".join(result.failures)


def test_dry_run_runs_probes_but_not_actions(run_experiment, tmp_path):
    target = tmp_path / "touched"
    data = valid()
    data["method"] = [py("write", "append_line", path=str(target), text="x")]
    data["rollbacks"] = [py("write-too", "append_line", path=str(target), text="y")]
    result, journal, _ = run_experiment(data, dry_run=True)
    assert result.exit_code == 0
    assert not target.exists()
    assert journal["steady_states"]["before"]["steady_state_met"] is True


def test_background_activities_are_joined_and_recorded(run_experiment):
    data = valid()
    data["method"] = [{**py("slow", "sleep", seconds=0.3), "background": True}, py("quick", "echo", value=1)]
    result, journal, _ = run_experiment(data)
    assert result.exit_code == 0
    assert {r["activity"]["name"]: r["status"] for r in journal["run"]} == {"slow": "succeeded",
                                                                            "quick": "succeeded"}


def test_a_tolerance_gets_only_what_is_left_of_its_probes_timeout(run_experiment):
    """The probe takes 1 s of its 1.5 s; a tolerance probe that needs 1 s more is cut off, not given 1.5 s."""
    data = valid()
    data["method"] = [{**py("slow", "sleep", kind="probe", seconds=1.0), "timeout": 1.5,
                       "tolerance": {"type": "probe", "name": "accepts-slowly",
                                     "provider": {"type": "python", "module": "testdrivers", "func": "slow_accept",
                                                  "arguments": {"seconds": 1.0}}}}]
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.DEVIATED
    assert journal["run"][0]["tolerance_met"] is False
    assert "tolerance probe failed on 1.0: timed out after 0." in out


def test_a_finished_journal_never_holds_a_running_activity(tmp_path):
    journal = Journal(tmp_path / "journal.json", {"title": "t"}, tmp_path / "experiment.json", Redactor())
    start = "2026-01-01T00:00:00+00:00"
    journal.data["run"] = [{"activity": {"name": "bg"}, "status": "running", "start": start},
                           {"activity": {"name": "done"}, "status": "succeeded", "start": start, "end": start}]
    journal.data["steady_states"]["before"] = {"probes": [{"activity": {"name": "p"}, "status": "running",
                                                           "start": start}]}
    journal.extra["recovery"] = {"probes": [{"activity": {"name": "r"}, "status": "running"}]}
    journal.finish("interrupted", False, "interrupted", 143)
    data = json.loads((tmp_path / "journal.json").read_text())
    entries = [*data["run"], *data["steady_states"]["before"]["probes"], *data["mlchaos"]["recovery"]["probes"]]
    assert [e["status"] for e in entries] == ["interrupted", "succeeded", "interrupted", "interrupted"]
    closed = [e for e in entries if e["status"] == "interrupted"]
    assert all(e["end"] == data["end"] and e["duration"] >= 0 for e in closed)
    assert all("still running when the run finished (interrupted)" in e["exception"][0] for e in closed)


def test_pauses_are_honoured(run_experiment):
    data = valid()
    data["method"] = [{**py("a", "echo"), "pauses": {"after": 0.3}}]
    started = time.monotonic()
    run_experiment(data)
    assert time.monotonic() - started >= 0.3


def test_missing_env_configuration_at_run_time_is_invalid_input(write_experiment, monkeypatch, tmp_path):
    monkeypatch.setenv("MLCHAOS_TEST_TEMP", "1")
    data = valid()
    data["configuration"] = {"x": {"type": "env", "key": "MLCHAOS_TEST_TEMP"}}
    experiment = build_experiment(load_document(write_experiment(data)))
    monkeypatch.delenv("MLCHAOS_TEST_TEMP")
    with pytest.raises(InvalidInput, match="MLCHAOS_TEST_TEMP"):
        Runner(experiment, None, tmp_path / "j.json", Console(io.StringIO(), tty=False)).run()
    assert not (tmp_path / "j.json").exists()


def _budget_experiment(seconds, budget):
    data = valid()
    data["method"] = [py("detect", "measured", what="time_to_detect", alert="ModelServerDown", seconds=seconds)]
    data["extensions"] = [{"name": "mlchaos", "budgets": [{"alert": "ModelServerDown", **budget}]}]
    return data


def test_a_measurement_within_its_budget_holds(run_experiment):
    result, journal, _ = run_experiment(_budget_experiment(4.2, {"detect": 30}))
    assert result.exit_code == 0
    assert journal["mlchaos"]["measurements"] == [
        {"kind": "time_to_detect", "alert": "ModelServerDown", "seconds": 4.2, "activity": "detect"}]
    assert journal["mlchaos"]["budgets"][0]["met"] is True


def test_the_journal_and_the_summary_show_a_measurement_beside_its_floor(run_experiment, capsys):
    data = _budget_experiment(4.2, {"detect": 30})
    data["method"][0]["provider"]["arguments"]["beside"] = {
        "polled": 4.61, "method": "prometheus timestamps", "floor": 5.0,
        "floor_text": "scrape 1s + evaluation 1s + for 3s"}
    data["method"].append(py("recover", "measured", what="time_to_recover", alert="ModelServerDown", seconds=9.5,
                             beside={"polled": 9.5, "method": "polled", "note": "Prometheus gave no activeAt"}))
    result, journal, _ = run_experiment(data)
    capsys.readouterr()
    summary.print_summary(result)
    out = capsys.readouterr().out
    assert result.exit_code == 0
    assert journal["mlchaos"]["measurements"] == [
        {"kind": "time_to_detect", "alert": "ModelServerDown", "seconds": 4.2, "activity": "detect", "polled": 4.61,
         "method": "prometheus timestamps", "floor": 5.0, "floor_text": "scrape 1s + evaluation 1s + for 3s",
         "excess": -0.8},
        {"kind": "time_to_recover", "alert": "ModelServerDown", "seconds": 9.5, "activity": "recover", "polled": 9.5,
         "method": "polled", "note": "Prometheus gave no activeAt"}]
    assert ("ok   time to detect ModelServerDown: 4.2s within the budget of 30s [floor 5s (scrape 1s + "
            "evaluation 1s + for 3s), -0.8s over it; Prometheus' timestamps; polled 4.6s]") in out
    assert "  time to recover ModelServerDown: 9.5s [polled: Prometheus gave no activeAt]" in out


def test_a_missed_budget_fails_the_verdict(run_experiment):
    result, journal, _ = run_experiment(_budget_experiment(42.0, {"detect": 30}))
    assert (result.exit_code, result.verdict) == (exit_codes.DEVIATED, "deviated")
    assert "time to detect ModelServerDown: 42.0s EXCEEDS the budget of 30s" in result.failures


def test_a_budget_nobody_measured_fails_the_verdict(run_experiment):
    result, _, _ = run_experiment(_budget_experiment(1.0, {"detect": 30, "recover": 60}))
    assert result.exit_code == exit_codes.DEVIATED
    assert any("time to recover ModelServerDown: not measured" in f for f in result.failures)


def test_a_method_probe_with_a_tolerance_is_checked(run_experiment):
    data = valid()
    data["method"] = [probe("must-be-two", "echo", 2, value=3)]
    result, journal, out = run_experiment(data)
    assert result.exit_code == exit_codes.DEVIATED
    assert journal["run"][0]["tolerance_met"] is False
    assert "expected 2, got 3" in out


def test_an_internal_error_still_runs_the_rollbacks(write_experiment, tmp_path, monkeypatch):
    log = tmp_path / "rollback.log"
    data = valid()
    data["rollbacks"] = [py("log", "append_line", path=str(log), text="rolled back")]
    experiment = build_experiment(load_document(write_experiment(data)))

    def broken(self, when):
        raise RuntimeError("a bug in the runner")

    monkeypatch.setattr(Runner, "_run_hypothesis", broken)
    result = Runner(experiment, None, tmp_path / "j.json", Console(io.StringIO(), tty=False)).run()
    assert log.read_text() == "rolled back\n"
    assert result.exit_code == exit_codes.DEVIATED
    assert "internal error during the start of the run: RuntimeError: a bug in the runner" in result.failures[0]


def test_a_closed_output_stream_does_not_stop_the_run(write_experiment, tmp_path):
    log = tmp_path / "rollback.log"
    data = valid()
    data["rollbacks"] = [py("log", "append_line", path=str(log), text="rolled back")]
    experiment = build_experiment(load_document(write_experiment(data)))
    stream = io.StringIO()
    stream.close()
    result = Runner(experiment, None, tmp_path / "j.json", Console(stream, tty=False)).run()
    assert result.exit_code == 0 and log.exists()


def test_env_file_variables_resolve_configuration_without_leaking_into_the_process(write_experiment, monkeypatch):
    import os

    from mlchaos.experiment.variables import resolve_values

    monkeypatch.setenv("MLCHAOS_TEST_KEPT", "before")
    data = valid()
    data["configuration"] = {"url": {"type": "env", "key": "MLCHAOS_TEST_FROM_DOTENV"},
                             "kept": {"type": "env", "key": "MLCHAOS_TEST_KEPT"}}
    experiment = build_experiment(load_document(write_experiment(data)))
    variables = Variables(environment={"MLCHAOS_TEST_FROM_DOTENV": "http://x", "MLCHAOS_TEST_KEPT": "dotenv"})
    configuration, _ = resolve_values(experiment, variables)
    assert configuration["url"] == "http://x" and configuration["kept"] == "dotenv"
    assert "MLCHAOS_TEST_FROM_DOTENV" not in os.environ and os.environ["MLCHAOS_TEST_KEPT"] == "before"


class _ListenTarget:
    """A named notification listener: where it says, or refused with a reason."""

    def __init__(self, address: str | None, token_file: Path | None = None):
        self._address, self._token_file = address, token_file

    def preflight(self) -> list[str]:
        return []

    def address(self) -> str:
        if self._address is None:
            raise InvalidInput("its monitoring stack is not running")
        return self._address

    def token_file(self) -> Path:
        assert self._token_file is not None
        return self._token_file


def test_a_named_listener_is_resolved_by_the_runner_or_refuses_the_run_before_anything(
        write_experiment, tmp_path):
    data = valid()
    data["method"] = [py("must-not-run", "append_line", path=str(tmp_path / "method.log"), text="ran")]
    data["extensions"] = [{"name": "mlchaos", "notifications": {"listen": "sandbox"}}]
    experiment = build_experiment(load_document(write_experiment(data)))
    with pytest.raises(InvalidInput, match="notifications: listen: sandbox: its monitoring stack is not running"):
        Runner(experiment, None, tmp_path / "j.json", Console(io.StringIO(), tty=False),
               listen_targets={"sandbox": _ListenTarget(None)}).run()
    with pytest.raises(InvalidInput, match="notifications: listen: sandbox: no such listen target here"):
        Runner(experiment, None, tmp_path / "j.json", Console(io.StringIO(), tty=False)).run()
    assert not (tmp_path / "j.json").exists() and not (tmp_path / "method.log").exists()

    out, token = io.StringIO(), tmp_path / "webhook.token"
    result = Runner(experiment, None, tmp_path / "j.json", Console(out, tty=False),
                    listen_targets={"sandbox": _ListenTarget("127.0.0.1:0", token)}).run()
    assert result.exit_code == exit_codes.OK
    assert "notifications: listening on http://127.0.0.1:" in out.getvalue()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) >= 32
    journal = (tmp_path / "j.json").read_text()
    assert token.read_text().strip() not in journal and json.loads(journal)["mlchaos"]["notifications"]["authenticated"]
