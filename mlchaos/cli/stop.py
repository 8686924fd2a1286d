"""``mlchaos stop``: the emergency stop. Abort every run on this host and refuse new ones, or clear it."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``stop [--reason] [--wait SECONDS] [--clear]``."""
    parser = commands.add_parser("stop", help="emergency stop: abort every run on this host and refuse new ones")
    parser.add_argument("--reason", default="", help="why (recorded and shown to refused runs)")
    parser.add_argument("--wait", type=float, default=120.0,
                        help="seconds to wait for the runs to roll back and exit (default 120)")
    parser.add_argument("--clear", action="store_true", help="disengage the emergency stop")
    return parser


def main(args: argparse.Namespace) -> int:
    """Engage the stop, tell every live run to abort, wait for them (or clear the stop)."""
    from mlchaos.engine import exit_codes
    from mlchaos.lib.waiting import wait_for
    from mlchaos.safety import emergency_stop, run_registry

    if args.clear:
        print("emergency stop cleared" if emergency_stop.clear() else "the emergency stop was not engaged")
        return exit_codes.OK
    emergency_stop.engage(args.reason)
    live = [e for e in run_registry.registered() if e.runner_alive()]
    for entry in live:
        run_registry.signal_abort(entry)
        print(f"aborting run {entry.run_id} (pid {entry.pid}): {entry.experiment}")
    print(f"emergency stop engaged: {len(live)} run(s) told to abort and roll back; new runs are refused "
          "until `mlchaos stop --clear`")

    def all_exited() -> bool:
        live[:] = [e for e in live if e.registry_file.exists() and e.runner_alive()]
        return not live

    wait_for(all_exited, args.wait, interval=0.1)
    for entry in live:
        print(f"still running after {args.wait:g}s: run {entry.run_id} (pid {entry.pid})", file=sys.stderr)
    return exit_codes.OK if not live else exit_codes.DEVIATED
