"""Process checks on Linux ``/proc``: is a pid alive, stopped, a zombie, one of ours?

A pid from the state file is only trusted when ``/proc/<pid>/cmdline`` shows the
sandbox model server (pids are reused by the kernel).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from mlchaos.lib import procfs
from mlchaos.lib.procfs import state as proc_state

SERVER_MODULE = "mlchaos.sandbox.model_server"

# Popen objects of replicas this process started, so they can be reaped (no zombies)
_children: dict[int, subprocess.Popen[bytes]] = {}


def track(proc: subprocess.Popen[bytes]) -> None:
    """Remember a child process so that it is reaped once it exits."""
    _children[proc.pid] = proc


def reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is a finished child of this process."""
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
        os.waitpid(pid, os.WNOHANG)


def cmdline(pid: int) -> list[str]:
    """Return the argument vector of ``pid`` (empty when it is gone)."""
    return procfs.cmdline(pid) or []


def is_model_server(pid: int, replica: str | None = None) -> bool:
    """True when ``pid`` runs the sandbox model server (for ``replica`` when given)."""
    if pid <= 0:
        return False
    argv = cmdline(pid)
    if SERVER_MODULE not in argv:
        return False
    if replica is None:
        return True
    return any(a == "--replica" and b == replica for a, b in zip(argv, argv[1:], strict=False))


def live_cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid`` when it is a live process (possibly stopped, never a zombie), else None.

    A child of ours that exited is reaped first, so it does not linger as a zombie.
    """
    if pid <= 0:
        return None
    reap(pid)
    if proc_state(pid) in (None, "Z", "X"):
        return None
    return cmdline(pid)


def is_alive(pid: int, replica: str | None = None) -> bool:
    """True when ``pid`` is a live (possibly stopped, never zombie) sandbox model server."""
    return live_cmdline(pid) is not None and is_model_server(pid, replica)


def is_stopped(pid: int) -> bool:
    """True when ``pid`` is stopped by a signal (SIGSTOP) or traced."""
    return proc_state(pid) in ("T", "t")


def signal_model_server(pid: int, signum: signal.Signals, replica: str | None = None) -> bool:
    """Send ``signum`` to ``pid`` only if it is still our model server; say whether it was sent."""
    if not is_alive(pid, replica):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Poll until every pid has exited (zombies count as gone); return those still alive."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        alive = [p for p in pids if is_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
