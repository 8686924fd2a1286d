"""Which host processes a fault hits: by pid file, by command pattern (with a bound), or by systemd unit.

Exactly one of ``pid_file``, ``pattern`` and ``unit``:

* ``pid_file``: the process whose pid the file holds (it must be running);
* ``pattern``: a regular expression searched in each command line (arguments joined by spaces). A match
  below another match (a forked worker with its parent's command line) belongs to that match's tree and is
  not a target of its own. Never matched: this process, its ancestors (the runner), zombies, kernel threads
  and mlchaos' own guardian and watchdogs. More matches than ``max_matches`` (default 1) is an error naming
  them, nothing is signalled: the bound is the blast radius a pattern may have;
* ``unit``: the unit's MainPID (``systemctl show``).

Each target is acted on with its ``scope``: ``tree`` (default: it and every descendant, e.g. MLServer's
inference workers), ``group`` (its process group, which it must lead), ``process`` (it alone) or, for a
unit, ``cgroup`` (every process of the unit's control group).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.process import systemd
from drivers.process.tree import SCOPES, Member, ancestors, command_text, members
from mlchaos.driver_kit import DriverError, TargetNotFound, procfs

OWN_MODULES = ("mlchaos.safety.guardian", "mlchaos.safety.watchdog", "mlchaos.watchdog")
SHOWN = 5


@dataclass(frozen=True)
class Selector:
    """A validated selection: one of pid_file / pattern / unit, the bound on pattern matches, the scope."""

    pid_file: str | None = None
    pattern: str | None = None
    unit: str | None = None
    max_matches: int = 1
    scope: str = "tree"

    def arguments(self) -> dict[str, Any]:
        """The selection as keyword arguments (for records, undos and watchdogs)."""
        given = {"pid_file": self.pid_file, "pattern": self.pattern, "unit": self.unit}
        chosen = {k: v for k, v in given.items() if v is not None}
        return chosen | {"max_matches": self.max_matches, "scope": self.scope}

    def describe(self) -> str:
        """``pid file /run/x.pid``, ``pattern 'mlserver start'`` or ``unit mlserver.service``."""
        if self.pid_file is not None:
            return f"pid file {self.pid_file}"
        return f"pattern {self.pattern!r}" if self.pattern is not None else f"unit {self.unit}"


def parse(pid_file: Any = None, pattern: Any = None, unit: Any = None, max_matches: Any = 1,
          scope: Any = "tree") -> Selector:
    """Validate a selection (one DriverError line naming the argument); nothing is read yet."""
    given = [name for name, value in (("pid_file", pid_file), ("pattern", pattern), ("unit", unit))
             if value is not None]
    if len(given) != 1:
        raise DriverError("select the processes by exactly one of pid_file, pattern or unit"
                          + (f" (got {', '.join(given)})" if given else " (got none)"))
    if pid_file is not None and (not isinstance(pid_file, str) or not Path(pid_file).is_absolute()):
        raise DriverError(f"pid_file must be an absolute path, got {pid_file!r}")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern.strip():
            raise DriverError(f"pattern must be a non-empty regular expression, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DriverError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if unit is not None:
        systemd.check_unit(unit)
    if isinstance(max_matches, bool) or not isinstance(max_matches, int) or max_matches < 1:
        raise DriverError(f"max_matches must be an integer >= 1, got {max_matches!r}")
    scopes = (*SCOPES, "cgroup") if unit is not None else SCOPES
    if scope not in scopes:
        raise DriverError(f"scope must be one of {', '.join(scopes)}, got {scope!r}"
                          + (" (cgroup needs a unit)" if scope == "cgroup" else ""))
    return Selector(pid_file, pattern, unit, max_matches, scope)


def roots(selector: Selector) -> list[Member]:
    """The selected processes (before their scope is applied), in pid order; TargetNotFound when none."""
    if selector.pid_file is not None:
        return [_from_pid_file(Path(selector.pid_file))]
    if selector.unit is not None:
        pid = systemd.main_pid(selector.unit)
        found = Member.of(pid)
        if found is None:
            raise TargetNotFound(f"unit {selector.unit}: its MainPID {pid} is not running")
        return [found]
    assert selector.pattern is not None
    found = matching(selector.pattern)
    if not found:
        raise TargetNotFound(f"no running process's command line matches pattern {selector.pattern!r}")
    if len(found) > selector.max_matches:
        listed = "; ".join(f"{m.pid}: {command_text(m.pid, 80)}" for m in found[:SHOWN])
        raise DriverError(f"pattern {selector.pattern!r} matches {len(found)} processes, more than max_matches="
                          f"{selector.max_matches} (narrow the pattern or raise max_matches): {listed}")
    return found


def scoped(selector: Selector, root: Member) -> list[Member]:
    """The processes a fault on ``root`` acts on, root first (see the module's scopes)."""
    if selector.scope != "cgroup":
        return members(root, selector.scope)
    assert selector.unit is not None
    rest = [m for m in (Member.of(p) for p in systemd.cgroup_pids(selector.unit)) if m is not None and m != root]
    return [root, *sorted(rest)]


def matching(pattern: str) -> list[Member]:
    """The processes whose command line ``pattern`` matches and that have no matching ancestor, in pid order."""
    regex = re.compile(pattern)
    excluded = {os.getpid(), *ancestors(os.getpid())}
    hits: dict[int, Member] = {}
    for pid in procfs.pids():
        argv = procfs.cmdline(pid)
        if pid in excluded or not argv or any(module in argv for module in OWN_MODULES):
            continue
        if regex.search(" ".join(argv)):
            found = Member.of(pid)
            if found is not None:
                hits[pid] = found
    return sorted(m for m in hits.values() if not any(a in hits for a in ancestors(m.pid)))


def _from_pid_file(path: Path) -> Member:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        raise TargetNotFound(f"pid file {path} does not exist") from None
    except OSError as exc:
        raise DriverError(f"pid file {path} cannot be read: {exc}") from None
    first = text.split()[0] if text else ""
    if not first.isdigit() or int(first) <= 0:
        raise DriverError(f"pid file {path} does not hold a pid (it holds {text[:40]!r})")
    found = Member.of(int(first))
    if found is None:
        raise TargetNotFound(f"pid file {path} names pid {first}, which is not running")
    return found
