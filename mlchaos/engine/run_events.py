"""Chaos Toolkit's run events (``chaoslib.run.RunEventHandler``), for the handlers controls register.

A control's ``configure_control`` may take an ``event_registry`` and register a handler on it
(chaostoolkit-opentracing's OpenTelemetry control traces a run this way). mlchaos sends the events
chaoslib's ``Runner`` sends, at the same moments, with the same arguments (a journal argument is the
redacted journal, as on disk). ``started`` is not sent: chaoslib sends it before any control is
configured, so no control's handler ever gets it.

The events go through the control thread (:class:`mlchaos.experiment.controls.ControlThread`), in
order and in the same context as the hooks (a handler may open a span in ``configure_control`` and
close it in ``finish``); the run waits for each at most the control timeout, on a wait no signal
cuts short. chaoslib's registry catches what a handler raises; a handler that hangs is reported
once and no further event is sent.
"""

from collections.abc import Callable
from typing import Any

from mlchaos.experiment.controls import ControlSet
from mlchaos.experiment.execution import Waiter

JOURNAL = object()  # stands for the (redacted) journal in an event's arguments


class Later:
    """An event argument computed only when the event is sent (a redacted copy costs nothing otherwise)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make


class RunEvents:
    """Sends run events to the handlers registered on the controls' registry, each bounded by the control timeout."""

    def __init__(self, controls: ControlSet, journal: Callable[[], dict[str, Any]],
                 on_problem: Callable[[str, str], None]):
        self.controls = controls
        self._journal = journal
        self._on_problem = on_problem  # (event, what went wrong)
        self.stopped = False
        self.sent = 0

    def send(self, name: str, *args: Any) -> None:
        """Send event ``name``; return once its handlers returned, or the timeout passed."""
        registry = getattr(self.controls, "registry", None)
        if self.stopped or registry is None or not registry.handlers:
            return
        args = tuple(self._journal() if a is JOURNAL else a.make() if isinstance(a, Later) else a for a in args)
        self.sent += 1
        error = self.controls.call(lambda: getattr(registry, name)(*args), Waiter())
        if isinstance(error, TimeoutError):
            self.stopped = True
            self._on_problem(name, f"its handlers did not return within {self.controls.timeout:g}s "
                                   f"(control_timeout); no further run event is sent")
        elif error is not None:  # chaoslib's registry catches Exception: SystemExit and the like
            self._on_problem(name, f"{type(error).__name__}: {error}")
