"""Find and stop the TTL watchdogs that would undo a change a rollback has just undone.

A rollback that is given the watchdog's pid (``watchdog_pid`` in the change record's undo)
stops it directly. One that is not (a rollback by selector in an experiment's fixed list,
or ``mlchaos recover`` replaying a record journaled before the watchdog started) finds
the watchdogs of the same undo function here, by their command line, and stops those
whose every target it covered; a watchdog with a target left over keeps running.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlchaos.watchdog import stop_watchdog

MARKER = "mlchaos.watchdog"


def pending(func: str) -> list[tuple[int, dict[str, Any]]]:
    """The live watchdogs (pid, arguments) that will call ``func`` (``module.function``), this process excluded
    (a watchdog running the undo must not stop itself)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if MARKER not in argv or _option(argv, "--func") != func:
            continue
        try:
            arguments = json.loads(_option(argv, "--arguments") or "{}")
        except ValueError:
            continue
        if isinstance(arguments, dict):
            found.append((int(entry.name), arguments))
    return sorted(found, key=lambda item: item[0])


def stop_covered(
    func: str, covered: Callable[[dict[str, Any]], bool], same_environment: str | None = None
) -> list[int]:
    """Stop every watchdog of ``func`` whose arguments ``covered`` accepts; return their pids.

    With ``same_environment`` (an environment variable, e.g. ``MLCHAOS_STATE_DIR``), only
    watchdogs that see the same value as this process are considered (another sandbox's
    replicas may have the same names).
    """
    stopped = []
    for pid, arguments in pending(func):
        if same_environment is not None and _environ(pid).get(same_environment) != os.environ.get(same_environment):
            continue
        if covered(arguments) and stop_watchdog(pid):
            stopped.append(pid)
    return stopped


def _option(argv: list[str], name: str) -> str | None:
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == name:
            return value
    return None


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}
