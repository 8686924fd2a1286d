"""JUnit XML of real runs: it parses, has the usual JUnit shape, and maps verdicts to results."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mlchaos.reports.junit import render_junit
from mlchaos.reports.reader import build_suite
from tests.support.report_helpers import ALL, HELD, journal, journal_path

# the usual JUnit schema (Jenkins / Ant junit-10.xsd, what CI systems read): allowed children and attributes
SHAPE = {
    "testsuites": ({"testsuite"}, {"name", "tests", "failures", "errors", "skipped", "time"}, set()),
    "testsuite": ({"properties", "testcase", "system-out", "system-err"},
                  {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname", "id",
                   "package"}, {"name", "tests", "failures", "errors"}),
    "properties": ({"property"}, set(), set()),
    "property": (set(), {"name", "value"}, {"name", "value"}),
    "testcase": ({"skipped", "error", "failure", "system-out", "system-err"}, {"name", "classname", "time"},
                 {"name", "classname"}),
    "failure": (set(), {"message", "type"}, {"message"}),
    "error": (set(), {"message", "type"}, {"message"}),
    "skipped": (set(), {"message"}, set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}


def check_shape(element: ET.Element) -> None:
    children, allowed, required = SHAPE[element.tag]
    assert set(element.attrib) <= allowed, (element.tag, set(element.attrib) - allowed)
    assert required <= set(element.attrib), (element.tag, required - set(element.attrib))
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        check_shape(child)
    if element.tag == "testcase":
        assert len([c for c in element if c.tag in ("skipped", "error", "failure")]) <= 1
    for name in ("tests", "failures", "errors", "skipped"):
        if name in element.attrib:
            assert int(element.attrib[name]) >= 0
    if "time" in element.attrib:
        assert float(element.attrib["time"]) >= 0


def junit(*names: str, journals: list | None = None) -> ET.Element:
    text = render_junit(build_suite(journals if journals is not None else [journal_path(n) for n in names]))
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    check_shape(root)
    return root


def test_one_testsuite_per_experiment_with_consistent_counts():
    root = junit(*ALL)
    suites = root.findall("testsuite")
    assert [s.get("id") for s in suites] == ["kill-one-replica-alerts", "latency-one-replica",
                                             "miswritten-alert-rule", "kill-one-replica-guarded",
                                             "latency-one-replica-bounded"]
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        for kind, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(attribute)) == sum(1 for c in cases if c.find(kind) is not None)
    for attribute in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(attribute)) == sum(int(s.get(attribute)) for s in suites)


def test_a_held_run_passes_every_case():
    (suite,) = junit("kill-alerts-held-1").findall("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names[0] == "verdict"
    assert "steady state before: down-alert-rule-loaded" in names
    assert "steady state after: no-unrelated-alert-firing" in names
    assert "recovery: all-replicas-healthy-again" in names
    assert "budget: time to detect ModelServerDown <= 20s" in names
    assert suite.get("failures") == suite.get("errors") == suite.get("skipped") == "0"
    assert {c.get("classname") for c in suite.findall("testcase")} == {"mlchaos.kill-one-replica-alerts"}
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["verdict"] == "held" and properties["exit_code"] == "0"


@pytest.mark.parametrize(("name", "kind", "words"), [
    ("miswritten-alert-rule-deviated", "failure", "DEVIATED (exit 1)"),
    ("kill-guarded-aborted", "failure", "ABORTED (exit 5): guard 'every-replica-running' tripped: expected 3, got 2"),
    ("latency-bounded-refused", "error", "REFUSED (exit 4): refused proxy add-toxic"),
    ("kill-alerts-interrupted", "error", "INTERRUPTED (exit 130): interrupted by SIGINT"),
])
def test_verdicts_that_did_not_hold_fail_or_error_with_their_message(name, kind, words):
    (suite,) = junit(name).findall("testsuite")
    verdict = suite.find("testcase[@name='verdict']")
    (detail,) = list(verdict)
    assert detail.tag == kind
    assert words in detail.get("message")


def test_probes_that_never_ran_are_skipped_and_a_failed_probe_carries_its_message():
    (suite,) = junit("kill-alerts-interrupted").findall("testsuite")
    after = suite.find("testcase[@name='steady state after: enough-replicas-serving']")
    assert after.find("skipped").get("message").startswith("not run")
    budget = suite.find("testcase[@name='budget: time to detect ModelServerDown <= 20s']")
    assert budget.find("skipped") is not None  # the run did not get that far: not a budget failure
    (suite,) = junit("kill-guarded-aborted").findall("testsuite")
    case = suite.find("testcase[@name='recovery: resolved-notification-delivered']")
    assert "no resolved notification of ModelServerDown" in case.find("error").get("message")
    budget = suite.find("testcase[@name='budget: time to detect ModelServerDown <= 20s']")
    assert budget.find("failure").get("message") == "not measured (budget 20s)"


def test_a_tolerance_failure_is_a_failure_with_the_actual_value():
    data = journal("kill-alerts-held-1")
    data["steady_states"]["after"]["probes"][1].update(output=1, tolerance_met=False)
    (suite,) = junit(journals=[data]).findall("testsuite")
    failure = suite.find("testcase[@name='steady state after: enough-replicas-serving']/failure")
    assert failure.get("type") == "tolerance"
    assert failure.get("message") == 'tolerance {"type":"range","range":[2,3]} not met, actual value 1'


def test_the_latest_run_of_an_experiment_is_its_testsuite():
    root = junit(*HELD, "kill-alerts-interrupted")
    (suite,) = root.findall("testsuite")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (properties["verdict"], properties["runs_given"]) == ("interrupted", "4")


def test_control_characters_and_markup_in_journal_text_stay_well_formed():
    data = journal("kill-alerts-held-1")
    data["experiment"]["title"] = "bad \x00\x07 title <x> & ]]>"
    data["steady_states"]["before"]["probes"][0]["activity"]["name"] = "probe \x1b[31m <y/>"
    (suite,) = junit(journals=[data]).findall("testsuite")
    assert suite.get("name") == "bad  title <x> & ]]>"
    assert suite.find("testcase[@name='steady state before: probe [31m <y/>']") is not None
