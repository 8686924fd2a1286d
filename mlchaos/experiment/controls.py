"""Chaos Toolkit controls: which apply where, how each hook is called, and every call bounded by a timeout.

The selection (experiment, hypothesis and activity ``controls``, the settings file's global ones,
``scope`` and ``automatic``, ``ref``) and the arguments each hook gets (``context``, ``state``,
``configuration``, ``secrets``, ``settings``, ``experiment``, ``extensions``, plus the control's own
``arguments``) are chaostoolkit-lib's: :mod:`chaoslib.control` selects them and
:mod:`chaoslib.control.python` calls them. What mlchaos adds:

* every call (``configure_control``, a before/after hook, ``cleanup_control``, a run event) runs on
  the run's control thread (:class:`ControlThread`) and the caller waits at most ``timeout`` seconds:
  a hanging control is abandoned, a raising one is reported (chaoslib logs both at DEBUG level and
  carries on without saying so);
* each failure is kept (:attr:`ControlSet.problems`) for the journal and the console;
* ``InterruptExecution`` raised by a hook is :class:`ControlInterrupted`: the runner stops the run
  and rolls back. A control calling ``chaoslib.exit`` sends the runner a signal, handled as any
  signal is (:mod:`mlchaos.engine.signals`).
"""

from __future__ import annotations

import _thread
import contextvars
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlchaos.experiment.control_declarations import declarations, global_controls
from mlchaos.experiment.execution import LockType, Waiter
from mlchaos.experiment.settings import DEFAULT_CONTROL_TIMEOUT


class ControlInterrupted(Exception):
    """A control raised ``chaoslib.exceptions.InterruptExecution``: the run must stop (and roll back)."""


@dataclass
class ControlProblem:
    """One control call that raised or did not return in time."""

    control: str
    hook: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"control": self.control, "hook": self.hook, "error": self.error}


# --- calling them -----------------------------------------------------------------------------
class ControlThread:
    """The one thread every control call of a run goes through, in order, in one context.

    Under ``chaos`` every hook runs on the main thread: a control may open a tracing span (or an
    opentracing scope, kept per thread) in one hook and close it in the next. Here they all run on
    this thread, in a copy of the run's context, so that holds; the caller waits, bounded. A call
    that does not return in time is abandoned with its thread: the next call starts a fresh one.
    """

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue | None = None
        self._guard = _thread.allocate_lock()

    def submit(self, func: Callable[[], None]) -> LockType:
        """Queue ``func``; the returned lock is released when it has run."""
        done = _thread.allocate_lock()
        done.acquire()
        with self._guard:
            if self._inbox is None:
                self._inbox = queue.SimpleQueue()
                context = contextvars.copy_context()
                threading.Thread(target=context.run, args=(self._work, self._inbox), daemon=True,
                                 name="mlchaos-controls").start()
            self._inbox.put((func, done))
        return done

    def close(self) -> None:
        """The thread ends once the calls queued before this one have run."""
        with self._guard:
            if self._inbox is not None:
                self._inbox.put((None, None))
                self._inbox = None

    def abandon(self) -> None:
        """The thread is stuck in a call: leave it; the next call gets a new one."""
        with self._guard:
            self._inbox = None

    @staticmethod
    def _work(inbox: queue.SimpleQueue) -> None:
        while True:
            func, done = inbox.get()
            if func is None:
                return
            try:
                func()
            finally:
                done.release()


@dataclass
class ControlSet:
    """The controls of one run, called with chaoslib's selection and arguments, each call bounded."""

    experiment: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_CONTROL_TIMEOUT
    configuration: dict[str, Any] | None = None  # None while loading, as chaoslib has it
    secrets: dict[str, Any] | None = None
    on_problem: Callable[[ControlProblem], None] = lambda _problem: None
    problems: list[ControlProblem] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        self.globals = global_controls(self.settings)
        self.configured = False
        self.thread = ControlThread()

    @property
    def declared(self) -> list[str]:
        """The names of the run's controls (global ones first), each once."""
        names = [c["name"] for c in self.globals]
        names += [c["name"] for _pointer, c in declarations(self.experiment)
                  if isinstance(c, dict) and isinstance(c.get("name"), str) and "ref" not in c]
        return list(dict.fromkeys(names))

    def __bool__(self) -> bool:
        return bool(self.declared)

    def configure(self, waiter: Waiter) -> None:
        """``configure_control`` of the global controls (one that fails is dropped, as chaoslib does), then of
        the experiment's, each named control once."""
        from chaoslib.control import set_global_controls
        from chaoslib.control.python import initialize_control
        from chaoslib.run import EventHandlerRegistry

        self.registry = EventHandlerRegistry()  # what a control may register handlers on; mlchaos sends no events
        kept = []
        for control in self.globals:
            if self._call(control, "configure_control", waiter, lambda c=control: initialize_control(
                    c, self.experiment, self.configuration, self.secrets, settings=self.settings,
                    event_registry=self.registry)):
                kept.append(control)
        self.globals = kept
        set_global_controls(self.globals)  # what chaoslib's own ``controls()`` sees (a control may use it)
        self.configured = True
        for control in self._unique_experiment_controls():
            self._call(control, "configure_control", waiter, lambda c=control: initialize_control(
                c, self.experiment, self.configuration, self.secrets, event_registry=self.registry))

    def apply(self, level: str, scope: str, context: Any, waiter: Waiter, state: Any = None,
              experiment: dict[str, Any] | None = None) -> None:
        """Call the ``{scope}_{level}`` hook of every control that applies (chaoslib's ``apply_controls``);
        raise :class:`ControlInterrupted` when one raises ``InterruptExecution`` (the others still ran)."""
        from chaoslib.control import get_context_controls, set_global_controls
        from chaoslib.control.python import apply_python_control
        from chaoslib.exceptions import InterruptExecution

        if level == "loader":  # before any configure_control, as under `chaos`: only the global controls apply
            set_global_controls(self.globals)
        elif not self.configured:
            return
        chosen = get_context_controls(level, experiment if level == "loader" else self.experiment, context)
        interrupted: list[str] = []
        for control in chosen:
            if control.get("scope") and control["scope"] != scope:
                continue
            if control.get("provider", {}).get("type") != "python":
                continue
            hook = _hook(level, scope)

            def call(c: dict[str, Any] = control) -> None:
                apply_python_control(level=f"{level}-{scope}", control=c, context=context, state=state,
                                     experiment=experiment if level == "loader" else self.experiment,
                                     configuration=self.configuration, secrets=self.secrets,
                                     settings=self.settings)

            error = self._run(call, waiter)
            self.calls += 1
            if isinstance(error, InterruptExecution):
                interrupted.append(f"control {control.get('name')!r} ({hook}) interrupted the run: {error}")
            elif error is not None:
                self._problem(control, hook, error)
        if interrupted:
            raise ControlInterrupted("; ".join(interrupted))

    def cleanup(self, waiter: Waiter) -> None:
        """``cleanup_control`` of the experiment's controls, then of the global ones (chaoslib's order)."""
        from chaoslib.control import reset_global_controls
        from chaoslib.control.python import cleanup_control

        if not self.configured:
            return
        for control in [*self._unique_experiment_controls(), *self.globals]:
            self._call(control, "cleanup_control", waiter, lambda c=control: cleanup_control(c))
        reset_global_controls()
        self.configured = False

    # --- internals ---------------------------------------------------------------------------
    def _unique_experiment_controls(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for _pointer, control in declarations(self.experiment):
            if isinstance(control, dict) and isinstance(control.get("name"), str) and control["name"] not in seen:
                seen[control["name"]] = control
        return [c for c in seen.values() if c.get("provider", {}).get("type") == "python"]

    def _call(self, control: dict[str, Any], hook: str, waiter: Waiter, func: Callable[[], None]) -> bool:
        error = self._run(func, waiter)
        self.calls += 1
        if error is not None:
            self._problem(control, hook, error)
        return error is None

    def call(self, func: Callable[[], None], waiter: Waiter) -> BaseException | None:
        """Run ``func`` on the control thread: its exception, a TimeoutError when it did not return in time, or
        None."""
        return self._run(func, waiter)

    def _run(self, func: Callable[[], None], waiter: Waiter) -> BaseException | None:
        box: dict[str, BaseException] = {}

        def target() -> None:
            try:
                func()
            except BaseException as exc:  # SystemExit and KeyboardInterrupt from user code too: never the runner's
                box["error"] = exc

        if not waiter.wait(self.thread.submit(target), self.timeout):
            self.thread.abandon()
            return TimeoutError(f"did not return within {self.timeout:g}s (control_timeout); abandoned")
        return box.get("error")

    def _problem(self, control: dict[str, Any], hook: str, error: BaseException) -> None:
        text = str(error).strip().splitlines()
        message = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
        if isinstance(error, TimeoutError):
            message = text[0]
        problem = ControlProblem(str(control.get("name")), hook, message)
        self.problems.append(problem)
        self.on_problem(problem)


def _hook(level: str, scope: str) -> str:
    return "before_loading_experiment_control" if level == "loader" and scope == "before" else (
        "after_loading_experiment_control" if level == "loader" else f"{scope}_{level}_control")

