"""drivers._common.polling: the one "wait up to `within` seconds" loop of the probes."""

from __future__ import annotations

import time

import pytest

from drivers._common import polling
from mlchaos.driver_kit import DriverError


def test_asks_again_until_done_and_returns_that_answer():
    answers = iter([3, 2, 0, 5])
    assert polling.poll(10, lambda: next(answers), lambda n: n == 0, interval=0.01) == 0


def test_a_true_answer_by_default():
    answers = iter([False, False, True])
    assert polling.poll(10, lambda: next(answers), interval=0.01) is True


def test_within_zero_asks_once_and_returns_the_last_answer():
    calls = []
    assert polling.poll(0, lambda: calls.append(1) or 7, lambda n: n == 0) == 7
    assert calls == [1]


def test_never_sleeps_past_the_deadline():
    started = time.monotonic()
    assert polling.poll(0.2, lambda: False, interval=5) is False
    assert 0.2 <= time.monotonic() - started < 2


@pytest.mark.parametrize("within", [-1, float("inf"), True, "1"])
def test_within_is_checked_before_asking(within):
    with pytest.raises(DriverError, match="within must be a non-negative number of seconds"):
        polling.poll(within, lambda: pytest.fail("asked"))
