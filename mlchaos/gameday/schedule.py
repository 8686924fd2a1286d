"""When a game day may run: a cron expression, allowed windows and exclusion dates, in one timezone.

* :class:`CronSchedule` names the fire times (croniter; 5 fields, or 6 with seconds first).
* :class:`Calendar` says whether a drill may run at a given instant (inside one of its windows
  and not on an excluded date) and when the allowed period that contains an instant closes.
* Everything takes the time from a :class:`Clock`, so the scheduler can be tested with a
  clock that a test moves by hand.

Instants are timezone-aware; they are compared in UTC (two aware datetimes that share a
``tzinfo`` compare by wall time in Python, which is wrong across a DST change). Windows and
exclusion dates are wall-clock times and dates in the calendar's timezone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {**{d: i for i, d in enumerate(DAYS)},
             **{n: i for i, n in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                             "saturday", "sunday"))}}
MINUTES_PER_DAY = 24 * 60
_SEARCH_BOUNDARIES = 4000  # boundaries walked to find when an allowed period ends (> 10 years of days)


class Clock(Protocol):
    """Where the scheduler gets the time, and how it waits."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` (or until ``stop`` is set); True when ``stop`` is set."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0))


def zone(name: str) -> ZoneInfo:
    """The zoneinfo timezone ``name``; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from exc


# --- cron ----------------------------------------------------------------------------------------


def cron_problem(expression: str) -> str | None:
    """What is wrong with a cron expression (None when it is valid)."""
    from croniter import croniter

    fields = expression.split()
    if not fields:
        return "the cron expression is empty"
    if not expression.startswith("@") and len(fields) not in (5, 6):
        return (f"a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds "
                f"first; {expression!r} has {len(fields)}")
    if not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        return f"invalid cron expression {expression!r}"
    return None


@dataclass(frozen=True)
class CronSchedule:
    """Fire times of a cron expression in a timezone.

    Across DST changes (croniter, as Vixie cron): a time the clocks skip fires right after the
    skip; a time that happens twice fires once, unless the hour field is ``*`` (then it follows
    real time and fires in both passes).
    """

    expression: str
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        problem = cron_problem(self.expression)
        if problem:
            raise ValueError(problem)

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after ``when`` (UTC)."""
        from croniter import croniter

        fields = self.expression.split()
        fixed_hour = self.expression.startswith("@") or fields[2 if self.has_seconds else 1] != "*"
        local = when.astimezone(self.timezone)
        it = croniter(self.expression, local, second_at_beginning=self.has_seconds)
        while True:
            fire: datetime = it.get_next(datetime)
            if fixed_hour and fire.fold == 1 and _is_ambiguous(fire):
                continue  # the second pass of a repeated wall-clock hour: a fixed-time drill fires once
            return fire.astimezone(UTC)

    def upcoming(self, when: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``when`` (UTC)."""
        fires = []
        for _ in range(count):
            when = self.next_after(when)
            fires.append(when)
        return fires


def _is_ambiguous(local: datetime) -> bool:
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


# --- windows and exclusions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday) and wall-clock minutes [start, end); end <= start crosses midnight
    (the days name the day the window opens)."""

    days: frozenset[int]
    start: int
    end: int

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute + local.second / 60
        weekday = local.weekday()
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        return ((weekday in self.days and minute >= self.start)
                or ((weekday - 1) % 7 in self.days and minute < self.end))

    def ends_after(self, local: datetime) -> list[datetime]:
        """Naive wall-clock end times of this window's occurrences after ``local`` (the next 8 days)."""
        ends = []
        for offset in range(-1, 8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day if self.start < self.end else day + timedelta(days=1)
            end = datetime.combine(end_day, time()) + timedelta(minutes=self.end)
            if end > local.replace(tzinfo=None):
                ends.append(end)
        return ends

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days)) if len(self.days) < 7 else "every day"
        return f"{days} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class Exclusion:
    """Dates (inclusive) on which no drill runs: a holiday or a change freeze."""

    first: date
    last: date
    reason: str = ""

    def describe(self) -> str:
        span = self.first.isoformat() if self.first == self.last else f"{self.first}..{self.last}"
        return f"{span} ({self.reason})" if self.reason else span


@dataclass(frozen=True)
class Calendar:
    """Where drills may run: inside a window (when windows are given) and not on an excluded date."""

    timezone: ZoneInfo = ZoneInfo("UTC")
    windows: tuple[Window, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.windows or self.exclusions)

    def why_not(self, when: datetime) -> str | None:
        """Why a drill may not run at ``when`` (None when it may)."""
        local = when.astimezone(self.timezone)
        for exclusion in self.exclusions:
            if exclusion.first <= local.date() <= exclusion.last:
                return f"{local:%Y-%m-%d} is excluded: {exclusion.describe()}"
        if self.windows and not any(w.contains(local) for w in self.windows):
            allowed = "; ".join(w.describe() for w in self.windows)
            return f"{local:%a %H:%M} {self.timezone.key} is outside its windows ({allowed})"
        return None

    def is_allowed(self, when: datetime) -> bool:
        return self.why_not(when) is None

    def closes_at(self, when: datetime) -> datetime | None:
        """When the allowed period that contains ``when`` ends (UTC); ``when`` itself when it is not
        allowed; None when it never ends (no windows, no exclusion ahead)."""
        if not self.is_allowed(when):
            return when.astimezone(UTC)
        if not self.restricted:
            return None
        current = when.astimezone(UTC)
        for _ in range(_SEARCH_BOUNDARIES):
            boundary = self._next_boundary(current)
            if boundary is None:
                return None
            if not self.is_allowed(boundary):
                return boundary
            current = boundary
        return None

    def _next_boundary(self, when: datetime) -> datetime | None:
        """The next instant after ``when`` at which being allowed can change (a window's end, a midnight
        before an excluded date)."""
        local = when.astimezone(self.timezone)
        candidates = [end for window in self.windows for end in window.ends_after(local)]
        if any(exclusion.last >= local.date() for exclusion in self.exclusions):
            candidates.append(datetime.combine(local.date() + timedelta(days=1), time()))
        instants = [u for u in (self._wall_to_utc(c) for c in candidates) if u > when]
        return min(instants, default=None)

    def _wall_to_utc(self, wall: datetime) -> datetime:
        """A naive wall-clock time as an instant; a time the clocks skip is the instant of the skip."""
        fold0 = wall.replace(tzinfo=self.timezone, fold=0).astimezone(UTC)
        fold1 = wall.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        if fold1 >= fold0:
            return fold0  # an ordinary wall time, or the first occurrence of a repeated one
        low, high = fold1, fold0  # a skipped wall time: the first instant whose wall time is past it
        while (high - low) > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.timezone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)

    def describe(self) -> list[str]:
        lines = [f"timezone: {self.timezone.key}"]
        lines += [f"window: {w.describe()}" for w in self.windows]
        lines += [f"excluded: {e.describe()}" for e in self.exclusions]
        return lines


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_hhmm(text: str) -> int:
    """Minutes after midnight of ``HH:MM`` (``24:00`` is the end of the day); ValueError otherwise."""
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected a time as \"HH:MM\", got {text!r}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_PER_DAY:
        raise ValueError(f"{text!r} is not a time of day (00:00 to 24:00)")
    return value
