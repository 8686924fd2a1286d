"""experiments/staging/: they pass `mlchaos validate` (the same pipeline, listen targets included), with no
warning; their endpoints are what docs/staging.md says (through the API server from a laptop, by Service name in
the cluster); the drill rules they load are valid drill PrometheusRules whose alerts the probes wait for.

No cluster runs here: docs/staging.md says which parts ran for real and which only against the emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drivers.kubernetes import prometheus_rules
from mlchaos.cli.listen_targets import LISTEN_TARGETS
from mlchaos.experiment.pipeline import load_checked
from mlchaos.lib.endpoints import Endpoint
from tests.support.paths import ROOT

STAGING = sorted((ROOT / "experiments" / "staging").glob("*.yaml"))


def activities(raw: dict) -> list[dict]:
    ext = next(e for e in raw["extensions"] if e["name"] == "mlchaos")
    return [*raw["steady-state-hypothesis"]["probes"], *raw["method"], *raw.get("rollbacks", []),
            *ext.get("recovery", [])]


def test_there_are_staging_experiments():
    assert [p.name for p in STAGING] == ["kserve-kill-pod-alerts.yaml", "mlserver-first-drill.yaml"]


@pytest.mark.parametrize("path", STAGING, ids=lambda p: p.name)
def test_each_validates_as_mlchaos_validate_does(path: Path):
    experiment, _ = load_checked(str(path), [], [], LISTEN_TARGETS)
    assert tuple(experiment.warnings) == ()


@pytest.mark.parametrize("path", STAGING, ids=lambda p: p.name)
def test_the_drill_rule_is_a_valid_drill_prometheusrule_and_the_probes_wait_for_its_alert(path: Path):
    raw = yaml.safe_load(path.read_text())
    (load,) = [a for a in raw["method"] if a["provider"]["func"] == "add_rule_file"]
    arguments = load["provider"]["arguments"]
    groups = yaml.safe_load(arguments["rules_yaml"])["groups"]
    obj = prometheus_rules.drill_rule(arguments["name"], "ml-serving", groups, {"release": "kube-prometheus-stack"},
                                      "0123abcd")
    alerts = {r["alert"] for g in obj["spec"]["groups"] for r in g["rules"]}
    awaited = {a["provider"]["arguments"]["alert"] for a in activities(raw)
               if a["provider"].get("func", "").startswith(("alert_", "notification_", "resolved_notification_"))}
    assert awaited and awaited <= alerts
    assert arguments["labels"] == {"release": "${rule_selector_release}"}
    assert raw["configuration"]["rule_selector_release"] == "kube-prometheus-stack"


def test_the_laptop_drill_reaches_monitoring_through_the_api_server_and_the_in_cluster_one_by_service_name():
    laptop = yaml.safe_load((ROOT / "experiments" / "staging" / "mlserver-first-drill.yaml").read_text())
    ext = next(e for e in laptop["extensions"] if e["name"] == "mlchaos")
    declared = {name: Endpoint.from_dict(name, data) for name, data in ext["endpoints"].items()}
    assert {n: e.describe() for n, e in declared.items()} == {
        "prometheus": "k8s://monitoring/prometheus-operated:9090",
        "alertmanager": "k8s://monitoring/alertmanager-operated:9093"}
    assert "notifications" not in ext and ext["allowed_environments"] == ["kubernetes:staging*"]
    cluster = yaml.safe_load((ROOT / "experiments" / "staging" / "kserve-kill-pod-alerts.yaml").read_text())
    ext = next(e for e in cluster["extensions"] if e["name"] == "mlchaos")
    assert {n: d["url"] for n, d in ext["endpoints"].items()} == {
        "prometheus": "http://prometheus-operated.monitoring.svc:9090",
        "alertmanager": "http://alertmanager-operated.monitoring.svc:9093"}
    assert cluster["configuration"]["kube_in_cluster"] is True
    assert ext["allowed_environments"] == ["kubernetes:in-cluster"]
