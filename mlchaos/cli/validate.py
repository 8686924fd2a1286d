"""``mlchaos validate FILE...``: check files, report every problem, execute nothing."""

from __future__ import annotations

import argparse
from typing import Any

from mlchaos.cli.options import add_var_options


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``validate FILE... [--var] [--var-file]``."""
    parser = commands.add_parser("validate", help="check experiment files, execute nothing")
    parser.add_argument("files", nargs="+", metavar="FILE")
    add_var_options(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Every problem of every file; for a valid file, what it would load, run and call (a file is code)."""
    from mlchaos.cli.gc_pause import gc_paused

    with gc_paused():  # imports and loading: nothing to collect (mlchaos.cli.gc_pause)
        return _validate(args)


def _validate(args: argparse.Namespace) -> int:
    from mlchaos.cli.listen_targets import LISTEN_TARGETS
    from mlchaos.cli.printing import print_problems
    from mlchaos.engine import exit_codes
    from mlchaos.experiment.inventory import inventory
    from mlchaos.experiment.pipeline import load_checked
    from mlchaos.experiment.problems import Problem, ProblemList, printable

    all_problems: list[Problem] = []
    for path in args.files:
        try:
            experiment, _ = load_checked(path, args.var, args.var_file, LISTEN_TARGETS)
        except ProblemList as exc:
            all_problems.extend(exc.problems)
            continue
        print(f"ok: {path}")
        for warning in experiment.warnings:
            print(printable(f"  warning: {warning}"))
        for line in inventory(experiment.raw).lines():
            print(f"  {line}")
    if all_problems:
        print_problems(all_problems)
        return exit_codes.INVALID
    return exit_codes.OK
