"""The ML Test Score (Breck et al. 2017): which rubric tests a suite of drills verified automatically.

Evidence comes from labels only:

* an experiment's ``tags``: ``ml-test-score:<section>-<n>`` (``ml-test-score:monitoring-6``), section one
  of ``data``, ``model``, ``infrastructure``, ``monitoring``, n 1-7: the drill claims to verify that test;
* the ``ml_test_score`` labels of the alerts that fired during the run (notifications and the outputs of
  probes that saw an alert fire): ``Monitoring 6``, ``monitoring-6``, several separated by commas. A
  label naming only a section (``Infrastructure``) points at no test and is listed apart.

Scoring, over the latest run of each experiment: a rubric test earns 1 point (automated and passing)
when at least one drill that verified it held and no drill that attempted it failed; drills that did
not get to test anything (refused, interrupted, a plan) neither verify nor fail it. The final score is
the minimum of the four section sums, as in the paper; chaos drills verify monitoring and
infrastructure tests, so the data and model sections (and the final score) stay 0 unless a drill is
tagged with one of their tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mlchaos.experiment.ml_test_score import (
    DRILLABLE,
    LABEL,
    RUBRIC,
    SECTION_TITLES,
    SECTIONS,
    TAG_PREFIX,
    RubricTest,
    parse_reference,
)
from mlchaos.reports.types import FAILED, PASSED, RunReport

# a rubric test's status in a scorecard
PASSING, FAILING, NOT_VERIFIED, NOT_COVERED = "passing", "failing", "not verified", "not covered"


@dataclass(frozen=True)
class Evidence:
    """One drill's run, and how it relates to a rubric test."""

    experiment_id: str
    title: str
    run_id: str
    verdict: str
    outcome: str
    via: tuple[str, ...]  # "tag ml-test-score:monitoring-6", "alert ModelEndpointLatencyHigh"


@dataclass
class TestResult:
    """What the suite showed for one rubric test."""

    test: RubricTest
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def verified_by(self) -> list[Evidence]:
        return [e for e in self.evidence if e.outcome == PASSED]

    @property
    def failed_by(self) -> list[Evidence]:
        return [e for e in self.evidence if e.outcome == FAILED]

    @property
    def status(self) -> str:
        if self.failed_by:
            return FAILING
        if self.verified_by:
            return PASSING
        return NOT_VERIFIED if self.evidence else NOT_COVERED

    @property
    def points(self) -> float:
        return 1.0 if self.status == PASSING else 0.0


@dataclass
class SectionScore:
    """One section of the rubric and its sum."""

    section: str
    tests: list[TestResult]

    @property
    def title(self) -> str:
        return SECTION_TITLES[self.section]

    @property
    def points(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def drillable(self) -> bool:
        return self.section in DRILLABLE


@dataclass(frozen=True)
class SectionOnly:
    """An alert label that names a section but no test of it."""

    experiment_id: str
    alert: str
    value: str


@dataclass
class Scorecard:
    """The ML Test Score section of a report."""

    sections: list[SectionScore]
    section_only: list[SectionOnly]
    problems: list[str]
    runs: int

    def section(self, name: str) -> SectionScore:
        return next(s for s in self.sections if s.section == name)

    @property
    def final(self) -> float:
        """The paper's final score: the minimum of the four section sums."""
        return min(s.points for s in self.sections)

    @property
    def drillable_final(self) -> float:
        """The minimum over the sections chaos drills can verify (monitoring, infrastructure)."""
        return min(s.points for s in self.sections if s.drillable)

    def covered(self) -> list[TestResult]:
        return [t for s in self.sections for t in s.tests if t.evidence]


def references(run: RunReport) -> tuple[dict[RubricTest, list[str]], list[SectionOnly], list[str]]:
    """The rubric tests one run names (and how), labels naming only a section, and problems."""
    found: dict[RubricTest, list[str]] = {}
    section_only: list[SectionOnly] = []
    problems: list[str] = []
    for tag in run.tags:
        if not tag.lower().startswith(TAG_PREFIX):
            continue
        tests, sections, bad = parse_reference(tag[len(TAG_PREFIX):])
        problems.extend(f"{run.experiment_id}: tag {tag!r}: {p}" for p in bad)
        problems.extend(f"{run.experiment_id}: tag {tag!r} names the {s} section but no test of it" for s in sections)
        for test in tests:
            found.setdefault(test, []).append(f"tag {tag}")
    for alert in run.fired_alerts:
        value = alert.labels.get(LABEL, "")
        if not value:
            continue
        tests, sections, bad = parse_reference(value)
        problems.extend(f"{run.experiment_id}: alert {alert.name} label {LABEL}={value!r}: {p}" for p in bad)
        if sections and not tests:
            entry = SectionOnly(run.experiment_id, alert.name, value)
            if entry not in section_only:
                section_only.append(entry)
        for test in tests:
            via = f"alert {alert.name}"
            if via not in found.setdefault(test, []):
                found[test].append(via)
    return found, section_only, problems


def score(runs: Iterable[RunReport]) -> Scorecard:
    """The scorecard of the given runs (pass the latest run of each experiment)."""
    runs = list(runs)
    results = {RubricTest(s, n): TestResult(RubricTest(s, n)) for s in SECTIONS for n in range(1, len(RUBRIC[s]) + 1)}
    section_only: list[SectionOnly] = []
    problems: list[str] = []
    for run in runs:
        found, only, bad = references(run)
        section_only.extend(only)
        problems.extend(bad)
        for test, via in found.items():
            results[test].evidence.append(Evidence(run.experiment_id, run.title, run.run_id, run.verdict,
                                                   run.outcome, tuple(via)))
    sections = [SectionScore(s, [results[RubricTest(s, n)] for n in range(1, len(RUBRIC[s]) + 1)])
                for s in SECTIONS]
    return Scorecard(sections, section_only, list(dict.fromkeys(problems)), len(runs))
