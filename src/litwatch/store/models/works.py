"""Preprints from Europe PMC, the versions of one work, and the preprint searches' receipts.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from litwatch.store.models._base import Base


class Preprint(Base):
    """A preprint Europe PMC returned, by its source id (``PPR1036674``).

    Its paper is the ``papers`` row keyed ``-1036674`` (``works.preprint_key``): PubMed keys are
    positive, so the two never collide and every reader of papers (search, export, stats, digests)
    sees a preprint as a paper of kind ``preprint``. ``published_pmid``/``published_doi``: the
    journal version Europe PMC links it to, kept until that paper is stored and linked.
    """

    __tablename__ = "preprints"

    source_id: Mapped[str] = mapped_column(Text, primary_key=True)
    paper_pmid: Mapped[int] = mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), index=True)
    server: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    doi: Mapped[str | None] = mapped_column(Text, index=True)
    first_index_date: Mapped[dt.date | None] = mapped_column(Date)
    published_pmid: Mapped[int | None] = mapped_column(Integer)
    published_doi: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class PreprintVersion(Base):
    """The version history of a preprint: each version number seen, and when."""

    __tablename__ = "preprint_versions"

    source_id: Mapped[str] = mapped_column(ForeignKey("preprints.source_id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    doi: Mapped[str | None] = mapped_column(Text)
    first_index_date: Mapped[dt.date | None] = mapped_column(Date)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class WorkLink(Base):
    """A preprint and its journal version made one work. ``strength``: ``strong`` (Europe PMC's
    link or the published DOI) or ``weak`` (same title and first author within two years);
    ``undone_at`` set by ``litwatch merge --undo`` (an undone pair is never linked again)."""

    __tablename__ = "work_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    preprint_pmid: Mapped[int] = mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), index=True)
    published_pmid: Mapped[int] = mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), index=True)
    strength: Mapped[str] = mapped_column(Text)  # strong | weak
    evidence: Mapped[str] = mapped_column(Text)  # europepmc | doi | title+author
    made_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PreprintRun(Base):
    """One receipt per query per run of its Europe PMC step: found = new + known."""

    __tablename__ = "preprint_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_name: Mapped[str] = mapped_column(Text, index=True)
    source: Mapped[str] = mapped_column(Text)  # europepmc
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    window_from: Mapped[dt.date] = mapped_column(Date)
    window_to: Mapped[dt.date] = mapped_column(Date)
    hit_count: Mapped[int] = mapped_column(Integer, default=0)  # Europe PMC's count
    found: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    known: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(Text)  # running | ok | failed
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[str | None] = mapped_column(Text)
