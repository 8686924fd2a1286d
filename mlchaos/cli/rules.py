"""``mlchaos rules``: print the ML-serving Prometheus alert rules (or their promtool tests)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``rules [--profile sandbox|staging] [--set NAME=VALUE]... [--tests]``."""
    parser = commands.add_parser("rules", help="print the ML-serving Prometheus alert rules")
    parser.add_argument("--profile", choices=["sandbox", "staging"], default="staging",
                        help="windows for a 1 s sandbox scrape or for a real deployment (default staging)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override one rule parameter, e.g. --set down_for=2m (repeatable)")
    parser.add_argument("--tests", action="store_true",
                        help="print the matching `promtool test rules` file instead of the rules")
    return parser


def main(args: argparse.Namespace) -> int:
    """Print the rendered rules (or their promtool tests) of a profile, with overrides."""
    from mlchaos.engine import exit_codes
    from mlchaos.errors import InvalidInput
    from mlchaos.monitoring.alert_rules import profile, render_rule_tests, render_rules

    try:
        params = profile(args.profile).with_overrides(args.overrides)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.INVALID
    sys.stdout.write(render_rule_tests(params) if args.tests else render_rules(params))
    return exit_codes.OK
