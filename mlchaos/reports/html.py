"""A self-contained HTML report: inline CSS and inline SVG, no script, no external asset.

Every piece of journal text is escaped (journals hold user text: titles, outputs, error
messages), and a Content-Security-Policy forbids scripts and remote loads, so the file opens
offline and safely from an attachment or a CI artefact store.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from mlchaos.engine.budgets import KIND_LABELS
from mlchaos.experiment.ml_test_score import TAG_PREFIX
from mlchaos.reports import formatting as fmt
from mlchaos.reports import mltestscore
from mlchaos.reports.types import ExperimentRuns, MeasurementRow, RunReport, Suite, Timeline

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
:root { --ok:#2e7d32; --bad:#c62828; --warn:#ef6c00; --muted:#667; --line:#dde; --idle:#6a5acd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:#1d1d28;
       margin: 0; background:#f6f7fb; }
header, main { max-width: 1180px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 8px; display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
h3 { font-size: 14px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: .04em; color:#334; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin:16px 0; }
.meta { color: var(--muted); margin: 0 0 8px; }
.cards { display:flex; gap:12px; flex-wrap:wrap; margin: 6px 0 14px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 14px; min-width:120px; background:#fafbff; }
.card b { display:block; font-size:22px; }
table { border-collapse: collapse; width:100%; margin: 4px 0; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align: top; }
th { background:#f0f2f8; font-weight:600; }
td.num { text-align:right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background:#fff3f3; }
code, .value { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; word-break: break-word; }
.verdict { display:inline-block; padding:2px 9px; border-radius:12px; font-size:12px; font-weight:700;
           color:#fff; background: var(--muted); letter-spacing:.03em; white-space: nowrap; }
.verdict-held, .outcome-passed, .status-passing { background: var(--ok); }
.verdict-deviated, .verdict-activity-failed, .verdict-aborted, .verdict-rollback-failed,
.outcome-failed, .status-failing { background: var(--bad); }
.verdict-interrupted, .verdict-unfinished { background: var(--warn); }
.verdict-refused, .verdict-planned, .status-not-verified { background: var(--idle); }
.status-not-covered { background: #aab; }
ul.failures li, ul.events li { margin: 2px 0; }
.none { color: var(--muted); font-style: italic; }
svg text { font: 11px system-ui, "DejaVu Sans", sans-serif; fill:#334; }
svg .lane-label { font-weight:600; }
svg .span-succeeded { fill:#7bb58c; } svg .span-failed { fill:#d64541; } svg .span-running { fill:#f0ad4e; }
svg .span-pending { fill:#f6c26b; } svg .span-firing { fill:#e35d5b; } svg .span-unknown { fill:#aab; }
svg rect.span { stroke:#fff; stroke-width:1; }
svg .lane-bg { fill:#f4f5fa; } svg .grid { stroke:#dde; } svg .axis { stroke:#99a; }
svg .marker-fault { stroke:#b71c1c; } svg .marker-detected { stroke:#ef6c00; }
svg .marker-notified { stroke:#1565c0; } svg .marker-resolved { stroke:#2e7d32; }
svg .marker-notified-resolved { stroke:#00838f; } svg .marker-guard, svg .marker-stop { stroke:#6a1b9a; }
svg line.marker { stroke-width:2; stroke-dasharray: 4 3; }
svg .dot-passed { fill: var(--ok); } svg .dot-failed { fill: var(--bad); } svg .dot-incomplete { fill: var(--idle); }
svg .trend-line { fill:none; stroke:#1565c0; stroke-width:1.5; }
svg .budget-bg { fill:#e8eaf2; } svg .budget-ok { fill: var(--ok); } svg .budget-over { fill: var(--bad); }
.legend span { display:inline-block; margin-right:14px; }
.legend i { display:inline-block; width:14px; height:3px; vertical-align:middle; margin-right:4px; }
details summary { cursor: pointer; color:#334; }
footer { color: var(--muted); max-width:1180px; margin: 0 auto 30px; padding: 0 20px; }
"""
MARKER_COLOURS = {"fault": "#b71c1c", "detected": "#ef6c00", "notified": "#1565c0", "resolved": "#2e7d32",
                  "notified-resolved": "#00838f", "guard": "#6a1b9a", "stop": "#6a1b9a"}
MARKER_TEXT = {"fault": "fault injected", "detected": "alert firing (detected)", "notified": "notification",
               "resolved": "alert resolved", "notified-resolved": "resolved notification",
               "guard": "guard tripped", "stop": "stopped / rolled back"}
TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def e(value: object) -> str:
    """Escape text for HTML element content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def render_html(suite: Suite) -> str:
    """The whole report as one HTML document."""
    experiments = suite.experiments
    title = experiments[0].latest.title if len(experiments) == 1 else f"{len(experiments)} experiments"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mlchaos report: {e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>mlchaos drill report</h1>",
        f'<p class="meta">generated {e(fmt.now())} from {len(suite.runs)} journal(s)</p></header>',
        "<main>",
        _summary(suite),
        _scorecard(mltestscore.score(suite.latest_runs)),
    ]
    parts.extend(_experiment(group) for group in experiments)
    parts.append("</main><footer>Times are seconds after the run started, unless said otherwise; "
                 "measured durations (time to detect, notify, recover) count from the fault.</footer>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- the suite summary --------------------------------------------------------------------
def _summary(suite: Suite) -> str:
    outcomes = suite.outcome_counts()
    verdicts = suite.verdict_counts()
    cards = [
        ("experiments", len(suite.experiments)),
        ("runs", len(suite.runs)),
        ("passed", outcomes["passed"]),
        ("failed", outcomes["failed"]),
        ("incomplete", outcomes["incomplete"]),
        ("total duration", fmt.duration(suite.total_duration)),
    ]
    rows = []
    for group in suite.experiments:
        run = group.latest
        rows.append(
            f'<tr class="{"bad" if run.outcome == "failed" else ""}" data-experiment="{e(run.experiment_id)}">'
            f'<td><a href="#exp-{e(_anchor(run.experiment_id))}">{e(run.title)}</a><br><code>{e(run.experiment_id)}'
            f"</code></td><td>{_verdict(run.verdict)}</td><td class='num'>{e(fmt.exit_text(run))}</td>"
            f'<td class="num">{e(fmt.duration(run.duration))}</td>'
            + "".join(f'<td class="num">{e(fmt.seconds(run.measured(kind)))}</td>' for kind in fmt.MEASURED_KINDS)
            + f'<td class="num">{len(group.runs)}</td></tr>'
        )
    verdict_line = ", ".join(f"{count} {verdict}" for verdict, count in sorted(verdicts.items()))
    return (
        '<section id="summary"><h2>Suite summary</h2>'
        '<div class="cards">'
        + "".join(f'<div class="card" data-card="{e(name)}"><b>{e(value)}</b>{e(name)}</div>' for name, value in cards)
        + "</div>"
        f'<p class="meta">passed / failed / incomplete count the latest run of each experiment; '
        f"verdicts of all runs: {e(verdict_line)}</p>"
        '<table class="summary-table"><thead><tr><th>experiment</th><th>verdict (latest run)</th><th>exit</th>'
        "<th>duration</th><th>time to detect</th><th>time to notify</th><th>time to recover</th><th>runs</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


# --- the ML Test Score --------------------------------------------------------------------
def _scorecard(card: mltestscore.Scorecard) -> str:
    rows = []
    for section in sorted(card.sections, key=lambda s: not s.drillable):
        if not section.drillable and not any(t.evidence for t in section.tests):
            continue
        for result in section.tests:
            evidence = "".join(
                f"<li>{_verdict(ev.verdict)} <a href=\"#exp-{e(_anchor(ev.experiment_id))}\">{e(ev.experiment_id)}"
                f"</a> <span class=\"meta\">via {e(', '.join(ev.via))}</span></li>"
                for ev in result.evidence
            )
            drills = f'<ul class="events">{evidence}</ul>' if evidence else '<span class="none">no drill</span>'
            status = result.status
            rows.append(
                f'<tr data-test="{e(result.test.key)}" data-status="{e(status)}">'
                f"<td>{e(result.test.label)}</td><td>{e(result.test.title)}</td>"
                f'<td><span class="verdict status-{e(status.replace(" ", "-"))}">{e(status)}</span></td>'
                f'<td class="num">{result.points:g}</td><td>{drills}</td></tr>'
            )
    sums = "".join(
        f'<div class="card" data-section="{e(s.section)}"><b>{s.points:g} / {len(s.tests)}</b>{e(s.title)}'
        f"{'' if s.drillable else ' (not verified by drills)'}</div>"
        for s in sorted(card.sections, key=lambda s: not s.drillable)
    )
    notes = []
    for only in card.section_only:
        notes.append(f"<li>{e(only.experiment_id)}: alert {e(only.alert)} is labelled "
                     f"<code>ml_test_score=&quot;{e(only.value)}&quot;</code>, a section without a test number: "
                     "it counts for no test</li>")
    notes.extend(f"<li>{e(problem)}</li>" for problem in card.problems)
    return (
        '<section id="ml-test-score"><h2>ML Test Score</h2>'
        f'<p class="meta">Breck et al. 2017, "The ML Test Score". Evidence: experiment tags '
        f"<code>{e(TAG_PREFIX)}&lt;section&gt;-&lt;n&gt;</code> and the <code>ml_test_score</code> "
        f"labels of alerts that fired, over the latest run of each of {card.runs} experiment(s). A test scores 1 "
        "(automated and passing) when a drill that verified it held and none that attempted it failed.</p>"
        f'<div class="cards">{sums}<div class="card" data-score="final"><b>{card.final:g}</b>final score '
        f"(minimum of the four sections)</div>"
        f'<div class="card" data-score="drillable"><b>{card.drillable_final:g}</b>minimum of monitoring and '
        "infrastructure</div></div>"
        "<p class=\"meta\">The data and model sections are outside what chaos drills verify: the paper's final "
        "score stays 0 until they are scored by other means.</p>"
        '<table class="score-table"><thead><tr><th>test</th><th>rubric</th><th>status</th><th>points</th>'
        f"<th>drills</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f'<h3>Notes</h3><ul class="events">{"".join(notes)}</ul>' if notes else "")
        + "</section>"
    )


# --- one experiment -----------------------------------------------------------------------
def _experiment(group: ExperimentRuns) -> str:
    run = group.latest
    tags = ", ".join(run.tags)
    meta = [
        ("source", run.source), ("run", run.run_id), ("started", fmt.moment(run.start)),
        ("duration", fmt.duration(run.duration)), ("journal status", run.status), ("exit code", fmt.exit_text(run)),
        ("node", run.node), ("tags", tags), ("mlchaos", run.mlchaos_version),
    ]
    body = [
        f'<section class="experiment" id="exp-{e(_anchor(run.experiment_id))}" data-experiment="{e(run.experiment_id)}"'
        f' data-verdict="{e(run.verdict)}">',
        f"<h2>{e(run.title)} {_verdict(run.verdict)}</h2>",
        f'<p class="meta">{" &middot; ".join(f"{e(k)}: {e(v)}" for k, v in meta if v)}</p>',
    ]
    if run.description:
        body.append(f"<p>{e(run.description)}</p>")
    body += [
        "<h3>Timeline</h3>", timeline_svg(run.timeline, run.title), _legend(run.timeline),
        "<h3>Time to detect, notify, recover</h3>", _budgets(run),
        "<h3>Targets hit</h3>", _targets(run),
        "<h3>Blast radius</h3>", _blast_radius(run),
        "<h3>Guards</h3>", _guards(run),
        "<h3>Failures</h3>", _failures(run),
        "<h3>Refusals, aborts, recoveries</h3>", _stops(run),
        "<h3>Activities</h3>", _activities(run),
    ]
    if run.during:
        body += ["<h3>Steady state during the method</h3>", _during(run)]
    if len(group.runs) > 1:
        body += ["<h3>Trend</h3>", _trend(group)]
    body.append("</section>")
    return "\n".join(body)


def _verdict(verdict: str) -> str:
    return f'<span class="verdict verdict-{e(_anchor(verdict))}">{e(fmt.verdict_text(verdict))}</span>'


def _none(text: str) -> str:
    return f'<p class="none">{e(text)}</p>'


def _budgets(run: RunReport) -> str:
    budgeted = {(b.alert, b.kind) for b in run.budgets}
    rows = []
    for budget in run.budgets:
        state = "within budget" if budget.met else ("not measured" if budget.measured is None else "OVER BUDGET")
        rows.append(
            f'<tr class="{"" if budget.met else "bad"}" data-kind="{e(budget.kind)}"><td>{e(budget.label)}</td>'
            f'<td>{e(budget.alert)}</td><td class="num">{e(fmt.seconds(budget.measured))}</td>'
            f"{_floor_cells(fmt.measurement(run, budget.alert, budget.kind))}"
            f'<td class="num">{e(fmt.seconds(budget.budget, 0))}</td><td>{e(state)}</td>'
            f"<td>{_budget_bar(budget.measured, budget.budget)}</td></tr>"
        )
    for measurement in run.measurements:
        if (measurement.alert, measurement.kind) not in budgeted:
            rows.append(
                f'<tr data-kind="{e(measurement.kind)}"><td>{e(KIND_LABELS.get(measurement.kind, measurement.kind))}'
                f'</td><td>{e(measurement.alert)}</td><td class="num">{e(fmt.seconds(measurement.seconds))}</td>'
                f'{_floor_cells(measurement)}<td class="num">\u2013</td><td>no budget</td><td></td></tr>'
            )
    if not rows:
        return _none("nothing measured and no budget declared")
    return _table("budgets", ["duration", "alert", "measured", "floor", "over floor", "how", "budget", "", ""],
                  "".join(rows))


def _floor_cells(row: MeasurementRow | None) -> str:
    """A measurement's floor (scrape + evaluation + for), its excess over it, and how it was measured."""
    floor, excess, how = fmt.floor_cells(row)
    return f'<td class="num">{e(floor)}</td><td class="num">{e(excess)}</td><td>{e(how)}</td>'


def _budget_bar(measured: float | None, budget: float) -> str:
    width = 160
    scale = max(budget, measured or 0.0) or 1.0
    bar = "" if measured is None else (
        f'<rect class="{"budget-ok" if measured <= budget else "budget-over"}" x="0" y="2" height="8" '
        f'width="{max(measured / scale * width, 1):.1f}"/>'
    )
    mark = budget / scale * width
    return (f'<svg class="budget-bar" width="{width}" height="12" viewBox="0 0 {width} 12" role="img" '
            f'aria-label="measured against budget"><rect class="budget-bg" x="0" y="2" width="{width}" height="8"/>'
            f'{bar}<line x1="{mark:.1f}" x2="{mark:.1f}" y1="0" y2="12" stroke="#334" stroke-width="1.5"/></svg>')


def _targets(run: RunReport) -> str:
    if not run.targets:
        return _none("no change was announced: nothing was touched")
    rows = "".join(_row(t.action, t.driver, t.kind, Markup(f"<b>{e(t.name)}</b>"), ("value", t.detail), t.environment,
                        fmt.moment(t.announced_at), "dry run" if t.dry_run else "applied") for t in run.targets)
    return _table("targets", ["action", "driver", "kind", "target", "details", "environment", "announced", ""], rows)


def _blast_radius(run: RunReport) -> str:
    radius = run.blast_radius
    rows = "".join(_row(k.kind, ", ".join(k.affected),
                        ("num", "unknown" if k.population_unknown or k.eligible is None else k.eligible),
                        ("num", "" if k.fraction is None else f"{k.fraction:.0%}")) for k in radius.kinds)
    bounds = "".join(f"<li>{e(b)}</li>" for b in radius.bounds) or '<li class="none">no bound declared</li>'
    table = _table("blast-radius", ["kind", "affected", "eligible", "fraction"], rows) if rows else _none(
        "nothing affected")
    environments = ", ".join(radius.environments) or "none"
    return (f"<p>{radius.targets} target(s) affected; environments: {e(environments)}</p>{table}"
            f'<ul class="events">{bounds}</ul>')


def _guards(run: RunReport) -> str:
    if not run.guards:
        return _none("no guard declared")
    rows = "".join(_row(g.name, "TRIPPED" if g.tripped else "held", ("num", g.checks), ("value", g.last_value),
                        g.explanation, ("num", fmt.seconds(g.tripped_at, 2)), css_class="bad" if g.tripped else "")
                   for g in run.guards)
    return _table("guards", ["guard", "state", "checks", "last value", "why", "tripped at"], rows)


def _failures(run: RunReport) -> str:
    if not run.failures:
        return _none("none")
    return '<ul class="failures">' + "".join(f"<li>{e(f)}</li>" for f in run.failures) + "</ul>"


def _stops(run: RunReport) -> str:
    items = fmt.stop_events(run)
    if not items:
        return _none("none")
    return '<ul class="events stops">' + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"


class Markup(str):
    """Text that is already HTML (escaped where it holds journal text): a cell writes it as it is."""


def _row(*cells: object, css_class: str = "", phase: str | None = None) -> str:
    """One ``<tr>``: a cell is a value, or (its css class, its value); values are escaped, Markup is not."""
    tds = []
    for cell in cells:
        cls, value = cell if isinstance(cell, tuple) else ("", cell)
        text = value if isinstance(value, Markup) else e(value)
        tds.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
    attributes = f' class="{css_class}"' if css_class or phase is not None else ""
    attributes += f' data-phase="{e(phase)}"' if phase is not None else ""
    return f"<tr{attributes}>{''.join(tds)}</tr>"


def _table(css_class: str, headers: list[str], rows: str) -> str:
    """A table of class ``css_class``: the (escaped) headers, then ``rows`` (``<tr>`` elements, already escaped)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _during(run: RunReport) -> str:
    """The checks of the steady state during the method: how many held, and each one that did not (all of them
    when there are few)."""
    missed = [c for c in run.during if not c.met]
    summary = (f"{len(run.during)} checks ({run.hypothesis_strategy or 'during the method'}): "
               f"{len(run.during) - len(missed)} met, {len(missed)} not met")
    shown = run.during if len(run.during) <= 20 else missed
    rows = "".join(f'<tr class="{"" if c.met else "bad"}"><td class="num">{c.index}</td>'
                   f'<td>{"met" if c.met else "NOT MET"}</td><td>{e(c.start)}</td><td>{e("; ".join(c.missed))}</td>'
                   f"</tr>" for c in shown)
    headers = ["check", "steady state", "started", "probes not met (actual value)"]
    table = _table("during", headers, rows) if rows else ""
    return f'<p class="during-summary">{e(summary)}</p>{table}'


def _activities(run: RunReport) -> str:
    if not run.activities:
        return _none("no activity ran")
    rows = "".join(_row(a.phase, a.kind, a.name, _activity_state(a.status, a.tolerance_met),
                        ("num", fmt.seconds(a.duration, 2)), ("value", a.value), ("value", a.tolerance), a.error,
                        css_class="" if a.passed else "bad", phase=a.phase) for a in run.activities)
    return _table("activities", ["phase", "kind", "name", "result", "duration", "value", "tolerance", "error"], rows)


def _activity_state(status: str, met: bool | None) -> str:
    if status == "running":
        return "stopped while running"
    if status != "succeeded":
        return status
    if met is None:
        return "succeeded"
    return "tolerance met" if met else "TOLERANCE NOT MET"


# --- SVG ----------------------------------------------------------------------------------
def timeline_svg(timeline: Timeline, title: str, width: int = 1080) -> str:
    """The run as lanes of spans (phases, alert states) and vertical markers (fault, alert, notification...)."""
    label_width, right, top, lane_height, gap = 210, 16, 26, 18, 6
    lanes = timeline.lanes or ["(nothing ran)"]
    height = top + len(lanes) * (lane_height + gap) + 8
    total = timeline.duration if timeline.duration > 0 else 1.0
    plot = width - label_width - right

    def x(at: float) -> float:
        return label_width + max(0.0, min(at, total)) / total * plot

    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{e("timeline of " + title)}">']
    step = next((s for s in TICK_STEPS if total / s <= 10), TICK_STEPS[-1])
    tick = 0.0
    while tick <= total + 1e-9:
        out.append(f'<line class="grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{height - 6}"/>'
                   f'<text x="{x(tick):.1f}" y="{top - 10}" text-anchor="middle">{tick:g}s</text>')
        tick += step
    for index, lane in enumerate(lanes):
        y = top + index * (lane_height + gap)
        out.append(f'<rect class="lane-bg" x="{label_width}" y="{y}" width="{plot}" height="{lane_height}"/>'
                   f'<text class="lane-label" x="{label_width - 8}" y="{y + 13}" text-anchor="end">{e(lane)}</text>')
        for span in (s for s in timeline.spans if s.lane == lane):
            left = x(span.start)
            span_width = max(x(span.end) - left, 2.0)
            tip = f"{span.label}: {span.status}, {span.start:.2f}s to {span.end:.2f}s"
            out.append(f'<rect class="span span-{e(_anchor(span.status))}" data-label="{e(span.label)}" '
                       f'x="{left:.1f}" y="{y + 2}" width="{span_width:.1f}" height="{lane_height - 4}" rx="2">'
                       f"<title>{e(tip)}</title></rect>")
    for marker in timeline.markers:
        at = x(marker.at)
        out.append(f'<line class="marker marker-{e(marker.kind)}" data-kind="{e(marker.kind)}" x1="{at:.1f}" '
                   f'x2="{at:.1f}" y1="{top - 4}" y2="{height - 4}"><title>{e(marker.label)} at {marker.at:.2f}s'
                   "</title></line>")
    out.append("</svg>")
    return "".join(out)


def _legend(timeline: Timeline) -> str:
    kinds = list(dict.fromkeys(m.kind for m in timeline.markers))
    legend = "".join(f'<span><i style="background:{MARKER_COLOURS.get(k, "#334")}"></i>{e(MARKER_TEXT.get(k, k))}'
                     "</span>" for k in kinds)
    events = "".join(f'<li data-kind="{e(m.kind)}"><code>{m.at:7.2f}s</code> {e(m.label)}</li>'
                     for m in timeline.markers)
    return (f'<p class="legend">{legend}</p>' if legend else "") + (
        f'<details open><summary>events</summary><ul class="events timeline-events">{events}</ul></details>'
        if events else "")


def _trend(group: ExperimentRuns) -> str:
    runs = group.runs
    rows = "".join(
        f'<tr class="{"bad" if r.outcome == "failed" else ""}"><td>{e(fmt.moment(r.start))}</td><td>{e(r.run_id)}</td>'
        f'<td>{_verdict(r.verdict)}</td><td class="num">{e(fmt.duration(r.duration))}</td>'
        + "".join(f'<td class="num">{e(fmt.seconds(r.measured(k)))}</td>' for k in fmt.MEASURED_KINDS)
        + "</tr>"
        for r in runs
    )
    return (sparkline_svg(runs) + '<table class="trend"><thead><tr><th>started</th><th>run</th><th>verdict</th>'
            "<th>duration</th><th>time to detect</th><th>time to notify</th><th>time to recover</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def sparkline_svg(runs: Sequence[RunReport], width: int = 320, height: int = 70) -> str:
    """Time to detect over the runs (a line), and each run's verdict (a coloured dot)."""
    pad, base = 12, height - 14
    values = [r.measured("time_to_detect") for r in runs]
    top = max([v for v in values if v is not None] or [1.0]) or 1.0
    step = (width - 2 * pad) / max(len(runs) - 1, 1)

    def point(index: int, value: float | None) -> tuple[float, float]:
        y = base if value is None else base - value / top * (base - pad)
        return pad + index * step, y

    line = " ".join(f"{px:.1f},{py:.1f}" for i, v in enumerate(values) if v is not None for px, py in [point(i, v)])
    out = [f'<svg class="sparkline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="time to detect and verdicts over runs">',
           f'<line class="axis" x1="{pad}" x2="{width - pad}" y1="{base}" y2="{base}"/>',
           f'<text x="{pad}" y="{height - 2}">time to detect, max {top:.1f}s</text>']
    if line:
        out.append(f'<polyline class="trend-line" points="{line}"/>')
    for index, (run, value) in enumerate(zip(runs, values, strict=True)):
        px, py = point(index, value)
        tip = f"{run.run_id}: {fmt.verdict_text(run.verdict)}, time to detect {fmt.seconds(value)}"
        out.append(f'<circle class="dot dot-{e(run.outcome)}" data-verdict="{e(run.verdict)}" cx="{px:.1f}" '
                   f'cy="{py:.1f}" r="4.5"><title>{e(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower())

