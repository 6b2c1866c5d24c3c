"""Papers and what hangs off them: authors, MeSH headings, keywords, corrections, tags, PubTator3.

Papers are keyed by their PMID; child tables (authors, MeSH, ...) hang off ``papers.pmid`` so an
analyst can join them without surrogate ids. ``paper_pmids`` maps every PMID litwatch has seen to the
row that holds the work: a record whose DOI already belongs to another row is merged into that row
and only its PMID is remembered here.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from litwatch.store.models._base import Base, _paper_fk, table


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


CHILD_TABLES: tuple[sa.Table, ...] = tuple(
    table(m)
    for m in (Author, MeshHeading, PublicationType, Keyword, Chemical, GeneSymbol, HistoryDate, Correction)
)
