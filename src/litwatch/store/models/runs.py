"""What the runs keep: which query found which paper, the coverage ledger, receipts, leases, the
shared E-utilities budget.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import Date, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from litwatch.store.models._base import Base


class QueryHit(Base):
    """Which saved query found which paper, first and last time."""

    __tablename__ = "query_hits"

    query_name: Mapped[str] = mapped_column(Text, primary_key=True)
    paper_pmid: Mapped[int] = mapped_column(
        ForeignKey("papers.pmid", ondelete="CASCADE"), primary_key=True, index=True
    )
    first_found_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_found_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[int | None] = mapped_column(Integer)  # the run that first found it


class QueryCoverage(Base):
    """The coverage ledger: date ranges a saved query has searched completely, and with which term.

    ``kind`` is ``crdt`` (create dates: new papers), ``mdat`` (modification dates: the update
    pass) or ``ppr`` (Europe PMC first index dates: the preprints search, under the fingerprint of
    the query's ``preprints`` term). Ranges are inclusive and merged per query, kind and term.
    ``term_sha256`` is the fingerprint of the normalised term; NULL marks a range migrated from a
    watermark (revision 0007) or from ``preprint_coverage`` (0012), which the first run after the
    upgrade adopts for its own term.
    """

    __tablename__ = "query_coverage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_name: Mapped[str] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(Text)  # crdt | mdat | ppr
    term_sha256: Mapped[str | None] = mapped_column(Text)
    term: Mapped[str | None] = mapped_column(Text)  # the term itself, for `litwatch queries diff`
    covered_from: Mapped[dt.date] = mapped_column(Date)
    covered_to: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class QueryState(Base):
    """Each saved query's watermark: the create date up to which every paper has been stored."""

    __tablename__ = "query_state"

    query_name: Mapped[str] = mapped_column(Text, primary_key=True)
    watermark: Mapped[dt.date | None] = mapped_column(Date)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class Run(Base):
    """One receipt per query per run: what was searched, found, fetched and stored, or why it failed."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_name: Mapped[str] = mapped_column(Text, index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    window_from: Mapped[dt.date] = mapped_column(Date)
    window_to: Mapped[dt.date] = mapped_column(Date)
    search_count: Mapped[int] = mapped_column(Integer, default=0)  # PubMed's Count over the windows
    ids_seen: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    known: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float] = mapped_column(sa.Float, default=0.0)
    status: Mapped[str] = mapped_column(Text)  # running | ok | failed | dry-run | interrupted
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[str | None] = mapped_column(Text)
    missing_pmids: Mapped[str | None] = mapped_column(Text)
    holder: Mapped[str | None] = mapped_column(Text)  # the lease holder (host:pid:random) that ran it
    updated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # stored papers the update pass revised
    update_requests: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # requests of the update pass


class Lease(Base):
    """A lock held in the database so two processes never run the same query or digest at once."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(Text, primary_key=True)  # e.g. "query:migraine-immunology"
    holder: Mapped[str] = mapped_column(Text)  # host:pid:random
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RateBudget(Base):
    """The last request start reserved in one NCBI budget, for hosts that share a PostgreSQL store."""

    __tablename__ = "rate_budget"

    name: Mapped[str] = mapped_column(Text, primary_key=True)  # sources.rate_limit.budget_key
    last_start: Mapped[float] = mapped_column(sa.Float)  # seconds since the epoch, the database's clock


# --- preprints from Europe PMC (migration 0010): a preprint is a papers row with a negative key ---
