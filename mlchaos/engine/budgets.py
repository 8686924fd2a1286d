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
    """One duration measured by a probe, in seconds after the fault was injected.

    ``seconds`` is the measurement: exact where the probe read it from the monitoring's own timestamps
    (``method``), else polled. ``polled`` is what polling saw (for agreement), ``note`` why the exact time
    is missing, ``floor`` what the monitoring's configuration alone costs (``floor_text``: scrape +
    evaluation interval + the rule's ``for``) and :attr:`excess` the time lost beyond it. ``resolution``:
    the exact time is a lower bound, true to that many seconds (timestamps truncated by the ruler; ``note``
    says why).
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
    resolution: float | None = None

    @classmethod
    def from_output(cls, output: Any, activity: str) -> Measurement | None:
        """The measurement a probe reported in its output (``{"measurement": {...}}``), if any."""
        if not isinstance(output, dict) or not isinstance(output.get("measurement"), dict):
            return None
        data = output["measurement"]
        try:
            return cls(str(data["kind"]), str(data["alert"]), float(data["seconds"]), activity,
                       polled=_seconds(data.get("polled")), method=str(data.get("method") or ""),
                       note=str(data.get("note") or ""), floor=_seconds(data.get("floor")),
                       floor_text=str(data.get("floor_text") or ""), resolution=_seconds(data.get("resolution")))
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def excess(self) -> float | None:
        """Seconds beyond the floor (negative: the fault happened to land just before a scrape)."""
        return None if self.floor is None else round(self.seconds - self.floor, 3)

    def to_dict(self) -> dict[str, Any]:
        """The journal's record: what a probe did not report (no polled time, no floor) is left out."""
        data = {**asdict(self), "excess": self.excess}
        return {k: v for k, v in data.items() if v not in (None, "") or k in ("kind", "alert", "seconds", "activity")}

    def describe(self) -> str:
        return f"{KIND_LABELS.get(self.kind, self.kind)} {self.alert}: {self.seconds:.1f}s{self.details()}"

    def details(self) -> str:
        """What stands beside the measurement: its floor and the excess, how it was measured, the polled time."""
        parts = []
        if self.floor is not None and self.excess is not None:
            parts.append(f"floor {self.floor:g}s ({self.floor_text}), {self.excess:+.1f}s over it")
        if self.method == "prometheus timestamps" and self.polled is not None:
            within = f" (a lower bound, true to {self.resolution:g}s)" if self.resolution else ""
            parts.append(f"Prometheus' timestamps{within}; polled {self.polled:.1f}s")
        elif self.method == "polled":
            parts.append(f"polled: {self.note}" if self.note else "polled")
        return f" [{'; '.join(parts)}]" if parts else ""


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


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
