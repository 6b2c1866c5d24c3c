"""When saved queries and digests are due: standard cron read against a clock given as an argument.

A schedule is a 5-field cron expression read the way crontab(5) reads it: minute, hour, day of
month, month, day of week, where 0 and 7 are Sunday and names (``mon``..``sun``, ``jan``..``dec``)
work too. It is evaluated in a timezone: UTC for saved queries, the group's own for digests. A query
without a schedule runs daily at 05:00 UTC; a digest without one goes out on Mondays at 07:00.

Work is *due* when its schedule fired after its last attempt and not later than ``now``. However
many fire times a downtime swallowed, the work is due once, and one run covers the whole gap (the
runner searches every date its coverage ledger lacks). Across a daylight-saving change the rule is cron's: a wall-clock
time skipped by the spring jump fires at the first minute after it, a wall-clock time that happens
twice in the autumn fires once. Every function here is pure: time comes in as an argument.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError

from litwatch.clock import utc

DEFAULT_QUERY_SCHEDULE = "0 5 * * *"
DEFAULT_DIGEST_SCHEDULE = "0 7 * * 1"
UTC = dt.UTC


@dataclass(frozen=True)
class Schedule:
    """A cron expression in a timezone; build it with :func:`parse`, which checks both."""

    expr: str
    timezone: str = "UTC"
    tz: dt.tzinfo = field(default=UTC, compare=False, repr=False)

    def __str__(self) -> str:
        return self.expr if self.timezone == "UTC" else f"{self.expr} ({self.timezone})"


def problem(expr: str) -> str | None:
    """Why ``expr`` is not a usable 5-field cron expression, or None when it is one."""
    fields = expr.split()
    if len(fields) != 5:
        return (f"schedule {expr!r} has {len(fields)} field(s); a cron schedule has 5: "
                "minute hour day-of-month month day-of-week, e.g. '0 6 * * mon' (Mondays 06:00)")
    try:
        croniter.expand(expr)
    except (CroniterError, ValueError) as exc:
        return f"schedule {expr!r} is not a valid cron expression: {exc}"
    if next_fire(Schedule(expr), dt.datetime(2000, 1, 1, tzinfo=UTC)) is None:
        return f"schedule {expr!r} never fires; check the day-of-month and month fields"
    return None


def parse(expr: str | None, timezone: str = "UTC", *, default: str = DEFAULT_QUERY_SCHEDULE) -> Schedule:
    """The schedule for ``expr`` (``default`` when None) in ``timezone``; ValueError says what is wrong.

    A sixth field (seconds, croniter's extension) is accepted here so tests can drive a daemon in
    seconds; files are checked with :func:`problem`, which allows the standard five fields only.
    """
    expr = " ".join((expr or default).split())
    try:
        tz: dt.tzinfo = UTC if timezone == "UTC" else ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}; use an IANA name such as 'Europe/Madrid'") from exc
    if len(expr.split()) != 6:
        message = problem(expr)
        if message:
            raise ValueError(message)
    else:
        try:
            croniter.expand(expr)
        except (CroniterError, ValueError) as exc:
            raise ValueError(f"schedule {expr!r} is not a valid cron expression: {exc}") from exc
    return Schedule(expr, timezone, tz)


def next_fire(schedule: Schedule, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after ``after`` (aware, UTC), or None if it never fires again."""
    after = utc(after)
    it = croniter(schedule.expr, after.astimezone(schedule.tz))
    for _ in range(1000):
        try:
            fire: dt.datetime = it.get_next(dt.datetime)
        except CroniterBadDateError:
            return None
        fire_utc = fire.astimezone(UTC)
        local = fire_utc.astimezone(schedule.tz)
        if local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset():
            continue  # the second pass of a repeated autumn hour: this wall-clock time already fired
        if fire_utc > after:
            return fire_utc
    return None


def fires(schedule: Schedule, after: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
    """Every fire time in ``(after, until]``, oldest first."""
    current = next_fire(schedule, after)
    while current is not None and current <= utc(until):
        yield current
        current = next_fire(schedule, current)


def due_fire(schedule: Schedule, last: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """The first fire time after ``last`` if it is not later than ``now``: the one run to make up.

    ``last`` None (never attempted) is due at once: a new saved query fetches on the first pass,
    and returns ``now`` as its fire time.
    """
    if last is None:
        return utc(now)
    fire = next_fire(schedule, utc(last))
    return fire if fire is not None and fire <= utc(now) else None


def is_due(schedule: Schedule, last: dt.datetime | None, now: dt.datetime) -> bool:
    """True when ``schedule`` fired after ``last`` (or ``last`` is None) and not after ``now``."""
    return due_fire(schedule, last, now) is not None
