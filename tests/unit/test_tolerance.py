"""Tolerances mean what they mean to chaostoolkit-lib, and failures say what was seen."""

from __future__ import annotations

import pytest
from chaoslib.hypothesis import within_tolerance

from mlchaos.experiment.execution import Waiter
from mlchaos.experiment.tolerance import _within, check

CASES = [
    (True, True), (True, False), (True, 1), (False, False), ("ok", "ok"), ("ok", "no"),
    (200, 200), (200, {"status": 200}), (200, {"status": 500}), (3, 3.0), (3, 4),
    ([2, 3], 2), ([2, 3], 3), ([2, 3], 4), ([2, 3], 2.5), ([200, 204], {"status": 204}),
    ([1, 2, 3], 2), ([1, 2, 3], 5), (["a", "b", "c"], "b"),
    ({"type": "range", "range": [0.9, 1.0]}, 0.95), ({"type": "range", "range": [0.9, 1.0]}, 0.5),
    ({"type": "range", "range": [1, 2], "target": "v"}, {"v": 1.5}),
    ({"type": "regex", "pattern": "^ok"}, "ok then"), ({"type": "regex", "pattern": "^ok"}, "not ok"),
    ({"type": "jsonpath", "path": "$.a", "expect": 1}, {"a": 1}),
    ({"type": "jsonpath", "path": "$.a", "expect": 1}, {"a": 2}),
]


@pytest.mark.parametrize(("tolerance", "value"), CASES)
def test_same_answer_as_chaoslib(tolerance, value):
    import copy

    assert _within(tolerance, value, {}, {}) == within_tolerance(copy.deepcopy(tolerance), value, {}, {})


def test_a_failed_tolerance_shows_the_actual_value():
    verdict = check([0.9, 1.0], 0.42, {}, {}, 5, Waiter())
    assert not verdict.met
    assert verdict.explanation == "expected a value in [0.9, 1.0], got 0.42"


def test_a_tolerance_that_cannot_compare_is_not_met():
    verdict = check([1, 2], "text", {}, {}, 5, Waiter())
    assert not verdict.met and "cannot compare" in verdict.explanation


def test_the_tolerance_is_not_mutated():
    tolerance = {"type": "range", "range": [1, 2], "target": "v"}
    check(tolerance, {"v": 1}, {}, {}, 5, Waiter())
    assert tolerance == {"type": "range", "range": [1, 2], "target": "v"}
