"""Check a probe's value against its tolerance, and say why when it fails."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from mlchaos.experiment.execution import Waiter, execute


@dataclass(frozen=True)
class Verdict:
    """Whether a value is within tolerance, with a sentence for people."""

    met: bool
    explanation: str


def check(
    tolerance: Any,
    value: Any,
    configuration: dict[str, Any],
    secrets: dict[str, Any],
    timeout: float,
    waiter: Waiter,
) -> Verdict:
    """Compare ``value`` with ``tolerance`` (chaostoolkit semantics; the tolerance is not mutated)."""
    if isinstance(tolerance, dict) and tolerance.get("type") == "probe":
        return _check_with_probe(tolerance, value, configuration, secrets, timeout, waiter)
    try:
        met = _within(tolerance, value, configuration, secrets)
    except Exception as exc:  # a comparison that cannot be made is a failed tolerance
        return Verdict(False, f"cannot compare {_show(value)} with {describe(tolerance)}: {exc}")
    if met:
        return Verdict(True, _show(value))
    return Verdict(False, f"expected {describe(tolerance)}, got {_show(value)}")


def _within(tolerance: Any, value: Any, configuration: dict[str, Any], secrets: dict[str, Any]) -> bool:
    """chaostoolkit-lib's ``within_tolerance``, with its scalar cases inlined.

    Importing ``chaoslib.hypothesis`` pulls in ``requests`` (~35 ms per run), so equality
    and list tolerances, which are most of them, are decided here with exactly the
    semantics of chaoslib 1.44 (a test compares both on a table of cases).
    """
    if isinstance(tolerance, (bool, str)):
        return value == tolerance
    if isinstance(tolerance, int):
        if isinstance(value, dict) and "status" in value:
            return value["status"] == tolerance
        return value == tolerance
    if isinstance(tolerance, list):
        if isinstance(value, dict) and "status" in value:
            return value["status"] in tolerance
        if len(tolerance) == 2:
            return tolerance[0] <= value <= tolerance[1]
        return value in tolerance
    from chaoslib.hypothesis import within_tolerance

    return bool(within_tolerance(copy.deepcopy(tolerance), value, configuration, secrets))


def _check_with_probe(tolerance: dict[str, Any], value: Any, configuration: dict[str, Any], secrets: dict[str, Any],
                      timeout: float, waiter: Waiter) -> Verdict:
    spec = copy.deepcopy(tolerance)
    spec.setdefault("name", "tolerance")
    spec["provider"].setdefault("arguments", {})["value"] = value
    outcome = execute(spec, configuration, secrets, timeout, waiter)
    if not outcome.succeeded:
        return Verdict(False, f"tolerance probe failed on {_show(value)}: {outcome.error}")
    if outcome.output:
        return Verdict(True, f"{_show(value)} accepted by tolerance probe")
    return Verdict(False, f"tolerance probe rejected {_show(value)} (returned {_show(outcome.output)})")


def describe(tolerance: Any) -> str:
    """A short human description of a tolerance."""
    if isinstance(tolerance, list) and len(tolerance) == 2:
        return f"a value in [{tolerance[0]}, {tolerance[1]}]"
    if isinstance(tolerance, list):
        return f"one of {tolerance}"
    if isinstance(tolerance, dict):
        kind = tolerance.get("type")
        target = f" of {tolerance['target']!r}" if tolerance.get("target") else ""
        if kind == "range":
            low, high = tolerance.get("range", [None, None])
            return f"a value{target} in [{low}, {high}]"
        if kind == "regex":
            return f"a value{target} matching /{tolerance.get('pattern')}/"
        if kind == "jsonpath":
            expect = f" == {tolerance['expect']!r}" if "expect" in tolerance else ""
            return f"jsonpath {tolerance.get('path')}{expect}"
        return f"a {kind} tolerance"
    return _show(tolerance)


def _show(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
