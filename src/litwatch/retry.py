"""The one retry policy: exponential backoff, a server's own wait honoured, built on tenacity.

The E-utilities client (``sources/eutils.py``: a few attempts, jitter, Retry-After) and the
daemon's wait for its database (``scheduling/daemon.py``: until it answers or the daemon stops)
both run their attempts through :meth:`Backoff.run`, so what "retry with backoff" means is said
once. The n-th wait is ``first * 2**(n-1)`` seconds, at most ``most``, plus up to ``jitter`` of
itself at random (so clients that failed together do not come back together), unless the failure
itself says how long to wait (``told``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


class Stopped(Exception):
    """The ``stopping`` event was set before or while waiting for the next attempt."""


@dataclass(frozen=True)
class Backoff:
    """How to retry: ``attempts`` in all (None: until it works), waits from ``first`` doubling to ``most``."""

    first: float = 1.0
    most: float = 60.0
    attempts: int | None = None
    jitter: float = 0.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.most, self.first * 2.0 ** (attempt - 1))
        return base + random.uniform(0.0, self.jitter * base) if self.jitter else base

    def run(
        self,
        func: Callable[[int], T],
        *,
        retryable: Callable[[BaseException], bool],
        told: Callable[[BaseException], float | None] = lambda _exc: None,
        on_retry: Callable[[int, BaseException, float], None] = lambda _n, _exc, _delay: None,
        sleep: Callable[[float], None] = time.sleep,
        stopping: threading.Event | None = None,
    ) -> T:
        """``func(attempt)`` until it returns; its last exception when attempts run out or
        ``retryable`` says asking again would not help.

        ``on_retry(attempt, exc, delay)`` is called before each wait. With ``stopping``, waits end
        early when it is set, raising :class:`Stopped` (as does a set event before the first try).
        """

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            seconds = told(exc) if exc is not None else None
            return self.wait(state.attempt_number) if seconds is None else seconds

        def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            exc = state.outcome.exception()
            assert exc is not None
            on_retry(state.attempt_number, exc, state.next_action.sleep)

        def pause(seconds: float) -> None:
            if stopping is None:
                sleep(seconds)
            elif stopping.wait(seconds):
                raise Stopped

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts) if self.attempts is not None else tenacity.stop_never,
            wait=wait,
            retry=tenacity.retry_if_exception(retryable),
            before_sleep=before_sleep,
            sleep=pause,
            reraise=True,
        )
        if stopping is not None and stopping.is_set():
            raise Stopped
        for attempt in retrying:
            with attempt:
                return func(attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity returns the result or raises")
