"""Saving parsed PubMed records into the database: one row per work, deduplicated by PMID and DOI.

``save_batch`` is the only writer of papers. It runs inside the caller's transaction, so a batch is
stored whole or not at all, and it is idempotent: the same records twice change nothing.

Rules, in order, for each record:
- its PMID is known and the stored copy is identical: ``unchanged``;
- its PMID is known and the record is a newer (or equal-dated, different) revision: ``updated``,
  children replaced; an older revision than the stored one is ``skipped``;
- its PMID is new but its DOI belongs to another row: ``merged`` into that row (the PMID is remembered);
- otherwise ``new``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from . import models
from .records import Deletion, PaperRecord

papers = models.table(models.Paper)
paper_pmids = models.table(models.PaperPmid)
_IN_CHUNK = 500  # ids per IN (...) lookup: well under SQLite's and PostgreSQL's parameter limits


@dataclass
class SaveResult:
    """What one or more batches did; ``+`` adds them up for a file or a run."""

    read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    new_pmids: list[int] = field(default_factory=list)
    changed_pmids: list[int] = field(default_factory=list)  # new or updated rows, for re-tagging

    def __iadd__(self, other: SaveResult) -> SaveResult:
        for name in ("read", "new", "updated", "unchanged", "merged", "deleted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.new_pmids.extend(other.new_pmids)
        self.changed_pmids.extend(other.changed_pmids)
        return self


@dataclass(slots=True)
class Prepared:
    """A record turned into the rows the store writes, fingerprinted.

    ``digest`` hashes exactly those rows, so a re-read of the same record is recognised whatever
    process prepared it (the ingest worker prepares records beside the parser, in parallel with
    the writer). ``paper`` lacks the columns set when saving (first_seen, updated_at, content_hash).
    """

    pmid: int
    doi: str | None
    date_revised: dt.date | None
    pmid_version: int
    digest: str
    paper: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]
    blob: bytes  # the pickled rows the digest was taken of

    def __reduce__(self) -> tuple[Any, ...]:
        """Travel between processes as the bytes already pickled for the digest, not again."""
        return (_restore, (self.pmid, self.doi, self.date_revised, self.pmid_version, self.digest, self.blob))


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


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lookup(conn: Connection, query: Any, column: Any, keys: Sequence[Any]) -> list[Any]:
    rows: list[Any] = []
    for chunk in _chunks(keys):
        rows.extend(conn.execute(query.where(column.in_(chunk))).all())
    return rows


def _paper_row(record: PaperRecord) -> dict[str, Any]:
    history = record.history
    return {
        "pmid": record.pmid,
        "pmid_version": record.pmid_version,
        "kind": record.kind,
        "doi": record.doi,
        "pmcid": record.pmcid,
        "title": record.title,
        "vernacular_title": record.vernacular_title,
        "abstract": record.abstract,
        "journal": record.journal,
        "journal_abbrev": record.journal_abbrev,
        "issn": record.issn,
        "volume": record.volume,
        "issue": record.issue,
        "pages": record.pages,
        "pub_year": record.pub_year,
        "pub_date": record.pub_date,
        "pub_date_text": record.pub_date_text,
        "languages": ";".join(record.languages) or None,
        "status": record.status,
        "date_completed": record.date_completed,
        "date_revised": record.date_revised,
        "date_entrez": history.get("entrez"),
        "date_pubmed": history.get("pubmed"),
        "retracted": record.is_retracted,
        "deleted_at": None,
    }


def _child_rows(record: PaperRecord) -> dict[str, list[dict[str, Any]]]:
    pmid = record.pmid
    pub_types: dict[str, str | None] = {}
    for ptype in record.publication_types:
        pub_types.setdefault(ptype.name, ptype.ui)
    return {
        "authors": [
            {
                "paper_pmid": pmid,
                "position": i,
                "last_name": a.last_name,
                "fore_name": a.fore_name,
                "initials": a.initials,
                "collective_name": a.collective_name,
                "orcid": a.orcid,
                "affiliation": " | ".join(a.affiliations) or None,
            }
            for i, a in enumerate(record.authors)
        ],
        "mesh_headings": [
            {
                "paper_pmid": pmid,
                "position": i,
                "descriptor_ui": m.ui,
                "descriptor_name": m.name,
                "major_topic": m.major_topic,
                "qualifiers": " | ".join(q.name + ("*" if q.major_topic else "") for q in m.qualifiers)
                or None,
            }
            for i, m in enumerate(record.mesh)
        ],
        "publication_types": [
            {"paper_pmid": pmid, "name": name, "ui": ui} for name, ui in pub_types.items()
        ],
        "keywords": [
            {"paper_pmid": pmid, "position": i, "keyword": k.text, "major_topic": k.major_topic, "owner": k.owner}
            for i, k in enumerate(record.keywords)
        ],
        "chemicals": [
            {"paper_pmid": pmid, "position": i, "ui": c.ui, "name": c.name, "registry_number": c.registry_number}
            for i, c in enumerate(record.chemicals)
        ],
        "gene_symbols": [{"paper_pmid": pmid, "symbol": s} for s in dict.fromkeys(record.gene_symbols)],
        "history_dates": [
            {"paper_pmid": pmid, "status": status, "date": date} for status, date in record.history.items()
        ],
        "corrections": [
            {
                "paper_pmid": pmid,
                "position": i,
                "ref_type": c.ref_type,
                "ref_pmid": c.pmid,
                "ref_source": c.source,
            }
            for i, c in enumerate(record.corrections)
        ],
    }


def _insert_children(conn: Connection, prepared: Sequence[Prepared]) -> None:
    buckets: dict[str, list[dict[str, Any]]] = {t.name: [] for t in models.CHILD_TABLES}
    for item in prepared:
        for name, rows in item.children.items():
            buckets[name].extend(rows)
    for table in models.CHILD_TABLES:
        if buckets[table.name]:
            bulk_insert(conn, table, buckets[table.name])


def bulk_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """A plain multi-row INSERT handed straight to the driver's executemany.

    SQLAlchemy's per-row parameter processing cost more than SQLite's own work for the child
    rows of a paper (bench/ingest_speed.py): these rows hold only ints, strings, bools and dates,
    which both drivers take as they are once SQLite's dates are written in SQLAlchemy's ISO form.
    """
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "sqlite":
        marks = ", ".join(f":{c}" for c in columns)
        dated = [c for c in columns if isinstance(table.c[c].type, sa.Date)]
        if dated:
            rows = [{**r, **{c: r[c].isoformat() for c in dated if r[c] is not None}} for r in rows]
    else:
        marks = ", ".join(f"%({c})s" for c in columns)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', list(rows))


def _newest_per_pmid(records: Iterable[Prepared], result: SaveResult) -> list[Prepared]:
    """Collapse repeats of a PMID inside one batch, keeping the newest revision (or the last seen)."""
    chosen: dict[int, Prepared] = {}
    for record in records:
        result.read += 1
        previous = chosen.get(record.pmid)
        if previous is not None:
            if _older(record, previous):
                result.skipped["older revision than another copy in the same batch"] += 1
                continue
            result.unchanged += 1  # the earlier copy is superseded, counted once
        chosen[record.pmid] = record
    return list(chosen.values())


def _older(record: Prepared, than: Prepared | Any) -> bool:
    mine = (record.date_revised or dt.date.min, record.pmid_version)
    theirs = (than.date_revised or dt.date.min, than.pmid_version)
    return mine < theirs


def save_batch(
    conn: Connection,
    records: Iterable[PaperRecord | Prepared],
    *,
    now: dt.datetime | None = None,
) -> SaveResult:
    """Store a batch of records (or records prepared elsewhere) in the caller's transaction.

    See the module docstring for the rules.
    """
    now = now or dt.datetime.now(dt.UTC)
    result = SaveResult()
    batch = _newest_per_pmid((r if isinstance(r, Prepared) else prepare(r) for r in records), result)
    if not batch:
        return result
    pmids = [r.pmid for r in batch]
    owner_of = dict(_lookup(conn, sa.select(paper_pmids.c.pmid, paper_pmids.c.paper_pmid), paper_pmids.c.pmid, pmids))
    stored = {
        row.pmid: row
        for row in _lookup(
            conn,
            sa.select(papers.c.pmid, papers.c.doi, papers.c.content_hash, papers.c.date_revised, papers.c.pmid_version),
            papers.c.pmid,
            [p for p in pmids if owner_of.get(p) == p],
        )
    }
    dois = [r.doi for r in batch if r.doi]
    doi_owner: dict[str, int] = dict(
        _lookup(conn, sa.select(papers.c.doi, papers.c.pmid), papers.c.doi, dois)
    )

    inserts: list[Prepared] = []
    updates: list[Prepared] = []
    aliases: list[dict[str, Any]] = []
    for record in batch:
        digest = record.digest
        if record.pmid in owner_of:
            row = stored.get(record.pmid)
            if row is None:  # this PMID was merged into a DOI twin earlier: nothing new to do
                result.unchanged += 1
            elif row.content_hash == digest:
                result.unchanged += 1
            elif _older(record, row):
                result.skipped["older revision than the stored copy"] += 1
            else:
                if record.doi and doi_owner.get(record.doi, record.pmid) != record.pmid:
                    result.skipped[f"DOI {record.doi} belongs to PMID {doi_owner[record.doi]}; kept without DOI"] += 1
                    record.doi = record.paper["doi"] = None
                if record.doi:
                    doi_owner[record.doi] = record.pmid
                updates.append(record)
            continue
        if record.doi and record.doi in doi_owner:
            target = doi_owner[record.doi]
            aliases.append({"pmid": record.pmid, "paper_pmid": target, "merged_by": "doi", "seen_at": now})
            owner_of[record.pmid] = target
            result.merged += 1
            continue
        if record.doi:
            doi_owner[record.doi] = record.pmid
        owner_of[record.pmid] = record.pmid
        inserts.append(record)
        aliases.append({"pmid": record.pmid, "paper_pmid": record.pmid, "merged_by": "self", "seen_at": now})

    if updates:
        upd_pmids = [r.pmid for r in updates]
        for table in models.CHILD_TABLES:
            for chunk in _chunks(upd_pmids):
                conn.execute(table.delete().where(table.c.paper_pmid.in_(chunk)))
        rows = []
        for record in updates:
            row = record.paper | {"updated_at": now, "content_hash": record.digest}
            row["b_pmid"] = row.pop("pmid")
            rows.append(row)
        conn.execute(
            papers.update().where(papers.c.pmid == sa.bindparam("b_pmid")),
            rows,
        )
        _insert_children(conn, updates)
        result.updated += len(updates)
        result.changed_pmids.extend(upd_pmids)
    if inserts:
        inserted = _insert_new_papers(
            conn, [r.paper | {"updated_at": now, "content_hash": r.digest, "first_seen": now} for r in inserts]
        )
        lost = {r.pmid for r in inserts} - inserted
        if lost:
            absent = _count_lost(conn, lost, result)
            aliases = [a for a in aliases if a["paper_pmid"] not in absent]
            inserts = [r for r in inserts if r.pmid in inserted]
        _insert_children(conn, inserts)
        result.new += len(inserts)
        result.new_pmids.extend(r.pmid for r in inserts)
        result.changed_pmids.extend(r.pmid for r in inserts)
    if aliases:
        conn.execute(_insert_ignoring_conflicts(conn, paper_pmids), aliases)
    return result


def _insert_ignoring_conflicts(conn: Connection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, for both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _insert_new_papers(conn: Connection, rows: list[dict[str, Any]]) -> set[int]:
    """Insert new paper rows; returns the PMIDs actually inserted.

    Another process may store the same paper (or one with the same DOI) between our lookup and
    this insert: such a row is left to it instead of failing the whole batch.
    """
    statement = _insert_ignoring_conflicts(conn, papers).returning(papers.c.pmid)
    return set(conn.execute(statement, rows).scalars())


def _count_lost(conn: Connection, lost: set[int], result: SaveResult) -> set[int]:
    """Account for records another writer beat us to; returns those not stored at all.

    The same PMID stored meanwhile is ``unchanged``; a row of its own lost to the same DOI stored
    meanwhile under another PMID is skipped now and merged when the paper is next seen.
    """
    present = {row[0] for row in _lookup(conn, sa.select(papers.c.pmid), papers.c.pmid, sorted(lost))}
    result.unchanged += len(present)
    absent = lost - present
    if absent:
        result.skipped["DOI stored by another process at the same moment; merged on the next run"] += len(absent)
    return absent


def apply_deletion(conn: Connection, deletion: Deletion, *, now: dt.datetime | None = None) -> int:
    """Mark the listed PMIDs' rows as deleted from PubMed (kept for the delivery ledger); returns rows marked."""
    now = now or dt.datetime.now(dt.UTC)
    marked = 0
    for chunk in _chunks(deletion.pmids):
        res = conn.execute(
            papers.update()
            .where(papers.c.pmid.in_(chunk), papers.c.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        marked += res.rowcount
    return marked


def resolve_pmids(conn: Connection, pmids: Sequence[int]) -> dict[int, int]:
    """Map each known PMID to the PMID of the row holding its work (unknown PMIDs are absent)."""
    return dict(_lookup(conn, sa.select(paper_pmids.c.pmid, paper_pmids.c.paper_pmid), paper_pmids.c.pmid, pmids))
