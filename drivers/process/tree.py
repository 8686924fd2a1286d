"""Host processes named for good: a pid with its start time, its tree or group, and signals that never hit a reused pid.

A pid alone does not name a process (the kernel reuses pids); a :class:`Member` is a pid plus its start time
from ``/proc/<pid>/stat``, written ``"<pid>@<start time>"`` in change records. :func:`send` opens a pidfd on
the pid, checks the start time *after* opening it (the pidfd then refers to that very process, whatever
happens to the pid) and signals through the pidfd, so a process that exited and whose pid was reused is
never signalled. Kernels without pidfds fall back to a start-time check just before ``kill``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from mlchaos.driver_kit import DriverError, procfs

SCOPES = ("tree", "group", "process")


@dataclass(frozen=True, order=True)
class Member:
    """One process, for good: its pid and its start time (clock ticks since boot)."""

    pid: int
    start_time: int

    def __str__(self) -> str:
        return f"{self.pid}@{self.start_time}"

    @classmethod
    def parse(cls, text: object) -> Member:
        """``"<pid>@<start time>"`` back into a member (DriverError when malformed)."""
        pid, sep, start = str(text).partition("@")
        if not (sep and pid.isdigit() and start.isdigit()):
            raise DriverError(f"not a process as change records name one ('<pid>@<start time>'): {text!r}")
        return cls(int(pid), int(start))

    @classmethod
    def of(cls, pid: int) -> Member | None:
        """The live (non-zombie) process ``pid`` now, or None."""
        start = procfs.start_time(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        """True while this very process runs (stopped counts; a zombie or a reused pid does not)."""
        return procfs.start_time(self.pid) == self.start_time

    def stopped(self) -> bool:
        """True while this very process is stopped (SIGSTOP)."""
        found = procfs.stat(self.pid)
        return found is not None and found[1] == self.start_time and found[0] in ("T", "t")


def children_map() -> dict[int, list[int]]:
    """Every live process's children, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for pid in procfs.pids():
        ids = procfs.parentage(pid)
        if ids is not None:
            children.setdefault(ids[0], []).append(pid)
    return children


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """The pids below ``pid`` (children, their children...), parents before children."""
    children = children_map() if children is None else children
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop(0)
        if current not in found and current != pid:
            found.append(current)
            todo.extend(children.get(current, []))
    return found


def ancestors(pid: int) -> list[int]:
    """The pids above ``pid`` up to init (its parent first)."""
    found: list[int] = []
    current = pid
    while True:
        ids = procfs.parentage(current)
        if ids is None or ids[0] <= 0 or ids[0] in found:
            return found
        found.append(ids[0])
        current = ids[0]


def members(root: Member, scope: str) -> list[Member]:
    """The processes a fault on ``root`` acts on, root first: ``process`` (it alone), ``tree`` (it and every
    descendant) or ``group`` (every process of its process group, which it must lead)."""
    if scope == "process":
        return [root]
    if scope == "tree":
        pids = descendants(root.pid)
    else:
        ids = procfs.parentage(root.pid)
        if ids is None or ids[1] != root.pid:
            raise DriverError(f"scope 'group': process {root.pid} does not lead its process group "
                              f"(pgid {ids[1] if ids else '?'}); signalling that group would hit other programs: "
                              "use scope 'tree'")
        pids = [p for p in procfs.pids() if p != root.pid and (procfs.parentage(p) or (0, 0, 0))[1] == root.pid]
    found = [m for m in (Member.of(p) for p in pids) if m is not None]
    return [root, *found]


def send(member: Member, signum: signal.Signals) -> bool:
    """Signal this very process (never a reused pid); True when it was signalled, False when it is gone."""
    try:
        return _send(member, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        raise DriverError(f"not allowed to send {signum.name} to pid {member.pid} ({command_text(member.pid, 80)}): "
                          "run mlchaos as that process's user or as root") from None


def _send(member: Member, signum: signal.Signals) -> bool:
    try:
        fd = os.pidfd_open(member.pid)
    except (ProcessLookupError, PermissionError):
        raise
    except (AttributeError, OSError):  # no pidfd on this kernel: check, then kill (a microseconds-wide race)
        if not member.alive():
            return False
        os.kill(member.pid, signum)
        return True
    try:
        if not member.alive():  # checked after the pidfd was opened: the pidfd is this process or a dead one
            return False
        signal.pidfd_send_signal(fd, signum)
        return True
    finally:
        os.close(fd)


def command_text(pid: int, limit: int = 300) -> str:
    """The command line of ``pid`` as one line (cut to ``limit`` characters), for records and messages."""
    text = " ".join(procfs.cmdline(pid) or [])
    return text if len(text) <= limit else text[: limit - 3] + "..."
