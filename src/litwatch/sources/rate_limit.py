"""Rate limits: request starts spaced at least ``1/rate`` seconds apart, per budget, however many share it.

NCBI allows 3 requests per second from one IP address without an API key and 10 per key with
one, and answers 429 past that. So a budget is shared:

- by every client and thread of a process aimed at the same host (:class:`RateLimiter` alone:
  a table under a lock; PubTator3 and Europe PMC use no more);
- by every litwatch process on the machine (:class:`FileBudget`): a small file under
  ``fcntl.flock`` holding the last start reserved per budget (``LITWATCH_RATE_FILE``, default
  ``~/.cache/litwatch/ncbi-rate``), so two ``run-due`` and a ``schedule`` together stay at 3/s;
- with an API key and a PostgreSQL store, by every host using the key: a row locked with
  ``SELECT ... FOR UPDATE`` and read against the database's clock (``store/rate_budget.py``).

A :class:`Budget` reserves the next start and says how long to wait for it; the caller sleeps
outside its lock. pyrate-limiter was considered: its SQLite bucket needs filelock and a table it
creates itself, its Postgres bucket a psycopg_pool and a table outside our migrations, and
neither takes the injected clock every test of the limit runs on; a reservation in one locked
file or row is about twenty lines.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from litwatch.errors import ConfigError

RATE_WITHOUT_KEY = 3.0  # requests per second NCBI allows a site without an API key
RATE_WITH_KEY = 10.0
# Starts are spaced 5% wider than 1/rate: exactly 1/3 s apart, network jitter can land a fourth
# request inside NCBI's one-second window (bench/run_requests.py saw 429s until this margin).
RATE_MARGIN = 1.05
STALE = 300.0  # seconds; a reservation further ahead than this was made by a clock since reset
RATE_FILE_SETTING = "LITWATCH_RATE_FILE"

_RATE_LOCK = threading.Lock()
_LAST_START: dict[tuple[str, object], float] = {}  # (base URL, clock) -> last request start


class Budget(Protocol):
    """Where the last start of each budget is kept for everyone who shares it."""

    def reserve(self, key: str, interval: float) -> float:
        """Reserve the next start of budget ``key`` at least ``interval`` s after the last one;
        return the seconds to wait until it."""
        ...


def budget_key(base_url: str, api_key: str | None) -> str:
    """The budget a client spends: its host's, or its API key's (only a digest of the key is kept)."""
    if not api_key:
        return f"{base_url} without a key"
    return f"{base_url} key {hashlib.sha256(api_key.encode()).hexdigest()[:16]}"


def next_start(last: object, now: float, interval: float) -> float:
    """The start to reserve after ``last`` (None, garbage or a reset clock's value: now)."""
    if not isinstance(last, int | float) or last > now + STALE:
        return now
    return max(now, float(last) + interval)


class FileBudget:
    """Budgets shared by the processes of one machine: a JSON table ``{key: last start}`` in a
    file locked with ``flock`` while it is read and rewritten.

    Start times come from ``clock``, which must read the same in every process: ``time.monotonic``
    does on Linux and macOS (time since boot; a reboot's reset is caught by ``STALE``).
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock

    def reserve(self, key: str, interval: float) -> float:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"{RATE_FILE_SETTING} {self.path}: cannot open the shared NCBI rate budget ({exc.strerror}); "
                "set it to a file litwatch may write"
            ) from exc
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            try:
                table = json.loads(handle.read() or b"{}")
            except ValueError:  # a write cut off by a crash: start afresh
                table = {}
            table = table if isinstance(table, dict) else {}
            now = self._clock()
            start = next_start(table.get(key), now, interval)
            kept = {k: v for k, v in table.items() if isinstance(v, int | float) and now - 60.0 < v <= now + STALE}
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(kept | {key: start}).encode())
        return start - now


class RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart for one host (or one budget).

    Without a ``budget`` the last start time lives in a module-level table guarded by a
    module-level lock, so every client and thread of the process aimed at the same host shares
    it. The table is keyed by the base URL *and* the clock, because start times read from
    different clocks cannot be compared (tests inject their own clock; production clients all
    use ``time.monotonic``). With a ``budget`` the reservation is the budget's (other processes,
    other hosts), under ``budget_key`` (default: the URL).
    """

    def __init__(
        self,
        key: str,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        budget: Budget | None = None,
        budget_key: str | None = None,
    ) -> None:
        self.key = key
        self.interval = RATE_MARGIN / rate
        self._clock = clock
        self._sleep = sleep
        self._budget = budget
        self._budget_key = budget_key or key

    def wait(self) -> float:
        """Block until this caller may start a request; return the start time reserved."""
        if self._budget is not None:
            delay = self._budget.reserve(self._budget_key, self.interval)
            now = self._clock()
            if delay > 0:
                self._sleep(delay)
            return now + max(delay, 0.0)
        slot_key = (self.key, self._clock)
        with _RATE_LOCK:
            now = self._clock()
            start = _LAST_START[slot_key] = next_start(_LAST_START.get(slot_key), now, self.interval)
        if start > now:
            self._sleep(start - now)
        return start
