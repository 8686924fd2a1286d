"""The run journal: Chaos Toolkit's journal format plus an ``mlchaos`` section.

It is written to disk while the run goes (atomically: temporary file then rename), and
always before an action starts, so a runner killed with SIGKILL still leaves a record
naming the fault it was injecting. Secret values, and the values of env-backed
configuration entries, are replaced by ``***`` on the way out (journal, console, and
whatever the run writes to stdout/stderr: see :mod:`mlchaos.journal.redaction`).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos import __version__
from mlchaos.experiment.execution import RUNNING, Outcome
from mlchaos.experiment.models import Activity
from mlchaos.journal.redaction import Redactor, redact_secrets_block
from mlchaos.lib.clock import utc_now_iso
from mlchaos.lib.files import atomic_write

THROTTLE_SECONDS = 0.25
# an unforced write waits at least this many times as long as the last write took, so a big journal (thousands of
# activities) never costs a run more than about 1/WRITE_SHARE_LIMIT of its time in progress writes
WRITE_SHARE_LIMIT = 20


def activity_record(activity: Activity, outcome: Outcome | None = None) -> dict[str, Any]:
    """A journal 'run' entry for an activity (status ``running`` while it is in flight)."""
    record: dict[str, Any] = {"activity": activity.spec, "output": None}  # read-only: never mutated
    if outcome is None:
        record.update(status=RUNNING, start=utc_now_iso())
        return record
    record.update(
        output=outcome.output, start=outcome.start, end=outcome.end,
        duration=outcome.duration, status=outcome.status,
    )
    if outcome.exception:
        record["exception"] = outcome.exception
    return record


class Journal:
    """The journal of one run, persisted to ``path`` as it changes."""

    def __init__(self, path: Path | None, experiment_raw: dict[str, Any], source: Path, redactor: Redactor):
        self.path = path
        self.redactor = redactor
        self._last_write = 0.0
        self._interval = THROTTLE_SECONDS
        # a shallow copy: the journal never changes the experiment below its top level, and neither does the run
        experiment = dict(experiment_raw)
        if "secrets" in experiment:
            experiment["secrets"] = redact_secrets_block(experiment["secrets"])
        self.data: dict[str, Any] = {
            "chaoslib-version": _chaoslib_version(),
            "platform": platform.platform(),
            "node": socket.gethostname(),
            "experiment": experiment,
            "start": datetime.now(UTC).isoformat(),
            "status": RUNNING,
            "deviated": False,
            "steady_states": {"before": None, "after": None, "during": []},
            "run": [],
            "rollbacks": [],
            "mlchaos": {
                "version": __version__,
                "source": str(source),
                "pid": os.getpid(),
                "changes": [],
                "recovery": None,
                "rollbacks_left_undone": [],
                "interrupted_by": None,
                "verdict": None,
                "exit_code": None,
            },
        }

    @property
    def extra(self) -> dict[str, Any]:
        return self.data["mlchaos"]

    def record_change(self, record: dict[str, Any]) -> None:
        """Persist a change an action is about to make (a change record's dict; always written at once)."""
        self.extra["changes"].append(record)
        self.save(force=True)

    def finish(self, status: str, deviated: bool, verdict: str, exit_code: int) -> None:
        """Write the run's end and verdict. A finished journal never holds a ``running`` activity: one the
        runner could not close is closed here as interrupted."""
        end = datetime.now(UTC)
        for entry in self.activities():
            if entry.get("status") == RUNNING:
                began = datetime.fromisoformat(entry["start"]) if entry.get("start") else end
                entry.update(status="interrupted", end=end.isoformat(), duration=(end - began).total_seconds(),
                             exception=[f"still running when the run finished ({status}): its result is discarded\n"])
        self.data["end"] = end.isoformat()
        start = datetime.fromisoformat(self.data["start"])
        self.data["duration"] = round((end - start).total_seconds(), 6)
        self.data.update(status=status, deviated=deviated)
        self.extra.update(verdict=verdict, exit_code=exit_code, chaostoolkit_status=chaostoolkit_status(self.data))
        self.save(force=True)

    def activities(self) -> list[dict[str, Any]]:
        """Every activity entry: the hypotheses (before, after, during), the method, the rollbacks, the recovery."""
        entries: list[dict[str, Any]] = []
        states = self.data["steady_states"]
        for state in (states.get("before"), states.get("after"), *states.get("during", [])):
            if isinstance(state, dict):
                entries.extend(state.get("probes", []))
        entries.extend(self.data["run"])
        entries.extend(self.data["rollbacks"])
        recovery = self.extra.get("recovery")
        if isinstance(recovery, dict):
            entries.extend(recovery.get("probes", []))
        return [e for e in entries if isinstance(e, dict)]

    def save(self, force: bool = False, sync: bool | None = None) -> None:
        """Write the journal; fsync'd when forced (or ``sync``). Unless forced, at most every THROTTLE_SECONDS, and
        never sooner than WRITE_SHARE_LIMIT times the last write's own duration (a write costs what the journal
        weighs)."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_write < self._interval:
            return
        # compact: json's C encoder is only used without indent (~30x faster on big journals)
        # a journal names what was changed and how to undo it: its user's only
        atomic_write(self.path, json.dumps(self.redactor.data(self.data), default=str) + "\n", mode=0o600,
                     sync=force if sync is None else sync)
        self._last_write = time.monotonic()
        self._interval = max(THROTTLE_SECONDS, WRITE_SHARE_LIMIT * (self._last_write - now))


def chaostoolkit_status(journal: dict[str, Any]) -> str:
    """The ``status`` Chaos Toolkit (chaostoolkit-lib 1.44) would have written for this run.

    ``interrupted`` and ``aborted`` as they are, but a control's ``InterruptExecution`` (chaoslib: ``interrupted``)
    and a ``--fail-fast`` stop (chaoslib: ``failed``); otherwise ``failed`` only when a steady-state probe itself
    failed (raised, timed out), else ``completed``, even when the hypothesis deviated or a method action or
    rollback failed (mlchaos' ``status`` says ``failed`` then: docs/chaostoolkit.md, "Runs: where mlchaos
    differs")."""
    status = journal.get("status")
    aborted = (journal.get("mlchaos") or {}).get("aborted") or {}
    kind = aborted.get("kind") if isinstance(aborted, dict) else None
    if kind == "control":  # a control's InterruptExecution: chaoslib calls the run interrupted
        return "interrupted"
    if kind == "fail-fast":  # a deviation during the method under --fail-fast: chaoslib marks the run failed
        return "failed"
    if status in ("interrupted", "aborted"):
        return str(status)
    states = journal.get("steady_states") or {}
    for when in ("before", "after"):
        state = states.get(when)
        probes = state.get("probes", []) if isinstance(state, dict) else []
        if any(isinstance(p, dict) and p.get("status") != "succeeded" for p in probes):
            return "failed"
    return "completed"


def _chaoslib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chaostoolkit-lib")
    except PackageNotFoundError:
        return "unknown"
