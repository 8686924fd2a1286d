"""The ML Test Score section: tags, alert labels and the paper's scoring, on real runs."""

from __future__ import annotations

import pytest

from mlchaos.experiment.ml_test_score import RubricTest, parse_reference
from mlchaos.monitoring.alert_rules import alert_rules, profile
from mlchaos.reports.mltestscore import FAILING, NOT_COVERED, NOT_VERIFIED, PASSING, score
from mlchaos.reports.reader import read_run
from mlchaos.reports.types import RunReport
from tests.support.report_helpers import journal


def run(name: str, tags: list[str] | None = None, source: str | None = None) -> RunReport:
    data = journal(name)
    if tags is not None:
        data["experiment"]["tags"] = tags
    if source is not None:
        data["mlchaos"]["source"] = source
    return read_run(data)


@pytest.mark.parametrize(("text", "tests", "sections", "problems"), [
    ("monitoring-6", [RubricTest("monitoring", 6)], [], 0),
    ("Monitoring 6", [RubricTest("monitoring", 6)], [], 0),
    ("Infrastructure 7, monitoring_2", [RubricTest("infrastructure", 7), RubricTest("monitoring", 2)], [], 0),
    ("infra-4", [RubricTest("infrastructure", 4)], [], 0),
    ("Infrastructure", [], ["infrastructure"], 0),
    ("monitoring-9", [], [], 1),
    ("latency", [], [], 1),
])
def test_parse_reference(text, tests, sections, problems):
    found, only, bad = parse_reference(text)
    assert (found, only, len(bad)) == (tests, sections, problems)


def test_every_alert_label_mlchaos_ships_is_understood():
    for rule in alert_rules(profile("sandbox")):
        tests, sections, problems = parse_reference(rule["labels"]["ml_test_score"])
        assert not problems and (tests or sections), rule["alert"]


def test_a_fired_alert_label_verifies_its_test():
    card = score([run("latency-held")])
    result = card.section("monitoring").tests[5]
    assert (result.test.label, result.status, result.points) == ("Monitoring 6", PASSING, 1.0)
    (evidence,) = result.verified_by
    assert evidence.via == ("alert ModelEndpointLatencyHigh",)
    assert card.section("monitoring").points == 1 and card.drillable_final == 0 and card.final == 0


def test_a_label_naming_only_a_section_counts_for_no_test():
    card = score([run("kill-alerts-held-1")])
    assert card.covered() == []
    assert [(o.experiment_id, o.alert, o.value) for o in card.section_only] == [
        ("kill-one-replica-alerts", "ModelServerDown", "Infrastructure")]


def test_tags_claim_tests_and_a_failed_drill_fails_them():
    held = run("kill-alerts-held-1", tags=["ml-test-score:infrastructure-7", "ML-Test-Score:Monitoring-6", "kill"])
    failed = run("miswritten-alert-rule-deviated", tags=["ml-test-score:monitoring-6"])
    card = score([held, failed])
    rollback = card.section("infrastructure").tests[6]
    assert rollback.status == PASSING and rollback.verified_by[0].via == ("tag ml-test-score:infrastructure-7",)
    performance = card.section("monitoring").tests[5]
    assert performance.status == FAILING and performance.points == 0  # one drill held, one failed
    assert [e.experiment_id for e in performance.failed_by] == ["miswritten-alert-rule"]
    assert card.section("infrastructure").points == 1 and card.section("monitoring").points == 0


def test_a_refused_or_interrupted_drill_neither_verifies_nor_fails():
    card = score([run("latency-bounded-refused")])  # tagged ml-test-score:monitoring-6 for real
    result = card.section("monitoring").tests[5]
    assert (result.status, result.points) == (NOT_VERIFIED, 0.0)
    card = score([run("latency-bounded-refused"), run("latency-held")])
    assert card.section("monitoring").tests[5].status == PASSING


def test_bad_tags_are_reported_not_counted():
    card = score([run("kill-alerts-held-1", tags=["ml-test-score:monitoring-8", "ml-test-score:monitoring",
                                                  "ml-test-score:speed"])])
    assert len(card.problems) == 3 and card.covered() == []
    assert all(r.status == NOT_COVERED for s in card.sections for r in s.tests)


def test_the_final_score_is_the_minimum_of_the_four_sections():
    tags = [f"ml-test-score:{section}-1" for section in ("data", "model", "infrastructure", "monitoring")]
    card = score([run("kill-alerts-held-1", tags=tags)])
    assert [s.points for s in card.sections] == [1, 1, 1, 1]
    assert card.final == 1 and card.drillable_final == 1
    card = score([run("kill-alerts-held-1", tags=tags[2:])])
    assert card.final == 0 and card.drillable_final == 1
