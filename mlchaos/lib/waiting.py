"""Waiting for a condition: poll it until it holds or the time is up (never an unbounded loop)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` every ``interval`` seconds until it is true (True) or ``timeout`` seconds have passed (False).

    It never sleeps past the deadline: the last look is at the deadline, not up to an interval after it.
    """
    deadline = time.monotonic() + timeout
    while not check():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))
    return True
