"""Chaos Toolkit controls in the runner, in process, with the control written for the tests
(tests/drivers/testcontrols.py): each hook in chaoslib's order with chaoslib's arguments; a control that raises, hangs
or interrupts never costs a rollback. (The same hooks under the real ``chaos`` CLI, the exit interface and
published controls: tests/integration/test_chaostoolkit_controls.py.)"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlchaos.engine import exit_codes
from mlchaos.engine.console import Console
from mlchaos.engine.runner import Runner
from mlchaos.errors import InvalidInput
from mlchaos.experiment.control_declarations import read_settings
from mlchaos.experiment.loader import load_document
from mlchaos.experiment.models import build_experiment
from mlchaos.experiment.validation import validate
from tests.support.bad_experiments import valid
from tests.support.builders import probe, py


def control(log: Path, name: str = "logger", **arguments: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"type": "python", "module": "testcontrols",
                                       "arguments": {"log": str(log), **arguments}}}


def hooks(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def run(write_experiment, tmp_path):
    def run(data: dict, settings: dict | None = None) -> tuple[Any, dict, str]:
        doc = load_document(write_experiment(data))
        assert validate(doc) == []
        out = io.StringIO()
        journal_path = tmp_path / "journal.json"
        result = Runner(build_experiment(doc), None, journal_path, Console(out, tty=False), settings=settings).run()
        return result, json.loads(journal_path.read_text()), out.getvalue()

    return run


def experiment(tmp_path: Path, *controls: dict[str, Any]) -> dict[str, Any]:
    data = valid()
    data["steady-state-hypothesis"]["probes"] = [probe("healthy", "echo", True, value=True)]
    data["method"] = [py("break", "append_line", path=str(tmp_path / "fault"), text="in")]
    data["rollbacks"] = [py("repair", "append_line", path=str(tmp_path / "rollback.log"), text="rolled back")]
    data["controls"] = list(controls)
    return data


EXPECTED = [  # what chaoslib 1.44 calls, in its order (the same run under `chaos run` logs the same: integration)
    ("configure_control", None, None),
    ("before_experiment_control", {"title": "a valid experiment"}, None),
    ("before_hypothesis_control", {"title": "h"}, None),
    ("before_activity_control", {"name": "healthy"}, None),
    ("after_activity_control", {"name": "healthy"}, {"run": "healthy", "status": "succeeded"}),
    ("after_hypothesis_control", {"title": "h"}, {"steady_state_met": True}),
    ("before_method_control", {"title": "a valid experiment"}, None),
    ("before_activity_control", {"name": "break"}, None),
    ("after_activity_control", {"name": "break"}, {"run": "break", "status": "succeeded"}),
    ("after_method_control", {"title": "a valid experiment"}, [{"run": "break", "status": "succeeded"}]),
    ("before_hypothesis_control", {"title": "h"}, None),
    ("before_activity_control", {"name": "healthy"}, None),
    ("after_activity_control", {"name": "healthy"}, {"run": "healthy", "status": "succeeded"}),
    ("after_hypothesis_control", {"title": "h"}, {"steady_state_met": True}),
    ("before_rollback_control", {"title": "a valid experiment"}, None),
    ("before_activity_control", {"name": "repair"}, None),
    ("after_activity_control", {"name": "repair"}, {"run": "repair", "status": "succeeded"}),
    ("after_rollback_control", {"title": "a valid experiment"}, [{"run": "repair", "status": "succeeded"}]),
    ("after_experiment_control", {"title": "a valid experiment"}, {"journal_status": "completed", "has_mlchaos": True}),
    ("cleanup_control", None, None),
]


def test_every_hook_is_called_in_chaoslibs_order_with_its_arguments(run, tmp_path):
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path, control(log, extra="x"))
    data["title"] = "a valid experiment"
    data["configuration"] = {"region": "eu"}
    data["secrets"] = {"auth": {"token": "s3cr3t-t0ken-value"}}
    result, journal, out = run(data)
    assert result.exit_code == exit_codes.OK, out
    calls = hooks(log)
    assert [(c["hook"], c.get("context"), c.get("state")) for c in calls] == EXPECTED
    for call in calls[1:-1]:  # each hook: the control's own arguments and chaoslib's (what the signature asks)
        assert call["arguments"] == ["extra", "log"] and call["configuration"] == {"region": "eu"}
        assert call["secret_keys"] == ["auth"] and call["experiment"] == {"title": "a valid experiment"}
    assert calls[0]["event_registry"] and calls[0]["arguments"] == ["extra", "log"]
    assert journal["mlchaos"]["controls"] == {"declared": ["logger"], "timeout": 30.0, "calls": 20, "problems": []}
    assert "s3cr3t-t0ken-value" not in (tmp_path / "journal.json").read_text()


def test_activity_level_control_sees_only_its_activity_and_scope_and_automatic_are_chaoslibs(run, tmp_path):
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path)
    data["method"][0]["controls"] = [control(log, "on-break")]
    data["controls"] = [control(tmp_path / "top.jsonl", "top", scope="after")]
    data["controls"][0]["scope"] = "after"
    run(data)
    assert [(c["hook"], c.get("context")) for c in hooks(log)] == [
        ("configure_control", None), ("before_activity_control", {"name": "break"}),
        ("after_activity_control", {"name": "break"}), ("cleanup_control", None)]
    top = hooks(tmp_path / "top.jsonl")  # scope: after: no "before" hook at all
    assert top and not [c for c in top if c["hook"].startswith("before_")]
    # automatic: false keeps a top-level control to the experiment's own hooks (chaoslib's get_context_controls)
    manual = tmp_path / "manual.jsonl"
    data = experiment(tmp_path, {**control(manual, "manual"), "automatic": False})
    run(data)
    assert [c["hook"] for c in hooks(manual)] == ["configure_control", "before_experiment_control",
                                                  "after_experiment_control", "cleanup_control"]


@pytest.mark.parametrize("hook", ["before_activity_control", "before_experiment_control"])
def test_what_a_control_changes_is_its_own_copy(write_experiment, tmp_path, hook):
    """A control gets copies of the experiment and of each activity: changing them changes neither what runs nor
    the experiment (nor its journal). Without controls the run makes no copy at all: nothing receives one."""
    data = experiment(tmp_path, control(tmp_path / "controls.jsonl", mutate_in=hook))
    built = build_experiment(load_document(write_experiment(data)))
    before = json.dumps(built.raw, sort_keys=True)
    journal_path = tmp_path / "journal.json"
    result = Runner(built, None, journal_path, Console(io.StringIO(), tty=False)).run()
    journal = json.loads(journal_path.read_text())
    assert result.exit_code == exit_codes.OK and result.title == "valid"
    assert [p["activity"]["name"] for p in journal["steady_states"]["before"]["probes"]] == ["healthy"]
    assert [p["output"] for p in journal["steady_states"]["after"]["probes"]] == [True]
    assert journal["experiment"]["title"] == "valid"
    assert json.dumps(built.raw, sort_keys=True) == before
    assert hook in [c["hook"] for c in hooks(tmp_path / "controls.jsonl")]


def test_a_raising_control_is_reported_and_the_run_goes_on(run, tmp_path):
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path, control(log, raise_in="before_method_control"))
    result, journal, out = run(data)
    assert result.exit_code == exit_codes.OK  # as under chaos: a failing control does not fail the run
    assert journal["mlchaos"]["controls"]["problems"] == [{
        "control": "logger", "hook": "before_method_control",
        "error": "RuntimeError: control failed in before_method_control"}]
    assert "control 'logger' before_method_control: RuntimeError" in out
    assert (tmp_path / "fault").read_text() == "in\n" and (tmp_path / "rollback.log").exists()


def test_a_hanging_control_is_abandoned_at_its_timeout_and_never_skips_a_rollback(run, tmp_path):
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path, control(log, hang_in="before_rollback_control", hang_seconds=20))
    data["extensions"] = [{"name": "mlchaos", "control_timeout": 0.2}]
    result, journal, out = run(data)
    assert (tmp_path / "rollback.log").read_text() == "rolled back\n"
    assert journal["rollbacks"][0]["status"] == "succeeded"
    assert journal["mlchaos"]["controls"]["problems"] == [{
        "control": "logger", "hook": "before_rollback_control",
        "error": "did not return within 0.2s (control_timeout); abandoned"}]
    assert journal["mlchaos"]["controls"]["timeout"] == 0.2
    assert [c["hook"] for c in hooks(log)][-3:] == ["after_rollback_control", "after_experiment_control",
                                                    "cleanup_control"]
    assert result.exit_code == exit_codes.OK


def test_a_control_that_interrupts_stops_the_run_and_it_rolls_back(run, tmp_path):
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path, control(log, interrupt_in="before_method_control"))
    result, journal, out = run(data)
    assert not (tmp_path / "fault").exists(), "the method must not run"
    assert (tmp_path / "rollback.log").read_text() == "rolled back\n"
    assert (result.exit_code, journal["status"]) == (exit_codes.ABORTED, "aborted")
    assert journal["mlchaos"]["aborted"]["kind"] == "control"
    assert "stop from before_method_control" in journal["mlchaos"]["aborted"]["message"]
    called = [c["hook"] for c in hooks(log)]
    assert "after_method_control" in called and called[-1] == "cleanup_control"


def test_an_interruption_during_the_rollbacks_is_ignored(run, tmp_path):
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path, control(log, interrupt_in="before_rollback_control"))
    result, journal, out = run(data)
    assert (tmp_path / "rollback.log").read_text() == "rolled back\n"
    assert result.exit_code == exit_codes.OK
    assert "rollbacks are never skipped" in out
    assert journal["mlchaos"]["controls"]["ignored_interruptions"]


def test_global_controls_from_the_settings_apply_everywhere(run, tmp_path, monkeypatch):
    log = tmp_path / "global.jsonl"
    home = tmp_path / "home"
    (home / ".chaostoolkit").mkdir(parents=True)
    (home / ".chaostoolkit" / "settings.yaml").write_text(
        f"controls:\n  everywhere:\n    provider:\n      type: python\n      module: testcontrols\n"
        f"      arguments:\n        log: {log}\n")
    monkeypatch.setenv("HOME", str(home))
    settings = read_settings()
    result, journal, _out = run(experiment(tmp_path), settings=settings)
    called = [c["hook"] for c in hooks(log)]
    assert called[0] == "configure_control" and called[-1] == "cleanup_control"
    assert called.count("before_activity_control") == 4  # probe twice, action, rollback
    assert hooks(log)[1]["settings"] == ["controls"]
    assert journal["mlchaos"]["controls"]["declared"] == ["everywhere"]


def test_a_bad_settings_file_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("controls:\n  c:\n    provider: {type: python, module: no_such_control_module}\n")
    with pytest.raises(InvalidInput, match=r"settings.yaml: controls: c: control module 'no_such_control_module'"):
        read_settings(bad)
    bad.write_text("controls: [1]\n")
    with pytest.raises(InvalidInput, match="controls: must map each control's name"):
        read_settings(bad)
    with pytest.raises(InvalidInput, match="no such settings file"):
        read_settings(tmp_path / "missing.yaml")


def test_a_plan_calls_no_control(write_experiment, tmp_path):
    log = tmp_path / "controls.jsonl"
    doc = load_document(write_experiment(experiment(tmp_path, control(log))))
    out = io.StringIO()
    Runner(build_experiment(doc), None, tmp_path / "j.json", Console(out, tty=False), dry_run=True).run()
    assert not log.exists()
    assert "controls not called in a plan: logger" in out.getvalue()


def test_a_loader_control_that_interrupts_stops_the_command_before_anything_runs(tmp_path, subprocess_env,
                                                                                 write_experiment):
    """The settings file's global controls are the only ones called around loading (as under `chaos`)."""
    log = tmp_path / "loader.jsonl"
    home = tmp_path / "home"
    (home / ".chaostoolkit").mkdir(parents=True)
    (home / ".chaostoolkit" / "settings.yaml").write_text(json.dumps({"controls": {"gate": {"provider": {
        "type": "python", "module": "testcontrols",
        "arguments": {"log": str(log), "interrupt_in": "after_loading_experiment_control"}}}}}))
    path = write_experiment(experiment(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(tmp_path / "j.json")],
                          env={**subprocess_env, "HOME": str(home)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == exit_codes.INVALID, proc.stdout + proc.stderr
    assert "stop from after_loading_experiment_control" in proc.stderr and "nothing was executed" in proc.stderr
    assert not (tmp_path / "fault").exists() and not (tmp_path / "j.json").exists()
    assert [c["hook"] for c in hooks(log)] == ["before_loading_experiment_control",
                                               "after_loading_experiment_control"]
    assert hooks(log)[1]["state"] == {"title": "valid"}  # the experiment as loaded
