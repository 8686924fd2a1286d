"""Change records: what an action changed, so that rollback undoes exactly that.

A driver action builds a :class:`ChangeRecord` *before* it touches anything,
announces it (the runner writes it to the journal on disk at once, so a runner
killed with SIGKILL still leaves a record of the fault), then applies the fault
and returns ``record.to_dict()`` as the activity's output.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

CHANGE_MARKER = "mlchaos_change"

ChangeSink = Callable[["ChangeRecord"], None]
_sink: contextvars.ContextVar[ChangeSink | None] = contextvars.ContextVar(
    "mlchaos_change_sink", default=None
)


@dataclass(frozen=True)
class Target:
    """One thing a fault was applied to (a process, a container, a pod...)."""

    kind: str
    name: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChangeRecord:
    """What one action changed, with what is needed to undo it."""

    driver: str
    action: str
    targets: list[Target]
    parameters: dict[str, Any] = field(default_factory=dict)
    undo: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    # where the change happens, checked against the environment allow-list:
    # "local:<hostname>" (sandbox processes, files), "docker:<DOCKER_HOST>", "http://host:port" (an API)
    environment: str = ""
    # the names of every eligible target the selection chose from (the denominator of
    # blast-radius fractions); empty when the driver cannot tell (counted as 100 %)
    population: list[str] = field(default_factory=list)
    announced_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # a load the recovery check relies on (client traffic that refills a drift window): when no
    # declared rollback undid it, the safety net undoes it after the recovery check, not before
    undo_after_recovery: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data[CHANGE_MARKER] = 1
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeRecord:
        """The record in a journal: the announced copy, or an action's output, which may carry more keys than
        the record (a toxic's JSON, stats...): those are not part of the record and are left out.
        TypeError or ValueError when a field the record needs is missing or malformed."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["targets"] = [Target(**t) for t in values.get("targets", [])]
        return cls(**values)


def local_environment() -> str:
    """The environment id of changes made on this host (processes, files): ``local:<hostname>``."""
    import socket

    return f"local:{socket.gethostname()}"


def is_change_record(value: Any) -> bool:
    """True when an activity output is a serialised change record."""
    return isinstance(value, dict) and value.get(CHANGE_MARKER) == 1


def announce(record: ChangeRecord) -> None:
    """Hand the record to the running experiment's journal before applying it.

    Outside a run (a driver called from plain Python) this does nothing.
    """
    sink = _sink.get()
    if sink is not None:
        sink(record)


def set_sink(sink: ChangeSink | None) -> contextvars.Token:
    """Install the function that persists announced records (used by the runner)."""
    return _sink.set(sink)


def reset_sink(token: contextvars.Token) -> None:
    _sink.reset(token)
