"""Progress of a long game day: which experiment (i of n), which step, time against the maximum.

:class:`ProgressConsole` is the runner's console with a status line. On a terminal a
ticker thread redraws one status line with ``\\r`` (at most every 0.5 s): the experiment,
the phase and activity, the elapsed time against the run's ``max_duration``, and, while a
fault is active, the guards' latest values from the run monitor. Elsewhere (CI logs,
pipes) it prints a plain progress line every ``plain_interval`` seconds instead.
"""

from __future__ import annotations

import shutil
import threading
import time
from datetime import datetime
from typing import Any, TextIO

from mlchaos.engine.console import Console
from mlchaos.engine.signals import STOPPABLE_PHASES


class ProgressConsole(Console):
    """A Console that also shows where a game day stands."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False,
                 interval: float = 0.5, plain_interval: float = 30.0):
        super().__init__(stream, tty, quiet=quiet)
        self.interval = interval
        self.plain_interval = plain_interval
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.index = 0
        self.total = 0
        self.title = ""
        self.max_duration: float | None = None
        self.closes_at: datetime | None = None
        self.step = ""
        self.runner: Any = None
        self._started = time.monotonic()

    # --- what the game day tells it -----------------------------------------------------------
    def begin(self, index: int, total: int, title: str, max_duration: float | None,
              closes_at: datetime | None = None) -> None:
        """An experiment starts: show it, and keep the status line going while it runs."""
        with self._lock:
            self.index, self.total, self.title = index, total, title
            self.max_duration, self.closes_at = max_duration, closes_at
            self.step, self.runner = "starting", None
            self._started = time.monotonic()
        self._stop.clear()
        if not self.quiet and (self.tty or self.plain_interval > 0):
            self._thread = threading.Thread(target=self._tick, daemon=True, name="mlchaos-progress")
            self._thread.start()

    def attach(self, runner: Any) -> None:
        """The experiment's Runner (its phase, run monitor and recorded changes feed the status line)."""
        self.runner = runner

    def end(self) -> None:
        """The experiment ended: stop the status line and clear it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            try:
                self._clear_pending()
                self.stream.flush()
            except (OSError, ValueError):
                self.quiet = True
            self.runner = None

    # --- Console hooks ------------------------------------------------------------------------
    def _emit(self, line: str) -> None:
        with self._lock:
            super()._emit(line)

    def started(self, kind: str, name: str) -> None:
        """The runner starts an activity: it becomes the step of the status line (drawn by the ticker)."""
        self.step = f"{kind} {name}"

    def heading(self, text: str) -> None:
        self.step = text.rstrip(":")
        super().heading(text)

    # --- the status line ----------------------------------------------------------------------
    def status(self) -> str:
        """One line: experiment i/n, phase and step, elapsed/max, window, guards' latest values."""
        elapsed = time.monotonic() - self._started
        limit = f"/{self.max_duration:g}s max" if self.max_duration else ""
        parts = [f"[{self.index}/{self.total}] {self.title}", self._phase_step(), f"{elapsed:.0f}s{limit}"]
        if self.closes_at is not None:
            parts.append(f"window closes {self.closes_at:%H:%M %Z}")
        guards = self._guard_values()
        if guards:
            parts.append("guards: " + ", ".join(guards))
        return self.clean("  " + " | ".join(p for p in parts if p)).replace("\n", "\\n")  # one line, escaped

    def _phase_step(self) -> str:
        runner = self.runner
        phase = getattr(runner, "phase", "") if runner is not None else ""
        if phase and phase not in self.step and phase not in ("start of the run", "done"):
            return f"{phase}: {self.step}"
        return self.step

    def _guard_values(self) -> list[str]:
        """The guards' latest values while a fault is active (from the run monitor)."""
        runner = self.runner
        if runner is None or getattr(runner, "phase", "") not in STOPPABLE_PHASES:
            return []
        context = getattr(runner, "context", None)
        if context is None or not any(not record.dry_run for record in list(context.changes)):
            return []
        monitor = getattr(runner, "monitor", None)
        states = list(getattr(monitor, "states", []) or [])
        return [f"{s.name}={_short(s.last_value)}" for s in states if s.checks]

    def _tick(self) -> None:
        last_plain = time.monotonic()
        while not self._stop.wait(self.interval if self.tty else min(self.plain_interval, 1.0)):
            if self.tty:
                self._draw()
            elif time.monotonic() - last_plain >= self.plain_interval:
                last_plain = time.monotonic()
                self.write(self.status().replace("  [", "  progress [", 1))

    def _draw(self) -> None:
        width = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)
        line = self.status()
        if len(line) > width:
            line = line[: width - 3] + "..."
        with self._lock:
            if self.quiet:
                return
            try:
                self.stream.write("\r\033[K" + line)
                self.stream.flush()
                self._pending = True
            except (OSError, ValueError):
                self.quiet = True


def _short(value: Any, limit: int = 24) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
