"""What a run ends with: its verdict, exit code, measurements and what it left undone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlchaos.engine.budgets import BudgetResult, Measurement
from mlchaos.experiment.execution import Outcome
from mlchaos.experiment.models import Activity
from mlchaos.safety.guards import Abort


@dataclass
class RunResult:
    """The outcome of a run, as the CLI reports it."""

    title: str
    status: str
    verdict: str
    exit_code: int
    deviated: bool
    failures: list[str] = field(default_factory=list)
    left_undone: list[str] = field(default_factory=list)
    journal_path: Path | None = None
    duration: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    budgets: list[BudgetResult] = field(default_factory=list)
    dry_run: bool = False
    planned: list[tuple[Activity, Outcome]] = field(default_factory=list)
    bounds: list[str] = field(default_factory=list)
    blast_radius: dict[str, Any] = field(default_factory=dict)
    guards: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    abort: Abort | None = None
