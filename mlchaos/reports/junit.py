"""JUnit XML, so that CI systems show drills as tests.

One ``<testsuite>`` per experiment (its latest run), with one ``<testcase>`` for the verdict and
one per steady-state hypothesis probe and phase (before, after), plus one per recovery check and
per budget. A held drill passes; deviated, activity-failed, aborted (a guard or ``max_duration``)
and rollback-failed runs fail (rollback-failed as an ``<error>``: a fault may still be in place);
refused, interrupted and unfinished runs are errors: the drill did not get to test anything, and a
CI must not turn that green. Probes that never ran are ``<skipped>`` with the reason.
"""

from __future__ import annotations

import platform
import xml.etree.ElementTree as ET

from mlchaos.engine import verdicts
from mlchaos.reports import formatting as fmt
from mlchaos.reports.types import PHASE_AFTER, PHASE_BEFORE, PHASE_RECOVERY, ActivityResult, RunReport, Suite

ERROR_VERDICTS = frozenset({verdicts.ROLLBACK_FAILED, verdicts.REFUSED, verdicts.INTERRUPTED, verdicts.UNFINISHED})
_ILLEGAL = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32)]}  # not allowed in XML 1.0


def clean(text: object) -> str:
    """Text safe for XML 1.0 (control characters dropped; ElementTree escapes the rest)."""
    return str(text).translate(_ILLEGAL)


def render_junit(suite: Suite) -> str:
    """The JUnit XML document of a suite."""
    root = ET.Element("testsuites", name="mlchaos")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for group in suite.experiments:
        element = _testsuite(group.latest, len(group.runs))
        root.append(element)
        for key in totals:
            totals[key] += int(element.get(key, "0"))
        total_time += group.latest.duration
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testsuite(run: RunReport, runs_given: int) -> ET.Element:
    element = ET.Element("testsuite", name=clean(run.title), id=clean(run.experiment_id),
                         hostname=clean(run.node or platform.node()), package="mlchaos")
    if run.start is not None:
        element.set("timestamp", run.start.strftime("%Y-%m-%dT%H:%M:%S"))
    properties = ET.SubElement(element, "properties")
    for name, value in (("experiment", run.experiment_id), ("source", run.source), ("run_id", run.run_id),
                        ("verdict", run.verdict), ("exit_code", fmt.exit_text(run)),
                        ("journal_status", run.status), ("runs_given", str(runs_given))):
        ET.SubElement(properties, "property", name=name, value=clean(value))
    cases = [_verdict_case(run)]
    cases += _probe_cases(run)
    cases += _budget_cases(run)
    counts = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
    for case in cases:
        for kind, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            if case.find(kind) is not None:
                counts[key] += 1
        element.append(case)
    for key, value in counts.items():
        element.set(key, str(value))
    element.set("time", f"{run.duration:.3f}")
    out = ET.SubElement(element, "system-out")
    out.text = clean("\n".join([f"verdict: {fmt.verdict_text(run.verdict)} (exit {fmt.exit_text(run)})",
                                *(f"- {f}" for f in run.failures)]))
    return element


def _case(run: RunReport, name: str, seconds: float | None) -> ET.Element:
    return ET.Element("testcase", name=clean(name), classname=clean(f"mlchaos.{run.experiment_id}"),
                      time=f"{seconds or 0.0:.3f}")


def _verdict_case(run: RunReport) -> ET.Element:
    case = _case(run, "verdict", run.duration)
    if run.outcome == "passed" or run.verdict == "planned":
        return case
    message = f"{fmt.verdict_text(run.verdict)} (exit {fmt.exit_text(run)})"
    reason = run.aborted or (run.refusals[0] if run.refusals else "") or (
        f"interrupted by {run.interrupted_by}" if run.interrupted_by else "") or (
        run.failures[0] if run.failures else "")
    if reason:
        message += f": {reason}"
    kind = "error" if run.verdict in ERROR_VERDICTS or run.outcome == "incomplete" else "failure"
    detail = ET.SubElement(case, kind, message=clean(message), type=clean(run.verdict))
    detail.text = clean("\n".join(run.failures) or message)
    return case


def _probe_cases(run: RunReport) -> list[ET.Element]:
    cases = []
    for phase in (PHASE_BEFORE, PHASE_AFTER):
        ran = {a.name: a for a in run.phase(phase)}
        names = list(dict.fromkeys([*run.hypothesis_probes, *ran]))
        for name in names:
            cases.append(_activity_case(run, phase, name, ran.get(name)))
    for activity in run.phase(PHASE_RECOVERY):
        cases.append(_activity_case(run, PHASE_RECOVERY, activity.name, activity))
    return cases


def _activity_case(run: RunReport, phase: str, name: str, activity: ActivityResult | None) -> ET.Element:
    case = _case(run, f"{phase}: {name}", activity.duration if activity else 0.0)
    if activity is None:
        why = "the method stopped the run first" if phase == PHASE_AFTER else "the run stopped before it"
        ET.SubElement(case, "skipped", message=clean(f"not run: {why} (verdict {run.verdict})"))
    elif activity.status == "running":
        ET.SubElement(case, "error", message="stopped while running", type="stopped")
    elif activity.status != "succeeded":
        detail = ET.SubElement(case, "error", message=clean(activity.error or activity.status), type="probe-failed")
        detail.text = clean(activity.error)
    elif activity.tolerance_met is False:
        message = f"tolerance {activity.tolerance} not met, actual value {activity.value}"
        detail = ET.SubElement(case, "failure", message=clean(message), type="tolerance")
        detail.text = clean(message)
    return case


def _budget_cases(run: RunReport) -> list[ET.Element]:
    cases = []
    for budget in run.budgets:
        case = _case(run, f"budget: {budget.label} {budget.alert} <= {budget.budget:g}s", budget.measured)
        if budget.measured is None and run.outcome == "incomplete":
            ET.SubElement(case, "skipped", message=clean(f"not measured: the run did not get that far ({run.verdict})"))
        elif budget.measured is None:
            ET.SubElement(case, "failure", message=clean(f"not measured (budget {budget.budget:g}s)"),
                          type="budget")
        elif not budget.met:
            ET.SubElement(case, "failure", type="budget",
                          message=clean(f"{budget.measured:.1f}s exceeds the budget of {budget.budget:g}s"))
        cases.append(case)
    return cases
