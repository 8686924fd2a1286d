"""Probes the main thread runs inline (mlchaos.experiment.execution): in the main thread itself, stopped at their
timeout by a SIGALRM timer even when they swallow the first stop, stopped by the run's signals as any wait, and
leaving the timer and the SIGALRM handler as they found them. Actions, other threads and a SIGALRM already in use
go to a worker thread as before. Real signals and real timers; the bounds on elapsed time are generous (a probe
that was not stopped would run for 60 s)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from mlchaos.experiment.execution import FAILED, SUCCEEDED, Waiter, WaitInterrupted, execute

MODULE = "mlchaos_inline_probe_module"
WHO = contextvars.ContextVar("who", default="nobody")
HANG = 60.0  # what a probe that is not stopped would take


def _main_thread() -> int:
    return threading.get_ident()


def _sleep_swallowing_exceptions() -> str:
    end = time.monotonic() + HANG
    while time.monotonic() < end:
        with contextlib.suppress(Exception):  # a careless driver: the timeout must not be one of these
            time.sleep(HANG)
    return "never stopped"


def _sleep_swallowing_the_first_stop() -> str:
    try:
        time.sleep(HANG)
    except BaseException:  # a driver that swallows even a BaseException once
        time.sleep(HANG)
    return "never stopped"


def _set_context_variable() -> str:
    WHO.set("the probe")
    return WHO.get()


def _exit() -> None:
    sys.exit(3)


def _signal_self_then_sleep() -> str:
    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(HANG)
    return "never stopped"


def _nested_probe() -> dict[str, Any]:
    inner = execute(_spec("_main_thread"), {}, {}, 30.0, Waiter(), inline=True)
    return {"inner_thread": inner.output, "outer_thread": threading.get_ident()}


@pytest.fixture(autouse=True)
def probe_module() -> Iterator[None]:
    module = types.ModuleType(MODULE)
    for func in (_main_thread, _sleep_swallowing_exceptions, _sleep_swallowing_the_first_stop,
                 _set_context_variable, _exit, _signal_self_then_sleep, _nested_probe):
        setattr(module, func.__name__, func)
    sys.modules[MODULE] = module
    yield
    del sys.modules[MODULE]
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # every test leaves SIGALRM as it found it
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _spec(func: str) -> dict[str, Any]:
    return {"type": "probe", "name": func, "provider": {"type": "python", "module": MODULE, "func": func}}


def test_an_inline_probe_runs_in_the_main_thread_and_a_worker_runs_the_others() -> None:
    inline = execute(_spec("_main_thread"), {}, {}, 30.0, Waiter(), inline=True)
    on_worker = execute(_spec("_main_thread"), {}, {}, 30.0, Waiter())
    assert inline.status == on_worker.status == SUCCEEDED
    assert inline.output == threading.get_ident() != on_worker.output


@pytest.mark.parametrize("func", ["_sleep_swallowing_exceptions", "_sleep_swallowing_the_first_stop"])
def test_an_inline_probe_is_stopped_at_its_timeout_even_when_it_swallows_the_stop(func: str) -> None:
    started = time.monotonic()
    outcome = execute(_spec(func), {}, {}, 0.3, Waiter(), inline=True)
    assert outcome.status == FAILED and outcome.error == "timed out after 0.3s"
    assert outcome.exception == ["ActivityTimedOut: timed out after 0.3s\n"]
    assert time.monotonic() - started < HANG / 2


def test_what_an_inline_probe_sets_in_its_context_stays_there() -> None:
    outcome = execute(_spec("_set_context_variable"), {}, {}, 30.0, Waiter(), inline=True)
    assert outcome.output == "the probe" and WHO.get() == "nobody"


def test_an_inline_probe_that_exits_is_a_failed_activity_as_on_a_worker() -> None:
    inline = execute(_spec("_exit"), {}, {}, 30.0, Waiter(), inline=True)
    on_worker = execute(_spec("_exit"), {}, {}, 30.0, Waiter())
    assert inline.status == on_worker.status == FAILED
    assert inline.error == on_worker.error


class _Stopped(WaitInterrupted):
    pass


def test_a_signal_that_stops_waits_stops_an_inline_probe_and_goes_on_up() -> None:
    waiting: list[bool] = []

    def on_signal(_signum: int, _frame: Any) -> None:  # as the run's handlers: raise only while the main thread waits
        if waiting and waiting[-1]:
            raise _Stopped()

    previous = signal.signal(signal.SIGUSR2, on_signal)
    try:
        started = time.monotonic()
        with pytest.raises(_Stopped):
            execute(_spec("_signal_self_then_sleep"), {}, {}, HANG, Waiter(waiting.append), inline=True)
        assert time.monotonic() - started < HANG / 2
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert waiting == [True, False]


def test_a_sigalrm_in_use_sends_the_probe_to_a_worker_and_is_left_alone() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, _frame: fired.append(signum))
    try:
        outcome = execute(_spec("_main_thread"), {}, {}, 30.0, Waiter(), inline=True)
        assert outcome.output != threading.get_ident()
        assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_probe_inside_an_inline_probe_goes_to_a_worker() -> None:
    outcome = execute(_spec("_nested_probe"), {}, {}, 30.0, Waiter(), inline=True)
    assert outcome.status == SUCCEEDED
    assert outcome.output["outer_thread"] == threading.get_ident() != outcome.output["inner_thread"]


def test_off_the_main_thread_an_inline_probe_goes_to_a_worker() -> None:
    seen: dict[str, Any] = {}

    def caller() -> None:
        seen["caller"] = threading.get_ident()
        seen["outcome"] = execute(_spec("_main_thread"), {}, {}, 30.0, Waiter(), inline=True)

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join(30)
    assert seen["outcome"].status == SUCCEEDED
    assert seen["outcome"].output not in (seen["caller"], threading.get_ident())
