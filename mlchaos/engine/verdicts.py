"""A run's verdict and exit code, and its status in Chaos Toolkit's journal terms: decided in one place.

The verdict names are what journals, summaries, reports and metrics say; the most severe
cause wins, in this order: a rollback left undone, a signal, a refusal, an abort, a deviation,
a failed activity.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from mlchaos.engine import exit_codes

HELD = "held"
PLANNED = "planned"
DEVIATED = "deviated"
ACTIVITY_FAILED = "activity-failed"
ROLLBACK_FAILED = "rollback-failed"
INTERRUPTED = "interrupted"
REFUSED = "refused"
ABORTED = "aborted"
UNFINISHED = "unfinished"  # what a report calls a journal without a verdict (a runner that died)
RUN_VERDICTS = (HELD, DEVIATED, ACTIVITY_FAILED, ROLLBACK_FAILED, INTERRUPTED, REFUSED, ABORTED, PLANNED)
PASSED = frozenset({HELD})
FAILED = frozenset({DEVIATED, ACTIVITY_FAILED, ABORTED, ROLLBACK_FAILED})
# the signals that interrupt a run (it rolls back), and its exit code when one stops it; SIGUSR1 is also
# the abort of `mlchaos stop` (exit 5, aborted) when the emergency stop is engaged
SIGNAL_EXIT = {signal.SIGHUP: exit_codes.HANGUP, signal.SIGINT: exit_codes.INTERRUPTED, signal.SIGQUIT: exit_codes.QUIT,
               signal.SIGUSR1: exit_codes.EXIT_GRACEFULLY, signal.SIGUSR2: exit_codes.EXIT_UNGRACEFULLY,
               signal.SIGTERM: exit_codes.TERMINATED}


@dataclass(frozen=True)
class Ending:
    """How a run ended, as far as the verdict is concerned."""

    left_undone: bool = False  # a rollback failed or was abandoned
    interrupt: int | None = None  # the signal that stopped it
    refused: bool = False  # a bound, an allow-list or the emergency stop refused a change
    stopped: bool = False  # aborted: a guard, max_duration, the emergency stop
    deviated: bool = False  # the steady state was not met (before or after), or a budget was missed
    failed: bool = False  # an activity failed
    dry_run: bool = False  # a plan

    def verdict(self) -> tuple[str, int]:
        """The verdict and the exit code."""
        if self.left_undone:
            return ROLLBACK_FAILED, exit_codes.ROLLBACK_FAILED
        if self.interrupt is not None:
            return INTERRUPTED, SIGNAL_EXIT[self.interrupt]
        if self.refused:
            return REFUSED, exit_codes.REFUSED
        if self.stopped:
            return ABORTED, exit_codes.ABORTED
        if self.deviated:
            return DEVIATED, exit_codes.DEVIATED
        if self.failed:
            return ACTIVITY_FAILED, exit_codes.DEVIATED
        return (PLANNED if self.dry_run else HELD), exit_codes.OK

    def status(self) -> str:
        """The journal's Chaos Toolkit ``status``: interrupted, aborted, failed or completed."""
        if self.interrupt is not None:
            return "interrupted"
        if self.stopped or self.refused:
            return "aborted"
        return "failed" if (self.failed or self.deviated) else "completed"
