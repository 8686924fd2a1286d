"""Time to live for faults whose mechanism cannot expire by itself (a SIGSTOP, a netem qdisc...).

``start_watchdog(after, func, arguments)`` starts a detached process, in its own session so
it outlives a runner that crashed or was killed, that sleeps ``after`` seconds and then
calls the undo function of the change record (``module.func(**arguments)``). The normal
rollback stops it first, so the undo runs once:

* a rollback given the watchdog's pid (``watchdog_pid`` in the record's undo) stops it
  directly (:func:`stop_watchdog`);
* one that is not (a rollback by selector in an experiment's fixed list, or
  ``mlchaos recover`` replaying a record journaled before the watchdog started) finds the
  watchdogs of the same undo function by their command line and stops those whose every
  target it covered (:func:`stop_covered`); a watchdog with a target left over keeps running.

A watchdog is recognised by its module in its command line: ``mlchaos.safety.watchdog``, or
``mlchaos.watchdog`` for one started by mlchaos before the layout of issue 14 (a watchdog
still sleeping through an upgrade is found and stopped too).
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
from collections.abc import Callable
from typing import Any

from mlchaos.lib import procfs
from mlchaos.lib.waiting import wait_for

MODULE = "mlchaos.safety.watchdog"
MARKERS = (MODULE, "mlchaos.watchdog")  # the module now, and before the move (still recognised)


def start_watchdog(after: float, func: str, arguments: dict[str, Any]) -> int:
    """Start the detached watchdog; return its pid (to record in the change record)."""
    command = [sys.executable, "-m", MODULE, "--after", str(after), "--func", func,
               "--arguments", json.dumps(arguments)]
    process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until_recognisable(process.pid)
    return process.pid


def _wait_until_recognisable(pid: int, timeout: float = 5.0) -> None:
    """Return once the child has exec'd (its command line carries the marker): until then a rollback that
    looks for watchdogs by command line (:func:`pending`) could not find it. Bounded; never raises."""

    def exec_done() -> bool:
        argv = procfs.cmdline(pid)
        return argv is None or is_watchdog(argv)

    wait_for(exec_done, timeout, interval=0.002)


def start_record_watchdog(record: Any, after: float, func: str, arguments: dict[str, Any]) -> int:
    """Start the watchdog of a change record's fault and note its pid in the record (``parameters`` and the
    undo's arguments), so that the rollback stops it first; return the pid."""
    pid = start_watchdog(after, func, arguments)
    record.parameters["watchdog_pid"] = pid
    record.undo["arguments"]["watchdog_pid"] = pid
    return pid


def is_watchdog(argv: list[str]) -> bool:
    """True for the command line of a watchdog (``python -m mlchaos.safety.watchdog ...``, or a pre-move one)."""
    return any(marker in argv for marker in MARKERS)


def stop_watchdog(pid: int) -> bool:
    """Stop a watchdog (checked by its command line: a reused pid is left alone); True if it was running."""
    argv = procfs.cmdline(pid)
    if argv is None or not is_watchdog(argv):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        return True
    except ProcessLookupError:
        return False


def pending(func: str) -> list[tuple[int, dict[str, Any]]]:
    """The live watchdogs (pid, arguments) that will call ``func`` (``module.function``), this process excluded
    (a watchdog running the undo must not stop itself)."""
    found = []
    for pid in procfs.pids():
        if pid == os.getpid():
            continue
        argv = procfs.cmdline(pid)
        if argv is None or not is_watchdog(argv) or _option(argv, "--func") != func:
            continue
        try:
            arguments = json.loads(_option(argv, "--arguments") or "{}")
        except ValueError:
            continue
        if isinstance(arguments, dict):
            found.append((pid, arguments))
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
        if same_environment is not None and procfs.environ(pid).get(same_environment) != os.environ.get(
                same_environment):
            continue
        if covered(arguments) and stop_watchdog(pid):
            stopped.append(pid)
    return stopped


def _option(argv: list[str], name: str) -> str | None:
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == name:
            return value
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
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
