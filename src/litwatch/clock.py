"""Moments are UTC: every datetime litwatch stores, compares or hands on is aware and in UTC.

SQLite hands stored times back naive (they were written in UTC), PostgreSQL hands them back
aware: ``utc`` makes both the same. ``utcnow`` is the clock work runs on unless a test gives
another ``Clock``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already (as SQLite returns them).

    >>> utc(dt.datetime(2026, 3, 1, 9, 30)).isoformat()
    '2026-03-01T09:30:00+00:00'
    >>> utc(dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))).isoformat()
    '2026-03-01T08:30:00+00:00'
    """
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
