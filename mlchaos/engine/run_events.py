"""Chaos Toolkit's run events (``chaoslib.run.RunEventHandler``), for the handlers controls register.

A control's ``configure_control`` may take an ``event_registry`` and register a handler on it
(chaostoolkit-opentracing's OpenTelemetry control traces a run this way). mlchaos sends the events
chaoslib's ``Runner`` sends, at the same moments, with the same arguments (a journal argument is the
redacted journal, as on disk). ``started`` is not sent: chaoslib sends it before any control is
configured, so no control's handler ever gets it.

The events go to one daemon thread, in order (a handler may open a span in one event and close it
in the next: they share that thread's context), and the run waits for each at most the control
timeout. chaoslib's registry already catches what a handler raises; a handler that hangs is
reported once and no further event is sent.
"""

from __future__ import annotations

import _thread
import queue
import threading
from collections.abc import Callable
from typing import Any

from mlchaos.experiment.execution import Waiter

JOURNAL = object()  # stands for the (redacted) journal in an event's arguments


class Later:
    """An event argument computed only when the event is sent (a redacted copy costs nothing otherwise)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make


class RunEvents:
    """Sends run events to the registry's handlers, one at a time, each bounded by ``timeout``."""

    def __init__(self, registry: Callable[[], Any], timeout: float, journal: Callable[[], dict[str, Any]],
                 on_problem: Callable[[str, str], None]):
        self._registry = registry  # the registry the controls were configured with (None before)
        self.timeout = timeout
        self._journal = journal
        self._on_problem = on_problem  # (event, what went wrong)
        self._inbox: queue.SimpleQueue | None = None
        self.stopped = False
        self.sent = 0

    def send(self, name: str, *args: Any) -> None:
        """Send event ``name``; return once its handlers returned, or the timeout passed."""
        registry = self._registry()
        if self.stopped or registry is None or not registry.handlers:
            return
        args = tuple(self._journal() if a is JOURNAL else a.make() if isinstance(a, Later) else a for a in args)
        if self._inbox is None:
            self._inbox = queue.SimpleQueue()
            threading.Thread(target=self._work, args=(self._inbox,), daemon=True, name="mlchaos-run-events").start()
        done = _thread.allocate_lock()
        done.acquire()
        box: dict[str, BaseException] = {}
        self._inbox.put((getattr(registry, name), args, done, box))
        self.sent += 1
        if not Waiter().wait(done, self.timeout):  # no signal cuts it short; the timeout bounds it
            self.stopped = True
            self._on_problem(name, f"its handlers did not return within {self.timeout:g}s (control_timeout); "
                                   f"no further run event is sent")
        elif "error" in box:
            self._on_problem(name, f"{type(box['error']).__name__}: {box['error']}")

    @staticmethod
    def _work(inbox: queue.SimpleQueue) -> None:
        while True:
            func, args, done, box = inbox.get()
            try:
                func(*args)
            except BaseException as exc:  # chaoslib's registry catches Exception; SystemExit and the like here
                box["error"] = exc
            finally:
                done.release()
