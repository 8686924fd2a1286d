"""``mlchaos recover``: undo what the journals of dead runs recorded (idempotent)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``recover JOURNAL... | --all [--heartbeat-timeout] [--force]``."""
    parser = commands.add_parser("recover", help="undo what the journal of a dead run recorded (idempotent)")
    parser.add_argument("journals", nargs="*", metavar="JOURNAL")
    parser.add_argument("--all", action="store_true",
                        help="recover every registered run whose runner died or stopped beating")
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0,
                        help="with --all: seconds without a heartbeat after which a run is dead (default 10)")
    parser.add_argument("--force", action="store_true", help="recover even while the run's runner is alive")
    return parser


def main(args: argparse.Namespace) -> int:
    """Undo, newest first, every change each journal recorded; 3 when an undo failed."""
    from mlchaos.engine import exit_codes
    from mlchaos.errors import InvalidInput
    from mlchaos.experiment.problems import printable_lines
    from mlchaos.safety import run_registry
    from mlchaos.safety.undo import recover as recover_journal

    journals = [Path(j) for j in args.journals]
    if args.all:
        for entry in run_registry.registered():
            if entry.is_dead(args.heartbeat_timeout) and entry.journal:
                journals.append(Path(entry.journal))
                run_registry.unregister(entry)
    if not journals:
        print("nothing to recover" + (" (no dead run is registered)" if args.all else ": name a journal or --all"))
        return exit_codes.OK if args.all else exit_codes.INVALID
    alive = {Path(e.journal).resolve(): e for e in run_registry.registered() if e.journal and not e.is_dead(5.0)}
    status = exit_codes.OK
    for journal in journals:
        owner = alive.get(journal.resolve())
        if owner is not None and not args.force:
            print(f"error: {journal}: its run (pid {owner.pid}) is still running and will roll back itself; "
                  "use `mlchaos stop`, or --force", file=sys.stderr)
            status = max(status, exit_codes.INVALID)
            continue
        try:
            report = recover_journal(journal, by="mlchaos recover")
        except InvalidInput as exc:
            print(printable_lines(f"error: {exc}"), file=sys.stderr)
            status = max(status, exit_codes.INVALID)
            continue
        print(printable_lines(f"recover {journal}: {len(report.results)} recorded change(s)"))
        for result in report.results:  # an undo's error may quote what a server answered: escaped
            print(printable_lines(f"  {result.describe()}"))
        if not report.ok:
            status = exit_codes.ROLLBACK_FAILED
    return status
