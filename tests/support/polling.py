"""Poll instead of sleeping: every wait in the tests goes through here."""

from __future__ import annotations

import time
from collections.abc import Callable


def poll(check: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """True as soon as ``check()`` is truthy; False once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    """Like ``poll`` but fails the test, naming what it waited for."""
    if not poll(check, timeout, interval=0.05):
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
