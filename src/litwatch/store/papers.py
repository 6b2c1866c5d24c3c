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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.clock import utcnow
from litwatch.records import Deletion, PaperRecord
from litwatch.store import tables
from litwatch.store.engine import in_chunks
from litwatch.store.rows import CHILD_COLUMNS, PAPER_COLUMNS, Prepared, prepare

papers = tables.papers
paper_pmids = tables.paper_pmids
_ROWS_PER_INSERT = 500  # x 27 columns: under engine.MAX_PARAMETERS
_SAVED_COLUMNS = (*PAPER_COLUMNS, "first_seen", "updated_at", "content_hash")


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

    def counts(self) -> SaveResult:
        """The counts alone, without the PMIDs: a file's summary need not hold every PMID it stored."""
        return replace(self, skipped=Counter(self.skipped), new_pmids=[], changed_pmids=[])

    def __iadd__(self, other: SaveResult) -> SaveResult:
        for name in ("read", "new", "updated", "unchanged", "merged", "deleted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.new_pmids.extend(other.new_pmids)
        self.changed_pmids.extend(other.changed_pmids)
        return self


def _lookup(conn: Connection, query: Any, column: Any, keys: Sequence[Any]) -> list[Any]:
    rows: list[Any] = []
    for chunk in in_chunks(keys):
        rows.extend(conn.execute(query.where(column.in_(chunk))).all())
    return rows


def _insert_children(conn: Connection, prepared: Sequence[Prepared]) -> None:
    for table in tables.CHILD_TABLES:
        rows = [row for item in prepared for row in item.children[table.name]]
        if rows:
            bulk_insert(conn, table.name, CHILD_COLUMNS[table.name], rows)


def _index_fulltext(conn: Connection, prepared: Sequence[Prepared]) -> None:
    """Write the SQLite full-text rows of new and revised papers (PostgreSQL's triggers do it there)."""
    if conn.dialect.name == "sqlite" and prepared:
        conn.exec_driver_sql(
            "INSERT OR REPLACE INTO papers_fts (rowid, title, abstract, keywords) VALUES (?, ?, ?, ?)",
            [item.fulltext for item in prepared],
        )


def _mark(conn: Connection) -> str:
    """The driver's parameter mark: sqlite3's qmark, psycopg's format style."""
    return "?" if conn.dialect.name == "sqlite" else "%s"


def _placeholders(conn: Connection, count: int) -> str:
    return ", ".join([_mark(conn)] * count)


def bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, conflict: str = ""
) -> None:
    """A plain INSERT of tuples handed straight to the driver's executemany.

    SQLAlchemy's per-row parameter processing cost more than SQLite's own work for the child
    rows of a paper (bench/ingest_speed.py). These rows hold only ints, strings and bools, with
    dates and datetimes already in the form SQLAlchemy would give the driver (``_iso``,
    ``_driver_value``). ``conflict`` is appended as it is (ON CONFLICT DO NOTHING).
    """
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'INSERT INTO "{table}" ({names}) VALUES ({_placeholders(conn, len(columns))}) {conflict}'
    conn.exec_driver_sql(statement.rstrip(), list(rows))


def _driver_value(conn: Connection, column: sa.ColumnClause[Any], value: Any) -> Any:
    """``value`` as SQLAlchemy would hand it to the driver for ``column`` (a datetime on SQLite)."""
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process is not None else value


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
    now = now or utcnow()
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
    aliases: list[tuple[int, int, str, Any]] = []  # paper_pmids rows: pmid, paper_pmid, merged_by, seen_at
    seen_at = _driver_value(conn, paper_pmids.c.seen_at, now)
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
                    record.drop_doi()
                if record.doi:
                    doi_owner[record.doi] = record.pmid
                updates.append(record)
            continue
        if record.doi and record.doi in doi_owner:
            target = doi_owner[record.doi]
            aliases.append((record.pmid, target, "doi", seen_at))
            owner_of[record.pmid] = target
            result.merged += 1
            continue
        if record.doi:
            doi_owner[record.doi] = record.pmid
        owner_of[record.pmid] = record.pmid
        inserts.append(record)
        aliases.append((record.pmid, record.pmid, "self", seen_at))

    if updates:
        upd_pmids = [r.pmid for r in updates]
        _forget_annotations_of_new_text(conn, updates)
        for table in tables.CHILD_TABLES:
            for chunk in in_chunks(upd_pmids):
                conn.execute(table.delete().where(table.c.paper_pmid.in_(chunk)))
        stamp = _driver_value(conn, papers.c.updated_at, now)
        _update_papers(conn, [(*r.paper[1:], stamp, r.digest, r.pmid) for r in updates])
        _insert_children(conn, updates)
        _index_fulltext(conn, updates)
        result.updated += len(updates)
        result.changed_pmids.extend(upd_pmids)
    if inserts:
        stamp = _driver_value(conn, papers.c.first_seen, now)
        inserted = _insert_new_papers(conn, [(*r.paper, stamp, stamp, r.digest) for r in inserts])
        lost = {r.pmid for r in inserts} - inserted
        if lost:
            absent = _count_lost(conn, lost, result)
            aliases = [a for a in aliases if a[1] not in absent]
            inserts = [r for r in inserts if r.pmid in inserted]
        _insert_children(conn, inserts)
        _index_fulltext(conn, inserts)
        result.new += len(inserts)
        result.new_pmids.extend(r.pmid for r in inserts)
        result.changed_pmids.extend(r.pmid for r in inserts)
    if aliases:
        bulk_insert(conn, "paper_pmids", ("pmid", "paper_pmid", "merged_by", "seen_at"), aliases,
                    conflict="ON CONFLICT DO NOTHING")
    return result


_FORGET = (
    sa.text("DELETE FROM paper_tags WHERE origin = 'pubtator3' AND paper_pmid IN :p"),
    sa.text("DELETE FROM pubtator_papers WHERE paper_pmid IN :p"),
)


def _forget_annotations_of_new_text(conn: Connection, updates: Sequence[Prepared]) -> None:
    """A revision whose title or abstract changed loses its PubTator3 annotations (their spans
    point into the old text) and is no longer counted annotated: it keeps the dictionary's tags
    until the next PubTator3 step asks about it again (``pipeline/pubtator.py``)."""
    new_text = {r.pmid: r.text for r in updates}
    old_text = _lookup(conn, sa.select(papers.c.pmid, papers.c.title, papers.c.abstract), papers.c.pmid,
                       list(new_text))
    changed = [row.pmid for row in old_text if (row.title, row.abstract) != new_text[row.pmid]]
    for chunk in in_chunks(changed):
        for statement in _FORGET:
            conn.execute(statement.bindparams(sa.bindparam("p", expanding=True)), {"p": chunk})


def _update_papers(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Rewrite revised papers: each row holds ``PAPER_COLUMNS`` but the PMID, updated_at, content_hash, PMID."""
    mark = _mark(conn)
    columns = (*PAPER_COLUMNS[1:], "updated_at", "content_hash")
    assignments = ", ".join(f'"{c}" = {mark}' for c in columns)
    conn.exec_driver_sql(f"UPDATE papers SET {assignments} WHERE pmid = {mark}", rows)


def _insert_new_papers(conn: Connection, rows: list[tuple[Any, ...]]) -> set[int]:
    """Insert new paper rows (values in ``_SAVED_COLUMNS`` order); returns the PMIDs actually inserted.

    Another process may store the same paper (or one with the same DOI) between our lookup and
    this insert: such a row is left to it (ON CONFLICT DO NOTHING) instead of failing the whole
    batch, and RETURNING tells which rows were ours. Rows go ``_ROWS_PER_INSERT`` to a statement.
    """
    names = ", ".join(f'"{c}"' for c in _SAVED_COLUMNS)
    row_marks = f"({_placeholders(conn, len(_SAVED_COLUMNS))})"
    inserted: set[int] = set()
    for chunk in in_chunks(rows, _ROWS_PER_INSERT):
        values = ", ".join([row_marks] * len(chunk))
        params = tuple(chain.from_iterable(chunk))
        result = conn.exec_driver_sql(
            f"INSERT INTO papers ({names}) VALUES {values} ON CONFLICT DO NOTHING RETURNING pmid", params
        )
        inserted.update(pmid for (pmid,) in result)
    return inserted


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
    now = now or utcnow()
    marked = 0
    for chunk in in_chunks(deletion.pmids):
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
