"""Check a probe's value against its tolerance, within what is left of the probe's timeout, and say why
when it fails.

Equality and list tolerances are decided at once. Every other tolerance may take time: a probe used
as a tolerance runs a provider (:func:`~mlchaos.experiment.execution.execute`, with the time left),
and regex, jsonpath and range tolerances run on a worker thread
(:mod:`mlchaos.experiment.bounded_tolerance`: a deadline, a capped input) while the caller waits
through its :class:`~mlchaos.experiment.execution.Waiter`, so the run's signals still stop it.
A tolerance that runs out of time, or whose input is too large, is not met, and says so.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from mlchaos.experiment import bounded_tolerance
from mlchaos.experiment.execution import Waiter, execute, in_background


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
    """Compare ``value`` with ``tolerance`` (chaostoolkit semantics; the tolerance is not mutated).

    ``timeout``: the seconds left of the probe's timeout; a tolerance that needs longer is not met.
    """
    if isinstance(tolerance, dict):
        if timeout <= 0:
            return Verdict(False, f"{describe(tolerance)} not checked on {_show(value)}: the probe used all of "
                                  f"its timeout, none was left for its tolerance")
        if tolerance.get("type") == "probe":
            return _check_with_probe(tolerance, value, configuration, secrets, timeout, waiter)
        return _check_bounded(tolerance, value, configuration, secrets, timeout, waiter)
    try:
        met = _within(tolerance, value, configuration, secrets)
    except Exception as exc:  # a comparison that cannot be made is a failed tolerance
        return Verdict(False, f"cannot compare {_show(value)} with {describe(tolerance)}: {exc}")
    if met:
        return Verdict(True, _show(value))
    return Verdict(False, f"expected {describe(tolerance)}, got {_show(value)}")


def _check_bounded(tolerance: dict[str, Any], value: Any, configuration: dict[str, Any], secrets: dict[str, Any],
                   timeout: float, waiter: Waiter) -> Verdict:
    """A regex, jsonpath or range tolerance, decided on a worker thread within ``timeout`` seconds."""
    box: dict[str, Any] = {}
    deadline = time.monotonic() + timeout

    def work() -> None:
        try:
            box["met"] = bounded_tolerance.evaluate(tolerance, value, configuration, secrets, deadline)
        except BaseException as exc:  # reported below as a tolerance not met
            box["error"] = exc

    if not waiter.wait(in_background(work), timeout):
        return Verdict(False, _late(tolerance, value, timeout))
    error = box.get("error")
    if isinstance(error, bounded_tolerance.DeadlinePassed):
        return Verdict(False, _late(tolerance, value, timeout))
    if isinstance(error, bounded_tolerance.InputTooLarge):
        return Verdict(False, f"{describe(tolerance)} not met: {error}")
    if error is not None:
        return Verdict(False, f"cannot compare {_show(value)} with {describe(tolerance)}: {error}")
    if box["met"]:
        return Verdict(True, _show(value))
    return Verdict(False, f"expected {describe(tolerance)}, got {_show(value)}")


def _late(tolerance: dict[str, Any], value: Any, timeout: float) -> str:
    hint = " (a pattern that backtracks catastrophically?)" if tolerance.get("type") == "regex" else ""
    return (f"{describe(tolerance)} not met: not decided within the {timeout:.3g}s left of the probe's timeout"
            f"{hint}; the value was {_show(value)}")


def _within(tolerance: Any, value: Any, configuration: dict[str, Any], secrets: dict[str, Any]) -> bool:
    """chaostoolkit-lib's ``within_tolerance``, with its scalar cases inlined.

    Importing ``chaoslib.hypothesis`` pulls in ``requests`` (~35 ms per run), so equality
    and list tolerances, which are most of them, are decided here with exactly the
    semantics of chaoslib 1.44 (a test compares both on a table of cases). Other dict
    tolerances go to :func:`bounded_tolerance.evaluate` (no deadline here).
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
    if isinstance(tolerance, dict) and tolerance.get("type") != "probe":
        return bounded_tolerance.evaluate(tolerance, value, configuration, secrets, math.inf)
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


_SHOWN = {True: "true", False: "false", None: "null"}


def _show(value: Any, limit: int = 200) -> str:
    if value is None or value is True or value is False:  # most probes: spare json.dumps
        return _SHOWN[value]
    if isinstance(value, int) and type(value) not in (int, bool):  # a count that names what it counted
        return str(value)[:limit]
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # never serialise a huge output to show 200 characters of it
    elif bounded_tolerance.bounded_size(value, 100 * limit) > 100 * limit:
        return f"a {type(value).__name__} of {len(value):,} items" if hasattr(value, "__len__") else "a large value"
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
