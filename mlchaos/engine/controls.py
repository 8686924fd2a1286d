"""Chaos Toolkit controls in the run: where each hook is called, and what a control may and may not do to it.

The calls are :class:`mlchaos.experiment.controls.ControlSet`'s (chaoslib's selection and arguments,
each bounded by ``control_timeout``). Here, the run's side:

* ``configure_control`` and ``before_experiment_control`` start the run; ``after_experiment_control``
  (with the finished, redacted journal as ``state``) and ``cleanup_control`` end it, after the
  rollbacks, whatever happened;
* an "after" hook runs even when its block was cut short (as chaoslib's ``controls()`` does), on an
  uninterruptible wait bounded by the control timeout, so a signal never skips it and it never
  holds the rollbacks back for longer than that;
* a control that raises ``InterruptExecution`` before the rollbacks stops the run (status ``aborted``,
  rollbacks run); during or after the rollbacks it is only reported: nothing a control does skips a
  rollback. A control that raises anything else, or hangs, is reported (console, journal
  ``mlchaos.controls.problems``) and the run goes on, as under ``chaos``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mlchaos.engine.console import Console
from mlchaos.engine.run_events import JOURNAL, RunEvents
from mlchaos.engine.signals import DONE, ROLLBACKS, Aborted, RunSignals
from mlchaos.experiment.controls import ControlInterrupted, ControlProblem, ControlSet
from mlchaos.experiment.execution import Waiter
from mlchaos.safety.guards import Abort

CONTROL_ABORT = "control"


class Holder:
    """The ``state`` an "after" hook receives, set by the block it surrounds (chaoslib's ``with_state``)."""

    def __init__(self, state: Any = None):
        self.state = state


class RunControls:
    """The controls of one run, called at the run's phases."""

    def __init__(self, controls: ControlSet, signals: RunSignals, console: Console, waiter: Waiter,
                 record: dict[str, Any], journal: Callable[[], dict[str, Any]] = dict):
        self.controls = controls
        self.signals = signals
        self.console = console
        self.waiter = waiter  # the main thread's: interruptible by signals
        self.record = record  # the journal's ``mlchaos.controls``
        self.active = bool(controls)
        controls.on_problem = self._problem
        self.events = RunEvents(controls, journal,
                                lambda event, error: self._problem(ControlProblem("run event handlers", event, error)))
        if self.active:
            record.update(declared=controls.declared, timeout=controls.timeout, calls=0, problems=[])

    def start(self, experiment: dict[str, Any], schedule: Any = None) -> None:
        """``configure_control``, the ``running`` event, then ``before_experiment_control``; may raise
        :class:`Aborted`. ``schedule``: chaoslib's ``Schedule`` (what the ``running`` event carries)."""
        if not self.active:
            return
        self.console.write(f"  controls: {', '.join(self.controls.declared)}")
        self.controls.configure(self.waiter)
        self.event("running", experiment, JOURNAL, self.controls.configuration, self.controls.secrets, schedule,
                   self.controls.settings)
        self._apply("experiment", "before", experiment, self.waiter)

    def event(self, name: str, *args: Any) -> None:
        """Send chaoslib's run event ``name`` to the handlers the controls registered (if any)."""
        if self.active:
            self.events.send(name, *args)

    def finish(self, experiment: dict[str, Any], journal: dict[str, Any]) -> None:
        """``after_experiment_control`` with the journal, then ``cleanup_control``; never raises a control's error."""
        if not self.active or not self.controls.configured:
            return
        quiet = Waiter()
        try:
            self._apply("experiment", "after", experiment, quiet, journal)
        except ControlInterrupted as exc:
            self._late(str(exc))
        self.controls.cleanup(quiet)
        self.event("finish", journal)
        self.controls.thread.close()
        self.record["calls"] = self.controls.calls
        if self.events.sent:
            self.record["run_events"] = self.events.sent

    @contextmanager
    def around(self, level: str, context: Any, holder: Holder | None = None,
               waiter: Waiter | None = None) -> Iterator[Holder]:
        """The before hook, the block, then the after hook with ``holder.state`` (even when the block raised)."""
        holder = holder or Holder()
        if not self.active or not self.controls.configured:
            yield holder
            return
        try:
            self._apply(level, "before", context, waiter or self.waiter)
            yield holder
        finally:
            raising = sys.exc_info()[0] is not None
            try:
                self._apply(level, "after", context, Waiter(), holder.state)
            except ControlInterrupted as exc:
                if raising:
                    self._late(str(exc))
                else:
                    self._stop(str(exc))

    # --- internals ---------------------------------------------------------------------------
    def _apply(self, level: str, scope: str, context: Any, waiter: Waiter, state: Any = None) -> None:
        try:
            self.controls.apply(level, scope, context, waiter, state)
        except ControlInterrupted as exc:
            if scope == "after":
                raise
            self._stop(str(exc))
        finally:
            self.record["calls"] = self.controls.calls

    def _stop(self, message: str) -> None:
        """A control asked to interrupt: stop the run (rolling back), unless the rollbacks have begun."""
        if self.signals.phase in (ROLLBACKS, DONE) or self.signals.phase.startswith("recovery"):
            self._late(message)
            return
        abort = Abort(CONTROL_ABORT, message)
        self.signals.stop_now(abort)
        raise Aborted(abort)

    def _late(self, message: str) -> None:
        self.console.warn(f"{message}: ignored, the run is past its method (rollbacks are never skipped)")
        self.record.setdefault("ignored_interruptions", []).append(message)

    def _problem(self, problem: ControlProblem) -> None:
        self.console.warn(f"control {problem.control!r} {problem.hook}: {problem.error}")
        self.record.setdefault("problems", []).append(problem.to_dict())
