"""The game-day scheduler with an injected clock: fire times, windows, exclusions, timezone, overlap
(the suite's lock, also held by another process), missed fires, stopping."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mlchaos.gameday.lock import SuiteLock
from mlchaos.gameday.schedule import Calendar, CronSchedule, Exclusion, Window
from mlchaos.gameday.scheduler import Scheduler
from mlchaos.gameday.suite_runner import StopRequest
from mlchaos.safety import emergency_stop
from tests.support.manual_clock import ManualClock
from tests.support.polling import wait_until

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Suite:
    """A stand-in for one run of the suite: records when it ran, takes ``seconds`` of (manual) time."""

    def __init__(self, clock: ManualClock, seconds: float = 60.0, code: int = 0):
        self.clock, self.seconds, self.code = clock, seconds, code
        self.runs: list[datetime] = []

    def __call__(self, fire: datetime) -> int:
        self.runs.append(self.clock.now())
        self.clock.advance(self.seconds)
        return self.code


def _scheduler(tmp_path: Path, clock: ManualClock, cron: str, suite: Suite, calendar: Calendar | None = None,
               zone: ZoneInfo = UTC_ZONE, **kwargs) -> tuple[Scheduler, list[str]]:
    log: list[str] = []
    lock = kwargs.pop("lock", None) or SuiteLock(tmp_path / "gameday.yaml")
    scheduler = Scheduler(CronSchedule(cron, zone), calendar, lock, suite, clock=clock, log=log.append, **kwargs)
    return scheduler, log


def test_it_runs_at_each_fire_time(tmp_path):
    clock = ManualClock(utc(2025, 1, 13, 8, 59, 30))
    suite = Suite(clock)
    scheduler, log = _scheduler(tmp_path, clock, "0 */2 * * *", suite, max_runs=3)
    assert scheduler.serve() == 0
    assert suite.runs == [utc(2025, 1, 13, 10, 0), utc(2025, 1, 13, 12, 0), utc(2025, 1, 13, 14, 0)]
    assert log[0] == "scheduler: '0 */2 * * *' (UTC); next run 2025-01-13 10:00:00 UTC"


def test_a_fire_outside_the_windows_or_on_an_excluded_date_is_skipped_and_says_why(tmp_path):
    calendar = Calendar(UTC_ZONE, windows=(Window(frozenset({0, 1, 2, 3}), 9 * 60, 16 * 60),),
                        exclusions=(Exclusion(date(2025, 1, 14), date(2025, 1, 14), "release day"),))
    clock = ManualClock(utc(2025, 1, 13, 0, 0))  # a Monday
    suite = Suite(clock)
    scheduler, log = _scheduler(tmp_path, clock, "0 8,12,20 * * *", suite, calendar, max_runs=3)
    scheduler.serve()
    assert suite.runs == [utc(2025, 1, 13, 12, 0), utc(2025, 1, 15, 12, 0), utc(2025, 1, 16, 12, 0)]
    skipped = [(f.at, f.reason) for f in scheduler.fires if not f.started]
    assert skipped[0] == (utc(2025, 1, 13, 8, 0),
                          "Mon 08:00 UTC is outside its windows (mon,tue,wed,thu 09:00-16:00)")
    assert (utc(2025, 1, 14, 12, 0), "2025-01-14 is excluded: 2025-01-14 (release day)") in skipped
    assert "scheduler: 2025-01-13 20:00:00 UTC: not started: Mon 20:00 UTC is outside its windows" in " ".join(log)


def test_cron_and_windows_follow_the_timezone_across_dst(tmp_path):
    calendar = Calendar(BERLIN, windows=(Window(frozenset(range(7)), 9 * 60, 10 * 60),))
    clock = ManualClock(utc(2025, 3, 29, 0, 0))  # the night of 29-30 March: CET -> CEST
    suite = Suite(clock)
    scheduler, _ = _scheduler(tmp_path, clock, "30 9 * * *", suite, calendar, zone=BERLIN, max_runs=2)
    scheduler.serve()
    assert suite.runs == [utc(2025, 3, 29, 8, 30), utc(2025, 3, 30, 7, 30)]  # 09:30 CET, then 09:30 CEST


def test_a_run_still_going_is_not_started_twice(tmp_path):
    clock = ManualClock(utc(2025, 1, 13, 9, 59))
    suite = Suite(clock)
    other = SuiteLock(tmp_path / "gameday.yaml")
    assert other.acquire()  # another run of this game day (another scheduler, or `mlchaos gameday`)
    try:
        scheduler, log = _scheduler(tmp_path, clock, "* * * * *", suite, max_runs=1,
                                    lock=SuiteLock(tmp_path / "gameday.yaml"))
        original = clock.wait

        def release_after_two_fires(seconds, stop):
            if len(scheduler.fires) == 2:
                other.release()
            return original(seconds, stop)

        clock.wait = release_after_two_fires
        scheduler.serve()
    finally:
        other.release()
    assert [f.started for f in scheduler.fires] == [False, False, True]
    assert scheduler.fires[0].reason.startswith("its previous run is still going (pid ")
    assert suite.runs == [utc(2025, 1, 13, 10, 2)]


def test_fires_missed_while_a_run_goes_are_skipped_not_made_up(tmp_path):
    clock = ManualClock(utc(2025, 1, 13, 9, 59, 30))
    suite = Suite(clock, seconds=4.5 * 60)  # each run takes 4.5 minutes
    scheduler, log = _scheduler(tmp_path, clock, "* * * * *", suite, max_runs=2)
    scheduler.serve()
    assert suite.runs == [utc(2025, 1, 13, 10, 0), utc(2025, 1, 13, 10, 5)]
    assert "scheduler: 4 fire time(s) passed while the run was going: skipped, not made up" in log


def test_the_most_severe_code_of_its_runs(tmp_path):
    clock = ManualClock(utc(2025, 1, 13, 9, 59, 30))
    codes = iter([1, 5, 0])

    def suite(fire):
        clock.advance(10)
        return next(codes)

    scheduler, _ = _scheduler(tmp_path, clock, "* * * * *", suite, max_runs=3)
    assert scheduler.serve() == 5


def test_the_emergency_stop_skips_fires_until_cleared(tmp_path):
    clock = ManualClock(utc(2025, 1, 13, 9, 59, 30))
    suite = Suite(clock, seconds=1)
    emergency_stop.engage("incident")
    scheduler, _ = _scheduler(tmp_path, clock, "* * * * *", suite, max_runs=1)
    original = clock.wait

    def clear_after_a_fire(seconds, stop):
        if scheduler.fires:
            emergency_stop.clear()
        return original(seconds, stop)

    clock.wait = clear_after_a_fire
    scheduler.serve()
    assert "the emergency stop is engaged" in scheduler.fires[0].reason
    assert suite.runs == [utc(2025, 1, 13, 10, 1)]


def test_a_stop_request_ends_the_scheduler_while_it_waits(tmp_path):
    clock = ManualClock(utc(2025, 1, 13, 9, 0))
    stop = StopRequest()
    suite = Suite(clock)
    scheduler, log = _scheduler(tmp_path, clock, "0 10 * * *", suite, stop=stop)
    original = clock.wait

    def stop_after_ten_minutes(seconds, event):
        if clock.now() >= utc(2025, 1, 13, 9, 10):
            stop.stop("SIGTERM received")
        return original(seconds, event)

    clock.wait = stop_after_ten_minutes
    assert scheduler.serve() == 0
    assert suite.runs == []
    assert log[-1] == "scheduler: stopped (SIGTERM received)"


def test_the_lock_is_held_across_processes_and_freed_when_its_holder_dies(tmp_path, subprocess_env):
    source = tmp_path / "gameday.yaml"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from mlchaos.gameday.lock import SuiteLock;"
         f"lock = SuiteLock(Path({str(source)!r})); assert lock.acquire(); print('held', flush=True); "
         "time.sleep(60)"], env=subprocess_env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = SuiteLock(source)
        assert not lock.acquire()
        assert f"(pid {holder.pid}, since " in lock.describe_holder()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    wait_until(lock.acquire, timeout=5, what="the kernel to free a dead holder's lock")
    lock.release()


def test_a_lock_is_per_game_day_file(tmp_path):
    first, second = SuiteLock(tmp_path / "a.yaml"), SuiteLock(tmp_path / "b.yaml")
    with first, second:
        assert first.acquire() and second.acquire()
        assert not SuiteLock(tmp_path / "a.yaml").acquire()
        assert not first.acquire(), "not re-entrant"
    with SuiteLock(tmp_path / "a.yaml") as again:
        assert again.acquire(), "released"
    assert first.path.parent.name == "gamedays" and first.path != second.path
