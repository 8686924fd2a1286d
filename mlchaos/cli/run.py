"""``mlchaos run FILE``: validate, then run one experiment; print its progress, summary and verdict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlchaos.cli.options import EXIT_CODES_HELP, add_var_options


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``run FILE [--journal] [--var] [--var-file] [--dry-run] [--quiet]`` and the report/metrics options."""
    from mlchaos.cli.chaostoolkit_options import add_chaostoolkit_options, add_strategy_options
    from mlchaos.cli.publishing import add_publishing_options

    parser = commands.add_parser("run", help="run one experiment", epilog=EXIT_CODES_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="experiment file (.json, .yaml, .yml)")
    parser.add_argument("--journal", "--journal-path", dest="journal", default="journal.json",
                        help="where to write the journal (default: journal.json; --journal-path as chaos run)")
    add_var_options(parser)
    add_chaostoolkit_options(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same as `mlchaos plan`: resolve targets and run probes, change nothing")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    add_strategy_options(parser)
    add_publishing_options(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Validate, then run one experiment (a plan with ``--dry-run``)."""
    from mlchaos.cli.chaostoolkit_options import (
        load_with_controls,
        rollback_strategy_note,
        schedule_from,
        settings_from,
    )
    from mlchaos.cli.listen_targets import LISTEN_TARGETS
    from mlchaos.cli.printing import loaded_or_none
    from mlchaos.cli.publishing import preflight, publish_run
    from mlchaos.engine import exit_codes
    from mlchaos.engine.console import Console
    from mlchaos.engine.runner import Runner
    from mlchaos.engine.summary import print_plan, print_summary
    from mlchaos.errors import InvalidInput
    from mlchaos.experiment.pipeline import load_checked
    from mlchaos.experiment.problems import printable_lines
    from mlchaos.journal.redaction import redacted_output

    try:
        settings = settings_from(args)  # Chaos Toolkit's settings file: its global controls
    except InvalidInput as exc:
        print(printable_lines(f"error: {exc}\nnothing was executed."), file=sys.stderr)
        return exit_codes.INVALID
    schedule = schedule_from(args)
    loaded = load_with_controls(settings, args.file, lambda: loaded_or_none(
        load_checked, args.file, args.var, args.var_file, LISTEN_TARGETS))
    if loaded is None:
        return exit_codes.INVALID
    experiment, variables = loaded
    for problem in preflight(args):  # report and metrics options: fail before the drill, not after
        print(f"error: {problem}\nnothing was executed.", file=sys.stderr)
        return exit_codes.INVALID
    console = Console(quiet=args.quiet)
    note = rollback_strategy_note(getattr(args, "rollback_strategy", None))
    if note:
        console.warn(note)
    journal = Path(args.journal) if args.journal else None
    dry_run = args.dry_run or experiment.dry_run  # the file's own ``dry_run: true`` too
    mode = " (dry run: actions are not applied)" if dry_run else ""
    console.write(f"mlchaos run: {experiment.title}{mode}")
    console.write(f"  file: {experiment.source}   journal: {journal or 'none'}")
    with redacted_output(lambda: console.redactor):  # drivers' prints and logs, plan, summary: no secrets
        try:
            result = Runner(experiment, variables, journal, console, dry_run=dry_run,
                            listen_targets=LISTEN_TARGETS, settings=settings, schedule=schedule).run()
        except InvalidInput as exc:
            print(printable_lines(f"error: {exc}\nnothing was executed."), file=sys.stderr)
            return exit_codes.INVALID
        if result.dry_run:
            print_plan(result)
        print_summary(result)
        for error in publish_run(args, result.journal_path, result.dry_run):  # the run's exit code stands
            print(printable_lines(f"error: {error}"), file=sys.stderr)
    return result.exit_code
