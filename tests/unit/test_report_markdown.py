"""Markdown for drill and incident reviews, from real runs."""

from __future__ import annotations

from mlchaos.reports.markdown import cell, render_markdown
from mlchaos.reports.reader import build_suite
from tests.support.report_helpers import ALL, HELD, journal, journal_path


def markdown(*names: str, journals: list | None = None) -> str:
    return render_markdown(build_suite(journals if journals is not None else [journal_path(n) for n in names]))


def table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_the_summary_table_has_a_row_per_experiment():
    text = markdown(*ALL)
    assert text.startswith("# mlchaos drill report\n")
    assert ("| experiment | verdict | exit | duration | time to detect | time to notify | time to recover | runs |"
            in text)
    assert "|---|---|---|---|---|---|---|---|" in text
    rows = table_rows(text, "| experiment | verdict")
    assert [(r[1], r[2], r[7]) for r in rows] == [("**INTERRUPTED**", "130", "4"), ("**HELD**", "0", "1"),
                                                  ("**DEVIATED**", "1", "1"), ("**ABORTED**", "5", "1"),
                                                  ("**REFUSED**", "4", "1")]
    assert "5 experiment(s), 8 run(s); latest runs: 1 passed, 2 failed, 2 incomplete" in text


def test_a_run_section_has_budgets_targets_failures_and_trend():
    text = markdown(*HELD, "kill-guarded-aborted")
    assert "## A killed model replica is detected, notified and resolved in time: HELD" in text
    assert "| time to detect | ModelServerDown | 4.6s | \u2013 | \u2013 |   | 20s | ok |" in text  # an older journal
    assert "| kill | process model-0 |" in text
    assert "Guard every-replica-running: TRIPPED after 1.65s: expected 3, got 2 (last value 2, 2 checks)" in text
    assert "- aborted (guard): guard 'every-replica-running' tripped: expected 3, got 2" in text
    trend = table_rows(text, "| started | verdict")
    assert [r[1] for r in trend] == ["HELD", "HELD", "HELD"]
    assert "## ML Test Score" in text


def test_user_text_cannot_break_the_tables():
    data = journal("kill-alerts-held-1")
    data["experiment"]["title"] = "a | b\n| c <img src=x> `code` *bold*"
    text = markdown(journals=[data])
    row = table_rows(text, "| experiment | verdict")[0]
    assert len(row) == 8
    assert row[0] == r"a \| b \| c \<img src=x\> \`code\` \*bold\*"
    assert cell("x" * 400).endswith("...") and len(cell("x" * 400)) == 300


def test_the_budgets_table_shows_the_floor_the_excess_and_how_it_was_measured():
    text = markdown("kill-alerts-exact")
    detect = next(m for m in journal("kill-alerts-exact")["mlchaos"]["measurements"] if m["kind"] == "time_to_detect")
    assert (f"| time to detect | ModelServerDown | {detect['seconds']:.1f}s | 5s (scrape 1s + evaluation 1s + for 3s) "
            f"| {detect['excess']:+.1f}s | exact (polled {detect['polled']:.1f}s) | 20s | ok |") in text
