"""Alert rules under the real promtool (/usr/bin/promtool): every rendering passes `promtool check rules`, and
`promtool test rules` proves which alert answers which fault (kill -> only ModelServerDown, telemetry-only
outage -> only ModelTelemetryAbsent...), and that a naive rule fails those tests.

Moved from tests/unit/test_alert_rules.py (issue 14): each promtool run takes seconds (the staging file alone
about 25-35 s on a 2-core machine); the renderings themselves are unit-tested there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlchaos.monitoring.alert_rules import (
    ALERT_NAMES,
    SANDBOX,
    STAGING,
    render_rule_tests,
    render_rules,
)
from tests.support import paths
from tests.support.components import require_component

DEPLOY = paths.DEPLOY / "prometheus"
RENDERINGS = {  # staging: see test_shipped_files_are_the_staging_rendering_and_pass
    "sandbox": SANDBOX,
    "custom": SANDBOX.with_overrides(["down_for=2s", "latency_p95_seconds=0.5", "model_job=iris-serving",
                                      "blackbox_job=probe"]),
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    require_component("promtool", shutil.which("promtool") is not None, "apt-get install prometheus")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def write_pair(tmp_path: Path, rules: str, tests: str) -> None:
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "rules.test.yml").write_text(tests)


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_rendering_passes_check_and_its_unit_tests(name: str, tmp_path: Path) -> None:
    params = RENDERINGS[name]
    write_pair(tmp_path, render_rules(params), render_rule_tests(params, "rules.yml"))
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0 and f"SUCCESS: {len(ALERT_NAMES)} rules found" in checked.stdout, checked
    tested = promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(("alert", "naive_expr", "broken_case"), [
    ("ModelServerDown", 'up{job="model"} == 0', "telemetry-only outage (scrape fails"),
    ("ModelTelemetryAbsent", 'absent(up{job="model"}) or up{job="model"} == 0', "kill"),
    # every prediction, not only those whose labels are due: a feedback drill would make later drills alert
    ("ModelFeedbackAbsent", 'sum by (instance, replica) (increase(model_predictions_total{job="model"}[10s])) > 0'
     ' unless on(instance) sum by (instance) (increase(model_feedback_events_total{job="model"}[10s])) > 0',
     "a feedback loop ends, predictions without ids go on"),
    ("ModelAccuracyLow", 'sum by (instance, replica) (increase(model_feedback_correct_total{job="model"}[15s]))'
     ' / sum by (instance, replica) (increase(model_feedback_matched_total{job="model"}[15s])) < 0.8',
     "too few matched labels"),
])
def test_naive_rules_fail_the_unit_tests(alert: str, naive_expr: str, broken_case: str, tmp_path: Path) -> None:
    """The tests have teeth: a rule that cannot tell a kill from a telemetry outage is caught."""
    doc = yaml.safe_load(render_rules(SANDBOX))
    rule = next(r for r in doc["groups"][0]["rules"] if r["alert"] == alert)
    rule["expr"] = naive_expr
    write_pair(tmp_path, yaml.safe_dump(doc, sort_keys=False), render_rule_tests(SANDBOX, "rules.yml"))
    tested = promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert f"name: {broken_case}" in tested.stdout + tested.stderr


@pytest.mark.slow  # about 25-35 s: the staging rules hold windows of 30 min
def test_shipped_files_are_the_staging_rendering_and_pass(tmp_path: Path) -> None:
    rules, tests = DEPLOY / "ml-serving-rules.yml", DEPLOY / "ml-serving-rules.test.yml"
    assert rules.read_text() == render_rules(STAGING), "regenerate: mlchaos rules > deploy/prometheus/..."
    assert tests.read_text() == render_rule_tests(STAGING), "regenerate: mlchaos rules --tests > ..."
    tested = promtool("test", "rules", tests.name, cwd=DEPLOY)
    assert tested.returncode == 0, tested.stdout + tested.stderr
