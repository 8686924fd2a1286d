"""``mlchaos gameday FILE``: run a suite now, or keep running it on a schedule.

Only argparse is imported at module level (``mlchaos --help`` stays fast).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos.cli.options import add_var_options

GAMEDAY_HELP = """exit codes of a game day (the most severe of its experiments'):
  3 > 143 > 140 > 138 > 131 > 130 > 129 > 5 > 4 > 2 > 1 > 0
  0    every experiment held (or, run now: outside its window, nothing started)
  2    the suite is invalid: nothing was executed
  4    refused: the emergency stop, or this game day is already running
  5    aborted: a guard, max_duration, `mlchaos stop`, or its window closed
  with --schedule: the most severe code of all the runs it started
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``gameday FILE [--out] [--schedule [CRON]] [--timezone] [--max-runs] [--ignore-windows] [--check] ...``."""
    parser = commands.add_parser("gameday", help="run a suite of experiments now, or on a schedule",
                                 epilog=GAMEDAY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="game-day file (.yaml, .yml, .json)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="results directory (default gameday-<UTC timestamp>); with --schedule the directory "
                             "that holds one gameday-<timestamp> directory per run (default .)")
    parser.add_argument("--schedule", nargs="?", const="", default=None, metavar="CRON",
                        help="keep running it at these times (5 cron fields, or 6 with seconds first); "
                             "without CRON: the file's schedule.cron")
    parser.add_argument("--timezone", default=None, metavar="TZ",
                        help="timezone of the cron expression and the windows (default: the file's, else UTC)")
    parser.add_argument("--max-runs", type=int, default=None, metavar="N",
                        help="with --schedule: stop after N runs have started")
    parser.add_argument("--ignore-windows", action="store_true",
                        help="run even outside the file's windows and on excluded dates (a manual drill)")
    parser.add_argument("--check", action="store_true",
                        help="validate the suite and show the schedule's next fire times; run nothing")
    parser.add_argument("--report", action="append", default=[], metavar="FORMAT",
                        help="write reports of the suite's journals next to them in this format (repeatable; "
                             "default: every format of `mlchaos report`)")
    parser.add_argument("--no-report", action="store_true", help="write no report, only the journals")
    parser.add_argument("--quiet", action="store_true", help="print only the summaries")
    add_var_options(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the ``gameday`` command."""
    from mlchaos.cli.listen_targets import LISTEN_TARGETS
    from mlchaos.cli.printing import loaded_or_none
    from mlchaos.engine import exit_codes
    from mlchaos.gameday.suite import load_suite
    from mlchaos.gameday.suite_runner import report_formats

    loaded = loaded_or_none(load_suite, args.file, args.var, args.var_file, LISTEN_TARGETS)
    if loaded is None:
        return exit_codes.INVALID
    gameday, checked = loaded
    try:
        calendar = _calendar(gameday, args)
        cron = _cron(gameday, args) if args.schedule is not None or args.check else None
        args.report = [] if args.no_report else report_formats(args.report)
    except ValueError as exc:
        print(f"error: {exc}\nnothing was executed.", file=sys.stderr)
        return exit_codes.INVALID
    if args.max_runs is not None and args.max_runs < 1:
        print("error: --max-runs must be at least 1", file=sys.stderr)
        return exit_codes.INVALID
    if args.check:
        return _check(gameday, checked, calendar, cron)
    if args.schedule is None:
        return _run_now(gameday, checked, calendar, args)
    return _serve(gameday, calendar, cron, args)


def _calendar(gameday: Any, args: argparse.Namespace) -> Any:
    """The file's calendar (windows, exclusions) in its timezone, or --timezone's."""
    from dataclasses import replace

    from mlchaos.gameday.schedule import zone

    calendar = gameday.schedule.calendar
    return replace(calendar, timezone=zone(args.timezone)) if args.timezone else calendar


def _enforced(calendar: Any, args: argparse.Namespace) -> Any:
    """The calendar runs must keep to (None: --ignore-windows, or no windows and no exclusions)."""
    return None if args.ignore_windows or not calendar.restricted else calendar


def _cron(gameday: Any, args: argparse.Namespace) -> Any:
    from mlchaos.gameday.schedule import CronSchedule, zone

    timezone = zone(args.timezone) if args.timezone else gameday.schedule.calendar.timezone
    expression = args.schedule or gameday.schedule.cron
    if not expression:
        if args.check:
            return None
        raise ValueError("no cron expression: give one with --schedule CRON or as schedule.cron in the file")
    return CronSchedule(expression, timezone)


def _stamp(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _unique(path: Path) -> Path:
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{number}")
        number += 1
    return candidate


def _check(gameday: Any, checked: list[Any], calendar: Any, cron: Any) -> int:
    """``--check``: the suite, its calendar and the next fire times; nothing runs."""
    print(f"ok: {gameday.source}: {gameday.title}")
    for item in checked:
        variables = ", ".join(f"{k}={v!r}" for k, v in item.entry.vars.items())
        print(f"  {item.index}. {item.entry.path}  ({item.experiment.title})" + (f"  vars: {variables}"
                                                                                 if variables else ""))
    print(f"  cool_down: {gameday.cool_down:g}s   stop_on_failure: {str(gameday.stop_on_failure).lower()}")
    for line in calendar.describe():
        print(f"  {line}")
    if cron is not None:
        now = datetime.now(UTC)
        print(f"  next fire times of {cron.expression!r}:")
        for fire in cron.upcoming(now, 5):
            why = calendar.why_not(fire)
            state = f"skipped: {why}" if why else "runs"
            print(f"    {fire.astimezone(cron.timezone):%Y-%m-%d %H:%M:%S %Z}  {state}")
    return 0


def _run_now(gameday: Any, checked: list[Any], calendar: Any, args: argparse.Namespace) -> int:
    from mlchaos.cli.listen_targets import LISTEN_TARGETS
    from mlchaos.engine import exit_codes
    from mlchaos.gameday.lock import SuiteLock
    from mlchaos.gameday.progress import ProgressConsole
    from mlchaos.gameday.suite_runner import SuiteRunner

    now = datetime.now(UTC)
    calendar = _enforced(calendar, args)
    why = calendar.why_not(now) if calendar is not None else None
    if why is not None:
        print(f"game day not started: {why} (--ignore-windows runs it anyway)")
        return exit_codes.OK
    out_dir = Path(args.out) if args.out else _unique(Path(f"gameday-{_stamp(now)}"))
    if (out_dir / "suite.json").exists():
        print(f"error: {out_dir} already holds a game day's results (suite.json); choose another --out",
              file=sys.stderr)
        return exit_codes.INVALID
    lock = SuiteLock(gameday.source)
    if not lock.acquire():
        print(f"refused: game day {gameday.source}: {lock.describe_holder()}", file=sys.stderr)
        return exit_codes.REFUSED
    try:
        runner = SuiteRunner(gameday, checked, out_dir, console=ProgressConsole(quiet=args.quiet),
                             calendar=calendar,
                             report_formats=args.report, listen_targets=LISTEN_TARGETS)
        return runner.run().exit_code
    finally:
        lock.release()


def _serve(gameday: Any, calendar: Any, cron: Any, args: argparse.Namespace) -> int:
    from mlchaos.cli.listen_targets import LISTEN_TARGETS
    from mlchaos.cli.printing import loaded_or_none
    from mlchaos.engine import exit_codes
    from mlchaos.gameday.lock import SuiteLock
    from mlchaos.gameday.progress import ProgressConsole
    from mlchaos.gameday.scheduler import Scheduler
    from mlchaos.gameday.suite import load_suite
    from mlchaos.gameday.suite_runner import StopRequest, SuiteRunner

    parent = Path(args.out or ".")
    restricted = _enforced(calendar, args)
    console = ProgressConsole(quiet=args.quiet)
    stop = StopRequest()

    def run_suite(fire: datetime) -> int:
        # the experiments may have changed since the last run: validate every one again
        loaded = loaded_or_none(load_suite, args.file, args.var, args.var_file, LISTEN_TARGETS)
        if loaded is None:
            return exit_codes.INVALID
        current, checked = loaded
        out_dir = _unique(parent / f"gameday-{_stamp(fire)}")
        runner = SuiteRunner(current, checked, out_dir, console=console, calendar=restricted, stop=stop,
                             trigger=f"schedule {cron.expression!r} at {fire.isoformat()}",
                             report_formats=args.report, listen_targets=LISTEN_TARGETS)
        return runner.run().exit_code

    scheduler = Scheduler(cron, restricted, SuiteLock(gameday.source), run_suite, stop=stop,
                          max_runs=args.max_runs, log=lambda text: print(text, flush=True))
    return scheduler.serve()
