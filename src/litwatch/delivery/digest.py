"""Digests for research groups: send a group's next digest, or preview it.

The stage in modules, each one job: contents.py chooses what is new for a group, view.py reads
and shapes it for a reader, render.py draws the templates into a message, ledger.py hands it
over exactly once (and finishes what a crash left), mail.py talks to the SMTP server or
the outbox. Whether a digest is due, and its lease, belong to the scheduler's digest job
(litwatch.scheduling.jobs), which ``litwatch digest --send``, ``run-due`` and ``schedule`` run.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from litwatch.clock import utc
from litwatch.config import Settings
from litwatch.delivery import ledger, recipients
from litwatch.delivery.contents import DigestContents
from litwatch.delivery.contents import (
    plan_digest as plan_digest,  # for `litwatch digest`'s status table
)
from litwatch.delivery.ledger import (
    pending_digests as pending_digests,  # for `litwatch digest`'s status table
)
from litwatch.delivery.mail import Mailer, mailer_from_settings
from litwatch.delivery.render import compose
from litwatch.errors import InputError
from litwatch.files.atomic import write_atomically
from litwatch.files.groups import Group, check_recipient
from litwatch.scheduling import schedules


@dataclass
class DigestReceipt:
    """What one call did for one group. ``status``: sent | nothing-new | failed | uncertain, or
    retried when it only sent again what earlier runs left (the next digest waits for its schedule)."""

    group: str
    status: str
    papers: int  # all the papers listed, older ones included
    overflow: int
    retraction_notices: int
    message_id: str | None
    error: str | None
    recovered: int = 0  # digests left by an earlier run and finished by this one
    recovered_ids: tuple[str, ...] = ()  # their Message-IDs
    refused: tuple[str, ...] = ()  # "address: reply" for each address still lacking a digest others got
    uncertain: tuple[str, ...] = ()  # "Message-ID: addresses" whose copy became uncertain in this call
    older: int = 0  # of ``papers``, those listed as older matches (a backfill's, a re-search's)
    published: int = 0  # "now published in" notices

    @property
    def new(self) -> int:
        """The papers new this period: ``papers`` without the older ones."""
        return self.papers - self.older


def _domain(settings: Settings) -> str:
    address = email.utils.parseaddr(settings.mail_from)[1]
    return address.rpartition("@")[2] or "litwatch.localhost"


def _counts(contents: DigestContents | None) -> dict[str, int]:
    """What a digest holds, as DigestReceipt counts it (nothing for a digest not sent)."""
    if contents is None:
        return {"papers": 0, "overflow": 0, "retraction_notices": 0, "older": 0, "published": 0}
    return {"papers": len(contents.papers), "overflow": len(contents.overflow),
            "retraction_notices": len(contents.notices), "older": len(contents.older),
            "published": len(contents.published)}


def _check_inputs(settings: Settings, group: Group, now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise InputError("now must be a timezone-aware datetime")
    why = check_recipient(settings.mail_from)
    if why:
        raise InputError(f"LITWATCH_MAIL_FROM {settings.mail_from!r} {why}")
    for recipient in group.recipients:
        if check_recipient(recipient):
            raise InputError(f"group {group.name!r}: recipient {recipient!r} {check_recipient(recipient)}")
    if not group.recipients:
        raise InputError(f"group {group.name!r} has no recipients; fix: add them in groups.toml")


def deliver_group(engine: Engine, settings: Settings, group: Group, *, now: dt.datetime,
                  mailer: Mailer | None = None, since: dt.datetime | None = None) -> DigestReceipt:
    """Finish what earlier runs left, then send the group's next digest; a refused send is a receipt
    with ``error``, never an exception.

    Whether a digest is due, and the lease that keeps two processes from sending one group's
    digest at once, are the scheduler's (litwatch.scheduling.jobs: the ``digest:<group>`` job,
    which ``litwatch digest --send``, ``run-due`` and ``schedule`` all run); this sends now.
    """
    _check_inputs(settings, group, now)
    now = utc(now)
    mailer = mailer if mailer is not None else mailer_from_settings(settings)
    state = ledger.StateFolder(settings)
    with engine.connect() as conn:
        pending = recipients.open_digests(conn, group.name, ledger.PENDING)
    done: list[str] = []
    uncertain: list[str] = []
    handled: list[int] = []

    def receipt(status: str, contents: DigestContents | None, message_id: str | None,
                error: str | None) -> DigestReceipt:
        return DigestReceipt(group=group.name, status=status, message_id=message_id, error=error, recovered=len(done),
                             recovered_ids=tuple(done), refused=recipients.refused_lines(engine, handled),
                             uncertain=tuple(uncertain), **_counts(contents))

    for row in pending:
        outcome = ledger.finish(engine, settings, group, row, mailer, state, now)
        handled.append(row.id)
        if outcome.uncertain:
            uncertain.append(f"{row.message_id}: {', '.join(outcome.uncertain)}")
        if outcome.error is not None:
            return receipt("failed", ledger.held_contents(engine, group, row.id), row.message_id, outcome.error)
        done.append(row.message_id)
    if pending and not _schedule_fired(group, utc(pending[-1].created_at), now):
        return receipt("retried", None, None, None)
    token = f"litwatch.{group.name}.{now:%Y%m%dT%H%M%SZ}.{secrets.token_hex(4)}"
    message_id = f"<{token}@{_domain(settings)}>"
    with engine.connect() as conn:
        contents = plan_digest(conn, group, now=now, since=since)
        if contents.empty and not group.notify_empty:
            ledger.prepare(engine, group, contents, "(nothing new: not sent)", message_id, now, "empty")
            return receipt("nothing-new", None, None, None)
        view, message = compose(conn, settings, group, contents, message_id=message_id, created=now)
    digest_id = ledger.prepare(engine, group, contents, view.subject, message_id, now, "prepared")
    state.keep(message_id, message)
    outcome = ledger.hand_over(engine, mailer, state, digest_id, message_id, message, 0, now)
    handled.append(digest_id)
    if outcome.uncertain:
        uncertain.append(f"{message_id}: {', '.join(outcome.uncertain)}")
    status = "failed" if outcome.error else "uncertain" if outcome.uncertain else "sent"
    return receipt(status, contents, message_id, outcome.error)


def _schedule_fired(group: Group, after: dt.datetime, now: dt.datetime) -> bool:
    """Whether the group's schedule fired after ``after``: a digest sent again goes out alone, and
    the next one joins it only when its own time has come."""
    try:
        schedule = schedules.parse(group.schedule, group.timezone or "UTC", default=schedules.DEFAULT_DIGEST_SCHEDULE)
    except ValueError:
        return True
    fire = schedules.next_fire(schedule, after)
    return fire is not None and fire <= now


def preview_group(engine: Engine, settings: Settings, group: Group, *, now: dt.datetime, out_dir: Path,
                  since: dt.datetime | None = None) -> list[Path]:
    """Write what the next digest would hold (.html, .txt, .eml) without touching the ledger.

    Returns the files written; none when the digest would not be sent (nothing new).
    """
    _check_inputs(settings, group, now)
    now = utc(now)
    with engine.connect() as conn:
        contents = plan_digest(conn, group, now=now, since=since)
        if contents.empty and not group.notify_empty:
            return []
        _view, message = compose(conn, settings, group, contents, created=now,
                                 message_id=f"<litwatch.{group.name}.preview@{_domain(settings)}>")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{group.name}.{ext}" for ext in ("html", "txt", "eml")]
        for path, subtype in zip(paths[:2], ("html", "plain")):
            part = message.get_body(preferencelist=(subtype,))
            assert part is not None
            write_atomically(path, str(part.get_content()).encode("utf-8"))
        write_atomically(paths[2], message.as_bytes(policy=email.policy.SMTP))
    except OSError as exc:
        raise InputError(f"cannot write the preview to {out_dir}: {exc.strerror}") from exc
    return paths


