"""The traffic generator processes of drivers.model.traffic: start one, find it again, end exactly it.

A generator (``python -m drivers.model.traffic_process``) is ours only when its command line
carries the marker and its token and, when known, it started at the recorded start time
(:func:`mlchaos.lib.procfs.start_time`): a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drivers.model.sandbox import reap, track
from drivers.model.traffic_process import MARKER, Plan
from mlchaos.driver_kit import DriverError, private_dir, procfs, write_json

START_TIMEOUT = 20.0  # seconds for the generator to write its first stats
STOP_TIMEOUT = 5.0  # seconds after SIGTERM before SIGKILL
KILL_TIMEOUT = 5.0


def find_generators(token: str, pid: int | None = None, start_time: int | None = None) -> list[int]:
    """The live generators carrying `token` (only `pid` when given, and only if it started at `start_time`)."""
    candidates = [pid] if pid is not None else sorted(procfs.pids())
    return [c for c in candidates if is_generator(c, token, start_time)]


def is_generator(pid: int, token: str, start_time: int | None = None) -> bool:
    """True when `pid` is a live (never zombie) traffic generator with `token` (started at `start_time`)."""
    started = procfs.start_time(pid)
    if started is None or (start_time is not None and started != start_time):
        return False  # gone, a zombie, or a reused pid
    argv = procfs.cmdline(pid)
    return argv is not None and MARKER in argv and procfs.has_option(argv, "--token", token)


def spawn(plan: Plan, plan_path: Path, log_path: Path, started: Any,
          access: dict[str, dict[str, Any]] | None = None) -> tuple[int, int | None]:
    """Start the generator in its own session; (pid, start time) once ``started()`` (its first stats) is true.

    ``access`` (client settings by base URL: credentials) goes to it through a pipe on its standard input,
    written once and closed: never its command line, environment or plan file (``plan.credentials`` says so).
    """
    write_json(plan_path, plan.to_dict())
    private_dir(log_path.parent)
    # nor does a credential the runner read from its environment (password_env...) go on in the generator's
    credentials = {m for settings in (access or {}).values() for m in settings.get("mask") or ()}
    env = {k: v for k, v in os.environ.items() if v.strip() not in credentials}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", MARKER, "--token", plan.token, "--config", str(plan_path)],
                                   start_new_session=True, stdin=subprocess.PIPE if plan.credentials else
                                   subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    track(process)  # reaped once it exits, so it never lingers as a zombie of the runner
    if plan.credentials:
        _hand_over(process, access or {}, log_path)
    start_time = procfs.start_time(process.pid)
    deadline = time.monotonic() + START_TIMEOUT
    while not started():
        code = process.poll()
        if code is not None:
            raise DriverError(f"the traffic generator exited at its start (code {code}): {_tail(log_path)}")
        if time.monotonic() >= deadline:
            end(process.pid, plan.token)
            raise DriverError(f"the traffic generator wrote no stats within {START_TIMEOUT:g}s: {_tail(log_path)}")
        time.sleep(0.02)
    return process.pid, start_time


def _hand_over(process: subprocess.Popen[bytes], access: dict[str, dict[str, Any]], log_path: Path) -> None:
    """Write the client settings to the generator's stdin and close it (it reads them before anything else)."""
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(access).encode())
        process.stdin.close()
    except (BrokenPipeError, OSError):  # it ended before reading them: say why, as a start that failed does
        process.wait(START_TIMEOUT)
        raise DriverError(f"the traffic generator exited at its start (code {process.returncode}): "
                          f"{_tail(log_path)}") from None


def end(pid: int, token: str) -> bool:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; wait until it is gone. True when it had to be killed."""
    start_time = procfs.start_time(pid)
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, KILL_TIMEOUT)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while is_generator(pid, token, start_time):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
            reap(pid)  # our own child: collect it, or it stays a zombie
        else:
            return sig is signal.SIGKILL
    raise DriverError(f"the traffic generator (pid {pid}) did not end after SIGKILL")


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"
