"""Small text helpers the HTML, JUnit and Markdown renderers share."""

from __future__ import annotations

from datetime import UTC, datetime

from mlchaos.engine import verdicts
from mlchaos.reports.types import MeasurementRow, RunReport

VERDICT_TEXT = {verdict: verdict.replace("-", " ").upper() for verdict in (*verdicts.RUN_VERDICTS, verdicts.UNFINISHED)}
MEASURED_KINDS = ("time_to_detect", "time_to_notify", "time_to_recover")


def verdict_text(verdict: str) -> str:
    return VERDICT_TEXT.get(verdict, verdict.upper() or "UNKNOWN")


def seconds(value: float | None, digits: int = 1) -> str:
    """'4.6s', or an en dash when there is no value."""
    return "\u2013" if value is None else f"{value:.{digits}f}s"


def duration(value: float) -> str:
    """A run's (or a suite's) duration: seconds, or minutes and seconds past a minute."""
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)}m {rest:04.1f}s"


def moment(value: datetime | None) -> str:
    return "\u2013" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def now() -> str:
    return moment(datetime.now(UTC))


def exit_text(run: RunReport) -> str:
    return "\u2013" if run.exit_code is None else str(run.exit_code)


def stop_events(run: RunReport) -> list[str]:
    """What stopped or cut the run short, and what undid its faults: refusals, an abort, a signal, rollbacks left
    undone, recoveries, the safety net's automatic undos."""
    items = [f"refused: {r}" for r in run.refusals]
    if run.aborted:
        items.append(f"aborted ({run.aborted_kind or 'abort'}): {run.aborted}")
    if run.interrupted_by:
        items.append(f"interrupted by {run.interrupted_by}; the rollbacks ran")
    if run.left_undone:
        items.append(f"rollbacks left undone: {', '.join(run.left_undone)} -- the fault may still be in place")
    items.extend(f"recovered by {r}" for r in run.recoveries)
    items.extend(f"safety net: {a.name}" for a in run.activities if a.automatic)
    return items


def measurement(run: RunReport, alert: str, kind: str) -> MeasurementRow | None:
    """The measurement a budget counted: the fastest of ``kind`` for ``alert``."""
    found = [m for m in run.measurements if m.alert == alert and m.kind == kind]
    return min(found, key=lambda m: m.seconds) if found else None


def floor_cells(row: MeasurementRow | None) -> list[str]:
    """The floor, the excess over it, and how the time was measured (en dashes where unknown)."""
    if row is None:
        return ["\u2013", "\u2013", ""]
    floor = "\u2013" if row.floor is None else f"{row.floor:g}s ({row.floor_text})"
    excess = "\u2013" if row.excess is None else f"{row.excess:+.1f}s"
    return [floor, excess, row.how]
