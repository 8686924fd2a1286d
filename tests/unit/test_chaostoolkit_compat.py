"""What Chaos Toolkit accepts and mlchaos now accepts too, run for real: a provider's own timeout (enforced),
an empty method, process arguments as a string, background rollbacks, a top-level ``dry_run``; and the
warnings validation gives about them, on the command line and in the journal."""

from __future__ import annotations

import io
import json

from mlchaos.engine import exit_codes
from mlchaos.engine.console import Console
from mlchaos.engine.runner import Runner
from mlchaos.experiment.pipeline import load_checked
from tests.support.bad_experiments import valid
from tests.support.builders import py


def test_a_python_providers_own_timeout_is_enforced_when_it_is_the_smaller(run_experiment):
    data = valid()
    slow = py("slow", "sleep", seconds=3)
    slow["provider"]["timeout"] = 0.2
    data["method"] = [{**slow, "timeout": 60}]
    result, journal, _ = run_experiment(data)
    assert journal["run"][0]["status"] == "failed"
    assert "timed out after 0.2s" in journal["run"][0]["exception"][0]
    assert result.exit_code != exit_codes.OK


def test_the_activitys_timeout_wins_when_it_is_the_smaller(run_experiment):
    data = valid()
    slow = py("slow", "sleep", seconds=3)
    slow["provider"]["timeout"] = 60
    data["method"] = [{**slow, "timeout": 0.2}]
    _, journal, _ = run_experiment(data)
    assert "timed out after 0.2s" in journal["run"][0]["exception"][0]


def test_a_provider_timeout_from_the_configuration_is_resolved(run_experiment):
    data = valid()
    data["configuration"] = {"limit": 0.2}
    slow = py("slow", "sleep", seconds=3)
    slow["provider"]["timeout"] = "${limit}"
    data["method"] = [slow]
    _, journal, _ = run_experiment(data)
    assert "timed out after 0.2s" in journal["run"][0]["exception"][0]


def test_an_empty_method_checks_the_hypothesis_before_and_after(run_experiment):
    data = valid()
    data["method"] = []
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.OK
    assert journal["run"] == []
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True


def test_string_process_arguments_are_split_like_a_shell_but_no_shell_runs(run_experiment):
    data = valid()
    data["method"] = [{"type": "probe", "name": "say", "provider": {
        "type": "process", "path": "printf", "arguments": "'[%s]' 'a b' '$HOME' 'x;y' \"c d\""}}]
    _, journal, _ = run_experiment(data)
    assert journal["run"][0]["output"]["stdout"] == "[a b][$HOME][x;y][c d]"
    assert journal["run"][0]["activity"]["provider"]["arguments"].startswith("'[%s]'")  # journalled as declared


def test_mapping_process_arguments_still_run_in_order(run_experiment):
    data = valid()
    data["method"] = [{"type": "probe", "name": "say", "provider": {
        "type": "process", "path": "printf", "arguments": {"[%s]": "one"}}}]
    _, journal, _ = run_experiment(data)
    assert journal["run"][0]["output"]["stdout"] == "[one]"


def test_background_rollbacks_run_in_order(run_experiment, tmp_path):
    log = tmp_path / "order.log"
    data = valid()
    first = {**py("first", "append_line", path=str(log), text="1"), "background": True}
    data["rollbacks"] = [first, py("second", "append_line", path=str(log), text="2")]
    result, journal, _ = run_experiment(data)
    assert result.exit_code == exit_codes.OK
    assert log.read_text() == "1\n2\n"
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded", "succeeded"]


def test_a_top_level_dry_run_makes_the_run_a_plan(run_experiment, tmp_path):
    marker = tmp_path / "fault"
    data = valid()
    data["dry_run"] = True
    data["method"] = [py("inject", "inject_marker", path=str(marker))]
    data["rollbacks"] = [py("undo", "remove_marker", path=str(marker))]
    result, _, _ = run_experiment(data)
    assert result.dry_run is True
    assert not marker.exists()


def test_dry_run_false_runs_for_real(run_experiment, tmp_path):
    marker = tmp_path / "fault"
    data = valid()
    data["dry_run"] = False
    data["method"] = [py("inject", "inject_marker", path=str(marker))]
    data["rollbacks"] = [py("note", "append_line", path=str(tmp_path / "log"), text="rolled back")]
    result, journal, _ = run_experiment(data)
    assert result.dry_run is False
    assert journal["run"][0]["output"]["action"] == "inject-marker"


def test_warnings_travel_with_the_experiment_to_the_console_and_the_journal(write_experiment, tmp_path):
    data = valid()
    data["rollbacks"][0]["background"] = True
    data["method"] = [{"type": "probe", "name": "say", "provider": {"type": "process", "path": "true",
                                                                    "arguments": "a b"}}]
    experiment, variables = load_checked(str(write_experiment(data)), [], [])
    assert len(experiment.warnings) == 2
    assert any("/rollbacks/0/background" in w and "one after another" in w for w in experiment.warnings)
    assert any("/method/0/provider/arguments" in w and "deprecated" in w for w in experiment.warnings)
    out = io.StringIO()
    journal_path = tmp_path / "journal.json"
    Runner(experiment, variables, journal_path, Console(out, tty=False)).run()
    assert "WARNING:" in out.getvalue() and "one after another" in out.getvalue()
    assert json.loads(journal_path.read_text())["mlchaos"]["warnings"] == list(experiment.warnings)


def test_mlchaos_validate_prints_the_warnings_of_a_valid_file(write_experiment, capsys):
    import argparse

    from mlchaos.cli import validate

    data = valid()
    data["dry_run"] = True
    path = write_experiment(data)
    code = validate.main(argparse.Namespace(files=[str(path)], var=[], var_file=[]))
    out = capsys.readouterr().out
    assert code == exit_codes.OK
    assert f"ok: {path}" in out
    assert "warning: " in out and "/dry_run: dry_run: true: mlchaos only plans this experiment" in out


def test_an_experiment_with_nothing_to_run_is_valid_but_warned_about(write_experiment, tmp_path):
    data = valid()
    del data["steady-state-hypothesis"]
    data["method"] = []
    experiment, variables = load_checked(str(write_experiment(data)), [], [])
    assert any("checks nothing" in w for w in experiment.warnings)
    result = Runner(experiment, variables, tmp_path / "journal.json", Console(io.StringIO(), tty=False)).run()
    assert result.exit_code == exit_codes.OK


def test_execute_never_lets_a_provider_run_past_its_own_timeout():
    from mlchaos.experiment.execution import Waiter, execute

    spec = py("slow", "sleep", seconds=3)
    spec["provider"]["timeout"] = 0.2
    outcome = execute(spec, {}, {}, 60.0, Waiter())  # the caller allows more: a tolerance probe, an undo
    assert not outcome.succeeded and outcome.error == "timed out after 0.2s"
