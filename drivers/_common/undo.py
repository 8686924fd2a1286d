"""What every rollback shares: the undo paths records and watchdogs name, stopping watchdogs, ``already``.

A change record's undo names its rollback by a dotted path that journals keep for good
(``drivers.docker.actions.start_containers``): :class:`Rollbacks` builds those paths from a
driver's facade module, wherever the function lives now, and starts or stops the TTL
watchdogs that call them. A rollback stops the watchdog it was told about
(:func:`stop_told`), then the ones of the same fault it was not told about (a rollback by
selector, or replayed from the journal) with :meth:`Rollbacks.stop_watchdogs`. A rollback that
restored files from a backup on disk prunes that backup (:func:`prune_backup`) once the restore is
verified, never before: no copy of a key outlives the fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlchaos.driver_kit import ChangeRecord, start_record_watchdog, stop_covered, stop_watchdog


@dataclass(frozen=True)
class Rollbacks:
    """The rollbacks of one driver, named by the module experiments and journals call them from."""

    module: str  # e.g. drivers.docker.actions

    def path(self, func: str) -> str:
        """The dotted path of a rollback: ``<module>.<func>``."""
        return f"{self.module}.{func}"

    def undo(self, func: str, **arguments: Any) -> dict[str, Any]:
        """A change record's ``undo``: the rollback's path and its arguments."""
        return {"func": self.path(func), "arguments": arguments}

    def start_watchdog(self, record: ChangeRecord, ttl: float, func: str, arguments: dict[str, Any]) -> int:
        """A detached watchdog that calls the rollback after ``ttl`` s (noted in the record); its pid."""
        return start_record_watchdog(record, ttl, self.path(func), arguments)

    def stop_watchdogs(self, func: str, covered: Callable[[dict[str, Any]], bool], **options: Any) -> list[int]:
        """Stop the watchdogs of the rollback whose arguments ``covered`` accepts (see stop_covered)."""
        return stop_covered(self.path(func), covered, **options)


def stop_told(watchdog_pid: int | None) -> None:
    """Stop the watchdog a rollback was told about (its record's ``watchdog_pid``), if any."""
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)


def covers(key: str, handled: Iterable[Any], **same: Any) -> Callable[[dict[str, Any]], bool]:
    """Watchdog arguments whose ``key`` lists only ``handled`` targets (at least one) and whose ``same``
    arguments are equal: what a rollback that handled those targets has undone."""
    done = set(handled)

    def covered(arguments: dict[str, Any]) -> bool:
        theirs = arguments.get(key)
        return (isinstance(theirs, list) and bool(theirs) and set(theirs) <= done
                and all(arguments.get(k) == v for k, v in same.items()))

    return covered


def already(results: dict[str, str], *changed: str) -> list[str]:
    """The targets whose rollback found nothing to do: their result starts with none of ``changed``."""
    return [key for key, result in results.items() if not result.startswith(changed)]


def prune_backup(folder: Path, keep: Iterable[str]) -> list[str]:
    """Delete the files of a backup the rollback has put back (and verified) but those named in ``keep`` (its
    manifest and RESTORED marker, so that a replayed undo still finds nothing to do); the names deleted."""
    kept = set(keep)
    pruned = []
    for item in sorted(folder.iterdir()) if folder.is_dir() else []:
        if item.name not in kept and (item.is_file() or item.is_symlink()):
            item.unlink(missing_ok=True)
            pruned.append(item.name)
    return pruned
