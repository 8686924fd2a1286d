"""Watching a run while it runs: heartbeat, emergency stop, maximum duration and guards.

Two daemon threads. The watch thread (every 0.2 s) touches the run's heartbeat each
second, aborts the run when the emergency stop is engaged or when the run outlives its
``max_duration``. The guard thread evaluates every guard probe against its tolerance
every ``guard_interval`` seconds while a fault is active (from the first fault applied
until the rollbacks start) and aborts the run at the first guard that fails, naming it
and the value it saw. Aborting is the runner's business: ``on_abort(reason)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlchaos.experiment.execution import Waiter, execute
from mlchaos.experiment.models import Activity
from mlchaos.experiment.tolerance import check as check_tolerance
from mlchaos.safety import emergency_stop, run_registry

WATCH_SECONDS = 0.2
HEARTBEAT_SECONDS = 1.0


@dataclass
class GuardState:
    """How one guard fared during the run."""

    name: str
    checks: int = 0
    last_value: Any = None
    tripped: bool = False
    explanation: str | None = None
    tripped_at: float | None = None  # seconds after the run started

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checks": self.checks, "last_value": self.last_value, "tripped": self.tripped,
                "explanation": self.explanation, "tripped_at": self.tripped_at}


@dataclass
class Abort:
    """Why the run must stop: a guard tripped, the emergency stop, the maximum duration."""

    kind: str  # guard | stop | max_duration | refused
    message: str


@dataclass
class RunMonitor:
    """The watch and guard threads of one run."""

    on_abort: Callable[[Abort], None]
    entry: run_registry.RunEntry | None = None
    max_duration: float | None = None
    guards: tuple[Activity, ...] = ()
    guard_interval: float = 1.0
    guard_timeout: Callable[[Activity], float] = lambda _g: 10.0
    configuration: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.states = [GuardState(g.name) for g in self.guards]
        self._done = threading.Event()
        self._faulted = threading.Event()
        self._guarding = threading.Event()
        self._aborted = False
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._watch, daemon=True, name="mlchaos-watch").start()
        if self.guards:
            self._guarding.set()
            threading.Thread(target=self._guard, daemon=True, name="mlchaos-guards").start()

    def fault_applied(self) -> None:
        """A fault is in place: guards start being evaluated."""
        self._faulted.set()

    def stop_guarding(self) -> None:
        """The rollbacks start: guards have nothing left to protect."""
        self._guarding.clear()
        self._faulted.set()  # wake the guard thread so that it ends

    def stop(self) -> None:
        self._done.set()
        self.stop_guarding()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # --- threads ------------------------------------------------------------------------
    def _abort(self, abort: Abort) -> None:
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
        self.on_abort(abort)

    def _watch(self) -> None:
        last_beat = 0.0
        while not self._done.wait(WATCH_SECONDS):
            now = time.monotonic()
            if self.entry is not None and now - last_beat >= HEARTBEAT_SECONDS:
                run_registry.beat(self.entry)
                last_beat = now
            info = emergency_stop.engaged()
            if info is not None:
                self._abort(Abort("stop", "emergency stop: " + emergency_stop.describe(info)))
            if self.max_duration is not None and now - self.started > self.max_duration:
                self._abort(Abort("max_duration", f"the run exceeded its max_duration of {self.max_duration:g}s"))

    def _guard(self) -> None:
        self._faulted.wait()
        while self._guarding.is_set() and not self._done.is_set():
            began = time.monotonic()
            for guard, state in zip(self.guards, self.states, strict=True):
                if not self._guarding.is_set():
                    return
                met, explanation = self.evaluate(guard, state)
                if not met and self._guarding.is_set():
                    state.tripped, state.explanation = True, explanation
                    state.tripped_at = round(self.elapsed(), 3)
                    self._abort(Abort("guard", f"guard {guard.name!r} tripped: {explanation}"))
                    return
            self._done.wait(max(self.guard_interval - (time.monotonic() - began), 0.0))

    def evaluate(self, guard: Activity, state: GuardState) -> tuple[bool, str]:
        """Run one guard probe and check its tolerance; (met, explanation)."""
        timeout = self.guard_timeout(guard)
        outcome = execute(guard.private_spec(), self.configuration, self.secrets, timeout, Waiter())
        state.checks += 1
        if not outcome.succeeded:
            return False, f"the probe failed: {outcome.error}"
        state.last_value = outcome.output
        verdict = check_tolerance(guard.tolerance, outcome.output, self.configuration, self.secrets,
                                  timeout - outcome.duration, Waiter())  # what is left of the probe's timeout
        return verdict.met, verdict.explanation
