"""Digests: what was sent to whom, once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from litwatch.store.models._base import Base


class Digest(Base):
    """One digest for one group: its content is frozen when prepared, then handed to SMTP once.

    ``status``: prepared -> accepted (the SMTP server took it, or the outbox file was written)
    -> recorded (its papers are in the ledger as sent); failed (nobody got it) keeps the error for
    the next run. Who got it is in ``digest_recipients``: a recorded digest may still owe a copy to
    an address that was refused.
    """

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_name: Mapped[str] = mapped_column(Text, index=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    status: Mapped[str] = mapped_column(Text, index=True)
    subject: Mapped[str] = mapped_column(Text)
    recipients: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    covers_from: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    covers_to: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    overflow_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class DigestItem(Base):
    """The delivery ledger: which paper went (or goes) to which group in which digest, and as what."""

    __tablename__ = "digest_items"

    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True)
    paper_pmid: Mapped[int] = mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), primary_key=True, index=True)
    item_kind: Mapped[str] = mapped_column(Text, primary_key=True)  # paper | retraction_notice | overflow | published_notice
    group_name: Mapped[str] = mapped_column(Text, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class DigestRecipient(Base):
    """The per-recipient ledger: whether each address got a digest, and the server's answer if not.

    ``status``: pending -> sending (its RCPT was accepted and the content is being sent) ->
    accepted | failed (refused, ``error`` has the reply; sent again on the next try) | uncertain
    (the content was sent but no answer came: not sent again without being asked).
    """

    __tablename__ = "digest_recipients"

    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
