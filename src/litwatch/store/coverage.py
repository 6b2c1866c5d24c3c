"""The coverage ledger: which create-date (and modification-date) ranges each saved query has searched.

A range is recorded only once a run searched it completely and stored everything it found, under
the fingerprint of the term that searched it (``fingerprint``: sha256 of the term, whitespace
collapsed). What a run must search is the ledger's complement (``gaps``) from the query's origin
(``origin``: its ``start``, or the earliest date any of its ranges begins, whichever is first) to
today, each gap reaching back ``overlap`` days into the range before it so that papers indexed late
still arrive. An edited term has no ranges yet, so its first run searches the whole span again.

Modification-date (``mdat``) ranges say which revisions the update pass has already fetched; they
count whichever term searched them: a paper an edited term newly finds is either fetched fresh by
that run or stored by another query, whose own update pass keeps it current. So an edit costs
no re-fetch of the papers already stored.

Ranges of kind ``ppr`` are Europe PMC first index dates searched by the query's ``preprints``
term (``pipeline/preprints.py``), recorded under that term's fingerprint.

Ranges written by migration 0007 from old watermarks, and by 0012 from ``preprint_coverage``,
carry no fingerprint; ``adopt_legacy`` gives them to the term of the first run after the upgrade
(the term that wrote them cannot be known).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.store import models

coverage = models.table(models.QueryCoverage)
Range = tuple[dt.date, dt.date]
KINDS = ("crdt", "mdat")  # the PubMed part's; ``ppr`` (preprints) is the Europe PMC step's
_DAY = dt.timedelta(days=1)


def fingerprint(term: str) -> str:
    """sha256 (hex) of the term with its whitespace collapsed: the same search, the same fingerprint."""
    return hashlib.sha256(" ".join(term.split()).encode()).hexdigest()


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Inclusive ranges sorted, with overlapping and adjacent ones joined."""
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + _DAY:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def gaps(covered: Sequence[Range], lo: dt.date, hi: dt.date, *, overlap: int | None = None) -> list[Range]:
    """The parts of [lo, hi] outside ``covered``; with ``overlap``, a gap after a range starts that
    many days before the range's last day (0: on its last day)."""
    found: list[Range] = []
    cursor = lo
    for start, end in merge(covered):
        if end < cursor:
            continue
        if start > hi:
            break
        if start > cursor:
            found.append((cursor, start - _DAY))
        cursor = max(cursor, end + _DAY)
    if cursor <= hi:
        found.append((cursor, hi))
    if overlap is not None:
        ends = {end + _DAY: end for _start, end in merge(covered)}
        found = [(max(lo, ends[g0] - dt.timedelta(days=overlap)) if g0 in ends else g0, g1) for g0, g1 in found]
    return merge(found)


def to_search(covered: Sequence[Range], lo: dt.date, today: dt.date, overlap: int) -> list[Range]:
    """The windows a run searches: the gaps in [lo, today], and always the last ``overlap`` days
    before (and the last day of) today's coverage (a paper created today may be indexed tomorrow)."""
    windows = gaps(covered, lo, today + _DAY, overlap=overlap)
    return [(g0, min(g1, today)) for g0, g1 in windows if g0 <= today]


def ranges(conn: Connection, name: str, kind: str, term_sha256: str | None = None) -> list[Range]:
    """The merged ranges of ``name`` searched by the term with this fingerprint (and legacy ones),
    or by any of its terms when ``term_sha256`` is None."""
    which = [coverage.c.query_name == name, coverage.c.kind == kind]
    if term_sha256 is not None:
        which.append(sa.or_(coverage.c.term_sha256 == term_sha256, coverage.c.term_sha256.is_(None)))
    rows = conn.execute(sa.select(coverage.c.covered_from, coverage.c.covered_to).where(*which)).all()
    return merge((r.covered_from, r.covered_to) for r in rows)


def origin(conn: Connection, name: str, start: dt.date, kind: str = "crdt") -> dt.date:
    """Where the query's coverage of ``kind`` begins: its start, or its earliest range of that kind
    (under any term) if earlier. The update pass, before its first range, begins where create
    dates do: a paper fetched then is current, only its later revisions matter."""
    def first(of: str) -> dt.date | None:
        return conn.execute(sa.select(sa.func.min(coverage.c.covered_from))
                            .where(coverage.c.query_name == name, coverage.c.kind == of)).scalar_one_or_none()

    found = first(kind)
    if found is None and kind == "mdat":
        found = first("crdt")
    return min(start, found) if found is not None else start


def add(conn: Connection, name: str, kind: str, term: str, searched: Iterable[Range], now: dt.datetime) -> None:
    """Record ``searched`` as covered for ``term``, merged with that term's ranges (in one transaction)."""
    sha = fingerprint(term)
    mine = (coverage.c.query_name == name) & (coverage.c.kind == kind) & (coverage.c.term_sha256 == sha)
    old = [(r.covered_from, r.covered_to) for r in conn.execute(
        sa.select(coverage.c.covered_from, coverage.c.covered_to).where(mine))]
    merged = merge([*old, *searched])
    conn.execute(coverage.delete().where(mine))
    conn.execute(coverage.insert(), [
        {"query_name": name, "kind": kind, "term_sha256": sha, "term": " ".join(term.split()),
         "covered_from": lo, "covered_to": hi, "recorded_at": now} for lo, hi in merged])


def adopt_legacy(conn: Connection, name: str, term: str, now: dt.datetime,
                 kinds: Sequence[str] = KINDS) -> None:
    """Give the ranges migrated from a watermark, or from ``preprint_coverage`` (no fingerprint), to
    ``term``: see the module docstring."""
    legacy = coverage.c.term_sha256.is_(None) & (coverage.c.query_name == name)
    for kind in kinds:
        rows = conn.execute(sa.select(coverage.c.covered_from, coverage.c.covered_to)
                            .where(legacy, coverage.c.kind == kind)).all()
        if rows:
            conn.execute(coverage.delete().where(legacy, coverage.c.kind == kind))
            add(conn, name, kind, term, [(r.covered_from, r.covered_to) for r in rows], now)


def ledger_term(conn: Connection, name: str) -> tuple[str, str] | None:
    """The (fingerprint, term) that most recently recorded create-date coverage for ``name``."""
    row = conn.execute(
        sa.select(coverage.c.term_sha256, coverage.c.term).where(
            coverage.c.query_name == name, coverage.c.kind == "crdt", coverage.c.term.is_not(None)
        ).order_by(coverage.c.recorded_at.desc(), coverage.c.id.desc()).limit(1)
    ).first()
    return (row.term_sha256, row.term) if row is not None else None
