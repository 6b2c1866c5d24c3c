"""The E-utilities rate limit: request starts spaced at least ``1/rate`` seconds apart per host.

NCBI allows 3 requests per second without an API key and 10 with one, per site: the limit is
shared by every client and thread of the process aimed at the same host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RATE_WITHOUT_KEY = 3.0  # requests per second NCBI allows a site without an API key
RATE_WITH_KEY = 10.0
# Starts are spaced 5% wider than 1/rate: exactly 1/3 s apart, network jitter can land a fourth
# request inside NCBI's one-second window (bench/run_requests.py saw 429s until this margin).
RATE_MARGIN = 1.05

_RATE_LOCK = threading.Lock()
_LAST_START: dict[tuple[str, object], float] = {}  # (base URL, clock) -> last request start


class RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart for one E-utilities host.

    The last start time lives in a module-level table guarded by a module-level lock, so every
    client and thread of the process aimed at the same host shares it. The table is keyed by
    the base URL *and* the clock, because start times read from different clocks cannot be
    compared (tests inject their own clock; production clients all use ``time.monotonic``).
    """

    def __init__(
        self,
        key: str,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.interval = RATE_MARGIN / rate
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> float:
        """Block until this caller may start a request; return the start time reserved."""
        slot_key = (self.key, self._clock)
        with _RATE_LOCK:
            now = self._clock()
            last = _LAST_START.get(slot_key)
            start = now if last is None else max(now, last + self.interval)
            _LAST_START[slot_key] = start
        if start > now:
            self._sleep(start - now)
        return start
