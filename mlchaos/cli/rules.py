"""``mlchaos rules``: print the ML-serving Prometheus alert rules (or their promtool tests)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``rules [--profile sandbox|staging] [--set NAME=VALUE]... [--tests | --format prometheusrule ...]``."""
    parser = commands.add_parser("rules", help="print the ML-serving Prometheus alert rules")
    parser.add_argument("--profile", choices=["sandbox", "staging"], default="staging",
                        help="windows for a 1 s sandbox scrape or for a real deployment (default staging)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override one rule parameter, e.g. --set down_for=2m (repeatable)")
    parser.add_argument("--tests", action="store_true",
                        help="print the matching `promtool test rules` file instead of the rules")
    parser.add_argument("--format", choices=["rules", "prometheusrule"], default="rules",
                        help="a Prometheus rule file (default) or a Prometheus Operator PrometheusRule object")
    parser.add_argument("--namespace", default="ml-serving", help="the PrometheusRule's namespace (default ml-serving)")
    parser.add_argument("--name", default="ml-serving-alerts", help="the PrometheusRule's name")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", dest="labels",
                        help="a label of the PrometheusRule, e.g. the one the operator's ruleSelector wants:"
                             " --label release=kube-prometheus-stack (repeatable)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Print the rendered rules (or their promtool tests) of a profile, with overrides."""
    from mlchaos.engine import exit_codes
    from mlchaos.errors import InvalidInput
    from mlchaos.monitoring.alert_rules import (
        parse_labels,
        profile,
        render_prometheus_rule,
        render_rule_tests,
        render_rules,
    )

    operator = args.format == "prometheusrule"
    try:
        if args.tests and operator:
            raise InvalidInput("--tests prints promtool's test file; it has no PrometheusRule form")
        if not operator and (args.labels or args.namespace != "ml-serving" or args.name != "ml-serving-alerts"):
            raise InvalidInput("--namespace, --name and --label go with --format prometheusrule")
        params = profile(args.profile).with_overrides(args.overrides)
        if args.tests:
            text = render_rule_tests(params)
        elif operator:
            text = render_prometheus_rule(params, args.name, args.namespace, parse_labels(args.labels))
        else:
            text = render_rules(params)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.INVALID
    sys.stdout.write(text)
    return exit_codes.OK
