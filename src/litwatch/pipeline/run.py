"""Running saved queries against PubMed: search what the ledger lacks, fetch what is new, store it.

For each query the coverage ledger (``store/coverage.py``) says which create-date ([crdt]) ranges
its term has searched completely; a run searches every gap from the query's origin to today, each
reaching a few days' overlap back into the range before it so that a late-indexed paper still
arrives (the first run searches from the query's ``start``; ``--since`` searches from that date).
An edited term has an empty ledger of its own, so its first run searches the whole span again;
papers already stored are not fetched again (unless asked), the rest are fetched in POSTed batches,
each checked against what was asked and saved in its own transaction. Then the update pass
(``updates.py``) searches the term by modification date ([mdat]) since its last pass and re-fetches
the stored papers PubMed revised. The searched ranges enter the ledger only after everything is
stored: a failed or killed run adds nothing, and the next run covers the gap while deduplication
absorbs the overlap. Every run leaves a receipt, and every receipt adds up: found = new + known +
missing, whatever runs beside it (a paper another process stored between this run's look-up and
its save is counted known). A receipt left ``running`` by a killed run is closed as
``interrupted`` by the next run that holds the lease.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.clock import Clock, utcnow
from litwatch.errors import HistoryLost, LitwatchError, StoreError
from litwatch.files.queries import SavedQuery
from litwatch.pipeline.search import ESEARCH_CAP, Eutils, SearchAnswer, fetch_batch, search_window, window_term
from litwatch.pipeline.updates import update_stored
from litwatch.store import coverage as ledger
from litwatch.store import models
from litwatch.store import papers as store
from litwatch.store import tags as tag_store
from litwatch.store.coverage import Range
from litwatch.store.engine import in_chunks
from litwatch.tagging.tagger import Tagger

if TYPE_CHECKING:
    from litwatch.pipeline.preprints import PreprintReceipt
    from litwatch.pipeline.pubtator import PubtatorReceipt

__all__ = ["ESEARCH_CAP", "Eutils", "Receipt", "SearchAnswer", "fetch_batch", "run_query", "search_window",
           "window_term"]

SEARCH_RERUNS = 2  # times a window is searched again when NCBI's history server loses its search
query_state = models.table(models.QueryState)
runs = models.table(models.Run)
query_hits = models.table(models.QueryHit)


@dataclass
class Receipt:
    """What one query's run did; also saved as a row of ``runs``."""

    query: str
    window_from: dt.date
    window_to: dt.date
    search_count: int = 0
    ids_seen: int = 0
    fetched: int = 0
    new: int = 0
    known: int = 0
    missing: list[int] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    duration_s: float = 0.0
    windows: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    dry_run: bool = False
    skipped: str | None = None  # the holder running this query elsewhere; nothing was done here
    interrupted: list[str] = field(default_factory=list)  # earlier receipts this run closed
    updated: int = 0  # stored papers the update pass found revised and stored anew
    update_requests: int = 0  # E-utilities requests the update pass made (part of ``requests``)
    preprints: PreprintReceipt | None = None  # the query's Europe PMC step (pipeline/preprints.py)
    pubtator: PubtatorReceipt | None = None  # the PubTator3 step after it (pipeline/pubtator.py)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return f"skipped (running in {self.skipped})"
        if not self.ok:
            return "failed"
        return "dry-run" if self.dry_run else "ok"


def get_watermark(conn: Connection, name: str) -> dt.date | None:
    return conn.execute(
        sa.select(query_state.c.watermark).where(query_state.c.query_name == name)
    ).scalar_one_or_none()


def _set_state(conn: Connection, name: str, values: dict[str, object]) -> None:
    """Insert or update the query's state in one statement: two runs finishing at once must not
    both insert it (ON CONFLICT, which SQLite and PostgreSQL both read)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(query_state)
    conn.execute(insert.values(query_name=name, **values)
                 .on_conflict_do_update(index_elements=[query_state.c.query_name], set_=values))


def plan_windows(
    conn: Connection, query: SavedQuery, kind: str, today: dt.date, overlap_days: int, since: dt.date | None
) -> list[Range]:
    """The windows of ``kind`` (crdt or mdat) a run of ``query`` searches: the ledger's gaps (for
    crdt, those of the query's current term), or [since, today] for a backfill of create dates."""
    if since is not None and kind == "crdt":
        return [(min(since, today), today)]
    covered = ledger.ranges(conn, query.name, kind, ledger.fingerprint(query.term) if kind == "crdt" else None)
    return ledger.to_search(covered, min(ledger.origin(conn, query.name, query.start, kind), today), today,
                            overlap_days)


def record_hits(conn: Connection, name: str, pmids: Sequence[int], run_id: int, now: dt.datetime) -> None:
    """Remember that ``name`` found these papers (their rows' PMIDs), first and last time."""
    if not pmids:
        return
    owners = sorted(set(store.resolve_pmids(conn, pmids).values()))
    existing: set[int] = set()
    for chunk in in_chunks(owners):
        existing.update(
            conn.execute(
                sa.select(query_hits.c.paper_pmid).where(
                    query_hits.c.query_name == name, query_hits.c.paper_pmid.in_(chunk)
                )
            ).scalars()
        )
        if existing & set(chunk):
            conn.execute(
                query_hits.update()
                .where(query_hits.c.query_name == name, query_hits.c.paper_pmid.in_(chunk))
                .values(last_found_at=now)
            )
    fresh = [p for p in owners if p not in existing]
    if fresh:
        conn.execute(
            query_hits.insert(),
            [
                {"query_name": name, "paper_pmid": p, "first_found_at": now, "last_found_at": now, "run_id": run_id}
                for p in fresh
            ],
        )


def close_interrupted(conn: Connection, name: str, holder: str, now: dt.datetime) -> list[str]:
    """Close as ``interrupted`` every receipt of ``name`` still ``running`` under another holder.

    Called by a run holding the lease ``query:<name>``: no other live process runs this query, so
    such a receipt was left by a run that was killed (its lease expired or its process is gone).
    Returns one line per receipt closed.
    """
    stale = conn.execute(
        sa.select(runs.c.id, runs.c.started_at, runs.c.holder).where(
            runs.c.query_name == name, runs.c.status == "running",
            sa.or_(runs.c.holder.is_(None), runs.c.holder != holder),
        ).order_by(runs.c.id)
    ).all()
    closed = []
    for row in stale:
        who = row.holder or "a process that recorded no holder"
        error = (f"interrupted: {who} stopped without finishing this run (killed?); closed at "
                 f"{now:%Y-%m-%d %H:%M:%S} UTC by {holder}; nothing entered the coverage ledger, later runs cover the window")
        conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status == "running")
                     .values(status="interrupted", finished_at=now, error=error))
        closed.append(f"run {row.id} started {row.started_at:%Y-%m-%d %H:%M:%S} UTC by {who} was interrupted")
    return closed


def _start_run(conn: Connection, receipt: Receipt, now: dt.datetime, holder: str | None) -> int:
    result = conn.execute(
        runs.insert().values(
            query_name=receipt.query,
            started_at=now,
            window_from=receipt.window_from,
            window_to=receipt.window_to,
            status="running",
            holder=holder,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def _finish_run(conn: Connection, run_id: int, receipt: Receipt, now: dt.datetime) -> None:
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id)
        .values(
            finished_at=now,
            search_count=receipt.search_count,
            ids_seen=receipt.ids_seen,
            fetched=receipt.fetched,
            new=receipt.new,
            known=receipt.known,
            missing=len(receipt.missing),
            requests=receipt.requests,
            retries=receipt.retries,
            duration_s=receipt.duration_s,
            status=receipt.status,
            error=receipt.error,
            updated=receipt.updated,
            update_requests=receipt.update_requests,
            warnings="\n".join(receipt.warnings) or None,
            missing_pmids=",".join(map(str, receipt.missing)) or None,
        )
    )


def run_query(
    engine: Engine,
    client: Eutils,
    query: SavedQuery,
    *,
    today: dt.date,
    overlap_days: int = 3,
    batch_size: int = 200,
    since: dt.date | None = None,
    dry_run: bool = False,
    refetch: bool = False,
    tagger: Tagger | None = None,
    clock: Clock = utcnow,
    progress: Callable[[str, int, int], None] | None = None,
    holder: str | None = None,
) -> Receipt:
    """Run one saved query; never raises for a fetch failure: the receipt carries the error.

    ``holder``: the lease ``query:<name>`` this run holds; its receipt names it, and receipts
    other holders left ``running`` are closed as interrupted first.
    """
    started = time.monotonic()
    requests0, retries0 = client.requests_made, client.retries
    with engine.begin() as conn:
        windows = plan_windows(conn, query, "crdt", today, overlap_days, since)
        updates = plan_windows(conn, query, "mdat", today, 0, None)  # NCBI dates a revision as it makes it
        receipt = Receipt(query.name, min((w[0] for w in windows), default=today),
                          max((w[1] for w in windows), default=today), dry_run=dry_run)
        if holder is not None:
            receipt.interrupted = close_interrupted(conn, query.name, holder, clock())
        run_id = _start_run(conn, receipt, clock(), holder)
    reruns = 0
    fresh: set[int] = set()  # fetched by this run: the update pass need not ask for them again
    try:
        while True:
            found: set[int] = set()
            for lo, hi in windows:
                found |= search_window(client, query.term, lo, hi, receipt)
            ids = sorted(found)
            receipt.ids_seen = len(ids)
            if dry_run:
                break
            new_before = receipt.new  # stored as new by an earlier pass of this run
            try:
                fresh |= _fetch_and_store(engine, client, query, ids, receipt, run_id, batch_size, refetch, tagger,
                                          clock, progress)
                receipt.known -= new_before  # the look-up found them stored, but this run stored them
                break
            except HistoryLost:
                # a new search gives a new WebEnv; what is stored by now is known, not fetched again
                if reruns >= SEARCH_RERUNS:
                    raise
                reruns += 1
                receipt.search_count = receipt.windows = 0
                receipt.missing.clear()  # asked for again after the new search
        if not dry_run:
            _update_pass(engine, client, query, updates, receipt, fresh, batch_size, tagger, clock)
    except StoreError as exc:  # the database failed: recorded as for Ctrl-C below, then raised
        receipt.error = str(exc)
        raise
    except LitwatchError as exc:
        receipt.error = str(exc)
    except BaseException as exc:
        # Ctrl-C, a bug...: the receipt says the run failed, so the ledger gains nothing,
        # then the exception goes on to the caller.
        receipt.error = f"interrupted: {type(exc).__name__}: {exc}"
        raise
    finally:
        receipt.requests = client.requests_made - requests0
        receipt.retries = client.retries - retries0 + reruns
        receipt.duration_s = round(time.monotonic() - started, 3)
        with engine.begin() as conn:
            if receipt.ok and not dry_run:
                ledger.adopt_legacy(conn, query.name, query.term, clock())  # ranges planned with them
                ledger.add(conn, query.name, "crdt", query.term, windows, clock())
                ledger.add(conn, query.name, "mdat", query.term, updates, clock())
                covered = ledger.ranges(conn, query.name, "crdt", ledger.fingerprint(query.term))
                _set_state(conn, query.name, {"watermark": covered[-1][1], "last_success_at": clock(),
                                              "last_error": None})
            elif not receipt.ok:
                _set_state(conn, query.name, {"last_error": receipt.error})
            _finish_run(conn, run_id, receipt, clock())
    return receipt


def _update_pass(
    engine: Engine,
    client: Eutils,
    query: SavedQuery,
    windows: list[Range],
    receipt: Receipt,
    fresh: set[int],
    batch_size: int,
    tagger: Tagger | None,
    clock: Callable[[], dt.datetime],
) -> None:
    """The update pass (updates.py) into the receipt: its requests, the papers it updated, its warnings."""
    before = client.requests_made
    try:
        done = update_stored(engine, client, query, windows, fresh=fresh, batch_size=batch_size, tagger=tagger,
                             clock=clock)
    finally:
        receipt.update_requests = client.requests_made - before
    receipt.updated = done.updated
    receipt.warnings += [w for w in done.warnings if w not in receipt.warnings]
    if done.missing:
        receipt.warnings.append(f"update pass: {len(done.missing)} revised PMID(s) not returned by efetch "
                                f"(kept as stored): {', '.join(map(str, done.missing[:20]))}")
    if done.deleted:
        receipt.warnings.append(f"update pass: {done.deleted} stored paper(s) deleted from PubMed, marked deleted")


def _fetch_and_store(
    engine: Engine,
    client: Eutils,
    query: SavedQuery,
    ids: list[int],
    receipt: Receipt,
    run_id: int,
    batch_size: int,
    refetch: bool,
    tagger: Tagger | None,
    clock: Callable[[], dt.datetime],
    progress: Callable[[str, int, int], None] | None,
) -> set[int]:
    """Fetch and store the ids not stored yet (all with ``refetch``); returns the PMIDs fetched."""
    with engine.begin() as conn:
        known = set(store.resolve_pmids(conn, ids))
        record_hits(conn, query.name, sorted(known), run_id, clock())
    receipt.known = len(known)
    todo = ids if refetch else [p for p in ids if p not in known]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        records, missing = fetch_batch(client, batch)
        receipt.fetched += len(records)
        receipt.missing.extend(missing)
        with engine.begin() as conn:
            saved = store.save_batch(conn, records, now=clock())
            tag_store.tag_changed(conn, records, saved.changed_pmids, tagger=tagger)
            record_hits(conn, query.name, [r.pmid for r in records], run_id, clock())
        receipt.new += saved.new
        # fetched, not new, and not known at the look-up: stored meanwhile by another process
        receipt.known += len(records) - saved.new - sum(1 for r in records if r.pmid in known)
        if progress is not None:
            progress(query.name, min(start + batch_size, len(todo)), len(todo))
    return set(todo)
