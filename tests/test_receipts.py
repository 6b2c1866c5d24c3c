"""Receipts never lie and a run elsewhere is no failure: two runs of one query at once, a query
held by another process, and a `litwatch run` killed with SIGKILL, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fake_eutils import FakeEutils
from sqlalchemy.engine import Engine
from test_jobs import FIXTURES, LITWATCH, TERMS, client_for, command_env, kill_mid_fetch, saved_query, write_files

from litwatch.pipeline import run as runner
from litwatch.scheduling import jobs
from litwatch.store import leases, models

NAME = "migraine-immunology"


def fill(fake: FakeEutils, crdt: dt.date) -> list[int]:
    """The real recorded papers (34*-36*.xml), all found by the migraine query."""
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("3[4-6]*.xml")):
        fake.add_records_from_file(path, crdt=crdt)
    fake.terms[TERMS[NAME]] = list(fake.records)
    return list(fake.records)


def run_rows(engine: Engine) -> list[Any]:
    runs = models.table(models.Run)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(runs).order_by(runs.c.id)))


def stored(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT pmid FROM papers")).scalars())


def assert_adds_up(receipt: runner.Receipt) -> None:
    found = receipt.new + receipt.known + len(receipt.missing)
    assert receipt.search_count == receipt.ids_seen == found, receipt


def assert_rows_add_up(engine: Engine) -> None:
    for row in run_rows(engine):
        assert row.search_count == row.ids_seen == row.new + row.known + row.missing, row


def test_two_runs_of_one_query_at_once_each_leave_a_receipt_that_adds_up(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    today = dt.date.today()
    papers = fill(fake_eutils, today)
    both_fetched = threading.Barrier(2, timeout=30)
    receipts: list[runner.Receipt] = []

    def one_run() -> None:
        client = client_for(fake_eutils)
        real_efetch = client.efetch

        def efetch_then_wait(pmids: list[int]) -> bytes:
            answer = real_efetch(pmids)
            both_fetched.wait()  # both looked up what is stored, and fetched, before either saves
            return answer

        client.efetch = efetch_then_wait  # type: ignore[method-assign]
        receipts.append(runner.run_query(engine, client, saved_query(NAME), today=today,
                                         batch_size=len(papers)))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(receipts) == 2 and all(r.ok for r in receipts), [r.error for r in receipts]
    for receipt in receipts:
        assert receipt.fetched == len(papers)
        assert_adds_up(receipt)  # was "21 found, 21 fetched, 0 new, 0 known" for the later one
    assert sorted(r.new for r in receipts) == [0, len(papers)]
    assert sorted(r.known for r in receipts) == [0, len(papers)]
    assert_rows_add_up(engine)
    assert stored(engine) == set(papers)


def test_two_leased_runs_at_once_one_runs_the_other_is_skipped_and_both_add_up(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    today = dt.date.today()
    papers = fill(fake_eutils, today)
    fetching, go_on = threading.Event(), threading.Event()
    client = client_for(fake_eutils)
    real_efetch = client.efetch

    def slow_efetch(pmids: list[int]) -> bytes:
        fetching.set()
        go_on.wait(30)
        return real_efetch(pmids)

    client.efetch = slow_efetch  # type: ignore[method-assign]
    first: list[runner.Receipt] = []
    thread = threading.Thread(target=lambda: first.append(
        jobs.run_query_job(engine, client, saved_query(NAME), today=today)))
    thread.start()
    assert fetching.wait(30)
    second = jobs.run_query_job(engine, client_for(fake_eutils), saved_query(NAME), today=today)
    go_on.set()
    thread.join()
    holder = run_rows(engine)[0].holder
    assert second.ok and second.skipped == holder and second.status == f"skipped (running in {holder})"
    assert first[0].ok and first[0].new == len(papers)
    for receipt in (first[0], second):
        assert_adds_up(receipt)
    assert [r.status for r in run_rows(engine)] == ["ok"]  # the skipped run started nothing
    assert_rows_add_up(engine)


def test_litwatch_run_and_run_due_report_a_query_held_elsewhere_as_skipped_and_exit_0(
    engine: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill(fake_eutils, dt.date.today())
    write_files(tmp_path / "queries", sorted(TERMS))
    (tmp_path / "queries" / "groups.toml").unlink()
    held = leases.acquire(engine, f"query:{NAME}", holder="other-host:4242:ab", ttl=300, now=leases.utcnow())
    env = command_env(tmp_path, fake_eutils, database_url)
    done = subprocess.run([*LITWATCH, "run"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("migrain"))  # name clipped
    assert row.endswith("skipped (running in other-host:4242:ab)") and "FAILED" not in done.stdout
    assert "skipped 1 query running in another process: migraine-immunology (in other-host:4242:ab)" in done.stdout
    assert "error" not in done.stderr
    due = subprocess.run([*LITWATCH, "run-due"], env=env, capture_output=True, text=True, timeout=120)
    assert due.returncode == 0, due.stderr
    assert f"query:{NAME}: skipped (running in other-host:4242:ab): query:{NAME} is held by " in due.stdout
    assert f"skipped 1 job(s) running in another process: query:{NAME} (in other-host:4242:ab)" in due.stdout
    assert {r.query_name for r in run_rows(engine)} == {"endometriosis-genetics"}
    assert_rows_add_up(engine)
    leases.release(engine, held)


def test_a_sigkilled_litwatch_run_does_not_block_its_rerun_which_closes_its_receipt_as_interrupted(
    engine: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    today = dt.date.today()
    papers = fill(fake_eutils, today)
    write_files(tmp_path / "queries", [NAME])
    (tmp_path / "queries" / "groups.toml").unlink()
    env = command_env(tmp_path, fake_eutils, database_url)
    victim = kill_mid_fetch(fake_eutils, ["run"], env)
    assert [r.status for r in run_rows(engine)] == ["running"]
    assert leases.current(engine, f"query:{NAME}") is not None  # the dead run's lease, valid for 300 s
    started = time.monotonic()
    rerun = subprocess.run([*LITWATCH, "run"], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60  # not the 300 s of the dead run's lease
    assert rerun.returncode == 0, rerun.stderr
    assert f":{victim.pid}:" in rerun.stderr and "closed as interrupted" in rerun.stderr
    rows = run_rows(engine)
    assert [r.status for r in rows] == ["interrupted", "ok"]
    assert rows[0].finished_at is not None and f":{victim.pid}:" in rows[0].error
    assert rows[1].new == len(papers) and stored(engine) == set(papers)
    assert leases.current(engine, f"query:{NAME}") is None
    assert_rows_add_up(engine)
