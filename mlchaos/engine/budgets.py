"""Time-to-detect / notify / recover measurements, and the budgets an experiment sets for them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlchaos.experiment.settings import Budget
from mlchaos.lib.records import JsonRecord

KIND_LABELS = {
    "time_to_detect": "time to detect",
    "time_to_notify": "time to notify",
    "time_to_recover": "time to recover",
    "time_to_notify_resolved": "time to notify resolved",
}


@dataclass(frozen=True)
class Measurement(JsonRecord):
    """One duration measured by a probe, in seconds after the fault was injected."""

    kind: str
    alert: str
    seconds: float
    activity: str

    @classmethod
    def from_output(cls, output: Any, activity: str) -> Measurement | None:
        """The measurement a probe reported in its output (``{"measurement": {...}}``), if any."""
        if not isinstance(output, dict) or not isinstance(output.get("measurement"), dict):
            return None
        data = output["measurement"]
        try:
            return cls(str(data["kind"]), str(data["alert"]), float(data["seconds"]), activity)
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        return f"{KIND_LABELS.get(self.kind, self.kind)} {self.alert}: {self.seconds:.1f}s"


@dataclass(frozen=True)
class BudgetResult:
    """Whether one measured duration met its budget."""

    alert: str
    kind: str
    budget: float
    measured: float | None

    @property
    def met(self) -> bool:
        return self.measured is not None and self.measured <= self.budget

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}

    def describe(self) -> str:
        label = KIND_LABELS.get(self.kind, self.kind)
        if self.measured is None:
            return f"{label} {self.alert}: not measured (budget {self.budget:g}s): no probe reported it"
        verdict = "within" if self.met else "EXCEEDS"
        return f"{label} {self.alert}: {self.measured:.1f}s {verdict} the budget of {self.budget:g}s"


def evaluate(budgets: tuple[Budget, ...], measurements: list[Measurement]) -> list[BudgetResult]:
    """Compare every budgeted duration with the fastest matching measurement."""
    results = []
    for budget in budgets:
        for kind, limit in budget.limits.items():
            seen = [m.seconds for m in measurements if m.kind == kind and m.alert == budget.alert]
            results.append(BudgetResult(budget.alert, kind, limit, min(seen) if seen else None))
    return results
