"""Reading Linux ``/proc``: the pids, a process's command line, environment, state, parentage and start time.

A pid alone does not name a process for good (the kernel reuses pids); a pid with its start
time (:func:`start_time`) does. Every function answers None (or an empty value) for a process
that is gone or cannot be read, and never raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")


def pids() -> Iterator[int]:
    """Every pid /proc lists now, in the order /proc gives them."""
    try:
        entries = list(PROC.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            yield int(entry.name)


def cmdline(pid: int) -> list[str] | None:
    """The argument vector of ``pid``; None when the process is gone or unreadable (a zombie has an empty one)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` started with (empty when it is gone or not ours to read)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid``: state is one letter (R, S, T, Z...)."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    try:  # the command name in (...) may hold spaces and parentheses: split after the last ')'
        fields = raw.rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[19])
    except (IndexError, ValueError):
        return None


def parentage(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group id, session id) of ``pid``; None when it is gone or unreadable."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    try:
        fields = raw.rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def state(pid: int) -> str | None:
    """The one-letter kernel state of ``pid`` (R, S, T, Z...), None when it is gone."""
    found = stat(pid)
    return found[0] if found else None


def start_time(pid: int) -> int | None:
    """When a live ``pid`` started (clock ticks since boot); None when it is gone or a zombie."""
    found = stat(pid)
    return None if found is None or found[0] in ("Z", "X") else found[1]


def has_option(argv: list[str], flag: str, value: str) -> bool:
    """True when ``argv`` carries ``flag value`` (two consecutive arguments)."""
    return any(a == flag and b == value for a, b in zip(argv, argv[1:], strict=False))
