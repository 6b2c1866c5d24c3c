"""A kill at any moment loses nothing and duplicates nothing (issue 16).

``litwatch run``, ``litwatch ingest`` (the writer; its parser processes get no signal) and
``litwatch digest --send`` run as processes against loopback fakes, are SIGKILLed at a
seeded random moment of their measured clean duration (``kill_harness.py``), then run again to the
end. After the rerun the store equals a clean run's row for row, the SQLite file passes
``PRAGMA integrity_check`` (after the kill too), no receipt is left ``running``, and each
recipient got each paper exactly once. On the killed store no watermark is ahead of the papers
stored, and no digest is recorded as sent that the SMTP server never accepted.

``run`` reads the real recorded PubMed records through ``FakeEutils(evaluate=True)`` (each saved
query finds what its term really matches); ``ingest`` loads one file of all of them, through the
parser processes; ``digest --send`` starts from the clean run's store (every group due: none was
ever sent) and sends to an SMTP sink that answers DATA a little late, as a busy server does, so
kills land between the server taking a message and the ledger saying so. Its rerun is the same
plain ``digest --send``: a digest the kill left unfinished is still due, the groups sent are not. The 20-trial runs are ``slow``; ``test_two_quick_trials_*`` run in the default suite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fake_eutils import PUBMED_PROLOG, FakeEutils
from kill_harness import (
    LITWATCH,
    PARALLEL_INGEST,
    Check,
    Rows,
    Scenario,
    Trial,
    command_env,
    kill_delays,
    query,
    run_to_end,
    summary,
)
from smtp_sink import Sink, free_port

ROOT = Path(__file__).resolve().parent.parent
RECORDS = Path(__file__).parent / "fixtures" / "pubmed"
TODAY = dt.date.today()
SLOW_SEEDS = range(20)
QUICK_SEEDS = range(100, 102)
# saved queries over the real records: 149, 118 and 78 papers, overlapping
TERMS = {"genes": "gene*[tiab]", "cells": "cell*[tiab]", "humans": '"Humans"[Mesh]'}
GROUPS = {"genetics": ["genes"], "cell-lab": ["cells", "humans"], "clinic": ["humans"]}
FETCH_BATCH = 40
INGEST_BATCH = 20  # small transactions, so more kills land between two of them
CHUNK_BYTES = 400_000  # the ingest file's 4.6 MB in a dozen chunks for the parser processes
DATA_REPLY_DELAY = 0.3  # seconds the sink takes to answer a message's end of DATA


def load_real_records(fake: FakeEutils) -> None:
    """Every recorded PubMed record under tests/fixtures/pubmed, created over the last ten days."""
    paths = sorted(p for p in RECORDS.rglob("*") if p.name.endswith((".xml", ".xml.gz")))
    for number, path in enumerate(paths):
        fake.add_records_from_file(path, crdt=TODAY - dt.timedelta(days=number % 10))


def write_ingest_file(path: Path) -> Path:
    """One PubmedArticleSet of every real record (the old MedlineCitations wrapped as NCBI serves them)."""
    records = FakeEutils()
    load_real_records(records)
    path.write_bytes(PUBMED_PROLOG + b"<PubmedArticleSet>\n"
                     + b"".join(xml + b"\n" for _crdt, xml in records.records.values()) + b"</PubmedArticleSet>\n")
    return path


def write_queries(folder: Path) -> Path:
    folder.mkdir()
    shutil.copytree(ROOT / "queries" / "vocab", folder / "vocab")
    for name, term in TERMS.items():
        (folder / f"{name}.toml").write_text(f"title = {name!r}\nstart = {TODAY - dt.timedelta(days=30)}\n"
                                             f"term = '{term}'\n")
    (folder / "groups.toml").write_text("".join(
        f'[groups.{name}]\nrecipients = ["{name}-a@example.org", "{name}-b@example.org"]\nqueries = {queries!r}\n'
        "max_papers = 500\n\n".replace("'", '"') for name, queries in GROUPS.items()))
    return folder


class SlowSink(Sink):
    """The test SMTP sink, taking the message at the end of DATA and answering it a little later;
    ``settled`` lists how each digest a kill left uncertain was settled (--delivered or --resend)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settled: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(DATA_REPLY_DELAY)
        return reply


def deliveries(sink: Sink) -> dict[str, Counter[int]]:
    """Per recipient, how many times each paper reached them, read from the messages' text parts."""
    got: dict[str, Counter[int]] = {}
    for _sender, recipients, content in sink.received:
        message = email.message_from_bytes(content, policy=email.policy.default)
        part = message.get_body(("plain",))
        assert part is not None, "a digest without its text part"
        text = str(part.get_content())
        new, _, older = text.partition("== Older papers also matched")  # one line each, links at the end
        pmids = [int(p) for p in re.findall(r"^ *PubMed: https://pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/\s*$",
                                             new, re.MULTILINE)]
        pmids += [int(p) for p in re.findall(r"https://pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/", older.split("\n\n==")[0])]
        for address in recipients:
            got.setdefault(address, Counter()).update(pmids)
    return got


def message_ids(sink: Sink) -> list[str]:
    """The Message-ID of each message the sink accepted (a digest sent again keeps its Message-ID)."""
    return [str(email.message_from_bytes(c, policy=email.policy.default)["Message-ID"]) for _, _, c in sink.received]


@dataclass
class Results:
    trials: list[Trial]
    clean_s: float
    busy_s: float  # when the clean run's first row appeared
    clean: Rows
    wanted: dict[str, Counter[int]]  # the clean send's deliveries
    settled: list[str] = field(default_factory=list)  # how each uncertain digest was settled
    duplicated_deliveries: int = 0  # a paper reaching a recipient once more
    duplicated_messages: int = 0  # a message accepted once more
    lost_deliveries: int = 0


@dataclass
class Workbench:
    """The fakes, the saved queries and the three commands' scenarios, shared by the module."""

    folder: Path
    fake: FakeEutils
    sink: SlowSink
    run: Scenario
    ingest: Scenario
    digest: Scenario
    cleans: dict[str, Results] = field(default_factory=dict)  # each command's clean run, without trials


def no_watermark_ahead(fake: FakeEutils) -> Check:
    """A check: every paper a query finds up to its watermark is stored as found by it."""

    def check(database: Path) -> list[str]:
        problems = []
        for name, watermark in query(database, "SELECT query_name, watermark FROM query_state "
                                               "WHERE watermark IS NOT NULL"):
            found = {p for p in fake._evaluate(TERMS[str(name)], {})
                     if fake.records[p][0] <= dt.date.fromisoformat(str(watermark))}
            hits = {r[0] for r in query(database, f"SELECT paper_pmid FROM query_hits WHERE query_name = '{name}'")}
            if found - hits:
                problems.append(f"query {name}: watermark {watermark} but {len(found - hits)} of its papers not stored")
        return problems

    return check


def no_receipt_running(database: Path) -> list[str]:
    left = query(database, "SELECT count(*) FROM runs WHERE status = 'running'")[0][0]
    return [f"{left} receipt(s) left running"] if left else []


def digests_unsettled(database: Path) -> list[str]:
    left = query(database, "SELECT status, count(*) FROM digests WHERE status NOT IN ('recorded', 'empty', "
                           "'nothing-new') GROUP BY status")
    return [f"{n} digest(s) left {status}" for status, n in left]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    folder = tmp_path_factory.mktemp("kills")
    queries = write_queries(folder / "queries")
    sink = SlowSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    with FakeEutils(evaluate=True) as fake:
        load_real_records(fake)
        env = command_env(LITWATCH_QUERIES_DIR=str(queries), LITWATCH_EUTILS_URL=fake.url, NCBI_API_KEY="kill-trials",
                          LITWATCH_EMAIL="librarian@example.org", LITWATCH_FETCH_BATCH=str(FETCH_BATCH),
                          LITWATCH_PUBTATOR="off", LITWATCH_SMTP_HOST="127.0.0.1", LITWATCH_SMTP_PORT=str(sink.port),
                          LITWATCH_SMTP_TLS="none", LITWATCH_MAIL_FROM="litwatch@example.org")
        empty = folder / "empty.sqlite"
        run_to_end([*LITWATCH, "init"], env | {"LITWATCH_DATABASE_URL": f"sqlite:///{empty}"}, folder)
        big = write_ingest_file(folder / "real-records.xml")
        run = Scenario("run", [*LITWATCH, "run"], env, empty, killed_checks=no_watermark_ahead(fake),
                       rerun_checks=no_receipt_running)
        ingest = Scenario("ingest", [*PARALLEL_INGEST, "ingest", "--batch-size", str(INGEST_BATCH), str(big)],
                          env | {"KILL_TRIAL_CHUNK_BYTES": str(CHUNK_BYTES)}, empty)
        sent = folder / "sent.sqlite"
        shutil.copy(empty, sent)
        run_to_end([*LITWATCH, "run"], env | {"LITWATCH_DATABASE_URL": f"sqlite:///{sent}"}, folder)

        def ledger_behind_delivery(database: Path) -> list[str]:
            recorded = {str(r[0]) for r in query(database, "SELECT message_id FROM digests WHERE status = 'recorded'")}
            never = recorded - set(message_ids(sink))
            return [f"{len(never)} digest(s) recorded as sent that the SMTP server never accepted"] if never else []

        def settle(command: list[str], env: dict[str, str], cwd: Path) -> None:
            """The rerun, then what docs/digests.md asks of a person for a digest the kill left uncertain:
            `--delivered ID` when it reached its recipients (here: the sink holds it), else `--resend ID`."""
            done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
            doubtful = sorted(set(re.findall(r"--resend '(<[^']+>)'", done.stderr)))
            assert done.returncode == (1 if doubtful else 0), f"digest --send exited {done.returncode}: {done.stderr}"
            for message_id in doubtful:
                verdict = "--delivered" if message_id in message_ids(sink) else "--resend"
                sink.settled.append(verdict)
                run_to_end([*LITWATCH, "digest", verdict, message_id], env, cwd)
            if doubtful:
                run_to_end(command, env, cwd)

        digest = Scenario("digest --send", [*LITWATCH, "digest", "--send"], env, sent,
                          killed_checks=ledger_behind_delivery, rerun_checks=digests_unsettled,
                          unit="digests", rerun=settle,
                          before_run=sink.received.clear)
        yield Workbench(folder, fake, sink, run, ingest, digest)
    controller.stop()


def run_trials(bench: Workbench, scenario: Scenario, seeds: range, label: str) -> Results:
    if scenario.name not in bench.cleans:  # one clean reference per command, for quick and slow trials
        duration, busy_from, clean = scenario.clean(bench.folder / f"{label}-clean")
        wanted = deliveries(bench.sink) if scenario is bench.digest else {}
        bench.cleans[scenario.name] = Results([], duration, busy_from, clean, wanted)
    reference = bench.cleans[scenario.name]
    results = Results([], reference.clean_s, reference.busy_s, reference.clean, reference.wanted)
    for seed, delay in kill_delays(seeds, results.clean_s, results.busy_s):
        results.trials.append(scenario.trial(bench.folder / f"{label}-{seed}", seed, delay, results.clean))
        if scenario is bench.digest:
            results.settled += bench.sink.settled
            bench.sink.settled.clear()
            sent = Counter(message_ids(bench.sink))
            results.duplicated_messages += sum(n - 1 for n in sent.values())
            got = deliveries(bench.sink)
            for address, papers in results.wanted.items():
                have = got.get(address, Counter())
                results.duplicated_deliveries += sum(n - 1 for n in have.values() if n > 1)
                results.lost_deliveries += len(set(papers) - set(have))
                if have.keys() != papers.keys() or max(have.values(), default=1) > 1:
                    results.trials[-1].problems.append(f"{address}: papers delivered {sorted(have.values())[-3:]}")
    return results


def report(capsys: pytest.CaptureFixture[str], name: str, results: Results) -> None:
    figures = {"surviving children": sum(t.kill.survivors for t in results.trials)}
    if "digest" in name:
        figures |= {"uncertain digests settled by --delivered / --resend":
                    f"{results.settled.count('--delivered')} / {results.settled.count('--resend')}",
                    "duplicated messages": results.duplicated_messages,
                    "duplicated deliveries (paper x recipient)": results.duplicated_deliveries,
                    "lost deliveries": results.lost_deliveries}
    with capsys.disabled():
        print("\n" + summary(name, results.trials, results.clean_s, results.busy_s, **figures))


def delivered_as_recorded(results: Results) -> bool:
    """Whether the clean send delivered to each recipient the papers its ledger records for the group."""
    recorded: dict[str, set[int]] = {}
    for pmid, kind, group, _position in results.clean["digest_items"]:
        if kind == "paper":
            recorded.setdefault(str(group), set()).add(int(str(pmid)))
    expected = {f"{group}-{who}@example.org": recorded[group] for group in GROUPS for who in "ab"}
    return {address: set(papers) for address, papers in results.wanted.items()} == expected


def store_problems(results: Results) -> list[str]:
    return [f"seed {t.seed} (killed at {t.kill.delay:.2f}s, {t.at_kill}): {p}" for t in results.trials
            for p in t.problems if "delivered" not in p]


# -- the 20-trial runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_results(bench: Workbench) -> Results:
    return run_trials(bench, bench.run, SLOW_SEEDS, "run")


@pytest.fixture(scope="module")
def ingest_results(bench: Workbench) -> Results:
    return run_trials(bench, bench.ingest, SLOW_SEEDS, "ingest")


@pytest.fixture(scope="module")
def digest_results(bench: Workbench) -> Results:
    return run_trials(bench, bench.digest, SLOW_SEEDS, "digest")


@pytest.mark.slow
def test_20_killed_runs_then_a_rerun_store_what_a_clean_run_stores(
    run_results: Results, capsys: pytest.CaptureFixture[str]
) -> None:
    report(capsys, "litwatch run", run_results)
    assert len(run_results.clean["papers"]) > 200  # the workload is what the figures say
    assert store_problems(run_results) == []
    assert sum(not t.kill.finished_first for t in run_results.trials) >= 10


@pytest.mark.slow
def test_20_killed_ingests_then_a_rerun_store_what_a_clean_ingest_stores(
    ingest_results: Results, capsys: pytest.CaptureFixture[str]
) -> None:
    report(capsys, "litwatch ingest", ingest_results)
    assert len(ingest_results.clean["papers"]) > 600
    assert store_problems(ingest_results) == []
    assert sum(not t.kill.finished_first for t in ingest_results.trials) >= 10


@pytest.mark.slow
def test_no_parser_process_outlives_its_killed_writer_by_more_than_a_second(ingest_results: Results) -> None:
    killed = [t for t in ingest_results.trials if t.kill.children]
    assert len(killed) >= 5  # kills that found parser processes at work
    survivors = [(t.seed, t.kill.survivors, t.kill.children) for t in killed if t.kill.survivors]
    assert not survivors, (f"parser processes outlived their killed writer in {len(survivors)} of {len(killed)} "
                           f"kills (seed, survivors, children): {survivors}")


@pytest.mark.slow
def test_20_killed_digest_sends_then_a_rerun_record_what_a_clean_send_records(
    digest_results: Results, capsys: pytest.CaptureFixture[str]
) -> None:
    report(capsys, "litwatch digest --send", digest_results)
    assert sum(digest_results.clean["digest_items"].values()) > 150
    assert delivered_as_recorded(digest_results)
    assert store_problems(digest_results) == []
    assert digest_results.lost_deliveries == 0


@pytest.mark.slow
def test_20_killed_digest_sends_then_a_rerun_deliver_each_paper_once_to_each_recipient(
    digest_results: Results,
) -> None:
    duplicated = [t.seed for t in digest_results.trials if any("delivered" in p for p in t.problems)]
    assert not duplicated, (f"{digest_results.duplicated_messages} messages sent twice "
                            f"({digest_results.duplicated_deliveries} paper deliveries) in {len(duplicated)} of "
                            f"{len(digest_results.trials)} trials (seeds {duplicated})")


# -- two quick trials of each, in the default suite ----------------------------------------------------


@pytest.mark.parametrize("command", ["run", "ingest", "digest"])
def test_two_quick_trials_kill_and_rerun_lose_nothing(
    bench: Workbench, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = getattr(bench, command)
    results = run_trials(bench, scenario, QUICK_SEEDS, f"quick-{command}")
    report(capsys, f"quick {scenario.name}", results)
    assert store_problems(results) == []
    assert results.lost_deliveries == 0
    if command == "digest":
        assert delivered_as_recorded(results)
