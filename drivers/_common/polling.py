"""Wait up to ``within`` seconds for a probe's condition: ask again every ``interval`` s, never past the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from drivers._common import checks

T = TypeVar("T")


def poll(within: float, attempt: Callable[[], T], done: Callable[[T], bool] = bool, interval: float = 1.0) -> T:
    """``attempt()``, again every `interval` s until ``done`` of its answer or `within` s have passed; its last answer.

    ``within`` must be a non-negative number of seconds (0: ask once).
    """
    checks.non_negative("within", within)
    deadline = time.monotonic() + within
    while True:
        answer = attempt()
        left = deadline - time.monotonic()
        if done(answer) or left <= 0:
            return answer
        time.sleep(min(interval, left))
