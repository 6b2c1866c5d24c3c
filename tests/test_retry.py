"""The one retry policy that E-utilities requests and the daemon's database wait share."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from litwatch.retry import Backoff, Stopped


class Flaky(Exception):
    def __init__(self, told: float | None = None) -> None:
        super().__init__("flaky")
        self.told = told


def failing(times: int, told: float | None = None) -> tuple[list[int], Callable[[int], str]]:
    calls: list[int] = []

    def func(attempt: int) -> str:
        calls.append(attempt)
        if len(calls) <= times:
            raise Flaky(told)
        return "answer"

    return calls, func


def test_waits_double_up_to_the_most_then_the_answer_comes_back() -> None:
    calls, func = failing(4)
    sleeps: list[float] = []
    retried: list[tuple[int, float]] = []
    result = Backoff(first=1.0, most=5.0).run(
        func, retryable=lambda e: isinstance(e, Flaky), sleep=sleeps.append,
        on_retry=lambda n, _e, delay: retried.append((n, delay)),
    )
    assert result == "answer" and calls == [1, 2, 3, 4, 5]
    assert sleeps == [1.0, 2.0, 4.0, 5.0] and retried == [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0)]


def test_a_wait_the_failure_names_wins_over_the_backoff() -> None:
    _, func = failing(2, told=7.0)
    sleeps: list[float] = []
    Backoff(first=1.0).run(func, retryable=lambda e: True, told=lambda e: getattr(e, "told", None),
                           sleep=sleeps.append)
    assert sleeps == [7.0, 7.0]


def test_jitter_adds_at_most_its_fraction() -> None:
    waits = [Backoff(first=2.0, jitter=0.1).wait(2) for _ in range(50)]
    assert all(4.0 <= w <= 4.4 for w in waits) and len(set(waits)) > 1


def test_attempts_run_out_and_the_last_failure_is_raised() -> None:
    calls, func = failing(10)
    with pytest.raises(Flaky):
        Backoff(attempts=3).run(func, retryable=lambda e: True, sleep=lambda _s: None)
    assert calls == [1, 2, 3]


def test_a_failure_not_worth_retrying_is_raised_at_once() -> None:
    calls, func = failing(1)
    with pytest.raises(Flaky):
        Backoff().run(func, retryable=lambda e: False, sleep=lambda _s: None)
    assert calls == [1]


def test_stopping_ends_the_wait() -> None:
    stopping = threading.Event()
    calls, func = failing(100)
    threading.Timer(0.1, stopping.set).start()
    with pytest.raises(Stopped):
        Backoff(first=30.0).run(func, retryable=lambda e: True, stopping=stopping)
    assert calls == [1]
    with pytest.raises(Stopped):  # already stopping: nothing is tried
        Backoff().run(func, retryable=lambda e: True, stopping=stopping)
    assert calls == [1]
