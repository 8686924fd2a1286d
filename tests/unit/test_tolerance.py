"""Tolerances mean what they mean to chaostoolkit-lib, and failures say what was seen."""

from __future__ import annotations

import time

import pytest
from chaoslib.hypothesis import within_tolerance

from mlchaos.experiment import bounded_tolerance
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
    ({"type": "regex", "pattern": "^(a+)+$"}, "a" * 12 + "!"), ({"type": "regex", "pattern": r"\d{3}"}, "HTTP 503"),
    ({"type": "regex", "pattern": "ok", "target": "body"}, {"body": "all ok"}),
    ({"type": "regex", "pattern": "ok", "target": "body"}, {"other": "ok"}),
    ({"type": "regex", "pattern": "ok"}, 42),  # not a string: cannot compare (both raise)
    ({"type": "regex", "pattern": "(?i)READY"}, "ready"),
    ({"type": "jsonpath", "path": "$.items[*].ok", "count": 2}, {"items": [{"ok": 1}, {"ok": 2}]}),
    ({"type": "jsonpath", "path": "$.items[*].ok", "expect": [1, 2]}, {"items": [{"ok": 1}, {"ok": 2}]}),
    ({"type": "jsonpath", "path": "$.a", "target": "json"}, {"json": '{"a": 3}'}),
    ({"type": "jsonpath", "path": "$.a"}, b'{"a": 3}'), ({"type": "jsonpath", "path": "$.a"}, "not json"),
    ({"type": "jsonpath", "path": "$.missing"}, {"a": 1}),
    ({"type": "range", "range": [1, 2]}, "1.5"), ({"type": "range", "range": [1, 2]}, "x"),
]


def _same(function, *args):
    try:
        return function(*args)
    except Exception as exc:  # both must fail alike
        return type(exc).__name__


@pytest.mark.parametrize(("tolerance", "value"), CASES)
def test_same_answer_as_chaoslib(tolerance, value):
    import copy

    assert _same(_within, tolerance, value, {}, {}) == _same(within_tolerance, copy.deepcopy(tolerance), value, {}, {})


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


# --- within the probe's timeout, on a capped input (issue 15, finding 8) ---------------------------------------
CATASTROPHIC = {"type": "regex", "pattern": "(a|aa)+$"}  # backtracks exponentially in the regex engine too


def test_a_catastrophic_regex_is_not_met_once_the_time_left_is_spent():
    started = time.monotonic()
    verdict = check(CATASTROPHIC, "a" * 5000 + "!", {}, {}, 0.3, Waiter())
    assert time.monotonic() - started < 10  # without the deadline it runs for minutes
    assert not verdict.met
    assert "not decided within the 0.3s left of the probe's timeout" in verdict.explanation
    assert "backtracks catastrophically" in verdict.explanation


def test_a_tolerance_with_no_time_left_is_not_met_and_says_so():
    for tolerance in ({"type": "regex", "pattern": "ok"}, {"type": "jsonpath", "path": "$.a"},
                      {"type": "probe", "name": "t", "provider": {"type": "python", "module": "testdrivers",
                                                                  "func": "greater_than_one"}}):
        verdict = check(tolerance, "ok", {}, {}, 0.0, Waiter())
        assert not verdict.met and "none was left for its tolerance" in verdict.explanation, tolerance
    assert check(True, True, {}, {}, 0.0, Waiter()).met  # a plain comparison needs no time


def test_a_value_over_the_cap_is_not_examined_and_the_verdict_says_why(monkeypatch):
    monkeypatch.setattr(bounded_tolerance, "MAX_INPUT_CHARS", 1000)
    for tolerance, value in (({"type": "regex", "pattern": "x"}, "a" * 2000 + "x"),
                             ({"type": "jsonpath", "path": "$[0]"}, ["a" * 10] * 200),
                             ({"type": "regex", "pattern": "x", "target": "body"}, {"body": "x" * 1500})):
        verdict = check(tolerance, value, {}, {}, 5, Waiter())
        assert not verdict.met, tolerance
        assert "more than a tolerance examines: it was not checked" in verdict.explanation
    assert check({"type": "regex", "pattern": "x"}, "a" * 900 + "x", {}, {}, 5, Waiter()).met  # under it: checked


def test_a_jsonpath_stops_at_its_deadline():
    with pytest.raises(bounded_tolerance.DeadlinePassed, match="the jsonpath did not finish"):
        bounded_tolerance.evaluate({"type": "jsonpath", "path": "$..*"}, {"a": [1, 2, 3]}, {}, {},
                                   time.monotonic() - 1)


def test_the_size_count_stops_soon_after_the_cap():
    huge = [["x" * 100] * 1000] * 10_000  # 10 million strings by reference: counting them all would take seconds
    started = time.monotonic()
    assert bounded_tolerance.bounded_size(huge, 5000) > 5000
    assert time.monotonic() - started < 1
    assert bounded_tolerance.bounded_size({"a": [1, "bc"]}, 1000) < 30


def test_the_tolerance_is_waited_for_through_the_runs_waiter():
    """The run's Waiter is where a signal stops the main thread: a tolerance must be waited for there."""

    class Stopped(BaseException):
        pass

    def on_wait(waiting: bool) -> None:
        if waiting:
            raise Stopped()

    with pytest.raises(Stopped):
        check(CATASTROPHIC, "a" * 5000 + "!", {}, {}, 0.5, Waiter(on_wait))


def test_a_huge_value_is_shown_without_serialising_it_all():
    verdict = check({"type": "regex", "pattern": "^z"}, "a" * 100_000, {}, {}, 5, Waiter())
    assert not verdict.met and len(verdict.explanation) < 400
