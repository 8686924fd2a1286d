"""Run one experiment under Chaos Toolkit's ``chaos run`` and under ``mlchaos run`` and compare the journals:
each activity's status (and a probe's ``tolerance_met``), the run's ``status`` and ``deviated``.

Both CLIs are real child processes (the ``chaos`` console script installed beside this Python, from the
``chaostoolkit`` package of the ``test`` extra); each gets an empty Chaos Toolkit settings file, so neither reads
the user's ``~/.chaostoolkit/settings.yaml``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.components import require_component

PHASES = (("before", "hypothesis before"), ("run", "method"), ("after", "hypothesis after"), ("rollbacks", "rollbacks"))


def chaos_cli() -> Path:
    """The ``chaos`` console script of this environment (a failure in CI when it is missing)."""
    path = Path(sys.executable).parent / "chaos"
    require_component("the chaos CLI", path.exists(), "pip install chaostoolkit (the test extra brings it)")
    return path


@dataclass(frozen=True)
class Runs:
    """Both runs of one experiment: exit codes and journals."""

    chaos_rc: int
    mlchaos_rc: int
    chaos: dict[str, Any]
    mlchaos: dict[str, Any]
    chaos_output: str
    mlchaos_output: str


def run_both(experiment: Path, workdir: Path, env: dict[str, str], extra: tuple[str, ...] = (),
             prepare: Callable[[], None] = lambda: None, timeout: float = 120) -> Runs:
    """Run ``experiment`` with ``chaos run`` then ``mlchaos run`` (each with its own journal in ``workdir``);
    ``prepare`` puts the system in its initial state before each."""
    settings = workdir / "settings.yaml"
    settings.write_text("{}\n", encoding="utf-8")
    ctk_journal, ml_journal = workdir / "chaos-journal.json", workdir / "mlchaos-journal.json"
    prepare()
    chaos = subprocess.run(
        [str(chaos_cli()), "--no-version-check", "--settings", str(settings), "--log-file",
         str(workdir / "chaostoolkit.log"), "run", "--journal-path", str(ctk_journal), *extra, str(experiment)],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    prepare()
    ml = subprocess.run(
        [sys.executable, "-m", "mlchaos", "run", "--journal-path", str(ml_journal), "--settings", str(settings),
         *extra, str(experiment)],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    for name, proc, path in (("chaos", chaos, ctk_journal), ("mlchaos", ml, ml_journal)):
        assert path.exists(), f"{name} wrote no journal (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return Runs(chaos.returncode, ml.returncode, json.loads(ctk_journal.read_text()),
                json.loads(ml_journal.read_text()), chaos.stdout + chaos.stderr, ml.stdout + ml.stderr)


def activity_statuses(journal: dict[str, Any]) -> dict[str, str]:
    """``"<phase>: <name>" -> status`` (``status/tolerance_met`` for a probe with a tolerance), every phase; a
    phase that did not run has no entries."""
    states = journal.get("steady_states") or {}
    sections = {"before": (states.get("before") or {}).get("probes", []),
                "after": (states.get("after") or {}).get("probes", []),
                "run": journal.get("run") or [], "rollbacks": journal.get("rollbacks") or []}
    result = {}
    for phase, label in PHASES:
        for index, entry in enumerate(sections[phase]):
            name = (entry.get("activity") or {}).get("name", f"#{index}")
            status = str(entry.get("status"))
            if "tolerance_met" in entry:
                status += f"/tolerance {'met' if entry['tolerance_met'] else 'not met'}"
            result[f"{label}: {name}"] = status
    return result


def differences(runs: Runs) -> dict[str, tuple[str, str]]:
    """Where the two journals disagree: ``what -> (chaos, mlchaos)`` over every activity, ``status`` and
    ``deviated``."""
    ctk, ml = activity_statuses(runs.chaos), activity_statuses(runs.mlchaos)
    found = {key: (ctk.get(key, "-"), ml.get(key, "-")) for key in [*ctk, *(k for k in ml if k not in ctk)]
             if ctk.get(key) != ml.get(key)}
    for field in ("status", "deviated"):
        if runs.chaos.get(field) != runs.mlchaos.get(field):
            found[field] = (str(runs.chaos.get(field)), str(runs.mlchaos.get(field)))
    return found


def table_rows(case: str, runs: Runs) -> list[str]:
    """Markdown rows: every activity and the final status of one case, both tools side by side."""
    ctk, ml = activity_statuses(runs.chaos), activity_statuses(runs.mlchaos)
    rows = []
    for key in [*ctk, *(k for k in ml if k not in ctk)]:
        mark = "" if ctk.get(key) == ml.get(key) else " **≠**"
        rows.append(f"| {case} | {key} | {ctk.get(key, '-')} | {ml.get(key, '-')}{mark} |")
    for field in ("status", "deviated"):
        a, b = runs.chaos.get(field), runs.mlchaos.get(field)
        rows.append(f"| {case} | **{field}** | {a} | {b}{'' if a == b else ' **≠**'} |")
    rows.append(f"| {case} | status as chaos records it (mlchaos.chaostoolkit_status) | {runs.chaos.get('status')} | "
                f"{runs.mlchaos.get('mlchaos', {}).get('chaostoolkit_status')} |")
    rows.append(f"| {case} | exit code | {runs.chaos_rc} | {runs.mlchaos_rc} |")
    return rows
