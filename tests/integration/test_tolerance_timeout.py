"""A tolerance never escapes its probe's timeout, and never keeps a signal from starting the rollbacks.

Real `mlchaos run` processes (the CLI as a child) with regex tolerances that backtrack catastrophically:
with Python's ``re`` on the main thread these held the GIL in C code past any timeout and ignored SIGTERM.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from tests.support.builders import py
from tests.support.polling import wait_until
from tests.support.runs import journal_so_far, start_run

pytestmark = pytest.mark.usefixtures("isolated_state")


def _experiment(tmp_path: Path, pattern: str, output: str, timeout: float, hypothesis: bool = False) -> dict:
    """A probe whose output is checked against a regex tolerance: the steady-state hypothesis, or in the
    method after a marker fault was injected."""
    marker, log = tmp_path / "fault", tmp_path / "rollback.log"
    probe = {**py("output-looks-right", "echo", kind="probe", value=output), "timeout": timeout,
             "tolerance": {"type": "regex", "pattern": pattern}}
    data = {
        "title": "a regex tolerance", "description": "d",
        "method": [py("inject", "inject_marker", path=str(marker))],
        "rollbacks": [py("remove-fault", "remove_marker", path=str(marker)),
                      py("log-rollback", "append_line", path=str(log), text="rolled back")],
    }
    if hypothesis:
        data["steady-state-hypothesis"] = {"title": "the output looks right", "probes": [probe]}
    else:
        data["method"].append(probe)
    return data


def _probe_entry(journal: Path) -> dict:
    data = journal_so_far(journal)
    entries = [*data.get("run", []), *((data.get("steady_states") or {}).get("before") or {}).get("probes", [])]
    return next((r for r in entries if r["activity"]["name"] == "output-looks-right"), {})


@pytest.mark.parametrize(("pattern", "output", "why"), [
    # the case of the issue: hung past 40 s with `re`; the regex engine decides it at once (no match)
    ("^(a+)+$", "a" * 30 + "!", "expected a value matching /^(a+)+$/"),
    # one that backtracks catastrophically in the regex engine too: stopped at the probe's timeout
    ("(a|aa)+$", "a" * 5000 + "!", "not decided within the"),
], ids=["nested-quantifier", "alternation"])
def test_a_catastrophic_regex_tolerance_fails_within_the_probes_timeout(tmp_path, subprocess_env, pattern, output,
                                                                         why):
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, pattern, output, 3, hypothesis=True))
    try:
        out, err = proc.communicate(timeout=40 / 3)  # the run hung past 40 s
    finally:
        proc.kill()
    assert proc.returncode == exit_codes.DEVIATED, out + err
    assert why in out
    data = journal_so_far(journal)
    assert data["status"] == "failed" and data["mlchaos"]["verdict"] == "deviated"
    assert data["steady_states"]["before"]["steady_state_met"] is False
    assert _probe_entry(journal)["tolerance_met"] is False
    assert (tmp_path / "rollback.log").read_text() == "rolled back\n"


def test_sigterm_while_a_tolerance_is_evaluated_starts_the_rollbacks(tmp_path, subprocess_env):
    timeout = 120
    proc, journal = start_run(tmp_path, subprocess_env,
                           _experiment(tmp_path, "(a|aa)+$", "a" * 5000 + "!", timeout=timeout))
    try:
        # the probe has run; its tolerance is being decided (null until it is)
        wait_until(lambda: "tolerance_met" in _probe_entry(journal), what="the tolerance check to start")
        assert _probe_entry(journal)["tolerance_met"] is None
        assert (tmp_path / "fault").exists()
        proc.send_signal(signal.SIGTERM)
        # the rollbacks start long before the tolerance's own deadline (a third of it)
        wait_until(lambda: (tmp_path / "rollback.log").exists(), timeout=timeout / 3, what="the rollbacks")
        out, err = proc.communicate(timeout=timeout / 3)
    finally:
        proc.kill()
    assert proc.returncode == exit_codes.TERMINATED, out + err
    assert not (tmp_path / "fault").exists()
    data = journal_so_far(journal)
    assert data["status"] == "interrupted" and data["mlchaos"]["interrupted_by"] == "SIGTERM"
    assert [r["status"] for r in data["rollbacks"]] == ["succeeded", "succeeded"]
