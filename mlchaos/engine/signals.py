"""The run's signal state machine: how signals and aborts stop a run without costing its rollbacks.

* SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGUSR2 (Chaos Toolkit's ``exit_ungracefully``) before the
  rollbacks stop the hypothesis or the method (:class:`Interrupted` is raised in the main thread
  the moment it waits); the rollbacks still run, and the exit code names the signal
  (:data:`~mlchaos.engine.verdicts.SIGNAL_EXIT`).
* During the rollbacks a first signal only warns and lists what is left; a second abandons
  them (:class:`RollbacksAbandoned`), and the journal and exit code 3 say what was left undone.
* An abort (a guard, ``max_duration``, the emergency stop, a refused change; SIGUSR1 from
  ``mlchaos stop``) stops the run the same way (:class:`Aborted`), then it rolls back.
* SIGUSR1 while the emergency stop is not engaged and nothing aborted the run is Chaos Toolkit's
  ``exit_gracefully``: an interrupt like the others, except that it never abandons rollbacks.

Signals are only ever acted on where the main thread waits (:meth:`RunSignals.on_wait`, the
hook of :class:`~mlchaos.experiment.execution.Waiter`; a probe running in the main thread counts as a
wait, so a signal stops it) or at a checkpoint between activities.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from mlchaos.engine.verdicts import SIGNAL_EXIT
from mlchaos.experiment.execution import WaitInterrupted
from mlchaos.safety import emergency_stop, run_registry
from mlchaos.safety.guards import Abort

METHOD = "method"
STOPPABLE_PHASES = ("steady-state hypothesis (before)", METHOD, "steady-state hypothesis (after)")
ROLLBACKS = "rollbacks"
DONE = "done"


class Stop(WaitInterrupted):
    """The run must stop before its method ends (raised in the main thread); rollbacks still run."""


class Interrupted(Stop):
    """A signal stopped the run (raised in the main thread by the signal handler)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Aborted(Stop):
    """A guard, the emergency stop, max_duration or a refused change stopped the run."""

    def __init__(self, abort: Abort):
        super().__init__(abort.message)
        self.abort = abort


class RollbacksAbandoned(WaitInterrupted):
    """A second signal during rollbacks: stop rolling back, and say what is left."""


class RunSignals:
    """Where the run is (``phase``), what stopped it, and the handlers that decide what a signal does.

    ``on_abort(abort)`` is called once, with the first abort, to record it (the journal).
    """

    def __init__(self, on_abort: Callable[[Abort], None]):
        self.phase = "start of the run"
        self.interrupt: int | None = None  # the signal that stopped the run
        self.stop: Abort | None = None  # the abort that stopped it
        self.abandon = False  # rollbacks abandoned on a second signal
        self.rollbacks_left: list[str] = []
        self._on_abort = on_abort
        self._waiting = False
        self._rollback_signals = 0
        self._installed = False

    # --- handlers -------------------------------------------------------------------------
    def install(self) -> dict[int, Any]:
        """Install the handlers (main thread only); return the previous ones for :meth:`restore`."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        for signum in SIGNAL_EXIT:
            handler = self._on_abort_signal if signum == run_registry.ABORT_SIGNAL else self._on_signal
            previous[signum] = signal.signal(signum, handler)
        if run_registry.ABORT_SIGNAL not in previous:
            previous[run_registry.ABORT_SIGNAL] = signal.signal(run_registry.ABORT_SIGNAL, self._on_abort_signal)
        self._installed = True
        return previous

    def restore(self, previous: dict[int, Any]) -> None:
        """Put the handlers back as they were before :meth:`install`."""
        self._installed = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def abort(self, abort: Abort) -> None:
        """Stop the run and roll back (called from the monitor's threads, or for a refused change)."""
        self._record(abort)
        if self._installed and self.phase in STOPPABLE_PHASES:
            signal.pthread_kill(threading.main_thread().ident, run_registry.ABORT_SIGNAL)

    def stop_now(self, abort: Abort) -> None:
        """The main thread itself stops the run (a control asked to): record it; the caller raises Aborted."""
        self._record(abort)

    def refuse(self, abort: Abort) -> None:
        """A refused change stops the run like an abort, but says nothing more (the refusal is reported)."""
        if self.stop is None:
            self.stop = abort

    def _record(self, abort: Abort) -> None:
        if self.stop is None:
            self.stop = abort
            self._on_abort(abort)
            say(f"\nABORT: {abort.message}; rolling back\n")

    def _on_abort_signal(self, signum: int, frame: Any) -> None:
        """SIGUSR1: ``mlchaos stop`` (or the run's own monitor) asks the run to abort and roll back.

        With no emergency stop engaged and no abort recorded it came from elsewhere (Chaos Toolkit's
        ``exit_gracefully()`` in an extension, ``kill -USR1``): an interrupt that never abandons rollbacks.
        """
        if self.stop is None:
            info = emergency_stop.engaged()
            if info is None:
                self._on_signal(signum, frame, may_abandon=False)
                return
            self._record(Abort("stop", "emergency stop: " + emergency_stop.describe(info)))
        if self.phase in STOPPABLE_PHASES and self._waiting:
            raise Aborted(self.stop)

    def _on_signal(self, signum: int, _frame: Any, may_abandon: bool = True) -> None:
        name = signal.Signals(signum).name
        if self.phase == ROLLBACKS:
            left = ", ".join(self.rollbacks_left) or "none"
            if not may_abandon:
                if self.interrupt is None:
                    self.interrupt = signum
                say(f"\n{name}: rollbacks in progress, still to run: {left}; they go on.\n")
                return
            self._rollback_signals += 1
            if self._rollback_signals == 1:
                if self.interrupt is None:
                    self.interrupt = signum
                say(f"\n{name}: rollbacks in progress, still to run: {left}. "
                    f"Send it again to ABANDON them (the faults would stay in place).\n")
                return
            self.abandon = True
            say(f"\n{name}: abandoning rollbacks; left undone: {left}\n")
            if self._waiting:
                raise RollbacksAbandoned()
            return
        if self.interrupt is None:
            self.interrupt = signum
        elif self.phase != DONE:
            say(f"\n{name}: already stopping; rollbacks will run first.\n")
            return
        if self._waiting:
            raise Interrupted(signum)

    # --- where the main thread acts on them --------------------------------------------------
    def on_wait(self, waiting: bool) -> None:
        """The Waiter's hook: the main thread starts (True) or stops (False) waiting."""
        self._waiting = waiting
        if waiting:
            if self.phase == ROLLBACKS and self.abandon:
                raise RollbacksAbandoned()
            if self.phase != ROLLBACKS:
                self.checkpoint()

    def checkpoint(self) -> None:
        """Raise :class:`Interrupted` or :class:`Aborted` when the run must stop and its phase may be stopped."""
        if self.interrupt is not None and self.phase not in (ROLLBACKS, DONE):
            raise Interrupted(self.interrupt)
        if self.stop is not None and self.phase in STOPPABLE_PHASES:
            raise Aborted(self.stop)


def say(text: str) -> None:
    """Write from a signal handler without touching Python's buffered streams."""
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
