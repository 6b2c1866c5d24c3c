"""Papers read back from the store: the PubMed record that was saved, plus what the store knows.

A ``StoredPaper`` *is* a ``records.PaperRecord`` (the one record type for a paper, so exports
and digests read the same fields whatever stage a paper comes from), with the facts only the
store has: whether it is marked retracted, when it was first seen, its tags (with where each came
from: PubTator3 or the dictionary), the saved queries that found it and, for a preprint (a
negative key, ``store/works.py``), its Europe PMC id, server and version, so that what users see
names ``PPR1036674``, never ``pmid -1036674``. ``read_papers`` turns rows of ``papers`` into them,
reading authors, keywords, tags, query names and preprint details in one query per table for a
whole batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.clock import utc
from litwatch.records import AbstractSection, Author, Keyword, PaperRecord
from litwatch.store import models
from litwatch.store.engine import in_chunks
from litwatch.store.works import PREPRINT_URL

authors = models.table(models.Author)
keywords = models.table(models.Keyword)
paper_tags = models.table(models.PaperTag)
query_hits = models.table(models.QueryHit)
preprints = models.table(models.Preprint)

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(PaperRecord))


@dataclass(slots=True)
class StoredPaper(PaperRecord):
    """A saved paper as an analyst sees it: its record, its tags and which saved queries found it.

    Only the columns the store keeps are filled in (citation, abstract as one text, authors'
    names, keywords, languages, dates); MeSH headings, chemicals and history are not read back.
    ``retracted`` is the store's mark (a retraction notice may arrive after the paper).
    """

    retracted: bool = False
    first_seen: dt.datetime | None = None
    tags: tuple[tuple[str, str], ...] = field(default=())  # (name, kind), sorted by name
    queries: tuple[str, ...] = ()
    preprint_id: str | None = None  # a preprint's Europe PMC id (PPR1036674); None for a PubMed paper
    server: str | None = None  # a preprint's server: medRxiv, bioRxiv, Research Square...
    version: int | None = None  # a preprint's version, when Europe PMC gives one
    # (name, origin, identifier) per tag, as ``tags``: pubtator3 when PubTator3 gave it in any field
    tag_origins: tuple[tuple[str, str, str | None], ...] = ()

    @classmethod
    def of(cls, record: PaperRecord, **store_facts: Any) -> StoredPaper:
        """``record`` as the store would hand it back, with ``retracted``, ``tags``... as given."""
        return cls(**{name: getattr(record, name) for name in _RECORD_FIELDS}, **store_facts)

    @property
    def is_retracted(self) -> bool:
        return self.retracted

    @property
    def tag_names(self) -> list[str]:
        return [name for name, _ in self.tags]

    @property
    def is_preprint(self) -> bool:
        """A preprint is keyed by minus its Europe PMC number (store/works.py)."""
        return self.pmid < 0

    @property
    def identifier(self) -> str:
        """What a reader looks the paper up by: its PMID, or a preprint's ``PPR`` id."""
        if self.is_preprint:
            return self.preprint_id or f"PPR{-self.pmid}"
        return str(self.pmid)

    @property
    def url(self) -> str:
        if self.is_preprint:
            return PREPRINT_URL.format(-self.pmid)
        return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"


def _details(conn: Connection, pmids: Sequence[int]) -> dict[str, dict[int, list[Any]]]:
    """Authors, keywords, tags, query names and preprint details of these papers, in one query per table."""
    found: dict[str, dict[int, list[Any]]] = {
        name: defaultdict(list) for name in ("authors", "keywords", "tags", "origins", "queries", "preprints")}
    row: Any
    for chunk in in_chunks(pmids):
        for row in conn.execute(
            sa.select(authors.c.paper_pmid, authors.c.last_name, authors.c.fore_name, authors.c.initials,
                      authors.c.collective_name)
            .where(authors.c.paper_pmid.in_(chunk)).order_by(authors.c.paper_pmid, authors.c.position)
        ):
            found["authors"][row.paper_pmid].append(
                Author(row.last_name, row.fore_name, row.initials, row.collective_name)
            )
        for row in conn.execute(
            sa.select(keywords.c.paper_pmid, keywords.c.keyword)
            .where(keywords.c.paper_pmid.in_(chunk)).order_by(keywords.c.paper_pmid, keywords.c.position)
        ):
            found["keywords"][row.paper_pmid].append(Keyword(row.keyword))
        for row in conn.execute(
            sa.select(paper_tags.c.paper_pmid, paper_tags.c.tag, paper_tags.c.kind, paper_tags.c.origin,
                      paper_tags.c.identifier)
            .where(paper_tags.c.paper_pmid.in_(chunk)).order_by(paper_tags.c.paper_pmid, paper_tags.c.tag)
        ):
            tags, origins = found["tags"][row.paper_pmid], found["origins"][row.paper_pmid]
            if not tags or tags[-1][0] != row.tag:
                tags.append((row.tag, row.kind))
                origins.append((row.tag, row.origin, row.identifier))
            elif row.origin == "pubtator3" and origins[-1][1] != "pubtator3":
                origins[-1] = (row.tag, row.origin, row.identifier)
        for row in conn.execute(
            sa.select(query_hits.c.paper_pmid, query_hits.c.query_name)
            .where(query_hits.c.paper_pmid.in_(chunk)).order_by(query_hits.c.paper_pmid, query_hits.c.query_name)
        ):
            found["queries"][row.paper_pmid].append(row.query_name)
        keys = [pmid for pmid in chunk if pmid < 0]
        if keys:
            for row in conn.execute(sa.select(preprints.c.paper_pmid, preprints.c.source_id, preprints.c.server,
                                              preprints.c.version).where(preprints.c.paper_pmid.in_(keys))):
                found["preprints"][row.paper_pmid].append(row)
    return found


def _preprint_facts(row: Any) -> dict[str, Any]:
    """A ``preprints`` row as StoredPaper's preprint fields (none for a PubMed paper)."""
    return {} if row is None else {"preprint_id": row.source_id, "server": row.server, "version": row.version}


def read_papers(conn: Connection, rows: Sequence[Any]) -> list[StoredPaper]:
    """Rows of ``papers`` (all columns) as StoredPapers, in the same order."""
    details = _details(conn, [row.pmid for row in rows])
    preprint = {pmid: found[0] for pmid, found in details["preprints"].items()}
    return [
        StoredPaper(
            pmid=row.pmid, pmid_version=row.pmid_version, kind=row.kind, doi=row.doi, pmcid=row.pmcid,
            title=row.title, vernacular_title=row.vernacular_title,
            abstract_sections=[AbstractSection(None, row.abstract)] if row.abstract else [],
            authors=details["authors"].get(row.pmid, []),
            journal=row.journal, journal_abbrev=row.journal_abbrev, issn=row.issn, volume=row.volume,
            issue=row.issue, pages=row.pages, pub_year=row.pub_year, pub_date=row.pub_date,
            pub_date_text=row.pub_date_text, languages=row.languages.split(";") if row.languages else [],
            keywords=details["keywords"].get(row.pmid, []), status=row.status,
            date_completed=row.date_completed, date_revised=row.date_revised,
            retracted=bool(row.retracted), first_seen=utc(row.first_seen) if row.first_seen else None,
            tags=tuple(details["tags"].get(row.pmid, ())), queries=tuple(details["queries"].get(row.pmid, ())),
            **_preprint_facts(preprint.get(row.pmid)),
            tag_origins=tuple(details["origins"].get(row.pmid, ())),
        )
        for row in rows
    ]
