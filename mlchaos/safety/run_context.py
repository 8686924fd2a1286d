"""What a driver may know about the run it is part of: the faults injected so far
(to measure time to detect from the moment of injection, and to match alerts to the
targets that were hit), the run's notification receiver, and what one probe recorded
for a later one (``baselines``: a counter's value before the fault).

Outside a run (a driver called from plain Python) ``current()`` is None.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlchaos.safety.changes import ChangeRecord

_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("mlchaos_run", default=None)


@dataclass
class RunContext:
    """Shared, read-mostly state of one run."""

    changes: list[ChangeRecord] = field(default_factory=list)
    receiver: Any = None  # mlchaos.monitoring.notifications.NotificationReceiver when the run has one
    dry_run: bool = False  # a plan: the planned (dry-run) changes stand for the faults
    baselines: dict[str, Any] = field(default_factory=dict)  # what a probe recorded for a later one, by its key

    def last_fault(self) -> ChangeRecord | None:
        """The most recent change that was really applied (in a plan: the most recent planned one).

        Client traffic a drill starts (targets of kind ``traffic``) is a load, not a fault: skipped.
        """
        for record in reversed(self.changes):
            if any(t.kind == "traffic" for t in record.targets):
                continue
            if self.dry_run or not record.dry_run:
                return record
        return None

    def fault_time(self) -> float | None:
        """Epoch seconds at which the most recent fault was announced (just before it was applied)."""
        record = self.last_fault()
        return datetime.fromisoformat(record.announced_at).timestamp() if record else None

    def fault_targets(self) -> list[dict[str, Any]]:
        """Details of the targets of the most recent fault (e.g. ``instance``, ``pid``, ``url``)."""
        record = self.last_fault()
        return [{"name": t.name, **t.details} for t in record.targets] if record else []


def current() -> RunContext | None:
    """The context of the run this code is executing in, if any."""
    return _current.get()


def activate(context: RunContext) -> contextvars.Token:
    return _current.set(context)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)
