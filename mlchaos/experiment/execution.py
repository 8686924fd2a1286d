"""Execute one activity through chaostoolkit-lib's providers, with an enforced timeout.

chaostoolkit-lib validates an activity's ``timeout`` but never enforces it for python
providers. Here an activity runs in a daemon worker thread and the caller waits at
most ``timeout`` seconds: past it the activity is recorded as failed ("timed out") and
the run moves on. A Python function cannot be killed from outside, so a driver that
hangs keeps its daemon thread until it returns; its late result is discarded and it
never keeps the process from exiting. The caller is told (``abandoned``) so that what the
worker does afterwards can be refused (the runner refuses its change announcements).
Process and HTTP providers also get the timeout passed down, so their own subprocess /
request stops too.

A probe the main thread runs (``inline=True``: the runner's hypothesis, method and recovery probes)
runs in the main thread itself instead, which spares the two thread hand-overs that cost most of a
trivial probe (benchmarks/README.md). Its timeout is a ``SIGALRM`` timer whose handler raises in the
probe (again every :data:`INLINE_REPEAT` seconds, should the probe swallow it), and the run's signals
stop it as they stop any wait (the Waiter's hook is on while it runs). Actions never run inline: one
is not cut short in the middle of a change. Anywhere else (another thread, a ``SIGALRM`` timer or
handler already in use, no positive timeout) a probe goes to a worker as any activity.

Process arguments given as one string (deprecated by Chaos Toolkit, which runs them through
a shell) are split with :func:`shlex.split` and run without a shell.
"""

from __future__ import annotations

import _signal  # signal's own functions without the enum conversions (a fifth of an inline probe's cost)
import _thread
import contextvars
import copy
import importlib
import re
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlchaos.experiment.driver_registry import function_signature
from mlchaos.experiment.workers import POOL, LockType, in_background
from mlchaos.lib.clock import utc_now_iso

__all__ = ["FAILED", "INLINE_REPEAT", "RUNNING", "SUCCEEDED", "ActivityTimedOut", "LockType", "Outcome",
           "WaitInterrupted", "Waiter", "execute", "in_background", "run_provider", "run_python",
           "with_provider_timeout", "with_split_arguments"]

SUCCEEDED = "succeeded"
FAILED = "failed"
RUNNING = "running"


INLINE_REPEAT = 1.0  # seconds between two timeouts raised in an inline probe that swallowed the first


class ActivityTimedOut(Exception):
    """The activity did not finish within its timeout."""


class WaitInterrupted(BaseException):
    """Raised by a Waiter's hook (the run's signal handlers) to stop a wait, or a probe running inline: never
    recorded as the activity's failure, it goes on up to the runner."""


class _Expired(BaseException):
    """Raised in an inline probe by its timer (a BaseException: ``except Exception`` in a driver lets it by)."""


@dataclass
class Outcome:
    """What happened when one activity ran."""

    status: str
    output: Any = None
    error: str | None = None
    exception: list[str] = field(default_factory=list)
    start: str = ""
    end: str = ""
    duration: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


class Waiter:
    """How the runner waits: a hook lets it make waits interruptible by signals."""

    def __init__(self, on_wait: Callable[[bool], None] | None = None):
        self._on_wait = on_wait or (lambda _waiting: None)

    def wait(self, lock: LockType, timeout: float) -> bool:
        """Acquire ``lock`` (released by the worker when done) within ``timeout`` seconds."""
        self._on_wait(True)
        try:
            return lock.acquire(timeout=max(timeout, 0.0))
        finally:
            self._on_wait(False)

    def run_inline(self, func: Callable[[], Any], timeout: float) -> tuple[bool, dict[str, Any]]:
        """Run ``func`` in the calling (main) thread, stopped at ``timeout`` seconds by a ``SIGALRM`` timer.

        Returns ``(finished, box)``: ``box`` has ``output`` or ``error`` when it finished. The hook is on while
        ``func`` runs, so a signal that stops a wait stops ``func`` too (:class:`WaitInterrupted` goes on up).
        """
        box: dict[str, Any] = {}
        running = True

        def expire(_signum: int, _frame: Any) -> None:
            if running:
                raise _Expired()

        previous = _signal.signal(_signal.SIGALRM, expire)
        try:
            _signal.setitimer(_signal.ITIMER_REAL, timeout, INLINE_REPEAT)
            self._on_wait(True)
            try:
                try:
                    box["output"] = contextvars.copy_context().run(func)
                finally:
                    running = False
            except _Expired:
                return False, box
            except WaitInterrupted:
                raise
            except BaseException as exc:  # any other failure becomes a failed activity, as on a worker
                box["error"] = exc
            finally:
                self._on_wait(False)
            return True, box
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _signal.signal(_signal.SIGALRM, previous)

    def sleep(self, seconds: float) -> None:
        lock = _thread.allocate_lock()
        lock.acquire()
        self.wait(lock, seconds)


def with_provider_timeout(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``spec``, or a copy whose process/http provider also stops at ``timeout`` (the activity's timeout,
    already the smaller of the activity's and the provider's own; an http ``[connect, read]`` pair is kept)."""
    provider = spec.get("provider", {})
    if provider.get("type") in ("process", "http") and not isinstance(provider.get("timeout"), list):
        spec = copy.deepcopy(spec)
        spec["provider"]["timeout"] = timeout
    return spec


def with_split_arguments(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec``, or a copy whose process arguments given as one string are a list (shlex-split: no shell)."""
    provider = spec.get("provider", {})
    if provider.get("type") == "process" and isinstance(provider.get("arguments"), str):
        spec = copy.deepcopy(spec)
        spec["provider"]["arguments"] = shlex.split(provider["arguments"])
    return spec


def run_provider(spec: dict[str, Any], configuration: dict[str, Any], secrets: dict[str, Any]) -> Any:
    """Call chaostoolkit-lib's provider for ``spec`` (python, process or http).

    Python providers are called as ``chaoslib.provider.python.run_python_activity`` calls them
    (:func:`run_python`), which spares importing ``requests`` (~35 ms) when no http provider is used.
    """
    if spec.get("provider", {}).get("type") == "python":
        return run_python(spec, configuration, secrets)
    from chaoslib.activity import run_activity

    return run_activity(spec, configuration, secrets)


def run_python(spec: dict[str, Any], configuration: dict[str, Any], secrets: dict[str, Any]) -> Any:
    """Call a python provider exactly as chaostoolkit-lib's ``run_python_activity`` does (arguments substituted,
    ``secrets`` and ``configuration`` passed when the function asks for them, any exception turned into
    ``ActivityFailed`` naming it), without its per-call debug log line and with the signature worked out
    once per function: a trivial probe costs a third of what it costs through chaoslib."""
    provider = spec["provider"]
    func = getattr(_module(provider["module"]), provider["func"])
    arguments = provider.get("arguments", {}).copy()
    if configuration or secrets:
        from chaoslib import substitute

        arguments = substitute(arguments, configuration, secrets)
    parameters = function_signature(func).parameters
    if "secrets" in provider and "secrets" in parameters:
        arguments["secrets"] = {}
        for scope in provider["secrets"]:
            arguments["secrets"].update(secrets.get(scope, {}).copy())
    if "configuration" in parameters:
        arguments["configuration"] = configuration.copy()
    try:
        return func(**arguments)
    except Exception as exc:
        from chaoslib.exceptions import ActivityFailed

        raise ActivityFailed(traceback.format_exception_only(type(exc), exc)[0].strip()).with_traceback(
            exc.__traceback__) from exc


def _module(name: str) -> Any:
    """``importlib.import_module(name)``; a module already imported (and done initialising) is taken from
    ``sys.modules`` directly, as the import statement does (validation imported every driver before the run)."""
    module = sys.modules.get(name)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return importlib.import_module(name)
    return module


def execute(
    spec: dict[str, Any],
    configuration: dict[str, Any],
    secrets: dict[str, Any],
    timeout: float,
    waiter: Waiter,
    inline: bool = False,
    abandoned: Callable[[LockType], None] | None = None,
) -> Outcome:
    """Run one activity spec and wait for it at most ``timeout`` seconds, or its provider's own ``timeout`` when
    that is a smaller number (a ``${name}`` one is resolved by the caller). ``inline``: a probe, run in this
    thread when it is the main thread and the ``SIGALRM`` timer is free (see the module's docstring).
    ``abandoned(done)`` is called when the caller stops waiting for a worker that still runs (a signal stopped
    the wait, or the timeout passed): ``done`` is released when the worker ends."""
    own = spec.get("provider", {}).get("timeout")
    if isinstance(own, (int, float)) and not isinstance(own, bool) and 0 < own < timeout:
        timeout = float(own)
    spec = with_split_arguments(with_provider_timeout(spec, timeout))
    start = utc_now_iso()
    started = time.monotonic()
    if inline and timeout > 0 and _timer_free():
        finished, box = waiter.run_inline(lambda: run_provider(spec, configuration, secrets), timeout)
    else:
        box = {}

        def target() -> None:
            try:
                box["output"] = run_provider(spec, configuration, secrets)
            except BaseException as exc:  # any failure becomes a failed activity
                box["error"] = exc

        done = POOL.submit(target)
        try:
            finished = waiter.wait(done, timeout)
        except WaitInterrupted:
            if abandoned is not None:
                abandoned(done)
            raise
        if not finished and abandoned is not None:
            abandoned(done)
    duration = time.monotonic() - started
    times = {"start": start, "end": utc_now_iso(), "duration": round(duration, 6)}
    if not finished:
        message = f"timed out after {timeout:g}s"
        return Outcome(FAILED, None, message, [f"ActivityTimedOut: {message}\n"], **times)
    if "error" in box:
        exc = box["error"]
        message = _one_line(exc)
        return Outcome(FAILED, None, message, traceback.format_exception(exc), **times)
    return Outcome(SUCCEEDED, box.get("output"), **times)


def _timer_free() -> bool:
    """In the main thread, with no ``SIGALRM`` handler but the default one and no ``ITIMER_REAL`` timer running
    (someone else's, or an inline probe's further up the stack)."""
    return (_thread.get_ident() == threading.main_thread().ident
            and _signal.getsignal(_signal.SIGALRM) == _signal.SIG_DFL
            and _signal.getitimer(_signal.ITIMER_REAL) == (0.0, 0.0))


_OWN_ERROR_PREFIX = re.compile(r"^mlchaos\.errors\.\w+: ")


def _one_line(exc: BaseException) -> str:
    """The first line of the error; mlchaos' own driver errors need no class name in front."""
    text = str(exc).strip() or type(exc).__name__
    return _OWN_ERROR_PREFIX.sub("", text.splitlines()[0])
