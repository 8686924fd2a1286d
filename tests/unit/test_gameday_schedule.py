"""Game-day schedules: cron fire times in a timezone, windows, exclusions, DST edges."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mlchaos.gameday.schedule import Calendar, CronSchedule, Exclusion, Window, cron_problem, parse_hhmm, zone

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cron_fires_at_wall_clock_times_of_its_timezone():
    cron = CronSchedule("0 10 * * mon-thu", BERLIN)
    friday = utc(2025, 1, 10, 12, 0)
    assert cron.next_after(friday) == utc(2025, 1, 13, 9, 0)  # Monday 10:00 CET
    summer = utc(2025, 7, 4, 12, 0)  # a Friday in summer time
    assert cron.next_after(summer) == utc(2025, 7, 7, 8, 0)  # Monday 10:00 CEST


def test_cron_fire_times_are_strictly_after_the_given_instant():
    cron = CronSchedule("*/15 * * * *", ZoneInfo("UTC"))
    assert cron.next_after(utc(2025, 1, 1, 10, 15)) == utc(2025, 1, 1, 10, 30)
    assert cron.upcoming(utc(2025, 1, 1, 10, 0), 3) == [utc(2025, 1, 1, 10, 15), utc(2025, 1, 1, 10, 30),
                                                       utc(2025, 1, 1, 10, 45)]


def test_a_sixth_field_is_seconds_first():
    cron = CronSchedule("*/5 * * * * *", ZoneInfo("UTC"))
    assert cron.has_seconds
    assert cron.upcoming(utc(2025, 1, 1, 10, 0, 1), 2) == [utc(2025, 1, 1, 10, 0, 5), utc(2025, 1, 1, 10, 0, 10)]


@pytest.mark.parametrize(("expression", "message"), [
    ("", "empty"),
    ("* * * *", "has 4"),
    ("1 2 3 4 5 6 7", "has 7"),
    ("61 * * * *", "invalid cron expression"),
    ("* * * * funday", "invalid cron expression"),
])
def test_bad_cron_expressions_are_explained(expression, message):
    assert message in (cron_problem(expression) or "")
    with pytest.raises(ValueError, match=message):
        CronSchedule(expression, ZoneInfo("UTC"))


def test_nicknames_are_accepted():
    assert cron_problem("@daily") is None
    assert CronSchedule("@daily", ZoneInfo("UTC")).next_after(utc(2025, 1, 1, 10, 0)) == utc(2025, 1, 2, 0, 0)


def test_a_time_the_clocks_skip_fires_right_after_the_skip():
    cron = CronSchedule("30 2 * * *", BERLIN)  # 2025-03-30: 02:00 CET -> 03:00 CEST
    assert cron.next_after(utc(2025, 3, 29, 12, 0)) == utc(2025, 3, 30, 1, 0)  # 03:00 CEST
    assert cron.next_after(utc(2025, 3, 30, 1, 0)) == utc(2025, 3, 31, 0, 30)  # 02:30 CEST the next day


def test_a_repeated_wall_time_fires_once_for_a_fixed_time_drill():
    cron = CronSchedule("30 1 * * *", NEW_YORK)  # 2025-11-02: 01:00-02:00 happens twice
    first = cron.next_after(utc(2025, 11, 1, 12, 0))
    assert first == utc(2025, 11, 2, 5, 30)  # 01:30 EDT
    assert cron.next_after(first) == utc(2025, 11, 3, 6, 30)  # not 01:30 EST an hour later


def test_an_every_n_minutes_drill_follows_real_time_through_a_repeated_hour():
    cron = CronSchedule("0 * * * *", NEW_YORK)
    fires = cron.upcoming(utc(2025, 11, 2, 4, 30), 3)
    assert fires == [utc(2025, 11, 2, 5, 0), utc(2025, 11, 2, 6, 0), utc(2025, 11, 2, 7, 0)]  # 01:00 twice


def test_windows_hold_days_and_hours_in_the_calendars_timezone():
    calendar = Calendar(BERLIN, windows=(Window(frozenset({0, 1, 2, 3}), 9 * 60, 16 * 60),))
    assert calendar.is_allowed(utc(2025, 1, 13, 8, 0))  # Monday 09:00 CET
    assert not calendar.is_allowed(utc(2025, 1, 13, 7, 59))  # 08:59
    assert not calendar.is_allowed(utc(2025, 1, 13, 15, 0))  # 16:00: the end is excluded
    assert not calendar.is_allowed(utc(2025, 1, 17, 10, 0))  # Friday
    why = calendar.why_not(utc(2025, 1, 17, 10, 0))
    assert why == "Fri 11:00 Europe/Berlin is outside its windows (mon,tue,wed,thu 09:00-16:00)"


def test_a_window_may_cross_midnight_its_days_naming_the_evening():
    calendar = Calendar(ZoneInfo("UTC"), windows=(Window(frozenset({4}), 22 * 60, 2 * 60),))  # Fri 22:00-02:00
    assert calendar.is_allowed(utc(2025, 1, 10, 23, 0))  # Friday night
    assert calendar.is_allowed(utc(2025, 1, 11, 1, 59))  # early Saturday
    assert not calendar.is_allowed(utc(2025, 1, 11, 2, 0))
    assert not calendar.is_allowed(utc(2025, 1, 11, 23, 0))  # Saturday night is not Friday's
    assert calendar.closes_at(utc(2025, 1, 10, 23, 0)) == utc(2025, 1, 11, 2, 0)


def test_excluded_dates_and_ranges_win_over_windows():
    calendar = Calendar(BERLIN, windows=(Window(WEEKDAYS, 0, 24 * 60),), exclusions=(
        Exclusion(date(2025, 12, 24), date(2025, 12, 24), "Christmas Eve"),
        Exclusion(date(2025, 12, 29), date(2026, 1, 2), "change freeze"),
    ))
    assert calendar.is_allowed(utc(2025, 12, 23, 12, 0))
    assert calendar.why_not(utc(2025, 12, 24, 12, 0)) == "2025-12-24 is excluded: 2025-12-24 (Christmas Eve)"
    assert "2025-12-29..2026-01-02 (change freeze)" in calendar.why_not(utc(2026, 1, 2, 12, 0))
    assert calendar.is_allowed(utc(2026, 1, 5, 12, 0))
    assert not calendar.is_allowed(utc(2025, 12, 23, 23, 30))  # 00:30 on the 24th in Berlin


def test_closes_at_is_the_end_of_the_window_in_utc():
    calendar = Calendar(BERLIN, windows=(Window(WEEKDAYS, 9 * 60, 16 * 60),))
    assert calendar.closes_at(utc(2025, 1, 13, 10, 0)) == utc(2025, 1, 13, 15, 0)
    assert calendar.closes_at(utc(2025, 7, 14, 10, 0)) == utc(2025, 7, 14, 14, 0)  # summer time
    outside = utc(2025, 1, 13, 20, 0)
    assert calendar.closes_at(outside) == outside


def test_windows_that_touch_are_one_allowed_period():
    windows = (Window(frozenset({0}), 0, 24 * 60), Window(frozenset({1}), 0, 12 * 60))
    calendar = Calendar(ZoneInfo("UTC"), windows=windows)
    assert calendar.closes_at(utc(2025, 1, 13, 20, 0)) == utc(2025, 1, 14, 12, 0)  # Monday 20:00 -> Tuesday noon


def test_an_exclusion_alone_closes_the_calendar_at_the_midnight_before_it():
    calendar = Calendar(BERLIN, exclusions=(Exclusion(date(2025, 12, 24), date(2025, 12, 26)),))
    assert calendar.closes_at(utc(2025, 12, 22, 12, 0)) == utc(2025, 12, 23, 23, 0)  # midnight in Berlin
    assert Calendar(BERLIN, exclusions=(Exclusion(date(2020, 1, 1), date(2020, 1, 1)),)).closes_at(
        utc(2025, 1, 1, 0, 0)) is None  # only past exclusions: never closes


def test_an_unrestricted_calendar_never_closes():
    calendar = Calendar()
    assert not calendar.restricted
    assert calendar.is_allowed(utc(2025, 1, 1, 3, 0))
    assert calendar.closes_at(utc(2025, 1, 1, 3, 0)) is None


def test_a_window_ending_in_the_skipped_hour_closes_at_the_skip():
    calendar = Calendar(BERLIN, windows=(Window(frozenset(range(7)), 0, 2 * 60 + 30),))  # 00:00-02:30
    assert calendar.closes_at(utc(2025, 3, 29, 23, 30)) == utc(2025, 3, 30, 1, 0)  # 03:00 CEST, not 03:30


def test_parse_hhmm():
    assert parse_hhmm("09:00") == 540
    assert parse_hhmm("24:00") == 1440
    for bad in ("9", "9:0", "25:00", "10:60", "ab:cd", "24:01"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)


def test_unknown_timezones_are_named():
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        zone("Mars/Olympus")
