"""Alert rules as rendered: labels, durations, overrides, the unit-test cases they carry, the shipped files.
promtool runs them in tests/integration/test_alert_rules_promtool.py; the `mlchaos rules` command is tested as
a child process in tests/integration/test_cli.py."""

from __future__ import annotations

import pytest
import yaml

from mlchaos.errors import InvalidInput
from mlchaos.monitoring.alert_rules import (
    ALERT_NAMES,
    GROUP_NAME,
    SANDBOX,
    STAGING,
    alert_rules,
    format_duration,
    parse_duration,
    profile,
    render_rule_tests,
    render_rules,
)
from tests.support import paths

DEPLOY = paths.DEPLOY / "prometheus"


def test_unit_tests_cover_the_faults_that_must_be_told_apart() -> None:
    tests = yaml.safe_load(render_rule_tests(SANDBOX))["tests"]
    names = [t["name"] for t in tests]
    for needle in ("healthy", "kill", "restart", "scrape fails", "target dropped", "not ready", "slow",
                   "500", "expires soon", "expired", "untrusted", "drift", "old model version", "invalid",
                   "NaN outputs", "feedback stops", "no feedback loop", "stopped pushing", "bad model pushed",
                   "accuracy dips", "too few matched labels", "idle replica"):
        assert any(needle in n for n in names), needle
    for case in tests[:-1]:  # every case checks every alert: the expected one fires, all others do not
        assert sorted(t["alertname"] for t in case["alert_rule_test"]) == sorted(ALERT_NAMES)
    kill = next(t for t in tests if t["name"].startswith("kill"))
    firing = {t["alertname"] for t in kill["alert_rule_test"] if t["exp_alerts"]}
    assert firing == {"ModelServerDown"}


def test_shipped_files_are_the_staging_rendering() -> None:
    """The files under deploy/prometheus are the staging rendering (promtool runs them in
    tests/integration/test_alert_rules_promtool.py)."""
    rules, tests = DEPLOY / "ml-serving-rules.yml", DEPLOY / "ml-serving-rules.test.yml"
    assert rules.read_text() == render_rules(STAGING), "regenerate: mlchaos rules > deploy/prometheus/..."
    assert tests.read_text() == render_rule_tests(STAGING), "regenerate: mlchaos rules --tests > ..."


def test_every_alert_is_labelled_and_names_its_instance() -> None:
    rules = alert_rules(SANDBOX)
    assert [r["alert"] for r in rules] == list(ALERT_NAMES)
    for rule in rules:
        assert set(rule["labels"]) == {"severity", "ml_test_score", "component"}
        assert rule["labels"]["component"] == "model-serving"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        names = "{{ $labels.job }}" if rule["alert"] == "ModelPipelineNotPushing" else "{{ $labels.instance }}"
        assert names in rule["annotations"]["summary"]
        assert names in rule["annotations"]["description"]
    scores = {r["alert"]: r["labels"]["ml_test_score"] for r in rules}
    assert scores["ModelHighLatencyP95"] == "Monitoring 6"
    assert {a: scores[a] for a in ALERT_NAMES[-8:]} == {
        "ModelPredictionDrift": "Monitoring 3", "ModelStale": "Monitoring 4",
        "ModelInvalidInputRatioHigh": "Monitoring 2",
        "ModelNonFiniteOutputs": "Monitoring 5", "ModelFeedbackAbsent": "Monitoring 7",
        "ModelAccuracyLow": "Monitoring 7", "ModelLoadFailed": "Monitoring 4",
        "ModelPipelineNotPushing": "Monitoring 4"}
    assert {r["alert"]: r["for"] for r in rules} == {
        "ModelServerDown": "3s", "ModelTelemetryAbsent": "5s", "ModelNotReady": "3s", "ModelHighLatencyP95": "5s",
        "ModelEndpointLatencyHigh": "3s",
        "ModelHighErrorRate": "5s", "ModelCertificateExpiringSoon": "3s", "ModelCertificateExpired": "3s",
        "ModelEndpointTLSProbeFailing": "3s", "ModelPredictionDrift": "2s", "ModelStale": "3s",
        "ModelInvalidInputRatioHigh": "2s", "ModelNonFiniteOutputs": "2s", "ModelFeedbackAbsent": "3s",
        "ModelAccuracyLow": "2s", "ModelLoadFailed": "0s", "ModelPipelineNotPushing": "2s",
    }
    assert yaml.safe_load(render_rules(SANDBOX))["groups"][0]["name"] == GROUP_NAME


def test_durations_and_overrides() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25 and parse_duration("15s") == 15
    assert format_duration(5400) == "1h30m" and format_duration(63) == "1m3s"
    for bad in ("", "5", "m5", "1.5m", "5 s"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    changed = SANDBOX.with_overrides(["down_for=10s", "error_rate_ratio=0.2"])
    assert changed.down_for == "10s" and changed.error_rate_ratio == 0.2 and SANDBOX.down_for == "3s"
    with pytest.raises(InvalidInput, match="did you mean 'down_for'"):
        SANDBOX.with_overrides(["dwn_for=1s"])
    with pytest.raises(InvalidInput, match="not a Prometheus duration"):
        SANDBOX.with_overrides(["down_for=soon"])
    with pytest.raises(InvalidInput, match="must be a number"):
        SANDBOX.with_overrides(["error_rate_ratio=high"])
    with pytest.raises(InvalidInput, match="must be > 0"):
        SANDBOX.with_overrides(["latency_p95_seconds=0"])
    with pytest.raises(InvalidInput, match="must be > 0"):
        SANDBOX.with_overrides(["accuracy_min_labels=0"])
    with pytest.raises(InvalidInput, match=r"accuracy_threshold must be in \(0, 1\]"):
        SANDBOX.with_overrides(["accuracy_threshold=1.5"])
    with pytest.raises(InvalidInput, match="unknown rule profile"):
        profile("prod")
