"""A clock that tests move by hand (the game-day scheduler's injectable clock)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


class ManualClock:
    """``now()`` is whatever the test set; ``wait()`` moves time forward by the wait, at once."""

    def __init__(self, start: datetime):
        self._now = start
        self._lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        self.waits.append(seconds)
        self.advance(max(seconds, 0.0))
        return stop.is_set()
