"""The safety net: after the declared rollbacks, undo every applied change that no successful rollback undid.

Rollbacks in an experiment are a fixed list; the faults a run applied are exact records
(:mod:`mlchaos.safety.changes`). Every record whose undo function no successful declared
rollback ran is undone from the record itself, newest first, once. Loads the recovery check
relies on (records marked ``undo_after_recovery``, e.g. client traffic) can be kept for later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlchaos.experiment.execution import FAILED, SUCCEEDED, Waiter
from mlchaos.safety.changes import ChangeRecord
from mlchaos.safety.undo import UndoResult, undo_record


@dataclass
class SafetyNet:
    """What the declared rollbacks covered, and which records the net has undone already."""

    covered: set[str] = field(default_factory=set)  # undo functions a declared rollback ran successfully
    _undone: set[int] = field(default_factory=set)  # ids of the records the net has undone

    def rolled_back(self, func: str) -> None:
        """A declared rollback calling ``func`` (``module.function``) succeeded: its changes are covered."""
        self.covered.add(func)

    def uncovered(self, records: Iterable[ChangeRecord], keep_loads: bool = False) -> list[ChangeRecord]:
        """The applied records still to undo, oldest first (each is returned once: it counts as taken)."""
        found = [r for r in records
                 if not r.dry_run and r.undo.get("func") and r.undo["func"] not in self.covered
                 and id(r) not in self._undone and not (keep_loads and r.undo_after_recovery)]
        self._undone.update(id(r) for r in found)
        return found


def undo_name(record: ChangeRecord) -> str:
    """How the journal and the console name an automatic undo."""
    return f"undo {record.action} (automatic, from its change record)"


def undo(record: ChangeRecord, timeout: float, waiter: Waiter) -> tuple[UndoResult, dict[str, Any]]:
    """Undo one record; the result and the journal's rollback entry for it: a Chaos Toolkit activity entry (with
    its start and end), marked automatic under mlchaos' own key (``"mlchaos": {"automatic": true}``)."""
    started = datetime.now(UTC)
    result = undo_record(record, timeout, waiter)
    module, _, func = record.undo["func"].rpartition(".")
    entry: dict[str, Any] = {
        "activity": {"type": "action", "name": undo_name(record), "provider": {
            "type": "python", "module": module, "func": func, "arguments": record.undo.get("arguments", {})}},
        "status": SUCCEEDED if result.ok else FAILED, "output": result.output, "start": started.isoformat(),
        "end": datetime.now(UTC).isoformat(), "duration": result.duration, "mlchaos": {"automatic": True}}
    if result.error:
        entry["exception"] = [result.error]
    return result, entry
