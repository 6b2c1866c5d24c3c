"""The digest ledger: each digest handed over exactly once, and finished after a crash.

The ``digests``/``digest_items`` tables and a state folder beside the outbox:

1. prepare: the items and a Message-ID are frozen in one transaction (status ``prepared``) and
   the rendered message is kept as ``<outbox>/.state/<token>.eml``;
2. hand over: the SMTP server accepts the message (or the outbox file is written);
3. accepted: a marker ``<token>.accepted`` is written at once, then the row says ``accepted``;
4. record: the row says ``recorded``: its papers count as sent.

A later call first finishes what an earlier one left: ``accepted`` (or a marker) is recorded
without sending; ``prepared`` or ``failed`` is sent again with the same Message-ID and content.
A week with nothing to send leaves an ``empty`` row so the schedule and the window move on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import logging
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.clock import utc
from litwatch.config import Settings
from litwatch.delivery.contents import DigestContents, digests, items
from litwatch.delivery.mail import Mailer, outbox_stem
from litwatch.delivery.render import compose
from litwatch.errors import MailError
from litwatch.files.atomic import write_atomically
from litwatch.files.groups import Group

log = logging.getLogger(__name__)

PENDING = ("prepared", "accepted", "failed")


def frozen_contents(conn: Connection, row: sa.Row[Any]) -> DigestContents:
    """The frozen content of a prepared digest, for sending it again when its message file is lost."""
    found: dict[str, list[int]] = {"paper": [], "overflow": [], "retraction_notice": [], "published_notice": []}
    for kind, pmid in conn.execute(sa.select(items.c.item_kind, items.c.paper_pmid)
                                   .where(items.c.digest_id == row.id).order_by(items.c.position)):
        found[kind].append(pmid)
    chosen = tuple(found["paper"])
    notices = tuple(p for p in found["retraction_notice"] if p not in chosen)
    return DigestContents(utc(row.covers_from or row.covers_to), utc(row.covers_to), chosen,
                          tuple(found["overflow"]), notices, 0, published=tuple(found["published_notice"]))


class StateFolder:
    """``<outbox>/.state``: each prepared message, and a marker once the server accepted it."""

    def __init__(self, settings: Settings) -> None:
        self.folder = Path(settings.outbox) / ".state"

    @staticmethod
    def token(message_id: str) -> str:
        return outbox_stem(message_id)

    def keep(self, message_id: str, message: EmailMessage) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{self.token(message_id)}.eml",
                             message.as_bytes(policy=email.policy.SMTP))
        except OSError as exc:
            log.warning("cannot keep the prepared digest in %s (%s); a retry renders it again",
                        self.folder, exc.strerror)

    def load(self, message_id: str) -> EmailMessage | None:
        path = self.folder / f"{self.token(message_id)}.eml"
        if not path.is_file():
            return None
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
        return parsed if isinstance(parsed, EmailMessage) else None

    def mark_accepted(self, message_id: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{self.token(message_id)}.accepted", message_id.encode())
        except OSError as exc:
            log.warning("cannot write the acceptance marker in %s: %s", self.folder, exc.strerror)

    def accepted(self, message_id: str) -> bool:
        return (self.folder / f"{self.token(message_id)}.accepted").is_file()

    def forget(self, message_id: str) -> None:
        for suffix in (".eml", ".accepted"):
            with contextlib.suppress(OSError):
                (self.folder / f"{self.token(message_id)}{suffix}").unlink()


def set_row(engine: Engine, digest_id: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(digests.update().where(digests.c.id == digest_id).values(**values))


def hand_over(engine: Engine, mailer: Mailer, state: StateFolder, digest_id: int, message_id: str,
               message: EmailMessage, attempts: int, now: dt.datetime) -> str | None:
    """Send, then mark accepted and recorded; on a refusal mark failed. Returns the error, if any."""
    try:
        mailer.send(message)
    except MailError as exc:
        set_row(engine, digest_id, status="failed", attempts=attempts + 1, error=str(exc))
        log.info("digest %s not delivered: %s", message_id, exc)
        return str(exc)
    state.mark_accepted(message_id)
    set_row(engine, digest_id, status="accepted", accepted_at=now, attempts=attempts + 1, error=None)
    set_row(engine, digest_id, status="recorded")
    state.forget(message_id)
    return None


def finish(engine: Engine, settings: Settings, group: Group, row: sa.Row[Any], mailer: Mailer,
            state: StateFolder, now: dt.datetime) -> str | None:
    """Finish a digest an earlier run left behind; returns the error when sending again failed."""
    if row.status == "accepted" or state.accepted(row.message_id):
        set_row(engine, row.id, status="recorded", accepted_at=row.accepted_at or now, error=None)
        state.forget(row.message_id)
        log.info("digest %s was accepted before; recorded without sending again", row.message_id)
        return None
    message = state.load(row.message_id)
    if message is None:
        with engine.connect() as conn:
            _view, message = compose(conn, settings, group, frozen_contents(conn, row),
                                     message_id=row.message_id, created=utc(row.created_at))
    if tuple(row.recipients.split("\n")) != group.recipients:
        del message["To"]
        message["To"] = ", ".join(group.recipients)
        set_row(engine, row.id, recipients="\n".join(group.recipients))
    return hand_over(engine, mailer, state, row.id, row.message_id, message, row.attempts, now)


def prepare(engine: Engine, group: Group, contents: DigestContents, subject: str, message_id: str, now: dt.datetime,
             status: str) -> int:
    """Freeze a digest's items and Message-ID in one transaction; returns its id."""
    with engine.begin() as conn:
        digest_id = conn.execute(digests.insert().values(
            group_name=group.name, message_id=message_id, status=status, subject=subject,
            recipients="\n".join(group.recipients), created_at=now, covers_from=contents.covers_from,
            covers_to=contents.covers_to, paper_count=len(contents.papers), overflow_count=len(contents.overflow),
            attempts=0).returning(digests.c.id)).scalar_one()
        rows = [(p, "paper") for p in contents.papers] + [(p, "overflow") for p in contents.overflow] + [
            (p, "retraction_notice") for p in contents.notices + contents.already_retracted] + [
            (p, "published_notice") for p in contents.published]
        if rows:
            conn.execute(items.insert(), [{"digest_id": digest_id, "paper_pmid": p, "item_kind": kind,
                                           "group_name": group.name, "position": i}
                                          for i, (p, kind) in enumerate(rows)])
    return int(digest_id)


def count_notices(engine: Engine, digest_id: int) -> int:
    with engine.connect() as conn:
        row = conn.execute(sa.select(digests).where(digests.c.id == digest_id)).one()
        return len(frozen_contents(conn, row).notices)


def pending_digests(engine: Engine, group_names: Sequence[str]) -> dict[str, int]:
    """How many digests wait to be sent again (or recorded), per group."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(digests.c.group_name, sa.func.count()).where(
            digests.c.group_name.in_(group_names), digests.c.status.in_(PENDING))
            .group_by(digests.c.group_name)).all()
    return {name: count for name, count in rows}
