"""The plan: what a run would do, resolved for real in dry-run mode, and whether it may start.

Every fault driver takes ``dry_run``: it selects its targets for real, announces the change
record it would apply and changes nothing. ``mlchaos plan`` (``run --dry-run``) runs the whole
experiment that way; a real run with bounds first resolves its method's actions so
(:func:`resolve_plan`) and is refused before anything runs when the plan breaks a bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlchaos.engine.console import Console
from mlchaos.engine.signals import Stop
from mlchaos.experiment.driver_registry import accepts_dry_run
from mlchaos.experiment.execution import Outcome
from mlchaos.experiment.models import Activity, Experiment
from mlchaos.safety import changes
from mlchaos.safety.blast_radius import BoundExceeded, Ledger

Execute = Callable[[Activity, dict[str, Any]], Outcome]  # runs one private spec of an activity


def dry_run_spec(activity: Activity, *, waiting_probe: bool = False) -> dict[str, Any] | None:
    """The spec a plan runs for ``activity``; None for an action whose provider has no dry run (a plan cannot
    run it). Actions, and probes that wait for a fault (``waiting_probe``), get ``dry_run: true``."""
    spec = activity.private_spec()
    if activity.kind == "action":
        if not accepts_dry_run(spec):
            return None
        spec["provider"].setdefault("arguments", {})["dry_run"] = True
    elif waiting_probe and accepts_dry_run(spec):
        spec["provider"].setdefault("arguments", {})["dry_run"] = True
    return spec


def pauses_exceed_max_duration(experiment: Experiment, substitute: Callable[[Any], Any]) -> list[str]:
    """A refusal when the experiment's pauses alone outlast its ``max_duration`` (nothing else can be shorter)."""
    limit = experiment.settings.blast_radius.max_duration
    if limit is None:
        return []
    activities = [*experiment.hypothesis, *experiment.method, *experiment.hypothesis, *experiment.rollbacks]
    total = 0.0
    for activity in activities:
        for pause in (activity.pause_before, activity.pause_after):
            try:
                total += float(substitute(pause)) if pause is not None else 0.0
            except (TypeError, ValueError):
                continue
    if total > limit:
        return [f"its pauses alone last {total:g}s, more than max_duration {limit:g}s"]
    return []


def resolve_plan(experiment: Experiment, bounds: Ledger, execute: Execute, console: Console) -> list[str]:
    """Resolve every method action in dry-run mode and check the plan against the bounds; the refusals
    (a signal or an abort while it resolves is one)."""
    ledger = Ledger(bounds.bounds, bounds.allowed, bounds.host_allowed)
    refusals: list[str] = []

    def admit(record: changes.ChangeRecord) -> None:
        try:
            ledger.admit(record)
        except BoundExceeded as exc:
            refusals.append(str(exc))

    token = changes.set_sink(admit)
    try:
        for activity in experiment.actions:
            spec = dry_run_spec(activity)
            if spec is None:
                console.warn(f"plan: {activity.name!r} cannot be resolved in advance "
                             "(its provider has no dry run); its change is checked when it runs")
                continue
            outcome = execute(activity, spec)
            if not outcome.succeeded:
                console.warn(f"plan: {activity.name!r} could not be resolved: {outcome.error}")
    except Stop as exc:
        refusals.append(f"stopped while resolving the plan: {exc}")
    finally:
        changes.reset_sink(token)
    if not refusals:
        summary = ledger.summary()
        console.write(f"  plan: {summary['targets']} target(s) within the bounds "
                      f"({', '.join(ledger.describe_bounds())})")
    return refusals
