"""Keep running a game day on its cron schedule: within its windows, never twice at once.

At each fire time the scheduler checks the calendar (a fire outside the windows or on an
excluded date is skipped, and says why), the emergency stop, and the suite's lock (a run
of the same game-day file still going, here or in another process, skips the fire); then
it runs the suite. Fires that pass while a run is going are skipped, not made up later.
SIGINT/SIGTERM stop the scheduler: a running experiment rolls back first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mlchaos.gameday.lock import SuiteLock
from mlchaos.gameday.schedule import Calendar, Clock, CronSchedule, SystemClock
from mlchaos.gameday.suite_runner import StopRequest, most_severe
from mlchaos.safety import emergency_stop

MAX_MISSED_COUNTED = 10_000


@dataclass(frozen=True)
class Fire:
    """What happened at one fire time."""

    at: datetime
    started: bool
    exit_code: int | None = None
    reason: str | None = None


class Scheduler:
    """Runs ``run_suite(fire_time) -> exit code`` at the cron schedule's fire times."""

    def __init__(self, cron: CronSchedule, calendar: Calendar | None, lock: SuiteLock,
                 run_suite: Callable[[datetime], int], *, clock: Clock | None = None,
                 stop: StopRequest | None = None, max_runs: int | None = None,
                 log: Callable[[str], None] = print):
        self.cron, self.calendar, self.lock, self.run_suite = cron, calendar, lock, run_suite
        self.clock = clock or SystemClock()
        self.stop = stop or StopRequest()
        self.max_runs = max_runs
        self.log = log
        self.fires: list[Fire] = []

    def serve(self) -> int:
        """Run until stopped (or ``max_runs`` runs started); the most severe exit code of the runs."""
        with self.stop.handlers():
            return self._loop()

    def _loop(self) -> int:
        codes: list[int] = []
        started = 0
        fire = self.cron.next_after(self.clock.now())
        self.log(f"scheduler: {self.cron.expression!r} ({self.cron.timezone.key}); next run {self._show(fire)}")
        while not self.stop.is_set():
            if self._sleep_until(fire):
                break
            outcome = self._fire(fire)
            self.fires.append(outcome)
            if outcome.started:
                started += 1
                codes.append(outcome.exit_code or 0)
                if self.max_runs is not None and started >= self.max_runs:
                    break
            if self.stop.is_set():
                break
            now = self.clock.now()
            upcoming = self.cron.next_after(max(now, fire))
            missed = self._missed(fire, now)
            if missed:
                self.log(f"scheduler: {missed} fire time(s) passed while the run was going: skipped, not made up")
            fire = upcoming
            self.log(f"scheduler: next run {self._show(fire)}")
        if self.stop.is_set():
            self.log(f"scheduler: stopped ({self.stop.reason})")
        return most_severe(codes)

    def _fire(self, fire: datetime) -> Fire:
        why = self.calendar.why_not(self.clock.now()) if self.calendar is not None else None
        if why is not None:
            return self._skipped(fire, why)
        info = emergency_stop.engaged()
        if info is not None:
            return self._skipped(fire, emergency_stop.describe(info))
        if not self.lock.acquire():
            return self._skipped(fire, self.lock.describe_holder())
        try:
            self.log(f"scheduler: run at {self._show(fire)}")
            code = self.run_suite(fire)
        finally:
            self.lock.release()
        return Fire(fire, True, code)

    def _skipped(self, fire: datetime, reason: str) -> Fire:
        self.log(f"scheduler: {self._show(fire)}: not started: {reason}")
        return Fire(fire, False, None, reason)

    def _sleep_until(self, when: datetime) -> bool:
        """Wait until ``when``; True when the scheduler was stopped meanwhile."""
        while True:
            left = (when - self.clock.now()).total_seconds()
            if left <= 0:
                return self.stop.is_set()
            if self.clock.wait(min(left, 1.0), self.stop.event):
                return True

    def _missed(self, fire: datetime, now: datetime) -> int:
        count, when = 0, self.cron.next_after(fire)
        while when <= now and count < MAX_MISSED_COUNTED:
            count += 1
            when = self.cron.next_after(when)
        return count

    def _show(self, when: datetime) -> str:
        return f"{when.astimezone(self.cron.timezone):%Y-%m-%d %H:%M:%S %Z}"
