"""The run's guardian: a detached process that undoes the run's faults when its runner dies.

The runner starts it (in its own session, so it outlives a runner killed with SIGKILL)
before the first fault and touches its heartbeat file every second. When the run ends,
the runner removes its registry entry and the guardian exits. When the heartbeat stops
(runner killed, crashed, hung or suspended for longer than ``--timeout`` seconds), the
guardian recovers the journal (:mod:`mlchaos.safety.undo`) and unregisters the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from mlchaos.safety import run_registry

POLL_SECONDS = 0.2


def start_guardian(entry: run_registry.RunEntry, timeout: float) -> int:
    """Start the guardian of a registered run; return its pid."""
    command = [sys.executable, "-m", "mlchaos.safety.guardian", "--registry", str(entry.registry_file),
               "--timeout", str(timeout)]
    process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process.pid


def log_path(entry: run_registry.RunEntry) -> Path:
    """Where the guardian writes what it recovered (only when it had to)."""
    return Path(entry.directory) / f"{entry.run_id}.guardian.log"


def watch(registry: Path, timeout: float) -> int:
    """Wait until the run ends (exit 0) or its heartbeat stops (recover; exit 0 or 3)."""
    entry = _entry(registry)
    if entry is None:
        return 0
    while registry.exists() and not entry.is_dead(timeout):
        time.sleep(POLL_SECONDS)
    if not registry.exists():
        return 0  # the run ended and unregistered itself
    age = entry.heartbeat_age()
    cause = ("runner gone" if not entry.runner_alive()
             else "no heartbeat file" if age is None else f"no heartbeat for {age:.1f}s")
    status = 0
    with open(os.open(log_path(entry), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", encoding="utf-8") as log:
        print(f"guardian: {cause}; recovering {entry.journal}", file=log, flush=True)
        if entry.journal:
            from mlchaos.safety.undo import recover

            report = recover(Path(entry.journal), by=f"guardian ({cause})")
            for result in report.results:
                print(f"  {result.describe()}", file=log, flush=True)
            status = 0 if report.ok else 3
    run_registry.unregister(entry)
    return status


def _entry(registry: Path) -> run_registry.RunEntry | None:
    for entry in run_registry.registered_in(registry.parent):
        if entry.registry_file == registry:
            return entry
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlchaos.safety.guardian")
    parser.add_argument("--registry", required=True, help="the run's registry file")
    parser.add_argument("--timeout", type=float, required=True, help="seconds without a heartbeat")
    args = parser.parse_args(argv)
    return watch(Path(args.registry), args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
