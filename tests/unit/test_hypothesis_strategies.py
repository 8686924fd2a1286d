"""``--hypothesis-strategy``, ``--hypothesis-frequency`` and ``--fail-fast``: when the steady state is checked, the
checks during the method under ``steady_states.during`` (as Chaos Toolkit records them), and a deviation there.

The method waits for what the checks during it write (no timing): tests/drivers ``wait_for_lines``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

from mlchaos.engine import exit_codes
from mlchaos.engine.console import Console
from mlchaos.engine.runner import Runner
from mlchaos.engine.strategies import HypothesisSchedule
from mlchaos.experiment.loader import load_document
from mlchaos.experiment.models import build_experiment
from tests.support.bad_experiments import valid
from tests.support.builders import probe, py


@pytest.fixture
def run(write_experiment, tmp_path):
    def run(data: dict, **schedule: Any) -> tuple[Any, dict, str]:
        out = io.StringIO()
        path = tmp_path / "journal.json"
        experiment = build_experiment(load_document(write_experiment(data)))
        result = Runner(experiment, None, path, Console(out, tty=False), schedule=HypothesisSchedule(**schedule)).run()
        return result, json.loads(path.read_text()), out.getvalue()

    return run


def counting(tmp_path, method_waits_for: int) -> dict[str, Any]:
    """The hypothesis logs each check; the method waits until ``method_waits_for`` checks were logged."""
    checks = tmp_path / "checks.log"
    data = valid()
    data["steady-state-hypothesis"]["probes"] = [probe("logged", "append_line", "checked", path=str(checks),
                                                       text="checked")]
    data["method"] = [py("wait", "wait_for_lines", path=str(checks), count=method_waits_for, timeout=60)]
    data["rollbacks"] = [py("undo", "append_line", path=str(tmp_path / "rollback.log"), text="done")]
    return data


@pytest.mark.parametrize(("strategy", "before", "after"), [
    ("default", True, True), ("before-method-only", True, False), ("after-method-only", False, True),
])
def test_the_strategy_decides_before_and_after(run, tmp_path, strategy, before, after):
    result, journal, _out = run(counting(tmp_path, 0), strategy=strategy)
    states = journal["steady_states"]
    assert (states["before"] is not None, states["after"] is not None) == (before, after)
    assert states["during"] == [] and result.exit_code == exit_codes.OK


def test_during_method_only_checks_while_the_method_runs(run, tmp_path):
    result, journal, out = run(counting(tmp_path, 3), strategy="during-method-only", frequency=0.01)
    states = journal["steady_states"]
    assert states["before"] is None and states["after"] is None
    assert len(states["during"]) >= 3
    for state in states["during"]:  # Chaos Toolkit's shape: one hypothesis run each
        assert state["steady_state_met"] is True
        assert [p["activity"]["name"] for p in state["probes"]] == ["logged"]
        assert state["probes"][0]["status"] == "succeeded" and state["probes"][0]["tolerance_met"] is True
    assert journal["run"][0]["output"] >= 3
    assert result.exit_code == exit_codes.OK
    assert journal["mlchaos"]["hypothesis_schedule"] == {"strategy": "during-method-only", "frequency": 0.01,
                                                         "fail_fast": False}
    assert "steady state during the method: every 0.01s" in out


def test_continuously_checks_before_during_and_after(run, tmp_path):
    result, journal, _out = run(counting(tmp_path, 2), strategy="continuously", frequency=0.01)
    states = journal["steady_states"]
    assert states["before"]["steady_state_met"] and states["after"]["steady_state_met"]
    assert len(states["during"]) >= 1  # the before-check wrote the first line
    assert result.exit_code == exit_codes.OK


def deviating(tmp_path) -> dict[str, Any]:
    """The fault makes the hypothesis fail; the method waits until a check during it has seen the fault."""
    marker, seen = tmp_path / "fault", tmp_path / "seen.log"
    data = valid()
    data["steady-state-hypothesis"]["probes"] = [probe("no-fault", "marker_seen", False, path=str(marker),
                                                       log=str(seen))]
    data["method"] = [py("inject", "inject_marker", path=str(marker)),
                      py("wait", "wait_for_lines", path=str(seen), count=1, timeout=60),
                      py("after", "append_line", path=str(tmp_path / "after.log"), text="ran")]
    data["rollbacks"] = [py("repair", "remove_marker", path=str(marker))]
    return data


def test_a_deviation_during_the_method_makes_the_run_deviated(run, tmp_path):
    result, journal, out = run(deviating(tmp_path), strategy="during-method-only", frequency=0.01)
    assert any(s["steady_state_met"] is False for s in journal["steady_states"]["during"])
    assert (tmp_path / "after.log").exists(), "without --fail-fast the method runs to its end"
    assert not (tmp_path / "fault").exists()
    assert (result.verdict, result.exit_code, journal["status"], journal["deviated"]) == (
        "deviated", exit_codes.DEVIATED, "failed", True)
    assert "FAIL steady state during the method" in out


def test_fail_fast_stops_the_method_at_the_first_deviation_and_rolls_back(run, tmp_path):
    data = deviating(tmp_path)
    data["method"][1]["provider"]["arguments"]["count"] = 10**6  # never: only the deviation ends this wait
    result, journal, out = run(data, strategy="during-method-only", frequency=0.01, fail_fast=True)
    assert not (tmp_path / "after.log").exists(), "the method stopped at the deviation"
    assert not (tmp_path / "fault").exists() and journal["rollbacks"][0]["status"] == "succeeded"
    # the stop comes at the wait, at the checkpoint before it when the check saw the fault that soon, or while
    # the injecting action still returns (the check saw its marker first: a loaded host)
    assert [(r["activity"]["name"], r["status"]) for r in journal["run"]] in (
        [("inject", "succeeded")], [("inject", "succeeded"), ("wait", "interrupted")], [("inject", "interrupted")])
    assert (result.verdict, result.exit_code, journal["status"], journal["deviated"]) == (
        "deviated", exit_codes.DEVIATED, "failed", True)
    assert journal["mlchaos"]["aborted"]["kind"] == "fail-fast"
    assert journal["steady_states"]["during"][-1]["steady_state_met"] is False


def test_the_options_are_checked(subprocess_env, write_experiment):
    path = write_experiment(valid())
    bad = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--hypothesis-strategy", "sometimes"],
                         env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'sometimes'" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--hypothesis-frequency", "0"],
                         env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "must be a positive number of seconds" in bad.stderr
    with pytest.raises(ValueError, match="unknown hypothesis strategy"):
        HypothesisSchedule("sometimes")


def test_reports_show_the_checks_during_the_method(run, tmp_path):
    from mlchaos.reports.html import render_html
    from mlchaos.reports.markdown import render_markdown
    from mlchaos.reports.reader import build_suite, read_run

    _result, journal, _out = run(deviating(tmp_path), strategy="continuously", frequency=0.01)
    report = read_run(journal)
    missed = [c for c in report.during if not c.met]
    assert report.during and missed and report.hypothesis_strategy == "continuously"
    assert missed[0].missed == ("no-fault: true",)  # the probe and its actual value
    assert any(f.startswith(f"steady state not met during the method in {len(missed)} of {len(report.during)}")
               for f in report.failures)
    markdown = render_markdown(build_suite([journal]))
    assert f"Steady state during the method (continuously): {len(report.during)} checks" in markdown
    assert f"- check {missed[0].index} (" in markdown
    html = render_html(build_suite([journal]))
    assert "<h3>Steady state during the method</h3>" in html and '<table class="during">' in html
    assert "NOT MET" in html and "no-fault: true" in html
