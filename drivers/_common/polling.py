"""Wait up to ``within`` seconds for a probe's condition: ask again every ``interval`` s, never past the deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from drivers._common import checks
from mlchaos.driver_kit import wait_for

T = TypeVar("T")


def poll(within: float, attempt: Callable[[], T], done: Callable[[T], bool] = bool, interval: float = 1.0) -> T:
    """``attempt()``, again every `interval` s until ``done`` of its answer or `within` s have passed; its last answer.

    ``within`` must be a non-negative number of seconds (0: ask once). The waiting is :func:`wait_for`'s.
    """
    checks.non_negative("within", within)
    last: list[T] = []

    def settled() -> bool:
        last[:] = [attempt()]
        return done(last[0])

    wait_for(settled, within, interval)
    return last[0]
