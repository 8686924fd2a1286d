"""Time to live for faults whose mechanism cannot expire by itself (a SIGSTOP, a netem qdisc).

``start_watchdog(after, func, arguments)`` starts a detached process, in its own session so
it outlives a runner that crashed or was killed, that sleeps ``after`` seconds and then
calls the undo function of the change record (``module.func(**arguments)``). The normal
rollback stops it first (``stop_watchdog``), so the undo runs once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

_MARKER = b"mlchaos.watchdog"


def start_watchdog(after: float, func: str, arguments: dict[str, Any]) -> int:
    """Start the detached watchdog; return its pid (to record in the change record)."""
    command = [sys.executable, "-m", "mlchaos.watchdog", "--after", str(after), "--func", func,
               "--arguments", json.dumps(arguments)]
    process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until_recognisable(process.pid)
    return process.pid


def _wait_until_recognisable(pid: int, timeout: float = 5.0) -> None:
    """Return once the child has exec'd (its command line carries the marker): until then a rollback that
    looks for watchdogs by command line (drivers.watchdogs) could not find it. Bounded; never raises."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if _MARKER in handle.read():
                    return
        except FileNotFoundError:
            return
        time.sleep(0.002)


def start_record_watchdog(record: Any, after: float, func: str, arguments: dict[str, Any]) -> int:
    """Start the watchdog of a change record's fault and note its pid in the record (``parameters`` and the
    undo's arguments), so that the rollback stops it first; return the pid."""
    pid = start_watchdog(after, func, arguments)
    record.parameters["watchdog_pid"] = pid
    record.undo["arguments"]["watchdog_pid"] = pid
    return pid


def stop_watchdog(pid: int) -> bool:
    """Stop a watchdog (checked by its command line: a reused pid is left alone); True if it was running."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if _MARKER not in handle.read():
                return False
        os.kill(pid, signal.SIGTERM)
        return True
    except (FileNotFoundError, ProcessLookupError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlchaos.watchdog")
    parser.add_argument("--after", type=float, required=True)
    parser.add_argument("--func", required=True, help="module.function to call")
    parser.add_argument("--arguments", default="{}", help="JSON keyword arguments")
    args = parser.parse_args(argv)
    module_name, func_name = args.func.rsplit(".", 1)
    func = getattr(importlib.import_module(module_name), func_name)
    time.sleep(args.after)
    func(**json.loads(args.arguments))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
