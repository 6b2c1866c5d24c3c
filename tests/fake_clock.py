"""A monotonic clock for clients under test that moves only when they sleep, recording each sleep.

The HTTP clients (E-utilities, PubTator3) take ``clock=`` and ``sleep=``; handing them a
``FakeClock`` and its ``sleep`` makes rate-limit waits and retry backoffs instant and visible.
"""

from __future__ import annotations

import threading


class FakeClock:
    """A monotonic clock that only moves when the client sleeps; it records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
