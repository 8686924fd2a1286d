"""The ``mlchaos`` command line: argparse, and one module per command (parsing and printing only).

Every command module declares its arguments (``add_parser(commands)``) and does its work
(``main(args) -> int``, the exit code). Command modules import only the standard library at
module level, and the rest inside ``main``, so that ``mlchaos --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mlchaos.cli.options import EXIT_CODES_HELP

COMMANDS = ("run", "plan", "stop", "recover", "validate", "discover", "report", "gameday", "sandbox", "rules")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="mlchaos",
        description="Chaos experiments for ML model-serving services.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"mlchaos.cli.{name}")
        module.add_parser(commands).set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlchaos`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mlchaos import __version__

        print(f"mlchaos {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
