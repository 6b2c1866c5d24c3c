"""The digest ledger: each digest handed over once to each recipient, and finished after a crash.

The ``digests``/``digest_items`` tables, ``digest_recipients`` (recipients.py) and a state folder
beside the outbox:

1. prepare: the items, a Message-ID and each recipient (``pending``) are frozen in one
   transaction (status ``prepared``) and the message is kept as ``<outbox>/.state/<token>.eml``;
2. hand over: the recipients the server accepts at RCPT TO are marked ``sending``, then the
   content goes (DATA); recipients it refuses do not stop the others;
3. accepted: when the server says 250, a marker ``<token>.accepted`` is written at once, then each
   recipient's row (``accepted``, or ``failed`` with the server's reply), then the digest's;
4. record: the digest says ``recorded``: its papers count as sent. A digest nobody got says
   ``failed``.

A later call first finishes what an earlier one left, and sends it to the addresses that still
lack it, alone (same Message-ID, same content): a marker (or an ``accepted`` row) turns
``sending`` into ``accepted``; without one, ``sending`` means the process died while the server
was taking the message, and becomes ``uncertain``: never sent again unasked (recipients.py).
A week with nothing to send leaves an ``empty`` row so the schedule and the window move on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.clock import utc
from litwatch.config import Settings
from litwatch.delivery import recipients
from litwatch.delivery.contents import DigestContents, digests, items, older_papers
from litwatch.delivery.mail import Mailer, outbox_stem
from litwatch.delivery.render import compose
from litwatch.errors import MailError, MailUncertain
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

    def clear_mark(self, message_id: str) -> None:
        """Drop the marker once the ledger's rows say who got the message (before any retry)."""
        with contextlib.suppress(OSError):
            (self.folder / f"{self.token(message_id)}.accepted").unlink()

    def forget(self, message_id: str) -> None:
        for suffix in (".eml", ".accepted"):
            with contextlib.suppress(OSError):
                (self.folder / f"{self.token(message_id)}{suffix}").unlink()


STOPPED = "the process stopped while the server was taking the message"


@dataclass(frozen=True)
class Outcome:
    """What handing a digest over did: ``error`` when nobody has it (it is sent again whole), and
    the addresses whose copy became uncertain."""

    error: str | None = None
    uncertain: tuple[str, ...] = ()


def set_row(engine: Engine, digest_id: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(digests.update().where(digests.c.id == digest_id).values(**values))


def settle(engine: Engine, state: StateFolder, digest_id: int, message_id: str, attempts: int, now: dt.datetime,
           error: str | None) -> Outcome:
    """The digest's row from its recipients: recorded once anyone has it (accepted, then recorded),
    else failed; its kept message is forgotten once nobody is owed a copy."""
    have = recipients.statuses(engine, digest_id)
    if any(status in recipients.GOT_IT for status in have.values()):
        set_row(engine, digest_id, status="accepted", accepted_at=sa.func.coalesce(digests.c.accepted_at, now),
                attempts=attempts, error=error)
        set_row(engine, digest_id, status="recorded")
        outcome = Outcome()
    else:
        set_row(engine, digest_id, status="failed", attempts=attempts, error=error)
        log.info("digest %s not delivered: %s", message_id, error)
        outcome = Outcome(error or "no recipient accepted it")
    if not any(status in (*recipients.TO_SEND, "sending") for status in have.values()):
        state.forget(message_id)
    return outcome


def hand_over(engine: Engine, mailer: Mailer, state: StateFolder, digest_id: int, message_id: str,
              message: EmailMessage, attempts: int, now: dt.datetime) -> Outcome:
    """Send to the addresses still owed a copy, marking them ``sending`` before the content goes,
    then accepted, failed or uncertain; then settle the digest's row."""
    owed = [a for a, status in recipients.statuses(engine, digest_id).items() if status in recipients.TO_SEND]

    def before_data(accepted: Sequence[str]) -> None:
        recipients.mark(engine, digest_id, accepted, "sending", where=recipients.TO_SEND)

    try:
        handed = mailer.send(message, owed, before_data)
    except MailUncertain as exc:
        newly = recipients.mark(engine, digest_id, None, "uncertain", error=str(exc), where=("sending",))
        settle(engine, state, digest_id, message_id, attempts + 1, now, str(exc))
        return Outcome(None, tuple(newly))
    except MailError as exc:
        recipients.mark(engine, digest_id, owed, "failed", error=str(exc), where=(*recipients.TO_SEND, "sending"))
        return settle(engine, state, digest_id, message_id, attempts + 1, now, str(exc))
    state.mark_accepted(message_id)
    recipients.mark(engine, digest_id, handed.accepted, "accepted", accepted_at=now, where=("sending",))
    recipients.refuse(engine, digest_id, handed.refused, where=recipients.TO_SEND)
    state.clear_mark(message_id)
    refused = "; ".join(f"{a}: {why}" for a, why in handed.refused.items()) or None
    return settle(engine, state, digest_id, message_id, attempts + 1, now, refused and f"refused {refused}")


def finish(engine: Engine, settings: Settings, group: Group, row: sa.Row[Any], mailer: Mailer,
           state: StateFolder, now: dt.datetime) -> Outcome:
    """Finish a digest an earlier run left, or send it to the addresses it still owes a copy."""
    have = recipients.statuses(engine, row.id)
    if row.status == "accepted" or state.accepted(row.message_id):
        if not have:  # accepted before the per-recipient ledger existed: everyone got it
            set_row(engine, row.id, status="recorded", accepted_at=row.accepted_at or now, error=None)
            state.forget(row.message_id)
            return Outcome()
        recipients.mark(engine, row.id, None, "accepted", accepted_at=now, where=("sending",))
        state.clear_mark(row.message_id)
        log.info("digest %s was accepted before; recorded without sending again", row.message_id)
    newly = tuple(recipients.mark(engine, row.id, None, "uncertain", error=STOPPED, where=("sending",)))
    recipients.follow_group(engine, row.id, group.recipients, add_new=row.status in ("prepared", "failed"))
    if not any(status in recipients.TO_SEND for status in recipients.statuses(engine, row.id).values()):
        return replace(settle(engine, state, row.id, row.message_id, row.attempts, now, row.error), uncertain=newly)
    message = state.load(row.message_id)
    if message is None:
        with engine.connect() as conn:
            _view, message = compose(conn, settings, group, frozen_contents(conn, row),
                                     message_id=row.message_id, created=utc(row.created_at))
    if tuple(row.recipients.split("\n")) != group.recipients:
        del message["To"]
        message["To"] = ", ".join(group.recipients)
        set_row(engine, row.id, recipients="\n".join(group.recipients))
    outcome = hand_over(engine, mailer, state, row.id, row.message_id, message, row.attempts, now)
    return replace(outcome, uncertain=newly + outcome.uncertain)


def prepare(engine: Engine, group: Group, contents: DigestContents, subject: str, message_id: str, now: dt.datetime,
             status: str) -> int:
    """Freeze a digest's items and Message-ID in one transaction; returns its id."""
    with engine.begin() as conn:
        digest_id = conn.execute(digests.insert().values(
            group_name=group.name, message_id=message_id, status=status, subject=subject,
            recipients="\n".join(group.recipients), created_at=now, covers_from=contents.covers_from,
            covers_to=contents.covers_to, paper_count=len(contents.papers), overflow_count=len(contents.overflow),
            attempts=0).returning(digests.c.id)).scalar_one()
        if status == "prepared":
            recipients.add(conn, digest_id, group.recipients)
        rows = [(p, "paper") for p in contents.papers] + [(p, "overflow") for p in contents.overflow] + [
            (p, "retraction_notice") for p in contents.notices + contents.already_retracted] + [
            (p, "published_notice") for p in contents.published]
        if rows:
            conn.execute(items.insert(), [{"digest_id": digest_id, "paper_pmid": p, "item_kind": kind,
                                           "group_name": group.name, "position": i}
                                          for i, (p, kind) in enumerate(rows)])
    return int(digest_id)


def held_contents(engine: Engine, group: Group, digest_id: int) -> DigestContents:
    """What a digest an earlier run left holds, its older papers told apart (for its receipt)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(digests).where(digests.c.id == digest_id)).one()
        contents = frozen_contents(conn, row)
        older = older_papers(conn, group, contents.papers, contents.covers_from)
    return replace(contents, older=tuple(p for p in contents.papers if p in older))


def pending_digests(engine: Engine, group_names: Sequence[str]) -> dict[str, int]:
    """How many digests wait to be sent again (to everyone or to a refused address), per group."""
    with engine.connect() as conn:
        counts = {name: len(recipients.open_digests(conn, name, PENDING)) for name in group_names}
    return {name: n for name, n in counts.items() if n}
