"""Regex, jsonpath and range tolerances, decided before a deadline and on a capped input.

chaostoolkit-lib checks these on the caller's thread with Python's ``re`` and ``jsonpath2``:
a catastrophic pattern (``^(a|aa)+$`` on a long output) then holds the GIL in C code that no
signal and no timeout can interrupt. Here, with the same semantics (a table of cases in
``tests/unit/test_tolerance.py`` compares both):

* regexes run in the ``regex`` package (``VERSION0``, compatible with ``re``) with its
  ``timeout=`` and ``concurrent=True``: the match stops itself at the deadline and releases the
  GIL while it runs, so the thread that waits for it (the run's main thread) still handles signals;
* a jsonpath's matches are collected one at a time, the deadline checked between them;
* the value a tolerance examines is capped at :data:`MAX_INPUT_CHARS` (characters of a string,
  or roughly those of a structure serialised as JSON): a larger one is not examined at all.

:func:`evaluate` runs on a worker thread (:func:`mlchaos.experiment.tolerance.check` waits for it
within the activity's remaining timeout); it raises :class:`InputTooLarge` or
:class:`DeadlinePassed`, which the caller reports as a tolerance not met.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from typing import Any

MAX_INPUT_CHARS = 1_000_000


class InputTooLarge(Exception):
    """The value is larger than a tolerance examines."""

    def __init__(self, size: int):
        super().__init__(f"the value is over {MAX_INPUT_CHARS:,} characters ({size:,} counted), more than a "
                         f"tolerance examines: it was not checked")
        self.size = size


class DeadlinePassed(Exception):
    """The tolerance could not be decided before its deadline."""


def evaluate(tolerance: dict[str, Any], value: Any, configuration: dict[str, Any], secrets: dict[str, Any],
             deadline: float) -> bool:
    """Whether ``value`` is within a regex, jsonpath or range ``tolerance`` (chaoslib's semantics).

    ``deadline`` is a :func:`time.monotonic` time (``math.inf``: none). The tolerance is not mutated.
    """
    kind = tolerance.get("type")
    if kind == "regex":
        return _regex(tolerance, value, configuration, secrets, deadline)
    if kind == "jsonpath":
        return _jsonpath(tolerance, value, configuration, secrets, deadline)
    if tolerance.get("target"):
        value = value.get(tolerance["target"], value)
    _check_size(value)
    from chaoslib.hypothesis import within_tolerance

    tolerance = {k: v for k, v in tolerance.items() if k != "target"}
    return bool(within_tolerance(copy.deepcopy(tolerance), value, configuration, secrets))


def _regex(tolerance: dict[str, Any], value: Any, configuration: dict[str, Any], secrets: dict[str, Any],
           deadline: float) -> bool:
    import regex
    from chaoslib import substitute

    pattern = substitute(tolerance.get("pattern"), configuration, secrets)
    compiled = regex.compile(pattern, flags=regex.VERSION0)
    if tolerance.get("target"):
        value = value.get(tolerance["target"], value)
    _check_size(value)
    try:
        return compiled.search(value, timeout=_left(deadline, "the regex"), concurrent=True) is not None
    except TimeoutError:
        raise DeadlinePassed("the regex did not finish (a pattern that backtracks catastrophically?)") from None


def _jsonpath(tolerance: dict[str, Any], value: Any, configuration: dict[str, Any], secrets: dict[str, Any],
              deadline: float) -> bool:
    from chaoslib import substitute
    from jsonpath2.path import Path as JSONPath

    path = substitute(tolerance.get("path"), configuration, secrets)
    compiled = JSONPath.parse_str(path)
    if tolerance.get("target"):
        value = value.get(tolerance["target"], value)
    _check_size(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        with contextlib.suppress(json.decoder.JSONDecodeError):  # a string that is not JSON is matched as is
            value = json.loads(value)
    values = []
    for match in compiled.match(value):
        _left(deadline, "the jsonpath")
        values.append(match.current_value)
    result = len(values) > 0
    count = tolerance.get("count")
    if count is not None:
        result = len(values) == count
    if "expect" in tolerance:
        expect = substitute(tolerance.get("expect"), configuration, secrets)
        result = values == (expect if isinstance(expect, list) else [expect])
    return result


def _left(deadline: float, what: str) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline); :class:`DeadlinePassed` naming ``what`` when none are."""
    if deadline == math.inf:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed(f"{what} did not finish")
    return left


def _check_size(value: Any) -> None:
    size = bounded_size(value, MAX_INPUT_CHARS)
    if size > MAX_INPUT_CHARS:
        raise InputTooLarge(size)


def bounded_size(value: Any, cap: int) -> int:
    """About how many characters ``value`` takes as JSON; counting stops soon after ``cap`` is passed.

    Strings and bytes count their length; containers their items (and a few characters each). The
    walk is iterative (no recursion limit) and stops as soon as the count passes ``cap``.
    """
    size = 0
    stack = [value]
    while stack and size <= cap:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            size += len(item) + 2
        elif isinstance(item, dict):
            size += 2 + 2 * len(item)
            if size <= cap:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            size += 2 + len(item)
            if size <= cap:
                stack.extend(item)
        else:
            size += 8
    return size
