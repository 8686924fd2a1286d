"""``mlchaos plan FILE``: resolve every target, exercise the probes, check the bounds; change nothing."""

from __future__ import annotations

import argparse
from typing import Any

from mlchaos.cli.options import EXIT_CODES_HELP, add_var_options


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``plan FILE [--journal] [--var] [--var-file] [--quiet]``."""
    parser = commands.add_parser("plan", help="show what a run would hit and check its bounds; change nothing",
                                 epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="experiment file (.json, .yaml, .yml)")
    parser.add_argument("--journal", default=None, help="also write the plan's journal to this file")
    add_var_options(parser)
    parser.add_argument("--quiet", action="store_true", help="print only the plan and the summary")
    return parser


def main(args: argparse.Namespace) -> int:
    """A run in dry-run mode: the plan, then the summary."""
    from mlchaos.cli import run

    args.dry_run = True
    return run.main(args)
