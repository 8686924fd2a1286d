"""The ML Test Score rubric (Breck et al. 2017) and how experiments and alerts name its tests.

An experiment claims to verify a rubric test with a tag ``ml-test-score:<section>-<n>``
(``ml-test-score:monitoring-6``); an alert rule names the tests it watches in its
``ml_test_score`` label (``Monitoring 6``). Validation checks the tags against the rubric;
:mod:`mlchaos.reports.mltestscore` scores a suite of drills with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAG_PREFIX = "ml-test-score:"
LABEL = "ml_test_score"
SECTIONS = ("data", "model", "infrastructure", "monitoring")
DRILLABLE = ("monitoring", "infrastructure")
SECTION_TITLES = {"data": "Data", "model": "Model", "infrastructure": "Infrastructure", "monitoring": "Monitoring"}
RUBRIC: dict[str, tuple[str, ...]] = {
    "data": (
        "Feature expectations are captured in a schema",
        "All features are beneficial",
        "No feature's cost is too much",
        "Features adhere to meta-level requirements",
        "The data pipeline has appropriate privacy controls",
        "New features can be added quickly",
        "All input feature code is tested",
    ),
    "model": (
        "Model specs are reviewed and submitted",
        "Offline and online metrics correlate",
        "All hyperparameters have been tuned",
        "The impact of model staleness is known",
        "A simpler model is not better",
        "Model quality is sufficient on important data slices",
        "The model is tested for considerations of inclusion",
    ),
    "infrastructure": (
        "Training is reproducible",
        "Model specs are unit tested",
        "The ML pipeline is integration tested",
        "Model quality is validated before serving",
        "The model is debuggable",
        "Models are canaried before serving",
        "Serving models can be rolled back",
    ),
    "monitoring": (
        "Dependency changes result in notification",
        "Data invariants hold for inputs",
        "Training and serving are not skewed",
        "Models are not too stale",
        "Models are numerically stable",
        "Computing performance has not regressed",
        "Prediction quality has not regressed",
    ),
}
_PART = re.compile(r"^\s*(data|model|infrastructure|infra|monitoring)\s*[-_ ]?\s*(\d+)?\s*$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class RubricTest:
    """One test of the rubric, e.g. Monitoring 6."""

    section: str
    number: int

    @property
    def key(self) -> str:
        return f"{self.section}-{self.number}"

    @property
    def label(self) -> str:
        return f"{SECTION_TITLES[self.section]} {self.number}"

    @property
    def title(self) -> str:
        return RUBRIC[self.section][self.number - 1]


def parse_reference(text: str) -> tuple[list[RubricTest], list[str], list[str]]:
    """Rubric tests named in a label value or tag body: (tests, sections named without a test, problems)."""
    tests: list[RubricTest] = []
    sections: list[str] = []
    problems: list[str] = []
    for part in re.split(r"[,;]", text):
        if not part.strip():
            continue
        match = _PART.match(part)
        if match is None:
            problems.append(f"{part.strip()!r} is not a rubric test (write e.g. monitoring-6)")
            continue
        section = match.group(1).lower()
        section = "infrastructure" if section == "infra" else section
        if match.group(2) is None:
            sections.append(section)
            continue
        number = int(match.group(2))
        if not 1 <= number <= len(RUBRIC[section]):
            problems.append(f"{part.strip()!r}: the {section} section has tests 1 to {len(RUBRIC[section])}")
            continue
        tests.append(RubricTest(section, number))
    return tests, sections, problems
