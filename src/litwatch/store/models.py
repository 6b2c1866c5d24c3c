"""The database schema: every table litwatch keeps, as SQLAlchemy 2.x declarative models.

Papers are keyed by their PMID; child tables (authors, MeSH, ...) hang off ``papers.pmid`` so an
analyst can join them without surrogate ids. ``paper_pmids`` maps every PMID litwatch has seen to the
row that holds the work: a record whose DOI already belongs to another row is merged into that row
and only its PMID is remembered here. Migrations in ``db/migrations`` build exactly these tables.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

import sqlalchemy as sa
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _paper_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), primary_key=True)


class Paper(Base):
    """One work. ``doi`` is normalised (lower case, no prefix) and unique where present."""

    __tablename__ = "papers"

    pmid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pmid_version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(Text)  # article | book | preprint
    doi: Mapped[str | None] = mapped_column(Text, unique=True)
    pmcid: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    vernacular_title: Mapped[str | None] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    journal: Mapped[str | None] = mapped_column(Text)
    journal_abbrev: Mapped[str | None] = mapped_column(Text)
    issn: Mapped[str | None] = mapped_column(Text)
    volume: Mapped[str | None] = mapped_column(Text)
    issue: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[str | None] = mapped_column(Text)
    pub_year: Mapped[int | None] = mapped_column(Integer, index=True)
    pub_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    pub_date_text: Mapped[str | None] = mapped_column(Text)
    languages: Mapped[str | None] = mapped_column(Text)  # "eng" or "eng;fre"
    status: Mapped[str | None] = mapped_column(Text)
    date_completed: Mapped[dt.date | None] = mapped_column(Date)
    date_revised: Mapped[dt.date | None] = mapped_column(Date)
    date_entrez: Mapped[dt.date | None] = mapped_column(Date)
    date_pubmed: Mapped[dt.date | None] = mapped_column(Date)
    retracted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    content_hash: Mapped[str] = mapped_column(Text)


class PaperPmid(Base):
    """Every PMID seen, pointing at the row that holds its work (itself, or a DOI twin)."""

    __tablename__ = "paper_pmids"

    pmid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    paper_pmid: Mapped[int] = mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), index=True)
    merged_by: Mapped[str] = mapped_column(Text)  # self | doi
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Author(Base):
    __tablename__ = "authors"

    paper_pmid: Mapped[int] = _paper_fk()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_name: Mapped[str | None] = mapped_column(Text)
    fore_name: Mapped[str | None] = mapped_column(Text)
    initials: Mapped[str | None] = mapped_column(Text)
    collective_name: Mapped[str | None] = mapped_column(Text)
    orcid: Mapped[str | None] = mapped_column(Text, index=True)
    affiliation: Mapped[str | None] = mapped_column(Text)  # several joined with " | "


class MeshHeading(Base):
    __tablename__ = "mesh_headings"

    paper_pmid: Mapped[int] = _paper_fk()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    descriptor_ui: Mapped[str | None] = mapped_column(Text, index=True)
    descriptor_name: Mapped[str] = mapped_column(Text, index=True)
    major_topic: Mapped[bool] = mapped_column(Boolean, default=False)
    qualifiers: Mapped[str | None] = mapped_column(Text)  # "genetics* | metabolism", * = major topic


class PublicationType(Base):
    __tablename__ = "publication_types"

    paper_pmid: Mapped[int] = _paper_fk()
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    ui: Mapped[str | None] = mapped_column(Text)


class Keyword(Base):
    __tablename__ = "keywords"

    paper_pmid: Mapped[int] = _paper_fk()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    keyword: Mapped[str] = mapped_column(Text)
    major_topic: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(Text)


class Chemical(Base):
    __tablename__ = "chemicals"

    paper_pmid: Mapped[int] = _paper_fk()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ui: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    registry_number: Mapped[str | None] = mapped_column(Text)


class GeneSymbol(Base):
    __tablename__ = "gene_symbols"

    paper_pmid: Mapped[int] = _paper_fk()
    symbol: Mapped[str] = mapped_column(Text, primary_key=True)


class HistoryDate(Base):
    __tablename__ = "history_dates"

    paper_pmid: Mapped[int] = _paper_fk()
    status: Mapped[str] = mapped_column(Text, primary_key=True)  # entrez, pubmed, revised...
    date: Mapped[dt.date] = mapped_column(Date)


class Correction(Base):
    """A link between papers: ErratumIn, RetractionIn, UpdateIn, CommentOn... ``ref_pmid`` may not be stored."""

    __tablename__ = "corrections"

    paper_pmid: Mapped[int] = _paper_fk()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ref_type: Mapped[str] = mapped_column(Text, index=True)
    ref_pmid: Mapped[int | None] = mapped_column(Integer, index=True)
    ref_source: Mapped[str | None] = mapped_column(Text)


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


class PaperTag(Base):
    """A gene, pathway or condition found in a paper: where, as which text, by which vocabulary."""

    __tablename__ = "paper_tags"

    paper_pmid: Mapped[int] = _paper_fk()
    tag: Mapped[str] = mapped_column(Text, primary_key=True, index=True)
    source: Mapped[str] = mapped_column(Text, primary_key=True)  # title|abstract|keyword|mesh|chemical|gene_symbol
    kind: Mapped[str] = mapped_column(Text, index=True)  # gene | pathway | condition
    matched_text: Mapped[str] = mapped_column(Text)
    vocab_version: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(Text, default="dictionary", server_default="dictionary")  # | pubtator3
    identifier: Mapped[str | None] = mapped_column(Text)  # NCBIGene:3552, MESH:D008881 (pubtator3 tags)
    span_start: Mapped[int | None] = mapped_column(Integer)  # document offsets of the first mention
    span_end: Mapped[int | None] = mapped_column(Integer)
    species: Mapped[int | None] = mapped_column(Integer)  # NCBI Taxonomy id of a gene kept without a human symbol


class PubtatorPaper(Base):
    """When PubTator3 was first and last asked about a paper, and when its annotations arrived.

    A paper without ``annotated_at`` keeps its dictionary gene tags; runs ask again for it until
    it is too old (``pipeline/pubtator.py``), ``litwatch tag --pubtator`` whatever its age.
    """

    __tablename__ = "pubtator_papers"

    paper_pmid: Mapped[int] = _paper_fk()
    first_asked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_asked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    annotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    asks: Mapped[int] = mapped_column(Integer)


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


def table(model: type[Base]) -> sa.Table:
    """The Core table behind a model, for bulk statements."""
    return cast(sa.Table, model.__table__)


CHILD_TABLES: tuple[sa.Table, ...] = tuple(
    table(m)
    for m in (Author, MeshHeading, PublicationType, Keyword, Chemical, GeneSymbol, HistoryDate, Correction)
)
