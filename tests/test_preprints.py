"""A saved query's Europe PMC step (``pipeline/preprints.py``): preprints stored once with their
receipts, a second run that finds nothing new, and faults retried then reported loudly.

End-to-end over loopback sockets against ``fake_europepmc.FakeEuropePmc`` serving the 24 real
recorded preprints of ``tests/fixtures/europepmc/search_lite_preprints.json`` (first indexed
2025-06-05 .. 2025-06-19).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fake_europepmc import FakeEuropePmc, Fault
from fake_eutils import FakeEutils
from sqlalchemy.engine import Engine

from litwatch.config import Settings
from litwatch.files.queries import SavedQuery
from litwatch.pipeline.coverage import coverage_of
from litwatch.pipeline.preprints import run_preprints
from litwatch.scheduling import jobs
from litwatch.scheduling.plan import build_plan
from litwatch.sources.europepmc import EuropePmcClient
from litwatch.sources.eutils import EutilsClient
from litwatch.store import coverage as ledger
from litwatch.store import models

LITE = Path(__file__).parent / "fixtures" / "europepmc" / "search_lite_preprints.json"
TODAY = dt.date(2025, 6, 20)
QUERY = SavedQuery(
    name="cancer-preprints", term="cancer[tiab]", title="Cancer", schedule=None, start=dt.date(2025, 6, 1),
    groups=(), path=Path("queries/cancer-preprints.toml"), preprints="TITLE_ABS:cancer",
)


@pytest.fixture
def europepmc() -> Iterator[FakeEuropePmc]:
    with FakeEuropePmc() as fake:
        fake.add_results_from_file(LITE)
        yield fake


def client_for(fake: FakeEuropePmc, retries: int = 3) -> EuropePmcClient:
    return EuropePmcClient(fake.url, "librarian@example.org", max_retries=retries, backoff=0.0,
                           sleep=lambda _s: None)


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql)).all()]


def test_a_run_stores_each_preprint_once_with_its_receipt(engine: Engine, europepmc: FakeEuropePmc) -> None:
    receipt = run_preprints(engine, client_for(europepmc), QUERY, today=TODAY)
    assert (receipt.ok, receipt.found, receipt.new, receipt.known) == (True, 24, 24, 0)
    stored = rows(engine, "SELECT p.kind, p.journal, r.source_id, r.paper_pmid FROM papers p "
                          "JOIN preprints r ON r.paper_pmid = p.pmid ORDER BY r.source_id")
    assert len(stored) == 24 and {kind for kind, *_ in stored} == {"preprint"}
    assert ("preprint", "medRxiv", "PPR1036674", -1036674) in stored  # server from bookOrReportDetails
    runs = models.table(models.PreprintRun)
    with engine.connect() as conn:
        receipts = conn.execute(sa.select(runs.c.query_name, runs.c.source, runs.c.window_from, runs.c.window_to,
                                          runs.c.found, runs.c.new, runs.c.known, runs.c.status)).all()
    assert [tuple(r) for r in receipts] == [("cancer-preprints", "europepmc", dt.date(2025, 6, 1), TODAY, 24, 24, 0, "ok")]
    assert rows(engine, "SELECT count(*) FROM query_hits WHERE query_name = 'cancer-preprints'") == [(24,)]


def test_a_second_run_finds_nothing_new_and_covers_from_the_last_range(
        engine: Engine, europepmc: FakeEuropePmc) -> None:
    run_preprints(engine, client_for(europepmc), QUERY, today=TODAY)
    again = run_preprints(engine, client_for(europepmc), QUERY, today=TODAY + dt.timedelta(days=1))
    assert again.window_from == TODAY - dt.timedelta(days=3)  # the overlap before the last range's end
    assert (again.ok, again.new, again.found) == (True, 0, again.known)
    assert rows(engine, "SELECT count(*) FROM papers") == [(24,)]
    assert rows(engine, "SELECT new, status FROM preprint_runs ORDER BY id") == [(24, "ok"), (0, "ok")]


@pytest.mark.parametrize("fault", [Fault.http(500), Fault.http(429), Fault(truncate=True)],
                         ids=["500", "429", "truncated"])
def test_faults_are_retried(engine: Engine, europepmc: FakeEuropePmc, fault: Fault) -> None:
    europepmc.inject(fault, times=2)
    receipt = run_preprints(engine, client_for(europepmc), QUERY, today=TODAY)
    assert (receipt.ok, receipt.new, receipt.retries) == (True, 24, 2)


@pytest.mark.parametrize("fault, said", [(Fault.http(500), "HTTP 500"), (Fault.http(429), "HTTP 429"),
                                         (Fault(truncate=True), "truncated")], ids=["500", "429", "truncated"])
def test_a_search_that_keeps_failing_is_reported_and_stores_nothing(
        engine: Engine, europepmc: FakeEuropePmc, fault: Fault, said: str) -> None:
    europepmc.inject(fault, times=10)
    receipt = run_preprints(engine, client_for(europepmc, retries=2), QUERY, today=TODAY)
    assert not receipt.ok and said in (receipt.error or "") and "after 3 attempts" in (receipt.error or "")
    assert rows(engine, "SELECT count(*) FROM papers") == [(0,)]
    assert rows(engine, "SELECT status FROM preprint_runs") == [("failed",)]
    assert rows(engine, "SELECT count(*) FROM query_coverage WHERE kind = 'ppr'") == [(0,)]  # the next run searches it again


def test_a_scheduled_run_searches_preprints_after_pubmed_and_fails_loudly_when_europe_pmc_does(
        engine: Engine, europepmc: FakeEuropePmc, fake_eutils: FakeEutils, tmp_path: Path) -> None:
    monday = dt.datetime(2025, 6, 23, 7, 0, tzinfo=dt.UTC)
    query = dataclasses.replace(QUERY, schedule="0 6 * * mon")
    settings = Settings(queries_dir=tmp_path / "queries", eutils_url=fake_eutils.url, europepmc_url=europepmc.url,
                        email="librarian@example.org", max_retries=1, pubtator="off")
    worker = jobs.Worker(engine, settings, clock=lambda: monday,
                         client=EutilsClient(fake_eutils.url, "librarian@example.org", backoff=0.0))
    [result] = worker.run_due(build_plan([query], [], []))
    assert (result.status, result.message.split("; ")[-1]) == ("ok", "preprints 2025-06-01..2025-06-23: found 24, "
                                                                     "new 24, known 0")
    europepmc.inject(Fault.http(503), times=10)
    worker.clock = lambda: monday + dt.timedelta(days=7)
    [failed] = worker.run_due(build_plan([query], [], []))
    assert failed.status == "failed" and "Europe PMC: Europe PMC search at" in failed.message
    assert "HTTP 503" in failed.message and "after 2 attempts" in failed.message
    assert rows(engine, "SELECT count(*) FROM query_coverage WHERE kind = 'ppr'") == [(1,)]  # the failed window is searched again


def test_preprint_coverage_is_in_the_ledger_and_an_edited_preprints_term_searches_its_span_again(
        engine: Engine, europepmc: FakeEuropePmc) -> None:
    run_preprints(engine, client_for(europepmc), QUERY, today=TODAY)
    [pubmed, preprints] = coverage_of(engine, [QUERY], TODAY)
    assert (pubmed.source, pubmed.covered, pubmed.papers) == ("pubmed", [], 0)  # the PubMed part never ran
    assert (preprints.source, preprints.covered, preprints.gaps, preprints.papers) == (
        "europepmc", [(QUERY.start, TODAY)], [], 24)
    assert preprints.term_sha256 == ledger.fingerprint("TITLE_ABS:cancer") and preprints.last_success is not None
    edited = dataclasses.replace(QUERY, preprints="TITLE_ABS:cancer OR TITLE_ABS:tumour")
    assert coverage_of(engine, [edited], TODAY)[1].gaps == [(QUERY.start, TODAY)]
    again = run_preprints(engine, client_for(europepmc), edited, today=TODAY)
    assert (again.window_from, again.found, again.new) == (QUERY.start, 24, 0)  # the whole span, nothing twice


def test_a_backfill_searches_preprints_from_its_date_and_only_the_gaps(
        engine: Engine, europepmc: FakeEuropePmc) -> None:
    run_preprints(engine, client_for(europepmc), QUERY, today=TODAY)
    europepmc.requests.clear()
    back = run_preprints(engine, client_for(europepmc), QUERY, today=TODAY, since=dt.date(2025, 1, 1))
    assert (back.ok, back.window_from) == (True, dt.date(2025, 1, 1))
    searched = [r.params.get("query", "") for r in europepmc.requests]
    assert any("FIRST_IDATE:[2025-01-01 TO 2025-05-31]" in q for q in searched)  # the gap before the start
    assert not any("FIRST_IDATE:[2025-06-01" in q for q in searched)  # not the range already covered
    with engine.connect() as conn:
        assert ledger.ranges(conn, QUERY.name, "ppr", ledger.fingerprint(QUERY.preprints or "")) == [
            (dt.date(2025, 1, 1), TODAY)]


def test_migration_0012_moves_preprint_coverage_into_the_ledger_for_the_next_run_to_adopt(database_url: str) -> None:
    from alembic import command

    from litwatch.store import engine as db

    eng = db.make_engine(database_url)
    cfg = db._alembic_config(eng)  # noqa: SLF001 - the configuration `litwatch init` uses
    command.upgrade(cfg, "0011")
    started = dt.datetime(2025, 6, 10, 6, tzinfo=dt.UTC)
    with eng.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO preprint_runs (id, query_name, source, started_at, finished_at, window_from, window_to, "
            "hit_count, found, new, known, requests, retries, status) VALUES "
            "(7, 'cancer-preprints', 'europepmc', :s, :s, :lo, :hi, 0, 0, 0, 0, 1, 0, 'ok')"),
            {"s": started, "lo": dt.date(2025, 6, 1), "hi": dt.date(2025, 6, 10)})
        conn.execute(sa.text("INSERT INTO preprint_coverage (query_name, covered_from, covered_to, run_id) "
                             "VALUES ('cancer-preprints', :lo, :hi, 7)"),
                     {"lo": dt.date(2025, 6, 1), "hi": dt.date(2025, 6, 10)})
    command.upgrade(cfg, "head")
    with eng.connect() as conn:
        assert ledger.ranges(conn, QUERY.name, "ppr") == [(dt.date(2025, 6, 1), dt.date(2025, 6, 10))]
        assert "preprint_coverage" not in sa.inspect(conn).get_table_names()
    with FakeEuropePmc() as fake:
        fake.add_results_from_file(LITE)
        receipt = run_preprints(eng, client_for(fake), QUERY, today=TODAY)
    assert receipt.window_from == dt.date(2025, 6, 7)  # from the moved range, less the overlap: not again from the start
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM query_coverage WHERE kind = 'ppr' "
                                    "AND term_sha256 IS NULL")).scalar() == 0  # adopted by the preprints term
    command.downgrade(cfg, "0011")
    command.upgrade(cfg, "head")
    eng.dispose()
