"""The ``mlchaos`` command line: argparse, and one module per command (parsing and printing only).

Every command module declares its arguments (``add_parser(commands)``) and does its work
(``main(args) -> int``, the exit code). Command modules import only the standard library at
module level, and the rest inside ``main``, so that ``mlchaos --help`` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from mlchaos.cli.gc_pause import gc_paused
from mlchaos.cli.options import EXIT_CODES_HELP

COMMANDS = ("run", "plan", "stop", "recover", "validate", "discover", "report", "gameday", "sandbox", "rules")
CHECKS_ONLY = ("validate",)  # commands that execute nothing (see main)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``only``, of that command alone (what parsing its command line needs:
    the other commands' parsers, some of which import modules to list their choices, are left out)."""
    parser = argparse.ArgumentParser(
        prog="mlchaos",
        description="Chaos experiments for ML model-serving services.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"mlchaos.cli.{name}")
        module.add_parser(commands).set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlchaos`` console script."""
    with gc_paused():  # imports and argparse: nothing to collect
        parser = build_parser(_command_in(sys.argv[1:] if argv is None else argv))
        args = parser.parse_args(argv)
    if args.version:
        from mlchaos import __version__

        print(f"mlchaos {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    code = args.handler(args)
    if argv is None and args.command in CHECKS_ONLY:
        # this process is the command and ends now: what it loaded dies with it, and the collector need not sweep
        # it once more at exit (a twentieth of `mlchaos validate`); a caller passing argv keeps its collector as is
        gc.freeze()
    return code


def _command_in(argv: list[str]) -> str | None:
    """The command the arguments name, None when there is none or it is unknown (then the whole parser is built:
    ``--help`` lists every command, an unknown one is reported with the list). The options before the command
    (``--version``, ``--help``) take no value, so the command is the first argument that is not an option."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
