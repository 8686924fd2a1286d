"""The typed report of a run (:class:`RunReport`) and of several (:class:`Suite`): what every renderer sees.

The renderers (HTML, JUnit, Markdown, metrics) only see these types; :mod:`mlchaos.reports.reader`
builds them from journals, and is the only place journal dicts are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mlchaos.engine import verdicts
from mlchaos.engine.budgets import KIND_LABELS

# what a verdict means for a report: passed, failed (the drill found a problem) or incomplete
# (the drill did not get to test anything: refused, interrupted, a plan, a runner that died)
PASSED, FAILED, INCOMPLETE = "passed", "failed", "incomplete"
FAILED_VERDICTS = verdicts.FAILED
PASSED_VERDICTS = verdicts.PASSED

PHASE_BEFORE = "steady state before"
PHASE_AFTER = "steady state after"
PHASE_METHOD = "method"
PHASE_ROLLBACKS = "rollbacks"
PHASE_RECOVERY = "recovery"


@dataclass(frozen=True)
class Span:
    """Something that lasted, on the run's timeline (seconds after the run started)."""

    lane: str
    label: str
    start: float
    end: float
    status: str  # succeeded | failed | running | pending | firing


@dataclass(frozen=True)
class Marker:
    """A moment on the run's timeline (seconds after the run started)."""

    kind: str  # fault | detected | notified | resolved | notified-resolved | guard
    label: str
    at: float


@dataclass(frozen=True)
class Timeline:
    """Every span and marker of a run, and how long the run lasted."""

    duration: float
    spans: tuple[Span, ...] = ()
    markers: tuple[Marker, ...] = ()

    @property
    def lanes(self) -> list[str]:
        """Lane names in order of first appearance."""
        return list(dict.fromkeys(span.lane for span in self.spans))


@dataclass(frozen=True)
class ActivityResult:
    """One activity of the run: a probe of a hypothesis, a method step, a rollback, a recovery check."""

    phase: str
    kind: str  # probe | action
    name: str
    status: str  # succeeded | failed | running (never finished: the run stopped under it)
    duration: float | None
    value: str  # the output, summarised (the actual value of a probe)
    tolerance: str  # the tolerance as JSON text ("" when the activity has none)
    tolerance_met: bool | None
    error: str  # the last line of the exception
    automatic: bool = False  # a safety-net undo (not declared by the experiment)

    @property
    def passed(self) -> bool:
        return self.status == "succeeded" and self.tolerance_met is not False


@dataclass(frozen=True)
class DuringCheck:
    """One check of the steady state while the method ran (``--hypothesis-strategy`` during-method-only or
    continuously; the journal's ``steady_states.during``)."""

    index: int  # 1, 2, ... in the order they ran
    met: bool
    start: str  # when its first probe started (ISO 8601), "" when unknown
    missed: tuple[str, ...] = ()  # "probe: actual value" of each probe that did not meet its tolerance


@dataclass(frozen=True)
class BudgetRow:
    """A budgeted duration and what was measured."""

    alert: str
    kind: str
    budget: float
    measured: float | None
    met: bool

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class MeasurementRow:
    """A duration a probe measured, in seconds after the fault, beside its floor and the polled time.

    ``method``: "prometheus timestamps" (exact) or "polled" (``note`` says why); empty in journals older
    than exact times. ``floor``: scrape + evaluation interval + the rule's ``for`` (``floor_text``).
    """

    kind: str
    alert: str
    seconds: float
    activity: str
    polled: float | None = None
    method: str = ""
    note: str = ""
    floor: float | None = None
    floor_text: str = ""

    @property
    def excess(self) -> float | None:
        """Seconds beyond the floor; None when the floor is unknown."""
        return None if self.floor is None else round(self.seconds - self.floor, 3)

    @property
    def how(self) -> str:
        """How it was measured, in words: exact (and the polled time), or polled and why."""
        if self.method == "prometheus timestamps":
            return "exact" + (f" (polled {self.polled:.1f}s)" if self.polled is not None else "")
        if self.method == "polled":
            return "polled" + (f": {self.note}" if self.note else "")
        return ""


@dataclass(frozen=True)
class TargetHit:
    """One target of one announced change."""

    action: str
    driver: str
    kind: str
    name: str
    detail: str  # pid / id / instance / url, as far as the driver reported them
    environment: str
    announced_at: datetime | None
    dry_run: bool


@dataclass(frozen=True)
class KindRadius:
    """What the run affected of one kind of target."""

    kind: str
    affected: tuple[str, ...]
    eligible: int | None
    fraction: float | None
    population_unknown: bool


@dataclass(frozen=True)
class BlastRadius:
    """The declared bounds and what the run affected."""

    bounds: tuple[str, ...] = ()
    targets: int = 0
    kinds: tuple[KindRadius, ...] = ()
    environments: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuardResult:
    """How one guard fared."""

    name: str
    checks: int
    last_value: str
    tripped: bool
    explanation: str
    tripped_at: float | None


@dataclass(frozen=True)
class NotificationSeen:
    """A notification the run's receiver recorded."""

    status: str
    alertname: str
    received_at: datetime | None
    labels: Mapping[str, str]


@dataclass(frozen=True)
class FiredAlert:
    """An alert seen firing during the run (by a probe or in a notification), with its labels."""

    name: str
    labels: Mapping[str, str]
    seen_by: str


@dataclass(frozen=True)
class RunReport:
    """Everything a report shows about one run."""

    experiment_id: str
    title: str
    description: str
    source: str
    tags: tuple[str, ...]
    run_id: str
    verdict: str
    exit_code: int | None
    status: str
    start: datetime | None
    end: datetime | None
    duration: float
    node: str
    mlchaos_version: str
    activities: tuple[ActivityResult, ...] = ()
    hypothesis_probes: tuple[str, ...] = ()  # the names the experiment declares, in order
    budgets: tuple[BudgetRow, ...] = ()
    measurements: tuple[MeasurementRow, ...] = ()
    targets: tuple[TargetHit, ...] = ()
    blast_radius: BlastRadius = field(default_factory=BlastRadius)
    guards: tuple[GuardResult, ...] = ()
    failures: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    aborted: str = ""
    aborted_kind: str = ""
    interrupted_by: str = ""
    recoveries: tuple[str, ...] = ()
    left_undone: tuple[str, ...] = ()
    notifications: tuple[NotificationSeen, ...] = ()
    fired_alerts: tuple[FiredAlert, ...] = ()
    timeline: Timeline = field(default_factory=lambda: Timeline(0.0))
    during: tuple[DuringCheck, ...] = ()  # the steady state checked during the method
    hypothesis_strategy: str = ""  # "" for Chaos Toolkit's default (before and after)

    @property
    def outcome(self) -> str:
        """passed, failed or incomplete (see the module constants)."""
        if self.verdict in PASSED_VERDICTS:
            return PASSED
        if self.verdict == verdicts.ABORTED and self.aborted_kind == "stop":
            return INCOMPLETE  # the emergency stop: a person stopped it, the drill did not fail
        if self.verdict in FAILED_VERDICTS:
            return FAILED
        return INCOMPLETE

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED

    def measured(self, kind: str) -> float | None:
        """The fastest measurement of ``kind`` (any alert), as budgets count it."""
        seen = [m.seconds for m in self.measurements if m.kind == kind]
        return min(seen) if seen else None

    def phase(self, name: str) -> list[ActivityResult]:
        return [a for a in self.activities if a.phase == name]

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.start.isoformat() if self.start else "", self.run_id)


@dataclass(frozen=True)
class ExperimentRuns:
    """Every given run of one experiment, oldest first."""

    experiment_id: str
    runs: tuple[RunReport, ...]

    @property
    def latest(self) -> RunReport:
        return self.runs[-1]


@dataclass(frozen=True)
class Suite:
    """The runs a report covers, grouped by experiment (a suite, or the history of one drill)."""

    runs: tuple[RunReport, ...]

    @property
    def experiments(self) -> list[ExperimentRuns]:
        """One entry per experiment, in order of first appearance; its runs sorted by start time."""
        groups: dict[str, list[RunReport]] = {}
        for run in self.runs:
            groups.setdefault(run.experiment_id, []).append(run)
        return [ExperimentRuns(key, tuple(sorted(runs, key=lambda r: r.sort_key))) for key, runs in groups.items()]

    @property
    def latest_runs(self) -> list[RunReport]:
        return [group.latest for group in self.experiments]

    @property
    def total_duration(self) -> float:
        return sum(run.duration for run in self.runs)

    def verdict_counts(self, runs: Iterable[RunReport] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs if runs is None else runs:
            counts[run.verdict] = counts.get(run.verdict, 0) + 1
        return counts

    def outcome_counts(self) -> dict[str, int]:
        """passed / failed / incomplete, over the latest run of each experiment."""
        counts = {PASSED: 0, FAILED: 0, INCOMPLETE: 0}
        for run in self.latest_runs:
            counts[run.outcome] += 1
        return counts
