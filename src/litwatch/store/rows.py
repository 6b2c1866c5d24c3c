"""The rows a PubMed record becomes in the store, fingerprinted: ``prepare``.

Kept apart from ``store`` (and from SQLAlchemy) because ingest's worker processes prepare records
beside the parser, in parallel with the writer, and should start and stay small.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
from dataclasses import dataclass
from typing import Any

from litwatch.records import PaperRecord

# The columns of the rows ``prepare`` builds, in the order of its tuples; ``papers`` lacks the
# columns set when saving (first_seen, updated_at, content_hash, and deleted_at, which only a
# DeleteCitation sets).
PAPER_COLUMNS: tuple[str, ...] = (
    "pmid", "pmid_version", "kind", "doi", "pmcid", "title", "vernacular_title", "abstract",
    "journal", "journal_abbrev", "issn", "volume", "issue", "pages", "pub_year", "pub_date",
    "pub_date_text", "languages", "status", "date_completed", "date_revised", "date_entrez",
    "date_pubmed", "retracted",
)
CHILD_COLUMNS: dict[str, tuple[str, ...]] = {
    "authors": ("paper_pmid", "position", "last_name", "fore_name", "initials", "collective_name",
                "orcid", "affiliation"),
    "mesh_headings": ("paper_pmid", "position", "descriptor_ui", "descriptor_name", "major_topic", "qualifiers"),
    "publication_types": ("paper_pmid", "name", "ui"),
    "keywords": ("paper_pmid", "position", "keyword", "major_topic", "owner"),
    "chemicals": ("paper_pmid", "position", "ui", "name", "registry_number"),
    "gene_symbols": ("paper_pmid", "symbol"),
    "history_dates": ("paper_pmid", "status", "date"),
    "corrections": ("paper_pmid", "position", "ref_type", "ref_pmid", "ref_source"),
}
_DOI, _TITLE, _ABSTRACT = (PAPER_COLUMNS.index(c) for c in ("doi", "title", "abstract"))
_KEYWORD = CHILD_COLUMNS["keywords"].index("keyword")


@dataclass(slots=True)
class Prepared:
    """A record turned into the rows the store writes, fingerprinted.

    Rows are tuples in the column order of ``PAPER_COLUMNS`` and ``CHILD_COLUMNS``, dates as ISO
    text (SQLite stores them so, PostgreSQL casts them; they unpickle 3.5 times faster than date
    objects): they go to the database driver as they are. ``digest`` hashes exactly those rows,
    so a re-read of the same record is recognised whatever process prepared it (ingest's worker
    processes prepare records beside the parser, in parallel with the writer).
    """

    pmid: int
    doi: str | None
    date_revised: dt.date | None
    pmid_version: int
    digest: str
    paper: tuple[Any, ...]
    children: dict[str, list[tuple[Any, ...]]]
    blob: bytes  # the pickled rows the digest was taken of

    def __reduce__(self) -> tuple[Any, ...]:
        """Travel between processes as the bytes already pickled for the digest, not again."""
        return (_restore, (self.pmid, self.doi, self.date_revised, self.pmid_version, self.digest, self.blob))

    def drop_doi(self) -> None:
        """Keep the paper without its DOI (the DOI belongs to another row)."""
        self.doi = None
        self.paper = (*self.paper[:_DOI], None, *self.paper[_DOI + 1 :])

    @property
    def text(self) -> tuple[str, str | None]:
        """Title and abstract: what PubTator3 annotates."""
        return self.paper[_TITLE], self.paper[_ABSTRACT]

    @property
    def fulltext(self) -> tuple[int, str, str, str | None]:
        """The row of the full-text index: PMID, title, abstract and keywords."""
        keywords = " ; ".join(row[_KEYWORD] for row in self.children["keywords"])
        return self.pmid, self.paper[_TITLE], self.paper[_ABSTRACT], keywords or None


def _restore(
    pmid: int, doi: str | None, date_revised: dt.date | None, version: int, digest: str, blob: bytes
) -> Prepared:
    paper, children = pickle.loads(blob)
    return Prepared(pmid, doi, date_revised, version, digest, paper, children, blob)


def prepare(record: PaperRecord) -> Prepared:
    """The rows of a record and their fingerprint."""
    paper, children = _paper_row(record), _child_rows(record)
    blob = pickle.dumps((paper, children), protocol=pickle.HIGHEST_PROTOCOL)
    return Prepared(record.pmid, record.doi, record.date_revised, record.pmid_version,
                    hashlib.blake2b(blob, digest_size=16).hexdigest(), paper, children, blob)


def content_hash(record: PaperRecord) -> str:
    """A fingerprint of everything stored from a record, to tell a re-read from a revision."""
    return prepare(record).digest


def _iso(date: dt.date | None) -> str | None:
    return date.isoformat() if date is not None else None


def _paper_row(record: PaperRecord) -> tuple[Any, ...]:
    history = record.history
    return (
        record.pmid, record.pmid_version, record.kind, record.doi, record.pmcid, record.title,
        record.vernacular_title, record.abstract, record.journal, record.journal_abbrev, record.issn,
        record.volume, record.issue, record.pages, record.pub_year, _iso(record.pub_date),
        record.pub_date_text, ";".join(record.languages) or None, record.status, _iso(record.date_completed),
        _iso(record.date_revised), _iso(history.get("entrez")), _iso(history.get("pubmed")), record.is_retracted,
    )


def _child_rows(record: PaperRecord) -> dict[str, list[tuple[Any, ...]]]:
    pmid = record.pmid
    pub_types: dict[str, str | None] = {}
    for ptype in record.publication_types:
        pub_types.setdefault(ptype.name, ptype.ui)
    return {
        "authors": [
            (pmid, i, a.last_name, a.fore_name, a.initials, a.collective_name, a.orcid,
             " | ".join(a.affiliations) or None)
            for i, a in enumerate(record.authors)
        ],
        "mesh_headings": [
            (pmid, i, m.ui, m.name, m.major_topic,
             " | ".join(q.name + ("*" if q.major_topic else "") for q in m.qualifiers) or None)
            for i, m in enumerate(record.mesh)
        ],
        "publication_types": [(pmid, name, ui) for name, ui in pub_types.items()],
        "keywords": [(pmid, i, k.text, k.major_topic, k.owner) for i, k in enumerate(record.keywords)],
        "chemicals": [(pmid, i, c.ui, c.name, c.registry_number) for i, c in enumerate(record.chemicals)],
        "gene_symbols": [(pmid, s) for s in dict.fromkeys(record.gene_symbols)],
        "history_dates": [(pmid, status, date.isoformat()) for status, date in record.history.items()],
        "corrections": [(pmid, i, c.ref_type, c.pmid, c.source) for i, c in enumerate(record.corrections)],
    }


