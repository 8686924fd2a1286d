"""The alert rules as a Prometheus Operator PrometheusRule: `mlchaos rules --format prometheusrule` and the
structural check (mlchaos.monitoring.alert_rules.prometheus_rule), which mirrors the CRD's openAPIV3Schema
(prometheus-operator 0.82). No API server runs here, so the object is validated structurally; promtool checks
the same groups in tests/integration/test_alert_rules_promtool.py."""

from __future__ import annotations

import copy

import pytest
import yaml

from mlchaos.cli import main
from mlchaos.errors import InvalidInput
from mlchaos.monitoring.alert_rules import (
    STAGING,
    parse_labels,
    prometheus_rule,
    prometheus_rule_problems,
    render_rules,
)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["rules", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_rules_as_a_prometheusrule_are_valid_and_hold_the_same_groups(capsys):
    code, out, _ = run(capsys, "--format", "prometheusrule", "--namespace", "monitoring", "--name", "ml-alerts",
                       "--label", "release=kube-prometheus-stack", "--label", "team=ml")
    assert code == 0 and out.startswith("# Alert rules for ML model serving as a PrometheusRule")
    obj = yaml.safe_load(out)
    assert prometheus_rule_problems(obj) == []
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert obj["metadata"] == {"name": "ml-alerts", "namespace": "monitoring",
                               "labels": {"release": "kube-prometheus-stack", "team": "ml"}}
    assert obj["spec"] == yaml.safe_load(render_rules(STAGING))  # exactly the rule file's groups
    code, sandbox, _ = run(capsys, "--format", "prometheusrule", "--profile", "sandbox", "--set", "down_for=2m")
    assert code == 0 and prometheus_rule_problems(yaml.safe_load(sandbox)) == []


@pytest.mark.parametrize(("argv", "problem"), [
    (["--format", "prometheusrule", "--label", "release"], "a label is KEY=VALUE"),
    (["--format", "prometheusrule", "--label", "bad key=x"], "not a valid Kubernetes label name"),
    (["--format", "prometheusrule", "--label", "k=" + "v" * 64], "not a valid label value"),
    (["--format", "prometheusrule", "--namespace", "Monitoring"], "not a DNS label"),
    (["--format", "prometheusrule", "--name", "ml_alerts"], "not a DNS subdomain"),
    (["--format", "prometheusrule", "--tests"], "no PrometheusRule form"),
    (["--label", "release=x"], "go with --format prometheusrule"),
])
def test_bad_options_are_refused_with_the_reason(capsys, argv, problem):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and problem in err


def good() -> dict:
    return prometheus_rule([{"name": "g", "interval": "30s", "rules": [
        {"alert": "A", "expr": "vector(1)", "for": "1m", "labels": {"severity": "info"}}]}], "drill", "ml-serving",
        {"release": "kube-prometheus-stack"})


@pytest.mark.parametrize(("change", "problem"), [
    (lambda o: o.__setitem__("kind", "ConfigMap"), "apiVersion/kind must be"),
    (lambda o: o["spec"].__setitem__("groups", []), "spec.groups must be a non-empty list"),
    (lambda o: o["spec"]["groups"].append(copy.deepcopy(o["spec"]["groups"][0])), "group names must be unique"),
    (lambda o: o["spec"]["groups"][0].pop("name"), "spec.groups[0].name is required"),
    (lambda o: o["spec"]["groups"][0].__setitem__("interval", "30 s"), "spec.groups[0].interval"),
    (lambda o: o["spec"]["groups"][0].__setitem__("limit", "10"), "limit must be an integer"),
    (lambda o: o["spec"]["groups"][0].__setitem__("evaluation", "1m"), "spec.groups[0].evaluation: unknown field"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr"), "rules[0].expr is required"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("record", "x"), "exactly one of alert or record"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("for", "one minute"), "rules[0].for"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("labels", {"severity": 1}), "strings to strings"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("summary", "x"), "rules[0].summary: unknown field"),
    (lambda o: o["metadata"]["labels"].__setitem__("release", "-bad"), "not a valid label value"),
])
def test_each_structural_problem_is_named_with_its_place(change, problem):
    obj = good()
    assert prometheus_rule_problems(obj) == []
    change(obj)
    found = prometheus_rule_problems(obj)
    assert any(problem in p for p in found), found


def test_building_an_invalid_object_raises_and_labels_parse():
    with pytest.raises(InvalidInput, match="not a valid PrometheusRule: spec.groups must be a non-empty list"):
        prometheus_rule([], "x", "ml-serving")
    assert parse_labels(["release=kube-prometheus-stack", "app.kubernetes.io/part-of = ml"]) == {
        "release": "kube-prometheus-stack", "app.kubernetes.io/part-of": "ml"}
    with pytest.raises(InvalidInput, match="not a valid Kubernetes label name"):
        parse_labels(["-x/y=1"])
