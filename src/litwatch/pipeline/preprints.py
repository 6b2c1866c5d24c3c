"""The Europe PMC step of a saved query's run: its preprints, searched after its PubMed part.

A query with ``preprints = '''...'''`` (the same intent in Europe PMC's syntax) is searched as
``(<preprints>) AND SRC:PPR AND FIRST_IDATE:[from TO to]`` over each gap the coverage ledger
(``store/coverage.py``, kind ``ppr``, under the fingerprint of the ``preprints`` term) leaves
between the query's start (or a backfill's ``--since``) and today, each gap reaching back the
overlap into the range before it, as the PubMed part's windows do: an edited ``preprints`` term
searches its whole span again. Every preprint found is stored (``store.works.save_preprints``), tagged, recorded
as a hit of the query (so digests pick it up like any paper; its ``query_hits.run_id`` is the
``preprint_runs`` id) and linked to its journal version when one is stored. Each run leaves a
receipt in ``preprint_runs`` (source ``europepmc``) whose counts add up: found = new + known. A
failed search (after the client's retries) is a failed receipt and leaves the ledger where it
was: the next run searches the gap again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from litwatch.clock import Clock, utcnow
from litwatch.errors import EuropePmcError, LitwatchError
from litwatch.files.queries import SavedQuery
from litwatch.records import PaperRecord
from litwatch.pipeline.run import Receipt, record_hits
from litwatch.sources.europepmc import SearchAnswer
from litwatch.sources.europepmc_results import EuropePmcRecord, read_result
from litwatch.store import coverage as ledger
from litwatch.store import models
from litwatch.store import tags as tag_store
from litwatch.store import works
from litwatch.tagging.tagger import Tagger

SOURCE = "europepmc"
preprint_runs = models.table(models.PreprintRun)


class EuropePmc(Protocol):
    """What the step needs of ``sources.europepmc.EuropePmcClient`` (a seam for tests)."""

    @property
    def requests_made(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def search_preprints(self, query: str, start: dt.date, end: dt.date) -> SearchAnswer: ...


@dataclass
class PreprintReceipt:
    """What one query's Europe PMC step did; also saved as a row of ``preprint_runs``."""

    query: str
    window_from: dt.date
    window_to: dt.date
    hit_count: int = 0
    found: int = 0
    new: int = 0
    known: int = 0
    linked: int = 0
    requests: int = 0
    retries: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        """One line for the run's report."""
        head = f"{self.query}: preprints {self.window_from}..{self.window_to}"
        if not self.ok:
            return f"{head}: FAILED"
        linked = f", {self.linked} linked" if self.linked else ""
        return f"{head}: found {self.found}, new {self.new}, known {self.known}{linked}"


KIND = "ppr"  # the ledger's kind for Europe PMC first index dates


def preprint_windows(engine: Engine, query: SavedQuery, today: dt.date, overlap_days: int,
                     since: dt.date | None = None, clock: Clock = utcnow) -> list[tuple[dt.date, dt.date]]:
    """The first-index-date windows the ledger lacks for the query's ``preprints`` term, from its
    start (or ``since``, a backfill) to today, each reaching back ``overlap_days``."""
    assert query.preprints is not None
    with engine.begin() as conn:
        ledger.adopt_legacy(conn, query.name, query.preprints, clock(), kinds=(KIND,))  # ranges of 0010
        covered = ledger.ranges(conn, query.name, KIND, ledger.fingerprint(query.preprints))
        origin = ledger.origin(conn, query.name, query.start, KIND)
    lo = min(origin, since) if since is not None else origin
    return ledger.to_search(covered, min(lo, today), today, overlap_days)


def read_preprints(answer: SearchAnswer) -> list[EuropePmcRecord]:
    """The preprints among a search's results; a result that cannot be read fails the step."""
    records = []
    for result in answer.results:
        try:
            record = read_result(result)
        except (KeyError, TypeError, ValueError) as exc:
            raise EuropePmcError(f"Europe PMC result {result.get('id', '?')!r} cannot be read ({exc!r}); "
                                 "nothing of this search was stored: run again, or report the record") from exc
        if record.is_preprint and record.source == "PPR":
            records.append(record)
    return records


def run_preprints(
    engine: Engine,
    client: EuropePmc,
    query: SavedQuery,
    *,
    today: dt.date,
    overlap_days: int = 3,
    since: dt.date | None = None,
    tagger: Tagger | None = None,
    clock: Clock = utcnow,
) -> PreprintReceipt:
    """Search and store the query's preprints; never raises for a Europe PMC failure: the
    receipt carries the error (the caller fails the query's run)."""
    if not query.preprints:
        raise ValueError(f"query {query.name} has no preprints search")
    windows = preprint_windows(engine, query, today, overlap_days, since, clock)
    start, end = windows[0][0], windows[-1][1]
    receipt = PreprintReceipt(query.name, start, end)
    requests0, retries0 = client.requests_made, client.retries
    with engine.begin() as conn:
        run_id = int(conn.execute(preprint_runs.insert().values(
            query_name=query.name, source=SOURCE, started_at=clock(), window_from=start, window_to=end,
            hit_count=0, found=0, new=0, known=0, requests=0, retries=0, status="running",
        )).inserted_primary_key[0])  # type: ignore[index]
    try:
        records: list[EuropePmcRecord] = []
        for lo, hi in windows:  # every window answered before anything is stored
            answer = client.search_preprints(query.preprints, lo, hi)
            receipt.hit_count += answer.receipt.hit_count
            receipt.warnings.extend(answer.receipt.warnings)
            records.extend(read_preprints(answer))
        records = list({r.source_id: r for r in records}.values())  # overlapping windows find some twice
        with engine.begin() as conn:
            saved = works.save_preprints(conn, records, now=clock())
            tag_store.tag_changed(conn, [replace_key(r) for r in records], saved.changed, tagger=tagger)
            record_hits(conn, query.name, saved.keys, run_id, clock())
            receipt.linked = len(works.link_works(conn, now=clock()))
            ledger.add(conn, query.name, KIND, query.preprints, windows, clock())
        receipt.found, receipt.new = len(saved.keys), saved.new
        receipt.known = receipt.found - receipt.new
    except LitwatchError as exc:
        receipt.error = str(exc)
    finally:
        receipt.requests = client.requests_made - requests0
        receipt.retries = client.retries - retries0
        with engine.begin() as conn:
            conn.execute(preprint_runs.update().where(preprint_runs.c.id == run_id).values(
                finished_at=clock(), hit_count=receipt.hit_count, found=receipt.found, new=receipt.new,
                known=receipt.known, requests=receipt.requests, retries=receipt.retries,
                status="ok" if receipt.ok else "failed", error=receipt.error,
                warnings="\n".join(receipt.warnings) or None))
    return receipt


def after_pubmed(engine: Engine, client: EuropePmc | None, query: SavedQuery, receipt: Receipt, *,
                 today: dt.date, clock: Clock, options: dict[str, Any]) -> None:
    """The hook of a query's run: when its PubMed part worked (and was not a dry run), run its
    preprints search, from a backfill's ``since`` too; a failure fails the query's receipt, loudly."""
    if client is None or not query.preprints or not receipt.ok or receipt.dry_run:
        return
    receipt.preprints = run_preprints(engine, client, query, today=today, clock=clock,
                                      overlap_days=options.get("overlap_days", 3), since=options.get("since"),
                                      tagger=options.get("tagger"))
    if receipt.preprints.error is not None:
        receipt.error = f"Europe PMC: {receipt.preprints.error}"


def replace_key(record: EuropePmcRecord) -> PaperRecord:
    """The record's paper under its ``papers`` key, as the tagger reads it."""
    return replace(record.paper, pmid=works.preprint_key(record.source_id))
