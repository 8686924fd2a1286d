"""Chaos Toolkit's hypothesis strategies: when the steady-state hypothesis is checked.

``mlchaos run --hypothesis-strategy`` takes ``chaos run``'s values:

* ``default``: before and after the method;
* ``before-method-only`` / ``after-method-only``: only then;
* ``during-method-only``: only while the method runs, every ``--hypothesis-frequency`` seconds;
* ``continuously``: before, during and after.

Each check during the method is one entry of the journal's ``steady_states.during`` (as chaoslib
records it: ``{"steady_state_met": ..., "probes": [...]}``). The first check starts with the method;
then ``frequency`` seconds pass between the end of one and the start of the next (chaoslib's pace).
With ``--fail-fast`` the first deviation stops the method at once and the run rolls back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT = "default"
STRATEGIES = (DEFAULT, "before-method-only", "after-method-only", "during-method-only", "continuously")
FAIL_FAST = "fail-fast"  # the Abort kind of a deviation seen during the method under --fail-fast


@dataclass(frozen=True)
class HypothesisSchedule:
    """When the hypothesis is checked (``strategy``), how often during the method, and whether a deviation
    there stops the run."""

    strategy: str = DEFAULT
    frequency: float = 1.0
    fail_fast: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown hypothesis strategy {self.strategy!r} (one of {', '.join(STRATEGIES)})")
        if not self.frequency > 0:
            raise ValueError(f"the hypothesis frequency must be a positive number of seconds, got {self.frequency}")

    @property
    def before(self) -> bool:
        return self.strategy in (DEFAULT, "before-method-only", "continuously")

    @property
    def after(self) -> bool:
        return self.strategy in (DEFAULT, "after-method-only", "continuously")

    @property
    def during(self) -> bool:
        return self.strategy in ("during-method-only", "continuously")

    def chaoslib(self) -> Any:
        """chaoslib's ``Schedule`` (what the ``running`` run event carries)."""
        from chaoslib.types import Schedule

        return Schedule(continuous_hypothesis_frequency=self.frequency, fail_fast=self.fail_fast)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "frequency": self.frequency, "fail_fast": self.fail_fast}


class DuringHypothesis:
    """Checks the hypothesis on its own thread while the method runs; each result goes to ``states``.

    ``check()`` runs the probes once and returns the state; it is appended to ``states``, then
    ``on_result(index, state)`` is called (from this thread). After :meth:`stop` no check starts; the one
    in progress is kept, unless ``drop`` said the run stopped early.
    """

    def __init__(self, frequency: float, check: Callable[[], dict[str, Any]],
                 on_result: Callable[[int, dict[str, Any]], None], states: list[dict[str, Any]]):
        self.frequency = frequency
        self.check = check
        self.on_result = on_result
        self.states = states
        self._stop = threading.Event()
        self._drop = threading.Event()
        self.done: Any = None
        self.errors: list[str] = []

    def start(self) -> None:
        from mlchaos.experiment.execution import in_background  # here: `mlchaos validate` builds the parser of
        # `run`, whose --hypothesis-strategy choices come from this module, and needs no worker threads

        self.done = in_background(self._loop)

    def stop(self, drop: bool = False) -> None:
        """No further check starts; one in progress finishes (bounded by its probes' timeouts), its result
        kept, or (``drop``) discarded."""
        if drop:
            self._drop.set()
        self._stop.set()

    def _loop(self) -> None:
        index = 0
        while not self._stop.is_set():
            index += 1
            try:
                state = self.check()
            except BaseException as exc:  # a bug here must not go unnoticed, nor kill the run
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            if self._drop.is_set():
                return
            self.states.append(state)
            self.on_result(index, state)
            self._stop.wait(self.frequency)
