"""Chaos Toolkit controls: which apply where, how each hook is called, and every call bounded by a timeout.

The selection (experiment, hypothesis and activity ``controls``, the settings file's global ones,
``scope`` and ``automatic``, ``ref``) and the arguments each hook gets (``context``, ``state``,
``configuration``, ``secrets``, ``settings``, ``experiment``, ``extensions``, plus the control's own
``arguments``) are chaostoolkit-lib's: :mod:`chaoslib.control` selects them and
:mod:`chaoslib.control.python` calls them. What mlchaos adds:

* every call (``configure_control``, a before/after hook, ``cleanup_control``) runs on a worker
  thread and the caller waits at most ``timeout`` seconds: a hanging control is abandoned, a raising
  one is reported (chaoslib logs both at DEBUG level and carries on without saying so);
* each failure is kept (:attr:`ControlSet.problems`) for the journal and the console;
* ``InterruptExecution`` raised by a hook is :class:`ControlInterrupted`: the runner stops the run
  and rolls back. A control calling ``chaoslib.exit`` sends the runner a signal, handled as any
  signal is (:mod:`mlchaos.engine.signals`).
"""

from __future__ import annotations

import _thread
import contextvars
import copy
import importlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlchaos.errors import InvalidInput
from mlchaos.experiment.execution import LockType, Waiter
from mlchaos.experiment.extensions import use_chaostoolkit_logging
from mlchaos.experiment.settings import DEFAULT_CONTROL_TIMEOUT

LEVELS = ("loader", "experiment", "hypothesis", "method", "rollback", "activity")


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


# --- the settings file ------------------------------------------------------------------------
def settings_path(path: str | Path | None = None) -> Path:
    """The Chaos Toolkit settings file: ``path``, or ``~/.chaostoolkit/settings.yaml`` (what ``chaos`` reads)."""
    if path is not None:
        return Path(path).expanduser()
    return Path("~/.chaostoolkit/settings.yaml").expanduser()


def read_settings(path: str | Path | None = None) -> dict[str, Any]:
    """Chaos Toolkit's settings (a mapping); ``{}`` when the default file does not exist.

    A file named explicitly must exist; an unreadable or malformed one is an error naming it
    (``chaos`` logs it and carries on without its controls)."""
    file = settings_path(path)
    if not file.exists():
        if path is not None:
            raise InvalidInput(f"{file}: no such settings file")
        return {}
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{file}: cannot read the Chaos Toolkit settings: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{file}: the Chaos Toolkit settings must be a mapping")
    controls = data.get("controls")
    if controls is not None:
        if not isinstance(controls, dict) or not all(isinstance(c, dict) for c in controls.values()):
            raise InvalidInput(f"{file}: controls: must map each control's name to its declaration")
        for name, control in controls.items():
            for message in declaration_problems({**control, "name": name}, None):
                raise InvalidInput(f"{file}: controls: {name}: {message[1]}")
    return data


def global_controls(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The controls the settings declare (``controls: {NAME: {provider: ...}}``), each named, as chaoslib's
    ``load_global_controls`` builds them."""
    return [{**copy.deepcopy(control), "name": name} for name, control in (settings.get("controls") or {}).items()]


# --- validation -------------------------------------------------------------------------------
def declarations(experiment: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every control declared in an experiment, with its JSON pointer (chaoslib's ``get_controls`` order)."""
    def listed(value: Any, pointer: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, list):
            for index, control in enumerate(value):
                yield f"{pointer}/{index}", control

    yield from listed(experiment.get("controls"), "/controls")
    hypothesis = experiment.get("steady-state-hypothesis")
    if isinstance(hypothesis, dict):
        yield from listed(hypothesis.get("controls"), "/steady-state-hypothesis/controls")
        for index, probe in enumerate(_as_list(hypothesis.get("probes"))):
            if isinstance(probe, dict):
                yield from listed(probe.get("controls"), f"/steady-state-hypothesis/probes/{index}/controls")
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(_as_list(experiment.get(section))):
            if isinstance(activity, dict):
                yield from listed(activity.get("controls"), f"/{section}/{index}/controls")


def declaration_problems(control: Any, top_level_names: set[str] | None) -> Iterator[tuple[str, str]]:
    """What is wrong with one control declaration: (relative pointer, message). chaoslib's
    ``validate_controls`` rules, plus: the module must import (chaoslib only warns, then runs without it),
    and its own ``validate_control`` is called as chaoslib calls it."""
    if not isinstance(control, dict):
        yield "", "a control must be a mapping with a 'name' and a 'provider'"
        return
    if "ref" in control and top_level_names is not None and control["ref"] not in top_level_names:
        yield "/ref", f"no control named {control['ref']!r} is declared at the top level"
    name = control.get("name")
    if not isinstance(name, str) or not name:
        yield "/name", "required: a control needs a non-empty 'name'"
        return
    scope = control.get("scope")
    if scope is not None and scope not in ("before", "after"):
        yield "/scope", f"scope must be 'before' or 'after', got {scope!r}"
    automatic = control.get("automatic", True)
    if not isinstance(automatic, bool):
        yield "/automatic", f"automatic must be true or false, got {automatic!r}"
    provider = control.get("provider")
    if not isinstance(provider, dict):
        yield "/provider", "required: a control needs a 'provider' mapping"
        return
    if provider.get("type") != "python":
        yield "/provider/type", f"only python controls run (Chaos Toolkit runs no other), got {provider.get('type')!r}"
        return
    module = provider.get("module")
    if not isinstance(module, str) or not module:
        yield "/provider/module", "required: the Python module of the control"
        return
    arguments = provider.get("arguments", {})
    if not isinstance(arguments, dict):
        yield "/provider/arguments", "a control's arguments must be a mapping"
        return
    use_chaostoolkit_logging()  # a control module may import logzero, as extensions do (chaos provides it)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # an ImportError deep inside the module too: say which
        yield "/provider/module", (f"control module {module!r} cannot be imported ({type(exc).__name__}: {exc}); "
                                   f"Chaos Toolkit would run without this control, mlchaos refuses to")
        return
    own_check = getattr(mod, "validate_control", None)
    if callable(own_check):
        try:
            own_check(copy.deepcopy(control))
        except Exception as exc:
            yield "", f"control {name!r}: its own validation failed: {exc}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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

