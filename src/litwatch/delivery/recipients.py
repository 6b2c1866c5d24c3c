"""The per-recipient ledger (``digest_recipients``): who got each digest, who did not, and why.

An address is ``pending`` when its digest is prepared, ``sending`` once the SMTP server accepted
it at RCPT TO and just before the content goes (DATA), then ``accepted``, ``failed`` (refused: the
server's reply is kept and the address is tried again on the next try, alone) or ``uncertain``.

Uncertain is the honest answer to a question SMTP cannot answer: the content was sent, but the
process was killed or the connection broke before the server replied. The server may have the
message (mostly it does) and there is no command to ask it afterwards. An uncertain address is
never sent the digest again automatically: a missing weekly digest is better than two copies.
Each ``litwatch digest --send`` names it until someone decides: ``--resend MESSAGE-ID`` sends it
again to those addresses, ``--delivered MESSAGE-ID`` records that it arrived.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.errors import InputError
from litwatch.store import models

recipients = models.table(models.DigestRecipient)
digests = models.table(models.Digest)

TO_SEND = ("pending", "failed")
GOT_IT = ("accepted", "uncertain")  # a digest with one of these went out: its papers count as sent


@dataclass(frozen=True)
class Uncertain:
    """A digest some addresses may or may not have received."""

    group: str
    message_id: str
    addresses: tuple[str, ...]
    error: str | None


def address_of(recipient: str) -> str:
    """The bare address of ``Name <address>``."""
    return email.utils.parseaddr(recipient)[1] or recipient


def add(conn: Connection, digest_id: int, group_recipients: Iterable[str]) -> None:
    """Rows for a newly prepared digest: each of the group's addresses ``pending``."""
    rows = [{"digest_id": digest_id, "address": a, "status": "pending"}
            for a in dict.fromkeys(address_of(r) for r in group_recipients)]
    if rows:
        conn.execute(recipients.insert(), rows)


def statuses(engine: Engine, digest_id: int) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(recipients.c.address, recipients.c.status)
                                 .where(recipients.c.digest_id == digest_id).order_by(recipients.c.address)).all())


def follow_group(engine: Engine, digest_id: int, group_recipients: Sequence[str], *, add_new: bool) -> None:
    """Match a digest still owed to someone with the group as it is now: addresses removed from the
    group are not tried again; with ``add_new`` (a digest nobody got yet) new ones are added."""
    wanted = [address_of(r) for r in group_recipients]
    have = statuses(engine, digest_id)
    with engine.begin() as conn:
        gone = [a for a, status in have.items() if status in TO_SEND and a not in wanted]
        if gone:
            conn.execute(recipients.delete().where(recipients.c.digest_id == digest_id,
                                                   recipients.c.address.in_(gone)))
        if add_new:
            add(conn, digest_id, [a for a in wanted if a not in have])


def mark(engine: Engine, digest_id: int, addresses: Iterable[str] | None, status: str, *,
         error: str | None = None, accepted_at: dt.datetime | None = None,
         where: Sequence[str] | None = None) -> list[str]:
    """Set the status of ``addresses`` (None: every address) that are in a ``where`` status; returns
    the addresses changed."""
    cond = [recipients.c.digest_id == digest_id]
    if where is not None:
        cond.append(recipients.c.status.in_(where))
    if addresses is not None:
        cond.append(recipients.c.address.in_(list(addresses)))
    with engine.begin() as conn:
        changed = list(conn.execute(sa.select(recipients.c.address).where(*cond)).scalars())
        if changed:
            conn.execute(recipients.update().where(*cond).values(status=status, error=error, accepted_at=accepted_at))
    return changed


def refuse(engine: Engine, digest_id: int, refused: dict[str, str], where: Sequence[str]) -> None:
    """Each refused address ``failed`` with the server's reply to it."""
    for address, reply in refused.items():
        mark(engine, digest_id, [address], "failed", error=reply, where=where)


def open_digests(conn: Connection, group: str, pending_statuses: Sequence[str]) -> list[sa.Row[object]]:
    """The group's digests still owed to someone, oldest first: not finished, or finished but with
    an address that was refused (or not tried yet)."""
    owed = sa.exists().where(recipients.c.digest_id == digests.c.id, recipients.c.status.in_(TO_SEND))
    return list(conn.execute(sa.select(digests).where(
        digests.c.group_name == group,
        sa.or_(digests.c.status.in_(pending_statuses), sa.and_(digests.c.status == "recorded", owed)))
        .order_by(digests.c.id)).all())


def refused_lines(engine: Engine, digest_ids: Sequence[int]) -> tuple[str, ...]:
    """``address: reply`` for each address still refused by a digest others got (a digest nobody
    got is reported by its own error)."""
    if not digest_ids:
        return ()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(recipients.c.address, recipients.c.error)
                            .join(digests, digests.c.id == recipients.c.digest_id).where(
            recipients.c.digest_id.in_(digest_ids), recipients.c.status == "failed", digests.c.status == "recorded")
            .order_by(recipients.c.digest_id, recipients.c.address)).all()
    return tuple(dict.fromkeys(f"{address}: {error}" for address, error in rows))


def uncertain(engine: Engine, group_names: Sequence[str]) -> list[Uncertain]:
    """Every digest of these groups with uncertain addresses, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(digests.c.group_name, digests.c.message_id, recipients.c.address,
                                      recipients.c.error)
                            .join(digests, digests.c.id == recipients.c.digest_id)
                            .where(digests.c.group_name.in_(group_names), recipients.c.status == "uncertain")
                            .order_by(digests.c.id, recipients.c.address)).all()
    found: dict[str, Uncertain] = {}
    for group, message_id, address, error in rows:
        seen = found.get(message_id)
        found[message_id] = Uncertain(group, message_id, (seen.addresses if seen else ()) + (address,), error)
    return list(found.values())


def decide(engine: Engine, message_id: str, status: str, now: dt.datetime) -> tuple[str, tuple[str, ...]]:
    """A person's answer for an uncertain digest: ``failed`` (send it again to those addresses) or
    ``accepted`` (it arrived). Returns its group and the addresses; InputError if none is uncertain."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(digests.c.id, digests.c.group_name)
                           .where(digests.c.message_id == message_id.strip())).one_or_none()
    if row is None:
        raise InputError(f"no digest has the Message-ID {message_id!r}; fix: copy it from the line that "
                         "reported it (with its angle brackets)")
    changed = mark(engine, row.id, None, status, where=("uncertain",), error="sent again on request"
                   if status == "failed" else None, accepted_at=now if status == "accepted" else None)
    if not changed:
        raise InputError(f"digest {message_id} has no uncertain recipient: nothing to decide")
    return str(row.group_name), tuple(changed)
