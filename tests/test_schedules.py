"""Due logic: standard cron read against a clock the tests move (days, weeks, a downtime, DST)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from litwatch.scheduling import schedules
from litwatch.scheduling.schedules import Schedule, parse

UTC = dt.UTC


def at(text: str, tz: str = "UTC") -> dt.datetime:
    """An aware moment from 'YYYY-MM-DD HH:MM' in ``tz``, as UTC."""
    zone = parse("* * * * *", tz).tz
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def drive(schedule: Schedule, start: dt.datetime, end: dt.datetime, step: dt.timedelta,
          last: dt.datetime | None) -> list[dt.datetime]:
    """Move a fake clock from ``start`` to ``end``; run whenever due; return when it ran."""
    ran = []
    now = start
    while now <= end:
        if schedules.is_due(schedule, last, now):
            ran.append(now)
            last = now
        now += step
    return ran


@pytest.mark.parametrize(
    ("expr", "weekday"),
    [("0 7 * * 1", "Monday"), ("0 7 * * mon", "Monday"), ("0 7 * * 0", "Sunday"), ("0 7 * * 7", "Sunday"),
     ("0 7 * * 5", "Friday"), ("0 7 * * sat", "Saturday")],
)
def test_weekdays_are_numbered_as_in_crontab(expr: str, weekday: str) -> None:
    fire = schedules.next_fire(parse(expr), at("2026-11-23 12:00"))  # a Monday noon
    assert fire is not None and fire.strftime("%A %H:%M") == f"{weekday} 07:00"


def test_a_daily_schedule_runs_once_a_day_at_its_time_across_days() -> None:
    daily = parse(None)  # a query without a schedule: daily at 05:00 UTC
    assert daily.expr == schedules.DEFAULT_QUERY_SCHEDULE == "0 5 * * *"
    ran = drive(daily, at("2026-11-20 06:00"), at("2026-11-23 23:45"), dt.timedelta(minutes=15),
                last=at("2026-11-20 05:00"))
    assert ran == [at("2026-11-21 05:00"), at("2026-11-22 05:00"), at("2026-11-23 05:00")]


def test_a_weekly_schedule_runs_once_a_week_across_weeks() -> None:
    weekly = parse("30 6 * * mon")
    ran = drive(weekly, at("2026-11-02 07:00"), at("2026-12-06 23:00"), dt.timedelta(hours=1),
                last=at("2026-11-02 06:30"))
    assert [r.strftime("%a %d %H:%M") for r in ran] == [
        "Mon 09 07:00", "Mon 16 07:00", "Mon 23 07:00", "Mon 30 07:00"]  # first tick after each 06:30


def test_three_weeks_of_downtime_make_a_job_due_once_not_three_times_and_not_never() -> None:
    daily = parse("0 5 * * *")
    last = at("2026-11-02 05:00")
    back = at("2026-11-23 10:17")
    assert len(list(schedules.fires(daily, last, back))) == 21  # the fire times the downtime swallowed
    assert schedules.due_fire(daily, last, back) == at("2026-11-03 05:00")  # the first one missed
    assert drive(daily, back, at("2026-11-24 04:59"), dt.timedelta(minutes=1), last) == [back]


def test_never_run_is_due_at_once_and_a_run_after_the_fire_time_is_not_due_again() -> None:
    weekly = parse("0 7 * * 1")
    now = at("2026-11-25 10:00")  # a Wednesday
    assert schedules.is_due(weekly, None, now)
    assert not schedules.is_due(weekly, at("2026-11-23 07:00:04"), now)
    assert schedules.is_due(weekly, at("2026-11-23 06:59"), now)


def test_a_digest_at_seven_local_time_stays_at_seven_across_the_spring_change() -> None:
    madrid = parse(schedules.DEFAULT_DIGEST_SCHEDULE, "Europe/Madrid")  # DST starts Sun 2026-03-29
    got = list(schedules.fires(madrid, at("2026-03-16 12:00"), at("2026-04-07 00:00")))
    assert [f.strftime("%d %H:%M") for f in got] == ["23 06:00", "30 05:00", "06 05:00"]  # in UTC
    assert {f.astimezone(madrid.tz).strftime("%A %H:%M") for f in got} == {"Monday 07:00"}
    ran = drive(madrid, at("2026-03-23 06:30"), at("2026-04-01 00:00"), dt.timedelta(minutes=15),
                last=at("2026-03-23 06:00"))
    assert ran == [at("2026-03-30 05:00")]  # once, at 07:00 in Madrid


def test_a_time_skipped_in_spring_fires_after_the_jump_and_a_repeated_time_fires_once() -> None:
    night = parse("30 2 * * *", "Europe/Madrid")
    spring = list(schedules.fires(night, at("2026-03-28 12:00"), at("2026-03-30 12:00")))
    assert [f.astimezone(night.tz).strftime("%d %H:%M %Z") for f in spring] == [
        "29 03:00 CEST",  # 02:30 does not exist that night: cron runs it when the clock jumps
        "30 02:30 CEST"]
    autumn = list(schedules.fires(night, at("2026-10-24 12:00"), at("2026-10-26 12:00")))
    assert [f.astimezone(night.tz).strftime("%d %H:%M %Z") for f in autumn] == [
        "25 02:30 CEST",  # 02:30 happens twice that night (CEST, then CET): it fires the first time only
        "26 02:30 CET"]
    ran = drive(night, at("2026-10-24 23:00"), at("2026-10-25 06:00"), dt.timedelta(minutes=5),
                last=at("2026-10-24 00:30"))
    assert ran == [at("2026-10-25 00:30")]


def test_naive_times_from_sqlite_are_read_as_utc() -> None:
    daily = parse("0 5 * * *")
    assert not schedules.is_due(daily, dt.datetime(2026, 11, 23, 5, 0, 1), at("2026-11-23 18:00"))
    assert schedules.is_due(daily, dt.datetime(2026, 11, 22, 5, 0, 1), at("2026-11-23 05:00"))


@pytest.mark.parametrize(
    ("expr", "says"),
    [("0 5 * *", "has 4 field(s)"), ("61 5 * * *", "not a valid cron"), ("0 5 * * * *", "has 6 field(s)"),
     ("0 0 31 2 *", "never fires"), ("@daily", "has 1 field(s)"), ("0 5 * * funday", "not a valid cron")],
)
def test_a_bad_schedule_is_explained(expr: str, says: str) -> None:
    message = schedules.problem(expr)
    assert message is not None and says in message and expr in message
    if len(expr.split()) != 6:  # six fields (seconds) are allowed in code, see the last test
        with pytest.raises(ValueError, match=re.escape(says)):
            parse(expr)


def test_a_good_schedule_has_no_problem_and_an_unknown_timezone_is_refused() -> None:
    assert schedules.problem("0 6 * * mon-fri") is None
    assert str(parse("0 7 * * 1", "Europe/Madrid")) == "0 7 * * 1 (Europe/Madrid)"
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        parse("0 7 * * 1", "Mars/Olympus")


def test_a_seconds_field_is_accepted_in_code_for_fast_tests_of_the_daemon() -> None:
    every3 = parse("* * * * * */3")
    assert schedules.next_fire(every3, at("2026-11-23 10:00")) == at("2026-11-23 10:00") + dt.timedelta(seconds=3)
