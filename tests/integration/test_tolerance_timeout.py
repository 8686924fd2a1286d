"""A tolerance never escapes its probe's timeout, and never keeps a signal from starting the rollbacks.

Real `mlchaos run` processes (the CLI as a child) with regex tolerances that backtrack catastrophically:
with Python's ``re`` on the main thread these held the GIL in C code past any timeout and ignored SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from tests.support.polling import wait_until

pytestmark = pytest.mark.usefixtures("isolated_state")


def _call(kind: str, name: str, func: str, **arguments) -> dict:
    return {"type": kind, "name": name,
            "provider": {"type": "python", "module": "testdrivers", "func": func, "arguments": arguments}}


def _experiment(tmp_path: Path, pattern: str, output: str, timeout: float, hypothesis: bool = False) -> dict:
    """A probe whose output is checked against a regex tolerance: the steady-state hypothesis, or in the
    method after a marker fault was injected."""
    marker, log = tmp_path / "fault", tmp_path / "rollback.log"
    probe = {**_call("probe", "output-looks-right", "echo", value=output), "timeout": timeout,
             "tolerance": {"type": "regex", "pattern": pattern}}
    data = {
        "title": "a regex tolerance", "description": "d",
        "method": [_call("action", "inject", "inject_marker", path=str(marker))],
        "rollbacks": [_call("action", "remove-fault", "remove_marker", path=str(marker)),
                      _call("action", "log-rollback", "append_line", path=str(log), text="rolled back")],
    }
    if hypothesis:
        data["steady-state-hypothesis"] = {"title": "the output looks right", "probes": [probe]}
    else:
        data["method"].append(probe)
    return data


def _probe_entry(journal: Path) -> dict:
    data = _journal(journal)
    entries = [*data.get("run", []), *((data.get("steady_states") or {}).get("before") or {}).get("probes", [])]
    return next((r for r in entries if r["activity"]["name"] == "output-looks-right"), {})


def _start(tmp_path: Path, env: dict, data: dict) -> tuple[subprocess.Popen, Path]:
    path, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, journal


def _journal(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}




@pytest.mark.parametrize(("pattern", "output", "why"), [
    # the case of the issue: hung past 40 s with `re`; the regex engine decides it at once (no match)
    ("^(a+)+$", "a" * 30 + "!", "expected a value matching /^(a+)+$/"),
    # one that backtracks catastrophically in the regex engine too: stopped at the probe's timeout
    ("(a|aa)+$", "a" * 5000 + "!", "not decided within the"),
], ids=["nested-quantifier", "alternation"])
def test_a_catastrophic_regex_tolerance_fails_within_the_probes_timeout(tmp_path, subprocess_env, pattern, output,
                                                                         why):
    proc, journal = _start(tmp_path, subprocess_env, _experiment(tmp_path, pattern, output, 3, hypothesis=True))
    try:
        out, err = proc.communicate(timeout=40 / 3)  # the run hung past 40 s
    finally:
        proc.kill()
    assert proc.returncode == exit_codes.DEVIATED, out + err
    assert why in out
    data = _journal(journal)
    assert data["status"] == "failed" and data["mlchaos"]["verdict"] == "deviated"
    assert data["steady_states"]["before"]["steady_state_met"] is False
    assert _probe_entry(journal)["tolerance_met"] is False
    assert (tmp_path / "rollback.log").read_text() == "rolled back\n"


def test_sigterm_while_a_tolerance_is_evaluated_starts_the_rollbacks(tmp_path, subprocess_env):
    timeout = 120
    proc, journal = _start(tmp_path, subprocess_env,
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
    data = _journal(journal)
    assert data["status"] == "interrupted" and data["mlchaos"]["interrupted_by"] == "SIGTERM"
    assert [r["status"] for r in data["rollbacks"]] == ["succeeded", "succeeded"]
