"""`litwatch run`'s core: complete, incremental runs over real sockets against a fake E-utilities."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from fake_eutils import FakeEutils, Fault
from sqlalchemy.engine import Engine

from litwatch.files.queries import SavedQuery
from litwatch.pipeline import run as runner
from litwatch.sources.eutils import EutilsClient

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = dt.date(2026, 11, 23)
QUERY = SavedQuery(
    name="migraine-immunology",
    term='"migraine disorders"[MeSH] AND (FOXP3[tiab] OR "regulatory T cells"[tiab])',
    title="Migraine immunology",
    schedule=None,
    start=TODAY - dt.timedelta(days=30),
    groups=(),
    path=Path("queries/migraine-immunology.toml"),
)


def client_for(fake: FakeEutils) -> EutilsClient:
    return EutilsClient(fake.url, "librarian@example.org", backoff=0.0, sleep=lambda _s: None)


def load_real_records(fake: FakeEutils, crdt: dt.date) -> list[int]:
    pmids: list[int] = []
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("*.xml")):
        pmids += fake.add_records_from_file(path, crdt=crdt)
    return pmids


def stored_pmids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT pmid FROM papers")).scalars())


def watermark(engine: Engine) -> dt.date | None:
    with engine.connect() as conn:
        return runner.get_watermark(conn, QUERY.name)


def test_window_term_is_pubmed_syntax() -> None:
    assert runner.window_term(" a[ti] OR b ", dt.date(2026, 1, 2), dt.date(2026, 2, 3)) == (
        '(a[ti] OR b) AND ("2026/01/02"[crdt] : "2026/02/03"[crdt])'
    )


def test_first_run_then_a_week_later_only_the_new_papers(engine: Engine, fake_eutils: FakeEutils) -> None:
    real = load_real_records(fake_eutils, TODAY - dt.timedelta(days=10))
    client = client_for(fake_eutils)
    first = runner.run_query(engine, client, QUERY, today=TODAY, batch_size=5)
    assert first.ok, first.error
    assert (first.window_from, first.window_to) == (QUERY.start, TODAY)
    assert first.ids_seen == len(real) and first.new == len(real) and first.missing == []
    assert stored_pmids(engine) == set(real)
    assert watermark(engine) == TODAY
    # one search, one efetch per batch of 5 new ids, one update search (all just fetched): nothing wasted
    assert first.requests == 1 + -(-len(real) // 5) + 1 == fake_eutils.count()
    assert (first.update_requests, first.updated) == (1, 0)

    later = TODAY + dt.timedelta(days=7)
    fresh = fake_eutils.add_clones(3, first_pmid=90_000_001, crdt=later - dt.timedelta(days=1))
    fake_eutils.requests.clear()
    second = runner.run_query(engine, client, QUERY, today=later, batch_size=5)
    assert second.ok, second.error
    assert second.window_from == TODAY - dt.timedelta(days=3)  # overlap absorbs late indexing
    assert (second.ids_seen, second.new, second.known) == (3, 3, 0)
    assert fake_eutils.count("efetch.fcgi") == 1  # nothing stored was revised since the first run
    assert (second.update_requests, second.updated) == (1, 0)
    assert stored_pmids(engine) == set(real) | set(fresh)
    with engine.connect() as conn:
        hits = conn.execute(sa.text("SELECT count(*) FROM query_hits WHERE query_name = :q"), {"q": QUERY.name})
        assert hits.scalar_one() == len(real) + 3
        receipts = conn.execute(sa.text("SELECT status, new FROM runs ORDER BY id")).all()
    assert [tuple(r) for r in receipts] == [("ok", len(real)), ("ok", 3)]


def test_a_window_over_9999_is_split_and_nothing_is_truncated(engine: Engine, fake_eutils: FakeEutils) -> None:
    load_real_records(fake_eutils, TODAY - dt.timedelta(days=40))  # outside the window
    made = fake_eutils.add_clones(
        10_052, first_pmid=50_000_000, crdt=lambda i: TODAY - dt.timedelta(days=i % 28)
    )
    receipt = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY, batch_size=500)
    assert receipt.ok, receipt.error
    assert receipt.windows == 3  # the whole month, then its two halves
    assert receipt.search_count == receipt.ids_seen == receipt.new == 10_052
    assert stored_pmids(engine) == set(made)


def test_a_run_killed_halfway_keeps_the_watermark_and_the_rerun_fills_the_gap(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    real = load_real_records(fake_eutils, TODAY - dt.timedelta(days=5))
    client = client_for(fake_eutils)
    # the search and two batches go through, then the server goes down for good
    calls = {"n": 0}
    real_efetch = client.efetch

    def dying_efetch(pmids: list[int]) -> bytes:
        calls["n"] += 1
        if calls["n"] == 3:
            fake_eutils.inject(Fault.http(503), every=1)
        return real_efetch(pmids)

    client.efetch = dying_efetch  # type: ignore[method-assign]
    killed = runner.run_query(engine, client, QUERY, today=TODAY, batch_size=4)
    assert not killed.ok and "503" in (killed.error or "")
    assert len(stored_pmids(engine)) == 8  # two batches committed, nothing half-written
    assert watermark(engine) is None  # the window is not marked done

    fake_eutils.clear_faults()
    rerun = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY, batch_size=4)
    assert rerun.ok, rerun.error
    assert rerun.known == 8 and rerun.new == len(real) - 8
    assert stored_pmids(engine) == set(real)
    assert watermark(engine) == TODAY


def test_a_fault_on_every_third_request_still_completes(engine: Engine, fake_eutils: FakeEutils) -> None:
    real = load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    fake_eutils.inject(Fault.http(429, retry_after="0"), every=3)
    receipt = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY, batch_size=3)
    assert receipt.ok, receipt.error
    assert receipt.retries > 0
    assert stored_pmids(engine) == set(real)


def test_an_error_answer_fails_loudly_and_is_never_no_new_papers(engine: Engine, fake_eutils: FakeEutils) -> None:
    load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    fake_eutils.inject(Fault(error="Invalid query syntax"), every=1)
    receipt = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY)
    assert not receipt.ok and "Invalid query syntax" in (receipt.error or "")
    assert watermark(engine) is None
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM runs")).one()
    assert status == "failed" and "Invalid query syntax" in error


def test_pmids_the_server_never_returns_are_retried_then_recorded_missing(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    real = load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    client = client_for(fake_eutils)
    real_esearch = client.esearch
    gone = real[0]

    def esearch_then_vanish(term: str, **kw: object) -> object:
        answer = real_esearch(term, **kw)  # type: ignore[arg-type]
        fake_eutils.records.pop(gone, None)  # indexed, then withdrawn before the fetch
        return answer

    client.esearch = esearch_then_vanish  # type: ignore[assignment,method-assign]
    fake_eutils.requests.clear()
    receipt = runner.run_query(engine, client, QUERY, today=TODAY, batch_size=50)
    assert receipt.ok and receipt.missing == [gone]
    assert fake_eutils.count("efetch.fcgi") == 2  # the batch, then one more ask for the missing id
    assert gone not in stored_pmids(engine) and len(stored_pmids(engine)) == len(real) - 1


def test_dry_run_counts_without_fetching_or_moving_the_watermark(engine: Engine, fake_eutils: FakeEutils) -> None:
    real = load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    receipt = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY, dry_run=True)
    assert receipt.ok and receipt.search_count == len(real)
    assert fake_eutils.count("efetch.fcgi") == 0
    assert stored_pmids(engine) == set() and watermark(engine) is None


def test_since_backfills_from_that_date_and_the_ledger_keeps_the_range(engine: Engine, fake_eutils: FakeEutils) -> None:
    from litwatch.store import coverage

    since = dt.date(2001, 11, 1)
    load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    receipt = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY, since=since)
    assert receipt.ok and (receipt.window_from, receipt.window_to) == (since, TODAY)
    with engine.connect() as conn:
        assert coverage.ranges(conn, QUERY.name, "crdt", coverage.fingerprint(QUERY.term)) == [(since, TODAY)]
    assert watermark(engine) == TODAY


def test_a_run_tags_what_it_stores(engine: Engine, fake_eutils: FakeEutils) -> None:
    from litwatch.store.tags import load_tagger

    load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    tagger = load_tagger(Path(__file__).parent.parent / "queries" / "vocab")
    receipt = runner.run_query(engine, client_for(fake_eutils), QUERY, today=TODAY, tagger=tagger)
    assert receipt.ok
    with engine.connect() as conn:
        tags = set(conn.execute(sa.text("SELECT paper_pmid, tag FROM paper_tags")).all())
    assert (38833988, "TP53") in {tuple(t) for t in tags}


def test_an_interrupted_run_records_the_failure_and_keeps_the_watermark(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    load_real_records(fake_eutils, TODAY - dt.timedelta(days=2))
    client = client_for(fake_eutils)
    real_efetch = client.efetch
    calls = {"n": 0}

    def interrupted(pmids: list[int]) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_efetch(pmids)

    client.efetch = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        runner.run_query(engine, client, QUERY, today=TODAY, batch_size=4)
    assert watermark(engine) is None and len(stored_pmids(engine)) == 4
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM runs")).one()
    assert status == "failed" and error.startswith("interrupted: KeyboardInterrupt")
