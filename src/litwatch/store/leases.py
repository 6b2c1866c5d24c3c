"""Leases: a lock held in the database, so two processes never run the same query or digest at once.

APScheduler's ``max_instances`` holds inside one process only. Before a saved query is fetched or
a digest is sent, whoever does it (a daemon, ``litwatch run-due``, a manual ``litwatch run``) takes
the lease ``query:<name>`` or ``digest:<group>``: one row of ``leases`` naming the holder
(host:pid:random) and when the lease expires. Taking it is a single atomic statement that reads
the same on SQLite and PostgreSQL, ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE
leases.expires_at <= now RETURNING holder``: a row comes back only to the process that got it.

While the work runs, a heartbeat thread moves the expiry forward every ``ttl / 4``; at the end the
row is deleted. A holder that crashed or was killed stops renewing: its lease expires ``ttl``
seconds after the last renewal and the next process takes the work over. A holder on this host
whose process is gone (``os.kill(pid, 0)`` finds no such process) is not waited for: its lease is
taken over at once, by a conditional UPDATE naming the dead holder, so of several processes that
see it dead exactly one gets it. Holders on other hosts cannot be asked and are waited for until
their lease expires. Expiry is judged by the clocks of the processes involved, so hosts that share
one PostgreSQL database need NTP.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from litwatch.clock import Clock, utc, utcnow
from litwatch.errors import LockHeldError, StoreError
from litwatch.store import models

log = logging.getLogger(__name__)

DEFAULT_TTL = 300.0  # seconds a crashed holder keeps others waiting
leases = models.table(models.Lease)


@dataclass
class Lease:
    """A lease this process holds; ``lost`` is set when the heartbeat found it taken over."""

    name: str
    holder: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    lost: str | None = None

    def check(self) -> None:
        """Raise LockHeldError if the lease was lost, so long work can stop between batches."""
        if self.lost:
            raise LockHeldError(self.lost)


def new_holder() -> str:
    """A holder name that says where to look: host, process id, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def holder_is_dead(holder: str | None) -> bool:
    """True when ``holder`` (host:pid:random) names a process of this host that no longer exists.

    Another host's process, or a holder name in another form, is never judged dead: only its
    lease's expiry says it is gone.
    """
    host, _, rest = (holder or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def _take_from_dead(engine: Engine, name: str, dead: str, holder: str, now: dt.datetime,
                    expires: dt.datetime) -> bool:
    """Move the lease from ``dead`` to ``holder`` in one conditional UPDATE; True for the one winner."""
    with engine.begin() as conn:
        taken = conn.execute(
            leases.update()
            .where(leases.c.name == name, leases.c.holder == dead)
            .values(holder=holder, acquired_at=now, expires_at=expires)
        ).rowcount
    return bool(taken)


def _upsert(engine: Engine, name: str, holder: str, now: dt.datetime, expires: dt.datetime) -> sa.Executable:
    values = {"name": name, "holder": holder, "acquired_at": now, "expires_at": expires}
    stmt: postgresql.Insert | sqlite.Insert
    if engine.dialect.name == "postgresql":
        stmt = postgresql.insert(leases).values(values)
    elif engine.dialect.name == "sqlite":
        stmt = sqlite.insert(leases).values(values)
    else:
        raise StoreError(f"leases need SQLite or PostgreSQL, not {engine.dialect.name}")
    return stmt.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"holder": stmt.excluded.holder, "acquired_at": stmt.excluded.acquired_at,
              "expires_at": stmt.excluded.expires_at},
        where=leases.c.expires_at <= now,
    ).returning(leases.c.holder)


def current(engine: Engine, name: str) -> Lease | None:
    """The row for ``name`` as stored (held, or expired and not yet taken over), or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
    if row is None:
        return None
    return Lease(row.name, row.holder, utc(row.acquired_at), utc(row.expires_at))


def acquire(engine: Engine, name: str, *, holder: str, ttl: float, now: dt.datetime) -> Lease:
    """Take the lease ``name`` for ``ttl`` seconds, or raise LockHeldError naming holder and expiry."""
    now = utc(now)
    expires = now + dt.timedelta(seconds=ttl)
    for _attempt in range(3):
        with engine.begin() as conn:
            got = conn.execute(_upsert(engine, name, holder, now, expires)).first()
        if got is not None:
            return Lease(name, holder, now, expires)
        other = current(engine, name)
        if other is not None and other.expires_at > now and holder_is_dead(other.holder):
            if _take_from_dead(engine, name, other.holder, holder, now, expires):
                log.warning("took lease %s over from %s: that process is no longer running on this host",
                            name, other.holder)
                return Lease(name, holder, now, expires)
            continue  # another process took it first: look again
        if other is not None and other.expires_at > now:
            raise LockHeldError(
                f"{name} is held by {other.holder} since {other.acquired_at:%Y-%m-%d %H:%M:%S} UTC, "
                f"lease valid until {other.expires_at:%Y-%m-%d %H:%M:%S} UTC; not started twice "
                "(if that process died, its lease expires then and the work is taken over)",
                holder=other.holder,
            )
    raise LockHeldError(f"{name} changed hands three times while taking it; not started")


def renew(engine: Engine, lease: Lease, *, ttl: float, now: dt.datetime) -> bool:
    """Move the expiry to ``now + ttl``; False when another process has taken the lease over."""
    expires = utc(now) + dt.timedelta(seconds=ttl)
    with engine.begin() as conn:
        updated = conn.execute(
            leases.update()
            .where(leases.c.name == lease.name, leases.c.holder == lease.holder)
            .values(expires_at=expires)
        ).rowcount
    if updated:
        lease.expires_at = expires
    return bool(updated)


def release(engine: Engine, lease: Lease) -> None:
    """Give the lease back (only if still ours: a lease taken over stays with its new holder)."""
    with engine.begin() as conn:
        conn.execute(leases.delete().where(leases.c.name == lease.name, leases.c.holder == lease.holder))


class _Heartbeat(threading.Thread):
    def __init__(self, engine: Engine, lease: Lease, ttl: float, clock: Clock, interval: float) -> None:
        super().__init__(name=f"lease-{lease.name}", daemon=True)
        self.engine, self.lease, self.ttl, self.clock, self.interval = engine, lease, ttl, clock, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                kept = renew(self.engine, self.lease, ttl=self.ttl, now=self.clock())
            except StoreError as exc:  # a passing failure: the next beat tries again before expiry
                log.warning("could not renew lease %s (valid until %s): %s", self.lease.name,
                            f"{self.lease.expires_at:%H:%M:%S}", exc)
                continue
            if not kept:
                self.lease.lost = (f"lease {self.lease.name} expired at {self.lease.expires_at:%H:%M:%S} "
                                   "UTC and another process took the work over; stopping")
                log.error(self.lease.lost)
                return


@contextmanager
def hold(
    engine: Engine,
    name: str,
    *,
    ttl: float = DEFAULT_TTL,
    clock: Clock = utcnow,
    holder: str | None = None,
    heartbeat: float | None = None,
) -> Iterator[Lease]:
    """Hold the lease ``name`` for the block, renewing it every ``heartbeat`` seconds (ttl / 4).

    Raises LockHeldError (naming the holder and the expiry) when another process holds it.
    """
    lease = acquire(engine, name, holder=holder or new_holder(), ttl=ttl, now=clock())
    beat = _Heartbeat(engine, lease, ttl, clock, heartbeat if heartbeat is not None else ttl / 4)
    beat.start()
    try:
        yield lease
    finally:
        beat.stopped.set()
        beat.join()
        try:
            release(engine, lease)
        except StoreError as exc:  # the work is done; the lease expires on its own
            log.warning("could not release lease %s (%s); it expires at %s UTC", name,
                        exc, f"{lease.expires_at:%H:%M:%S}")
