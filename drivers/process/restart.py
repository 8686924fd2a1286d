"""Restarting a killed process by the command its experiment declared: no shell, detached, logged.

The declaration (a ``restart`` mapping) is checked before the fault kills anything, and recorded, complete,
in the change record's undo, so the rollback, the guardian and ``mlchaos recover`` start exactly that:

* ``command``: the argument vector (a list of strings; never run through a shell). Its program must exist;
* ``cwd``: an absolute, existing directory to start it in (default: the runner's);
* ``env``: variables set on top of the runner's environment (they are written to the change record: pass
  credentials in a file the program reads, not here);
* ``log``: the file its output is appended to (default ``<state dir>/process-restarts/<program>.log``, 0600);
* ``ready_url``: an HTTP URL the rollback waits for, until it answers 200 (e.g. MLServer's
  ``/v2/health/ready``), within ``timeout`` seconds (default 120);
* ``write_pid_file``: write the new pid into the pid file the fault selected by (default true when it
  selected by ``pid_file``: the command runs in the foreground, as a supervisor would run it).

A unit starts with ``systemctl start``: its declaration may hold only ``ready_url`` and ``timeout``.

The process starts in a session of its own (``setsid``): it outlives the runner, a guardian or a watchdog
that restarted it, and a terminal's hang-up or Ctrl-C never reaches it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from drivers._common import checks
from mlchaos.driver_kit import DriverError, atomic_write, private_dir, procfs, state_dir, wait_for

KEYS = ("command", "cwd", "env", "log", "ready_url", "timeout", "write_pid_file")
DEFAULT_TIMEOUT = 120.0
TAIL_LINES = 15
EXEC_TIMEOUT = 5.0


def parse(restart: Any, pid_file: str | None) -> dict[str, Any]:
    """The declaration, checked and completed (absolute program path, log, timeout, write_pid_file)."""
    if not isinstance(restart, dict):
        raise DriverError(f"restart must be a mapping with a 'command' (an argument list), got {restart!r}")
    unknown = sorted(set(restart) - set(KEYS))
    if unknown:
        raise DriverError(f"restart has unknown key(s) {unknown}; known: {', '.join(KEYS)}")
    command = restart.get("command")
    if (not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command)):
        raise DriverError("restart.command must be a non-empty list of strings (the argument vector; no shell), "
                          f"got {command!r}")
    env = restart.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and k and "=" not in k and isinstance(v, str)
                                            for k, v in env.items()):
        raise DriverError(f"restart.env must map variable names to strings, got {env!r}")
    cwd = restart.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not Path(cwd).is_absolute() or not Path(cwd).is_dir()):
        raise DriverError(f"restart.cwd must be an absolute path of an existing directory, got {cwd!r}")
    program = _program(command[0], env.get("PATH", os.environ.get("PATH", "")), cwd)
    log = restart.get("log") or str(state_dir() / "process-restarts" / f"{_safe(Path(program).name)}.log")
    if not isinstance(log, str) or not Path(log).is_absolute():
        raise DriverError(f"restart.log must be an absolute file path, got {log!r}")
    ready_url = restart.get("ready_url")
    if ready_url is not None and (not isinstance(ready_url, str) or not re.match(r"https?://[^/\s]+", ready_url)):
        raise DriverError(f"restart.ready_url must be an http:// or https:// URL, got {ready_url!r}")
    timeout = restart.get("timeout", DEFAULT_TIMEOUT)
    checks.positive("restart.timeout", timeout)
    write_pid_file = restart.get("write_pid_file", pid_file is not None)
    if not isinstance(write_pid_file, bool) or (write_pid_file and pid_file is None):
        raise DriverError("restart.write_pid_file must be true or false, and true only when selecting by pid_file, "
                          f"got {write_pid_file!r}")
    return {"command": [program, *command[1:]], "cwd": cwd, "env": dict(env), "log": log, "ready_url": ready_url,
            "timeout": float(timeout), "write_pid_file": write_pid_file}


def parse_unit(restart: Any) -> dict[str, Any] | None:
    """A unit's restart declaration: None, or only ``ready_url`` and ``timeout`` (a unit starts with systemctl)."""
    if restart is None:
        return None
    if not isinstance(restart, dict) or set(restart) - {"ready_url", "timeout"}:
        raise DriverError("a unit is restarted with 'systemctl start': its restart may declare only ready_url and "
                          f"timeout, got {restart!r}")
    ready_url = restart.get("ready_url")
    if ready_url is not None and (not isinstance(ready_url, str) or not re.match(r"https?://[^/\s]+", ready_url)):
        raise DriverError(f"restart.ready_url must be an http:// or https:// URL, got {ready_url!r}")
    timeout = restart.get("timeout", DEFAULT_TIMEOUT)
    checks.positive("restart.timeout", timeout)
    return {"ready_url": ready_url, "timeout": float(timeout)}


def wait_url(url: str, timeout: float) -> bool:
    """Wait up to ``timeout`` s until ``url`` answers 200."""
    return wait_for(lambda: _answers(url), timeout, interval=0.2)


def launch(spec: dict[str, Any], pid_file: str | None) -> subprocess.Popen[bytes]:
    """Start the declared command, detached, its output appended to its log; write the pid file if asked."""
    log = Path(spec["log"])
    private_dir(log.parent) if _inside_state(log) else log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"--- mlchaos restarts {spec['command'][0]} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
                 .encode())
        process = subprocess.Popen(spec["command"], cwd=spec.get("cwd"), env=os.environ | dict(spec.get("env") or {}),
                                   stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    except OSError as exc:
        raise DriverError(f"could not start {spec['command'][0]}: {exc}") from None
    finally:
        os.close(fd)
    # Popen returns at exec's point of no return, before the kernel has set up the new command line (read
    # empty meanwhile: seen on this machine for about half of all starts): wait until a selector can see it
    wait_for(lambda: bool(procfs.cmdline(process.pid)) or process.poll() is not None, EXEC_TIMEOUT, interval=0.002)
    if spec.get("write_pid_file") and pid_file:
        atomic_write(Path(pid_file), f"{process.pid}\n", mode=0o644)
    return process


def wait_ready(process: subprocess.Popen[bytes], spec: dict[str, Any], deadline: float) -> None:
    """Wait until ``ready_url`` answers 200 (or, without one, that the process is running); DriverError with the
    log's last lines when it exits first or time runs out."""
    url = spec.get("ready_url")

    def ready() -> bool:
        return process.poll() is not None or (url is None or _answers(url))

    wait_for(ready, max(deadline - time.monotonic(), 0.1), interval=0.2)
    if process.poll() is not None:
        raise DriverError(f"{spec['command'][0]} exited with {process.returncode} after its restart:\n"
                          f"{log_tail(Path(spec['log']))}")
    if url is not None and not _answers(url):
        raise DriverError(f"{spec['command'][0]} (pid {process.pid}) restarted but {url} did not answer 200 "
                          f"within {spec['timeout']:g}s:\n{log_tail(Path(spec['log']))}")


def log_tail(log: Path) -> str:
    """The last lines of a restart's log."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-TAIL_LINES:])
    except OSError as exc:
        return f"(log {log} unreadable: {exc})"


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _program(name: str, path: str, cwd: str | None) -> str:
    """The absolute path of the program ``name`` (a path, or a name looked up on ``path``)."""
    if "/" in name:
        candidate = Path(name) if Path(name).is_absolute() else Path(cwd or os.getcwd()) / name
        found = str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    else:
        found = shutil.which(name, path=path)
    if found is None:
        raise DriverError(f"restart.command: program {name!r} is not an executable file (nor on PATH)")
    return found


def _inside_state(path: Path) -> bool:
    return path.absolute().is_relative_to(state_dir().absolute())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "process"
