"""Prometheus alert rules for ML model serving, rendered from typed parameters.

Two profiles: :data:`SANDBOX` (seconds-long windows for a 1 s scrape interval, so a
drill sees an alert fire within seconds) and :data:`STAGING` (minutes, for a real
deployment). :func:`render_rules` turns either into a rule file with one group
``ml-serving`` (:func:`render_prometheus_rule`: the same group as a Prometheus Operator
``PrometheusRule``); :func:`render_rule_tests` writes the matching ``promtool test rules``
file (both as :func:`dump_yaml` writes YAML), whose cases prove which alert answers which fault (a kill fires only
``ModelServerDown``, a telemetry-only outage only ``ModelTelemetryAbsent``...).

Every alert joins its signals on the ``instance`` label: the scrape target of a
replica and the blackbox probes of that replica share ``instance = host:port``
(the probe jobs relabel it so, see :mod:`mlchaos.sandbox.monitoring_stack`).
"""

from __future__ import annotations

from mlchaos.monitoring.alert_rules.parameters import (
    ALERT_NAMES,
    COMPONENT,
    GROUP_NAME,
    PROFILES,
    SANDBOX,
    STAGING,
    RuleParameters,
    format_duration,
    parse_duration,
    profile,
)
from mlchaos.monitoring.alert_rules.prometheus_rule import parse_labels, prometheus_rule
from mlchaos.monitoring.alert_rules.prometheus_rule import problems as prometheus_rule_problems
from mlchaos.monitoring.alert_rules.rule_tests import render_rule_tests
from mlchaos.monitoring.alert_rules.rules import alert_rules, dump_yaml, render_prometheus_rule, render_rules

__all__ = ["ALERT_NAMES", "COMPONENT", "GROUP_NAME", "PROFILES", "SANDBOX", "STAGING", "RuleParameters", "alert_rules",
           "dump_yaml", "format_duration", "parse_duration", "parse_labels", "profile", "prometheus_rule",
           "prometheus_rule_problems", "render_prometheus_rule", "render_rule_tests", "render_rules"]
