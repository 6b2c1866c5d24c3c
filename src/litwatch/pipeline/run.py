"""Running saved queries against PubMed: search each window, fetch what is new, store it, advance.

For each query: the window runs from its watermark minus a few days' overlap (or its start date on
the first run) to today, by create date ([crdt]) so a late-indexed old paper still arrives. A window
whose Count exceeds what ESearch returns (9,999 ids) is split in halves until each part fits. PMIDs
already stored are not fetched again (unless asked); the rest are fetched in POSTed batches, each
checked against what was asked, and each saved in its own transaction. The watermark moves only
after every batch of the window is stored: a failed or killed run leaves it where it was, and the
next run covers the gap while deduplication absorbs the overlap. Every run leaves a receipt, and
every receipt adds up: found = new + known + missing, whatever runs beside it (a paper another
process stored between this run's look-up and its save is counted known). A receipt left
``running`` by a killed run is closed as ``interrupted`` by the next run that holds the lease.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.clock import Clock, utcnow
from litwatch.errors import EutilsError, HistoryLost, LitwatchError, StoreError
from litwatch.files.queries import SavedQuery
from litwatch.records import Deletion, PaperRecord
from litwatch.sources.pubmed_xml import parse_bytes
from litwatch.store import models
from litwatch.store import papers as store
from litwatch.store import tags as tag_store
from litwatch.store.engine import in_chunks
from litwatch.tagging.tagger import Tagger

if TYPE_CHECKING:
    from litwatch.pipeline.preprints import PreprintReceipt

ESEARCH_CAP = 9999  # PubMed ESearch returns at most this many ids for one search
SEARCH_RERUNS = 2  # times a window is searched again when NCBI's history server loses its search
query_state = models.table(models.QueryState)
runs = models.table(models.Run)
query_hits = models.table(models.QueryHit)


class SearchAnswer(Protocol):
    count: int
    ids: list[int]
    warnings: list[str]


class Eutils(Protocol):
    """What the runner needs of litwatch.sources.eutils.EutilsClient (a seam for tests)."""

    @property
    def requests_made(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def esearch(self, term: str, *, retmax: int = ...) -> SearchAnswer: ...

    def efetch(self, pmids: Sequence[int]) -> bytes: ...


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
    preprints: PreprintReceipt | None = None  # the query's Europe PMC step (pipeline/preprints.py)

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


def window_term(term: str, start: dt.date, end: dt.date) -> str:
    """The saved term restricted to a create-date window, as PubMed's own syntax."""
    return f'({term.strip()}) AND ("{start:%Y/%m/%d}"[crdt] : "{end:%Y/%m/%d}"[crdt])'


def search_window(
    client: Eutils, term: str, start: dt.date, end: dt.date, receipt: Receipt
) -> set[int]:
    """Every PMID the term finds in [start, end]; halves the window while PubMed would truncate."""
    answer = client.esearch(window_term(term, start, end), retmax=ESEARCH_CAP)
    receipt.windows += 1
    for warning in answer.warnings:
        if warning not in receipt.warnings:
            receipt.warnings.append(warning)
    if answer.count <= ESEARCH_CAP:
        if len(answer.ids) < answer.count:
            raise EutilsError(
                f"ESearch said Count={answer.count} for {start}..{end} but returned {len(answer.ids)} ids; "
                "refusing to treat the rest as absent"
            )
        receipt.search_count += answer.count
        return set(answer.ids)
    if start == end:
        raise EutilsError(
            f"{answer.count} papers were created on {start} alone, more than ESearch's {ESEARCH_CAP}; "
            "narrow the query (it cannot be split further by date)"
        )
    middle = start + (end - start) // 2
    return search_window(client, term, start, middle, receipt) | search_window(
        client, term, middle + dt.timedelta(days=1), end, receipt
    )


def get_watermark(conn: Connection, name: str) -> dt.date | None:
    return conn.execute(
        sa.select(query_state.c.watermark).where(query_state.c.query_name == name)
    ).scalar_one_or_none()


def _set_state(conn: Connection, name: str, values: dict[str, object]) -> None:
    updated = conn.execute(query_state.update().where(query_state.c.query_name == name).values(**values))
    if updated.rowcount == 0:
        conn.execute(query_state.insert().values(query_name=name, **values))


def window_for(
    conn: Connection, query: SavedQuery, today: dt.date, overlap_days: int, since: dt.date | None
) -> tuple[dt.date, dt.date]:
    if since is not None:
        return since, today
    watermark = get_watermark(conn, query.name)
    if watermark is None:
        return min(query.start, today), today
    return min(watermark - dt.timedelta(days=overlap_days), today), today


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


def fetch_batch(client: Eutils, pmids: Sequence[int]) -> tuple[list[PaperRecord], list[int]]:
    """Fetch and parse a batch; ask once more for PMIDs the answer lacked. Returns (records, missing).

    The one place fetched answers become records: the client returns them verified, as bytes.
    """
    wanted = set(pmids)
    records: dict[int, PaperRecord] = {}
    for _attempt in range(2):
        ask = sorted(wanted - records.keys())
        if not ask:
            break
        for item in parse_bytes(client.efetch(ask)):
            if isinstance(item, Deletion):
                continue
            if item.pmid in wanted:
                records[item.pmid] = item
    return list(records.values()), sorted(wanted - records.keys())


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
                 f"{now:%Y-%m-%d %H:%M:%S} UTC by {holder}; the watermark stayed, later runs cover the window")
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
        start, end = window_for(conn, query, today, overlap_days, since)
        receipt = Receipt(query.name, start, end, dry_run=dry_run)
        if holder is not None:
            receipt.interrupted = close_interrupted(conn, query.name, holder, clock())
        run_id = _start_run(conn, receipt, clock(), holder)
    reruns = 0
    try:
        while True:
            ids = sorted(search_window(client, query.term, start, end, receipt))
            receipt.ids_seen = len(ids)
            if dry_run:
                break
            new_before = receipt.new  # stored as new by an earlier pass of this run
            try:
                _fetch_and_store(engine, client, query, ids, receipt, run_id, batch_size, refetch, tagger, clock, progress)
                receipt.known -= new_before  # the look-up found them stored, but this run stored them
                break
            except HistoryLost:
                # a new search gives a new WebEnv; what is stored by now is known, not fetched again
                if reruns >= SEARCH_RERUNS:
                    raise
                reruns += 1
                receipt.search_count = receipt.windows = 0
                receipt.missing.clear()  # asked for again after the new search
    except StoreError as exc:  # the database failed: recorded as for Ctrl-C below, then raised
        receipt.error = str(exc)
        raise
    except LitwatchError as exc:
        receipt.error = str(exc)
    except BaseException as exc:
        # Ctrl-C, a bug...: the receipt says the run failed, so the watermark stays,
        # then the exception goes on to the caller.
        receipt.error = f"interrupted: {type(exc).__name__}: {exc}"
        raise
    finally:
        receipt.requests = client.requests_made - requests0
        receipt.retries = client.retries - retries0 + reruns
        receipt.duration_s = round(time.monotonic() - started, 3)
        with engine.begin() as conn:
            if receipt.ok and not dry_run and since is None:
                _set_state(conn, query.name, {"watermark": end, "last_success_at": clock(), "last_error": None})
            elif not receipt.ok:
                _set_state(conn, query.name, {"last_error": receipt.error})
            _finish_run(conn, run_id, receipt, clock())
    return receipt


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
) -> None:
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
