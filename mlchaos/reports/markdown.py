"""Markdown for pasting into an incident or drill review (GitHub / GitLab flavoured tables)."""

from __future__ import annotations

from mlchaos.engine.budgets import KIND_LABELS
from mlchaos.reports import formatting as fmt
from mlchaos.reports import mltestscore
from mlchaos.reports.types import ExperimentRuns, RunReport, Suite

CELL_LIMIT = 300


def cell(value: object, limit: int = CELL_LIMIT) -> str:
    """Text for one table cell: one line, pipes and markup characters escaped."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text or " "


def line(value: object) -> str:
    """Text for a list item or paragraph (same escaping as cells)."""
    return cell(value, limit=2000)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def render_markdown(suite: Suite) -> str:
    """The suite summary, the ML Test Score and one section per experiment."""
    outcomes = suite.outcome_counts()
    out = [
        "# mlchaos drill report",
        "",
        f"{len(suite.experiments)} experiment(s), {len(suite.runs)} run(s); latest runs: "
        f"{outcomes['passed']} passed, {outcomes['failed']} failed, {outcomes['incomplete']} incomplete; "
        f"total duration {fmt.duration(suite.total_duration)}. Generated {fmt.now()}.",
        "",
    ]
    rows = []
    for group in suite.experiments:
        run = group.latest
        rows.append([cell(run.title), f"**{fmt.verdict_text(run.verdict)}**", fmt.exit_text(run),
                     fmt.duration(run.duration), *(fmt.seconds(run.measured(k)) for k in fmt.MEASURED_KINDS),
                     str(len(group.runs))])
    out += table(["experiment", "verdict", "exit", "duration", "time to detect", "time to notify",
                  "time to recover", "runs"], rows)
    out += ["", *_scorecard(mltestscore.score(suite.latest_runs))]
    for group in suite.experiments:
        out += ["", *_experiment(group)]
    return "\n".join(out) + "\n"


def _scorecard(card: mltestscore.Scorecard) -> list[str]:
    ordered = sorted(card.sections, key=lambda s: not s.drillable)
    sums = ", ".join(f"{s.title} {s.points:g}/{len(s.tests)}" for s in ordered)
    out = ["## ML Test Score", "",
           f"Sections: {sums}. Final score (minimum of the four sections): **{card.final:g}**; minimum of "
           f"monitoring and infrastructure: **{card.drillable_final:g}**. Data and model tests are outside what "
           "chaos drills verify.", ""]
    rows = []
    for result in card.covered():
        drills = "; ".join(f"{ev.experiment_id} ({fmt.verdict_text(ev.verdict)}, via {', '.join(ev.via)})"
                           for ev in result.evidence)
        rows.append([result.test.label, cell(result.test.title), result.status, f"{result.points:g}", cell(drills)])
    if rows:
        out += table(["test", "rubric", "status", "points", "drills"], rows)
    else:
        out.append("No drill verified a rubric test (tag drills `ml-test-score:monitoring-6`, or label alerts "
                   "`ml_test_score`).")
    notes = [f"{only.experiment_id}: alert {only.alert} is labelled ml_test_score=\"{only.value}\", a section "
             "without a test number" for only in card.section_only] + card.problems
    if notes:
        out += ["", *(f"- {line(n)}" for n in notes)]
    return out


def _experiment(group: ExperimentRuns) -> list[str]:
    run = group.latest
    out = [f"## {line(run.title)}: {fmt.verdict_text(run.verdict)}", "",
           f"`{run.experiment_id}` run {line(run.run_id)}, started {fmt.moment(run.start)}, "
           f"{fmt.duration(run.duration)}, exit {fmt.exit_text(run)}, journal status {line(run.status)}.", ""]
    out += _budgets(run)
    if run.targets:
        out += ["", "Targets hit:", ""]
        out += table(["action", "target", "details", "environment"],
                     [[cell(t.action), cell(f"{t.kind} {t.name}"), cell(t.detail),
                       cell(t.environment + (" (dry run)" if t.dry_run else ""))] for t in run.targets])
    radius = run.blast_radius
    if radius.kinds or radius.bounds:
        kinds = "; ".join(f"{k.kind}: {', '.join(k.affected) or 'none'}"
                          + (f" of {k.eligible}" if k.eligible is not None else "") for k in radius.kinds)
        out += ["", f"Blast radius: {line(kinds or 'nothing affected')}"
                + (f"; bounds: {line('; '.join(radius.bounds))}" if radius.bounds else "")]
    for guard in run.guards:
        state = f"TRIPPED after {fmt.seconds(guard.tripped_at, 2)}: {guard.explanation}" if guard.tripped else "held"
        out += ["", f"Guard {line(guard.name)}: {line(state)} (last value {line(guard.last_value)}, "
                f"{guard.checks} checks)"]
    if run.during:
        missed = [c for c in run.during if not c.met]
        out += ["", f"Steady state during the method ({run.hypothesis_strategy or 'during the method'}): "
                    f"{len(run.during)} checks, {len(run.during) - len(missed)} met, {len(missed)} not met."]
        out += [f"- check {c.index} ({line(c.start)}): {line('; '.join(c.missed))}" for c in missed[:20]]
    stops = fmt.stop_events(run)
    if stops or run.failures:
        out += ["", "Failures and stops:", ""]
        out += [f"- {line(item)}" for item in [*stops, *run.failures]]
    if len(group.runs) > 1:
        out += ["", "Trend:", ""]
        out += table(["started", "verdict", "duration", "time to detect", "time to recover"],
                     [[fmt.moment(r.start), fmt.verdict_text(r.verdict), fmt.duration(r.duration),
                       fmt.seconds(r.measured("time_to_detect")), fmt.seconds(r.measured("time_to_recover"))]
                      for r in group.runs])
    return out


def _budgets(run: RunReport) -> list[str]:
    budgeted = {(b.alert, b.kind) for b in run.budgets}
    rows = [[b.label, cell(b.alert), fmt.seconds(b.measured),
             *(cell(c) for c in fmt.floor_cells(fmt.measurement(run, b.alert, b.kind))), fmt.seconds(b.budget, 0),
             "ok" if b.met else ("not measured" if b.measured is None else "**over budget**")] for b in run.budgets]
    rows += [[KIND_LABELS.get(m.kind, m.kind), cell(m.alert), fmt.seconds(m.seconds),
              *(cell(c) for c in fmt.floor_cells(m)), "\u2013", "no budget"]
             for m in run.measurements if (m.alert, m.kind) not in budgeted]
    return (table(["duration", "alert", "measured", "floor", "over floor", "how", "budget", ""], rows) if rows
            else ["Nothing measured."])
