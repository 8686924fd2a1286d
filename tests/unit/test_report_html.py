"""The HTML report, parsed with html.parser, on journals of real sandbox runs."""

from __future__ import annotations

import re

from mlchaos.reports.html import render_html
from mlchaos.reports.reader import build_suite, read_run
from tests.support.report_helpers import ALL, HELD, journal, journal_path, parse_html


def page(*names: str, journals: list | None = None):
    suite = build_suite(journals if journals is not None else [journal_path(n) for n in names])
    text = render_html(suite)
    return text, parse_html(text)


def section(dom, experiment: str):
    return dom.find("section", class_="experiment", data_experiment=experiment)


def test_the_summary_counts_experiments_runs_verdicts_and_duration():
    text, dom = page(*ALL)
    summary = dom.find("section", id="summary")
    cards = {c.attrs["data-card"]: c.find("b").text() for c in summary.find_all("div", class_="card")}
    assert cards == {"experiments": "5", "runs": "8", "passed": "1", "failed": "2", "incomplete": "2",
                     "total duration": "1m 31.9s"}
    rows = summary.find("table").find_all("tr", data_experiment="latency-one-replica")
    cells = [td.text() for td in rows[0].find_all("td")]
    assert cells[1:5] == ["HELD", "0", "16.3s", "5.6s"]
    assert "1 aborted, 1 deviated, 4 held, 1 interrupted, 1 refused" in summary.text()


def test_each_experiment_has_its_verdict_timeline_and_budgets():
    _text, dom = page("kill-alerts-held-1")
    exp = section(dom, "kill-one-replica-alerts")
    assert exp.attrs["data-verdict"] == "held"
    assert exp.find("span", class_="verdict-held").text() == "HELD"
    svg = exp.find("svg", class_="timeline")
    assert svg.attrs["role"] == "img"
    run = read_run(journal("kill-alerts-held-1"))
    assert len(svg.find_all("rect", class_="span")) == len(run.timeline.spans)
    kinds = [line.attrs["data-kind"] for line in svg.find_all("line", class_="marker")]
    assert kinds[0] == "fault"  # real runs: the notification may come before the probe saw the alert firing
    assert sorted(kinds[1:]) == ["detected", "notified", "notified-resolved", "resolved"]
    assert [r.attrs["data-label"] for r in svg.find_all("rect", class_="span-firing")] == ["ModelServerDown firing"]
    assert "kill-one-replica" in [r.attrs["data-label"] for r in svg.find_all("rect", class_="span")]
    labels = [t.text() for t in svg.find_all("text", class_="lane-label")]
    assert labels == ["steady state before", "method", "steady state after", "rollbacks", "recovery",
                      "alert ModelServerDown"]
    budgets = exp.find("table", class_="budgets")
    detect = budgets.find("tr", data_kind="time_to_detect")
    # a journal older than exact times: no floor, no excess, no method
    assert [td.text() for td in detect.find_all("td")][:8] == ["time to detect", "ModelServerDown", "4.6s", "\u2013",
                                                               "\u2013", "", "20s", "within budget"]
    assert exp.find("table", class_="targets").find("b").text() == "model-0"
    events = [li.text() for li in exp.find("ul", class_="timeline-events").find_all("li")]
    assert events[0] == "1.17s fault: kill -> model-0"


def test_failures_guards_refusals_and_interruptions_are_shown_with_their_values():
    _text, dom = page("kill-guarded-aborted", "latency-bounded-refused", "kill-alerts-interrupted",
                      "miswritten-alert-rule-deviated")
    aborted = section(dom, "kill-one-replica-guarded")
    guard_row = aborted.find("table", class_="guards").find("tr", class_="bad")
    assert [td.text() for td in guard_row.find_all("td")][:5] == ["every-replica-running", "TRIPPED", "2", "2",
                                                                  "expected 3, got 2"]
    assert "aborted (guard): guard 'every-replica-running' tripped: expected 3, got 2" in \
        aborted.find("ul", class_="stops").text()
    refused = section(dom, "latency-one-replica-bounded")
    assert "refused: refused proxy add-toxic: it would affect 1 of 3 proxy(s) (33%)" in refused.text()
    assert "no change was announced: nothing was touched" in refused.text()
    interrupted = section(dom, "kill-one-replica-alerts")
    assert "interrupted by SIGINT; the rollbacks ran" in interrupted.find("ul", class_="stops").text()
    deviated = section(dom, "miswritten-alert-rule")
    failures = [li.text() for li in deviated.find("ul", class_="failures").find_all("li")]
    assert any("did not fire within 12s" in f for f in failures)
    failed_row = deviated.find("table", class_="activities").find("tr", class_="bad")
    assert "miswritten-alert-fires" in failed_row.text() and "DriverError" in failed_row.text()


def test_several_runs_of_one_experiment_show_a_trend():
    _text, dom = page(*HELD, "kill-alerts-interrupted")
    exp = section(dom, "kill-one-replica-alerts")
    spark = exp.find("svg", class_="sparkline")
    dots = spark.find_all("circle")
    assert [d.attrs["data-verdict"] for d in dots] == ["held", "held", "held", "interrupted"]
    assert len(spark.find("polyline").attrs["points"].split()) == 3  # the interrupted run measured nothing
    rows = exp.find("table", class_="trend").find_all("tr")[1:]
    assert [r.find_all("td")[4].text() for r in rows] == ["4.6s", "4.0s", "4.6s", "\u2013"]
    _text, single = page("kill-alerts-held-1")
    assert not single.find_all("svg", class_="sparkline")


def test_the_ml_test_score_section_lists_the_rubric_and_the_drills():
    _text, dom = page("latency-held", "kill-alerts-held-1")
    score = dom.find("section", id="ml-test-score")
    row = score.find("tr", data_test="monitoring-6")
    assert row.attrs["data-status"] == "passing"
    assert "latency-one-replica" in row.text() and "via alert ModelEndpointLatencyHigh" in row.text()
    assert score.find("div", data_section="monitoring").find("b").text() == "1 / 7"
    assert score.find("div", data_score="final").find("b").text() == "0"
    assert 'ml_test_score="Infrastructure"' in score.text()  # a section without a test: said, not counted
    assert len(score.find_all("tr", data_status="not covered")) == 13


def test_journal_text_is_escaped_everywhere():
    data = journal("kill-alerts-held-1")
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">&amp; "quoted" \'single\''
    data["experiment"]["title"] = hostile
    data["experiment"]["description"] = hostile
    data["experiment"]["tags"] = [hostile]
    data["run"][0]["activity"]["name"] = hostile
    data["run"][0]["output"]["targets"][0]["name"] = hostile
    data["mlchaos"]["changes"][0]["targets"][0]["name"] = hostile
    data["mlchaos"]["source"] = f"experiments/{hostile}.yaml"
    data["mlchaos"]["refused"] = [hostile]
    data["mlchaos"]["notifications"]["notifications"][0]["alertname"] = hostile
    data["mlchaos"]["measurements"][0]["alert"] = hostile
    text, dom = page(journals=[data])
    assert not dom.find_all("script") and not dom.find_all("img")
    assert not any(name.startswith("on") for node in dom.iter() for name in node.attrs)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert hostile in dom.find("section", class_="experiment").find("h2").text()  # shown as text, exactly
    assert hostile in dom.find("title").text()


def test_the_page_is_self_contained():
    text, dom = page(*ALL)
    csp = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp
    assert not dom.find_all("script") and not dom.find_all("link") and not dom.find_all("img")
    for node in dom.iter():
        for name in ("href", "src"):
            value = node.attrs.get(name)
            assert value is None or value.startswith("#"), (node.tag, name, value)
    assert not re.search(r"url\(|@import", dom.find("style").text())
    assert text.startswith("<!DOCTYPE html>") and dom.find("html").attrs["lang"] == "en"
    for anchor in dom.find_all("a"):
        assert dom.find_all(id=anchor.attrs["href"][1:]), anchor.attrs["href"]


def test_a_measurement_is_shown_beside_its_floor_and_the_polled_time():
    """A real run with exact times: each budget row shows the floor, the excess over it and the polled time."""
    _text, dom = page("kill-alerts-exact")
    measured = {m["kind"]: m for m in journal("kill-alerts-exact")["mlchaos"]["measurements"]}
    budgets = section(dom, "kill-one-replica-alerts").find("table", class_="budgets")
    for kind, floor in (("time_to_detect", "5s (scrape 1s + evaluation 1s + for 3s)"),
                        ("time_to_recover", "2s (scrape 1s + evaluation 1s + keep_firing_for 0s)")):
        m = measured[kind]
        cells = [td.text() for td in budgets.find("tr", data_kind=kind).find_all("td")]
        assert cells[2:6] == [f"{m['seconds']:.1f}s", floor, f"{m['seconds'] - m['floor']:+.1f}s",
                              f"exact (polled {m['polled']:.1f}s)"]
    notify = [td.text() for td in budgets.find("tr", data_kind="time_to_notify").find_all("td")]
    assert notify[3:6] == ["\u2013", "\u2013", ""]  # the receiver's time: no floor read for it
    # exact times put the detection before its notification on the timeline, as it happened (the receiver also
    # got other alerts' notifications of the drills before and of the restart: only the first after each counts)
    lines = section(dom, "kill-one-replica-alerts").find("svg", class_="timeline").find_all("line", class_="marker")
    at = [(line.attrs["data-kind"], float(line.attrs["x1"])) for line in lines]
    first = {kind: min(x for k, x in at if k == kind) for kind in ("fault", "detected", "resolved")}
    assert first["fault"] < first["detected"] <= min(x for k, x in at if k == "notified" and x > first["fault"])
    assert first["detected"] < first["resolved"] <= min(x for k, x in at
                                                         if k == "notified-resolved" and x > first["detected"])
