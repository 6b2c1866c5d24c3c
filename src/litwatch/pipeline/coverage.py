"""What the coverage ledger says of each saved query, and what an edited term would change.

``coverage_of`` reads, per query, the create-date ranges its current term has searched, the gaps
left between its origin and today, its last success and error, and how many papers it found: the
answer to "has everything this query matches been searched for?" (``litwatch coverage``). A query
with a ``preprints`` search has a second line, source ``europepmc``: the first-index-date ranges
its ``preprints`` term has searched and the preprints it found.

``diff_query`` is for a librarian about to let an edited term go live (``litwatch queries diff``):
over the span the ledger's term covered, PubMed's Count for the old term and the new one, and
among stored papers the ones the new term would add to the query and those it would drop. It
costs two ESearch requests (more if the new term finds over 9,999 papers) and stores nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.errors import InputError
from litwatch.files.queries import SavedQuery
from litwatch.pipeline.search import Eutils, search_window, window_term
from litwatch.store import coverage as ledger
from litwatch.store import models
from litwatch.store import papers as store
from litwatch.store.coverage import Range
from litwatch.store.engine import in_chunks

query_state = models.table(models.QueryState)
query_hits = models.table(models.QueryHit)
papers = models.table(models.Paper)
preprint_runs = models.table(models.PreprintRun)


@dataclass(frozen=True)
class Coverage:
    """One query's line of ``litwatch coverage``."""

    query: str
    term_sha256: str
    covered: list[Range]
    gaps: list[Range]
    last_success: dt.datetime | None
    last_error: str | None
    papers: int
    source: str = "pubmed"  # or europepmc: the query's preprints search

    def as_json(self) -> dict[str, object]:
        def days(ranges: list[Range]) -> list[list[str]]:
            return [[lo.isoformat(), hi.isoformat()] for lo, hi in ranges]

        return {"query": self.query, "term_sha256": self.term_sha256, "covered": days(self.covered),
                "gaps": days(self.gaps), "last_success": _utc(self.last_success),
                "last_error": self.last_error, "papers": self.papers, "source": self.source}


def _utc(when: dt.datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp to the second (SQLite hands back stored UTC times without a zone)."""
    if when is None:
        return None
    return when.replace(tzinfo=dt.UTC).isoformat(timespec="seconds") if when.tzinfo is None else (
        when.astimezone(dt.UTC).isoformat(timespec="seconds"))


def coverage_of(engine: Engine, queries: Sequence[SavedQuery], today: dt.date) -> list[Coverage]:
    """Each query's coverage under its current term (and ``preprints`` term), gaps counted from its
    origin to ``today``."""
    found = []
    with engine.connect() as conn:
        for query in queries:
            state = conn.execute(sa.select(query_state.c.last_success_at, query_state.c.last_error)
                                 .where(query_state.c.query_name == query.name)).first()
            found.append(_coverage(conn, query, "crdt", query.term, today,
                                   (state.last_success_at, state.last_error) if state else (None, None),
                                   query_hits.c.paper_pmid > 0))
            if query.preprints:
                found.append(_coverage(conn, query, "ppr", query.preprints, today, _preprint_state(conn, query.name),
                                       query_hits.c.paper_pmid < 0, "europepmc"))
    return found


def _preprint_state(conn: sa.Connection, name: str) -> tuple[dt.datetime | None, str | None]:
    """When the query's preprint search last succeeded, and its error if its last finished run failed."""
    runs = preprint_runs.c
    ok = conn.execute(sa.select(sa.func.max(runs.finished_at))
                      .where(runs.query_name == name, runs.status == "ok")).scalar()
    last = conn.execute(sa.select(runs.status, runs.error).where(runs.query_name == name, runs.status != "running")
                        .order_by(runs.id.desc()).limit(1)).first()
    return ok, last.error if last is not None and last.status == "failed" else None


def _coverage(conn: sa.Connection, query: SavedQuery, kind: str, term: str, today: dt.date,
              state: tuple[dt.datetime | None, str | None], which: sa.ColumnElement[bool],
              source: str = "pubmed") -> Coverage:
    """One line: the ranges ``term`` searched for ``kind``, the gaps left, and the hits ``which`` selects."""
    sha = ledger.fingerprint(term)
    covered = ledger.ranges(conn, query.name, kind, sha)
    origin = min(ledger.origin(conn, query.name, query.start, kind), today)
    count = conn.execute(sa.select(sa.func.count()).select_from(query_hits)
                         .where(query_hits.c.query_name == query.name, which)).scalar_one()
    return Coverage(query.name, sha, covered, ledger.gaps(covered, origin, today), state[0], state[1], int(count),
                    source)


@dataclass
class QueryDiff:
    """What an edited term changes, over the span the ledger's (old) term covered."""

    query: str
    old_sha256: str
    new_sha256: str
    span: Range | None = None
    old_count: int = 0  # PubMed's Count of the old term over the span
    new_count: int = 0
    found: int = 0  # stored papers the query found with its old term
    adds: list[int] = field(default_factory=list)  # stored papers only the new term finds
    drops: list[int] = field(default_factory=list)  # papers the query found that the new term does not
    titles: dict[int, str] = field(default_factory=dict)
    windows: int = 0
    search_count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.old_sha256 != self.new_sha256


def diff_query(engine: Engine, client: Eutils, query: SavedQuery) -> QueryDiff:
    """Compare ``query``'s term (its file now) with the term its ledger was searched with."""
    with engine.connect() as conn:
        known = ledger.ledger_term(conn, query.name)
        if known is None:
            raise InputError(
                f"query {query.name} has no term in the coverage ledger yet (never run, or only before the "
                f"upgrade to the ledger): run it once (`litwatch run --query {query.name}`), then edit and diff"
            )
        old_sha, old_term = known
        diff = QueryDiff(query.name, old_sha, ledger.fingerprint(query.term))
        covered = ledger.ranges(conn, query.name, "crdt", old_sha)
        hits = set(conn.execute(sa.select(query_hits.c.paper_pmid)
                                .where(query_hits.c.query_name == query.name)).scalars())
    diff.found = len(hits)
    if not diff.changed or not covered:
        return diff
    lo, hi = diff.span = (covered[0][0], covered[-1][1])
    diff.old_count = client.esearch(window_term(old_term, lo, hi), retmax=0).count
    ids = search_window(client, query.term, lo, hi, diff)
    diff.new_count = diff.search_count
    with engine.connect() as conn:
        finds = set(store.resolve_pmids(conn, sorted(ids)).values())
        diff.adds, diff.drops = sorted(finds - hits), sorted(hits - finds)
        shown = [*diff.adds, *diff.drops]
        for chunk in in_chunks(shown):
            rows = conn.execute(sa.select(papers.c.pmid, papers.c.title).where(papers.c.pmid.in_(chunk)))
            diff.titles.update((pmid, title) for pmid, title in rows)
    return diff
