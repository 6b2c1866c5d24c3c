"""Leases in the database: one holder at a time on SQLite and PostgreSQL, and a dead holder's lease expires."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.clock import utcnow
from litwatch.errors import LockHeldError
from litwatch.store import leases

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)
SRC = Path(__file__).resolve().parents[1] / "src"


class FakeClock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT name, holder FROM leases ORDER BY name"))]


def test_a_held_lease_refuses_a_second_holder_naming_the_first_and_its_expiry(engine: Engine) -> None:
    first = leases.acquire(engine, "query:migraine", holder="alpha:1:aa", ttl=300, now=T0)
    assert first.expires_at == T0 + dt.timedelta(seconds=300)
    with pytest.raises(LockHeldError) as refused:
        leases.acquire(engine, "query:migraine", holder="beta:2:bb", ttl=300, now=T0 + dt.timedelta(seconds=299))
    assert "query:migraine is held by alpha:1:aa since 2026-11-23 05:00:00 UTC" in str(refused.value)
    assert "valid until 2026-11-23 05:05:00 UTC" in str(refused.value)
    other = leases.acquire(engine, "digest:headache-lab", holder="beta:2:bb", ttl=300, now=T0)  # another name
    leases.release(engine, first)
    second = leases.acquire(engine, "query:migraine", holder="beta:2:bb", ttl=300, now=T0 + dt.timedelta(seconds=1))
    assert rows(engine) == [("digest:headache-lab", "beta:2:bb"), ("query:migraine", "beta:2:bb")]
    leases.release(engine, second)
    leases.release(engine, other)
    assert rows(engine) == []


def test_a_crashed_holders_lease_expires_and_is_taken_over(engine: Engine) -> None:
    crashed = leases.acquire(engine, "query:migraine", holder="dead:1:aa", ttl=60, now=T0)  # never released
    with pytest.raises(LockHeldError, match="held by dead:1:aa"):
        leases.acquire(engine, "query:migraine", holder="live:2:bb", ttl=60, now=T0 + dt.timedelta(seconds=59))
    taken = leases.acquire(engine, "query:migraine", holder="live:2:bb", ttl=60, now=T0 + dt.timedelta(seconds=60))
    assert taken.holder == "live:2:bb"
    # the old holder, if it was only stalled, finds out and cannot disturb the new one
    assert not leases.renew(engine, crashed, ttl=60, now=T0 + dt.timedelta(seconds=61))
    leases.release(engine, crashed)
    current = leases.current(engine, "query:migraine")
    assert current is not None and current.holder == "live:2:bb"
    assert current.expires_at == T0 + dt.timedelta(seconds=120)


def test_hold_renews_while_the_work_runs_and_releases_at_the_end(engine: Engine) -> None:
    clock = FakeClock()
    with leases.hold(engine, "query:migraine", ttl=60, clock=clock, heartbeat=0.01) as lease:
        clock.advance(600)  # ten minutes of work: far past the first expiry
        deadline = time.monotonic() + 5
        while lease.expires_at < clock.now and time.monotonic() < deadline:
            time.sleep(0.01)
        stored = leases.current(engine, "query:migraine")
        assert stored is not None and stored.expires_at > clock.now  # the heartbeat kept it alive
        with pytest.raises(LockHeldError):
            leases.acquire(engine, "query:migraine", holder="other:9:cc", ttl=60, now=clock.now)
    assert leases.current(engine, "query:migraine") is None


def test_a_holder_that_lost_its_lease_learns_it_between_batches(engine: Engine) -> None:
    clock = FakeClock()
    with leases.hold(engine, "query:migraine", ttl=60, clock=clock, heartbeat=3600) as lease:
        thief = leases.acquire(engine, "query:migraine", holder="other:9:cc", ttl=60, now=T0 + dt.timedelta(seconds=61))
        clock.advance(62)
        assert not leases.renew(engine, lease, ttl=60, now=clock.now)
        lease.lost = "lease query:migraine was taken over"
        with pytest.raises(LockHeldError, match="taken over"):
            lease.check()
    assert leases.current(engine, "query:migraine") == thief  # leaving did not release the thief's lease


def test_many_processes_racing_for_one_lease_give_it_to_exactly_one(engine: Engine) -> None:
    start = threading.Barrier(8)
    winners: list[str] = []
    refused: list[str] = []

    def contend(n: int) -> None:
        start.wait()
        try:
            winners.append(leases.acquire(engine, "digest:headache-lab", holder=f"h{n}", ttl=60, now=T0).holder)
        except LockHeldError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(refused) == 7
    assert all(f"held by {winners[0]}" in message for message in refused)


HOLDER = textwrap.dedent("""
    import sys, time
    from litwatch.store import engine as db
    from litwatch.store import leases
    engine = db.make_engine(sys.argv[1])
    with leases.hold(engine, "query:migraine", ttl=float(sys.argv[2])):
        print("holding", flush=True)
        time.sleep(600)
""")


def test_a_killed_process_on_this_host_has_its_lease_taken_over_at_once(
    engine: Engine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ttl = 300.0  # the old behaviour waited this long
    env = dict(os.environ, PYTHONPATH=str(SRC))
    with subprocess.Popen([sys.executable, "-c", HOLDER, database_url, str(ttl)], env=env,
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
            with pytest.raises(LockHeldError, match=rf":{holder.pid}:"):  # alive: refused
                leases.acquire(engine, "query:migraine", holder="successor", ttl=ttl, now=utcnow())
        finally:
            holder.send_signal(signal.SIGKILL)
    dead = rows(engine)[0][1]
    assert dead.startswith(f"{socket.gethostname()}:{holder.pid}:") and leases.holder_is_dead(dead)
    with caplog.at_level(logging.WARNING, logger="litwatch.store.leases"):
        taken = leases.acquire(engine, "query:migraine", holder="successor", ttl=ttl, now=utcnow())
    assert taken.holder == "successor" and rows(engine) == [("query:migraine", "successor")]
    assert f"took lease query:migraine over from {dead}: that process is no longer running" in caplog.text


def test_a_holder_on_another_host_is_waited_for_until_its_lease_expires(engine: Engine) -> None:
    leases.acquire(engine, "query:migraine", holder="elsewhere.example.org:1:aa", ttl=60, now=T0)
    assert not leases.holder_is_dead("elsewhere.example.org:1:aa")
    with pytest.raises(LockHeldError, match="held by elsewhere.example.org:1:aa"):
        leases.acquire(engine, "query:migraine", holder="successor", ttl=60, now=T0 + dt.timedelta(seconds=59))
    taken = leases.acquire(engine, "query:migraine", holder="successor", ttl=60, now=T0 + dt.timedelta(seconds=60))
    assert taken.holder == "successor"


def test_of_many_processes_that_see_a_dead_holder_exactly_one_takes_its_lease(engine: Engine) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid of this host that is no longer running
    dead = f"{socket.gethostname()}:{gone.pid}:dd"
    leases.acquire(engine, "query:migraine", holder=dead, ttl=300, now=utcnow())
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def contend(i: int) -> None:
        barrier.wait()
        try:
            outcomes.append(leases.acquire(engine, "query:migraine", holder=f"h{i}", ttl=300, now=utcnow()).holder)
        except LockHeldError:
            outcomes.append("refused")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1 and rows(engine) == [("query:migraine", winners[0])]
