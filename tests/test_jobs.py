"""The scheduling core: what is due at a moment, run once under a lease, with a clock the tests move.

Queries run against the loopback fake E-utilities with real recorded PubMed records; digests go
through a stand-in ``deliver`` (except in the end-to-end tests, which use litwatch.delivery.digest and the
outbox). The multi-process tests start real ``litwatch run-due`` processes on one database.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from fake_eutils import FakeEutils, Fault
from sqlalchemy.engine import Engine

from litwatch.clock import utcnow
from litwatch.config import Settings
from litwatch.files.queries import SavedQuery
from litwatch.pipeline import run as runner
from litwatch.scheduling import jobs
from litwatch.scheduling.plan import JobPlan, build_plan
from litwatch.sources.eutils import EutilsClient
from litwatch.store import leases, models

FIXTURES = Path(__file__).parent / "fixtures"
SRC = Path(__file__).resolve().parents[1] / "src"
MONDAY = dt.datetime(2026, 11, 2, 7, 30, tzinfo=dt.UTC)  # a Monday, after the 05:00 and 07:00 fire times
TERMS = {  # saved query -> its term; each finds its own papers in the fake PubMed
    "endometriosis-genetics": 'endometriosis[tiab] AND (TRIM32[tiab] OR "Mendelian randomization"[tiab])',
    "migraine-immunology": 'migraine[tiab] AND (FOXP3[tiab] OR "regulatory T cells"[tiab])',
}
SCHEDULES = {"endometriosis-genetics": "0 6 * * mon", "migraine-immunology": None}  # weekly; daily 05:00


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass(frozen=True)
class Group:
    """A stand-in with the fields the scheduler reads from litwatch.files.groups.Group."""

    name: str
    queries: tuple[str, ...]
    schedule: str = "0 7 * * 1"
    timezone: str = "UTC"


class Deliveries:
    """A stand-in for digest.deliver_group: records the call and a 'recorded' digest row."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dt.datetime]] = []

    def __call__(self, engine: Engine, settings: Settings, group: Any, *, now: dt.datetime,
                 since: dt.datetime | None = None) -> Any:
        self.calls.append((group.name, now))
        with engine.begin() as conn:
            conn.execute(models.table(models.Digest).insert().values(
                group_name=group.name, message_id=f"<{group.name}.{now:%Y%m%d%H%M%S}@test>", status="recorded",
                subject="digest", recipients="lab@example.org", created_at=now, covers_to=now,
                paper_count=2, overflow_count=0, attempts=1))
        return SimpleNamespace(group=group.name, status="sent", papers=2, overflow=0, retraction_notices=0,
                               message_id=f"<{group.name}@test>", error=None)


def saved_query(name: str, folder: Path = Path("queries")) -> SavedQuery:
    return SavedQuery(name=name, term=TERMS[name], title=name, schedule=SCHEDULES[name],
                      start=dt.date(2026, 10, 1), groups=(), path=folder / f"{name}.toml")


def plan_of(*groups: Group) -> JobPlan:
    return build_plan([saved_query(n) for n in sorted(TERMS)], groups, [])


def fill_pubmed(fake: FakeEutils, first: dt.date, days: int) -> dict[str, dict[int, dt.date]]:
    """Real recorded records cloned so each query finds one new paper per day: {query: {pmid: crdt}}."""
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("3[4-6]*.xml")):
        fake.add_records_from_file(path, crdt=first - dt.timedelta(days=400))
    sources = list(fake.records)
    found: dict[str, dict[int, dt.date]] = {}
    for n, name in enumerate(sorted(TERMS)):
        base = 91_000_000 + n * 1000
        pmids = fake.add_clones(days, first_pmid=base, crdt=lambda i: first + dt.timedelta(days=i), sources=sources)
        fake.terms[TERMS[name]] = pmids
        found[name] = {p: fake.records[p][0] for p in pmids}
    return found


def client_for(fake: FakeEutils) -> EutilsClient:
    return EutilsClient(fake.url, "librarian@example.org", backoff=0.0, sleep=lambda _s: None)


def settings_for(tmp_path: Path, fake: FakeEutils, database_url: str = "sqlite://") -> Settings:
    return Settings(database_url=database_url, queries_dir=tmp_path / "queries", eutils_url=fake.url,
                    email="librarian@example.org", outbox=tmp_path / "outbox", pubtator="off")


def worker_for(engine: Engine, tmp_path: Path, fake: FakeEutils, clock: FakeClock, **kw: Any) -> jobs.Worker:
    return jobs.Worker(engine, settings_for(tmp_path, fake), clock=clock, client=client_for(fake), **kw)


def lines(results: list[jobs.JobResult]) -> list[tuple[str, str]]:
    return [(r.job, r.status) for r in results]


def run_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        runs = models.table(models.Run)
        return list(conn.execute(sa.select(runs.c.query_name, runs.c.status, runs.c.window_from,
                                           runs.c.window_to, runs.c.error, runs.c.finished_at).order_by(runs.c.id)))


def stored(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT pmid FROM papers")).scalars())


def watermark(engine: Engine, name: str) -> dt.date | None:
    with engine.connect() as conn:
        return runner.get_watermark(conn, name)


def test_the_first_pass_runs_every_query_then_the_digest_and_the_next_pass_nothing(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    papers = fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=10)
    clock, deliver = FakeClock(MONDAY), Deliveries()
    worker = worker_for(engine, tmp_path, fake_eutils, clock, deliver=deliver)
    plan = plan_of(Group("headache-lab", ("migraine-immunology",)))
    results = worker.run_due(plan)
    assert lines(results) == [("query:endometriosis-genetics", "ok"), ("query:migraine-immunology", "ok"),
                              ("digest:headache-lab", "sent")]
    assert results[1].line().startswith("query:migraine-immunology: ok: window 2026-10-01..2026-11-02, 10 found, 10 new")
    assert stored(engine) == set(papers["migraine-immunology"]) | set(papers["endometriosis-genetics"])
    assert deliver.calls == [("headache-lab", MONDAY)]
    clock.advance(minutes=15)
    assert worker.run_due(plan) == []
    assert jobs.next_due(plan, clock()) == (dt.datetime(2026, 11, 3, 5, 0, tzinfo=dt.UTC), [plan.jobs[1]])
    same_time = plan_of(Group("headache-lab", ("migraine-immunology",), schedule="0 6 * * 1"))
    upcoming = jobs.next_due(same_time, dt.datetime(2026, 11, 9, 5, 30, tzinfo=dt.UTC))
    assert upcoming is not None and upcoming[0] == dt.datetime(2026, 11, 9, 6, 0, tzinfo=dt.UTC)
    assert [job.key for job in upcoming[1]] == ["query:endometriosis-genetics", "digest:headache-lab"]


def test_three_weeks_of_downtime_run_each_job_once_covering_the_whole_gap(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    papers = fill_pubmed(fake_eutils, dt.date(2026, 10, 26), days=28)  # one new paper a day until Nov 22
    clock, deliver = FakeClock(MONDAY), Deliveries()
    worker = worker_for(engine, tmp_path, fake_eutils, clock, deliver=deliver)
    plan = plan_of(Group("headache-lab", ("migraine-immunology",)))
    assert len(worker.run_due(plan)) == 3
    clock.now = MONDAY + dt.timedelta(days=21, hours=2)  # back on Monday Nov 23, 09:30
    results = worker.run_due(plan)
    # 21 daily, 3 weekly fire times and 3 digest Mondays were missed: each job runs once
    assert lines(results) == [("query:endometriosis-genetics", "ok"), ("query:migraine-immunology", "ok"),
                              ("digest:headache-lab", "sent")]
    after = [r for r in run_rows(engine)[2:]]
    assert [(r.query_name, r.window_from, r.window_to) for r in after] == [
        ("endometriosis-genetics", dt.date(2026, 10, 30), dt.date(2026, 11, 23)),  # watermark - 3 days overlap
        ("migraine-immunology", dt.date(2026, 10, 30), dt.date(2026, 11, 23))]
    assert stored(engine) == {p for found in papers.values() for p, day in found.items() if day <= dt.date(2026, 11, 23)}
    assert watermark(engine, "migraine-immunology") == dt.date(2026, 11, 23)
    assert [when for _group, when in deliver.calls] == [MONDAY, clock.now]
    assert worker.run_due(plan) == []  # not five times: caught up once
    clock.advance(days=1)
    assert lines(worker.run_due(plan)) == [("query:migraine-immunology", "ok")]  # the daily one, next morning


def test_a_failed_job_is_logged_with_its_reason_retried_at_its_next_time_and_stops_nothing_else(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=10)
    clock, deliver = FakeClock(MONDAY), Deliveries()
    worker = worker_for(engine, tmp_path, fake_eutils, clock, deliver=deliver)
    plan = plan_of(Group("headache-lab", ("migraine-immunology",)))
    fake_eutils.inject(Fault(error="Invalid query syntax: unknown backend"), times=1)  # the first search only
    results = worker.run_due(plan)
    assert lines(results) == [("query:endometriosis-genetics", "failed"), ("query:migraine-immunology", "ok"),
                              ("digest:headache-lab", "sent")]
    assert results[0].failed and "Invalid query syntax: unknown backend" in results[0].message
    assert watermark(engine, "endometriosis-genetics") is None
    clock.advance(hours=2)
    assert worker.run_due(plan) == []  # not hammered at every pass: it waits for its next fire time
    clock.now = MONDAY + dt.timedelta(days=7)
    results = worker.run_due(plan)
    assert ("query:endometriosis-genetics", "ok") in lines(results)
    assert run_rows(engine)[-3].window_from == dt.date(2026, 10, 1)  # the retry covers from the start


def test_a_query_file_with_an_error_disables_that_query_only_until_it_is_fixed(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=5)
    folder = tmp_path / "queries"
    folder.mkdir()
    for name in TERMS:
        (folder / f"{name}.toml").write_text(f"term = '''{TERMS[name]}'''\nstart = 2026-10-01\n", encoding="utf-8")
    broken = folder / "migraine-immunology.toml"
    broken.write_text(f"term = '''({TERMS['migraine-immunology']}'''\nstart = 2026-10-01\n", encoding="utf-8")
    clock = FakeClock(MONDAY)
    worker = worker_for(engine, tmp_path, fake_eutils, clock)
    plan = jobs.load_plan(worker.settings, today=MONDAY.date())
    assert [p.path.name for p in plan.problems if p.severity == "error"] == ["migraine-immunology.toml"]
    assert "unbalanced parentheses" in str(plan.problems[0])
    assert lines(worker.run_due(plan)) == [("query:endometriosis-genetics", "ok")]
    broken.write_text(f"term = '''{TERMS['migraine-immunology']}'''\nstart = 2026-10-01\n", encoding="utf-8")
    clock.advance(minutes=15)
    plan = jobs.load_plan(worker.settings, today=MONDAY.date())
    assert plan.problems == [] and lines(worker.run_due(plan)) == [("query:migraine-immunology", "ok")]


def test_a_query_held_by_another_process_is_not_run_twice_and_runs_once_its_lease_expires(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=5)
    clock = FakeClock(MONDAY)
    worker = worker_for(engine, tmp_path, fake_eutils, clock, lease_ttl=300)
    leases.acquire(engine, "query:migraine-immunology", holder="other-host:4242:ab", ttl=300, now=MONDAY)  # then dies
    results = worker.run_due(plan_of())
    assert lines(results) == [("query:endometriosis-genetics", "ok"), ("query:migraine-immunology", "skipped")]
    assert results[1].line().startswith("query:migraine-immunology: skipped (running in other-host:4242:ab): ")
    assert not results[1].failed
    assert "held by other-host:4242:ab" in results[1].message and "valid until 2026-11-02 07:35:00" in results[1].message
    assert [r.query_name for r in run_rows(engine)] == ["endometriosis-genetics"]  # no run was started
    clock.advance(minutes=5)
    assert lines(worker.run_due(plan_of())) == [("query:migraine-immunology", "ok")]  # taken over


def test_a_job_another_process_finished_meanwhile_is_not_run_again(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=5)
    clock = FakeClock(MONDAY)
    first = worker_for(engine, tmp_path, fake_eutils, clock)
    second = worker_for(engine, tmp_path, fake_eutils, clock)
    plan = plan_of()
    due_for_second = second.due(plan)  # both saw the jobs due ...
    first.run_due(plan)  # ... the first ran them ...
    results = [second.run(plan, job) for job in due_for_second]  # ... the second checks again under the lease
    assert lines(results) == [("query:endometriosis-genetics", "not-due"), ("query:migraine-immunology", "not-due")]
    assert "last ran 2026-11-02 07:30:00 UTC; next at 2026-11-03 05:00:00 UTC" in results[1].message
    assert len(run_rows(engine)) == 2


def test_a_digest_job_first_runs_the_due_queries_that_feed_it(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=5)
    clock, deliver = FakeClock(MONDAY), Deliveries()
    worker = worker_for(engine, tmp_path, fake_eutils, clock, deliver=deliver)
    plan = plan_of(Group("headache-lab", ("migraine-immunology",)))
    digest = plan.job("digest:headache-lab")
    assert digest is not None
    assert lines(worker.run_with_feeders(plan, digest)) == [("query:migraine-immunology", "ok"),
                                                            ("digest:headache-lab", "sent")]
    clock.advance(days=7)
    worker.run(plan, plan.jobs[1])  # the query ran on its own this time
    clock.advance(minutes=5)
    assert lines(worker.run_with_feeders(plan, digest)) == [("digest:headache-lab", "sent")]


def test_a_manual_run_takes_the_same_lease(engine: Engine, fake_eutils: FakeEutils) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=5)
    query = saved_query("migraine-immunology")
    held = leases.acquire(engine, "query:migraine-immunology", holder="scheduler:77:cd", ttl=300,
                          now=utcnow())
    receipt = jobs.run_query_job(engine, client_for(fake_eutils), query, today=MONDAY.date())
    assert receipt.ok and receipt.skipped == "scheduler:77:cd"  # running elsewhere: nothing failed
    assert receipt.status == "skipped (running in scheduler:77:cd)"
    assert run_rows(engine) == [] and fake_eutils.count() == 0
    leases.release(engine, held)
    receipt = jobs.run_query_job(engine, client_for(fake_eutils), query, today=MONDAY.date())
    assert receipt.ok and receipt.new == 5
    assert leases.current(engine, "query:migraine-immunology") is None


def test_a_vocabulary_with_an_error_stops_queries_rather_than_store_untagged_papers(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=5)
    vocab = tmp_path / "queries" / "vocab"
    vocab.mkdir(parents=True)
    (vocab / "pathways.toml").write_text("[pathway.x\n", encoding="utf-8")
    worker = worker_for(engine, tmp_path, fake_eutils, FakeClock(MONDAY), vocab_dir=vocab)
    results = worker.run_due(plan_of())
    assert {r.status for r in results} == {"failed"}
    assert "pathways.toml" in results[0].message and "until the vocabulary is fixed" in results[0].message
    assert stored(engine) == set()


# -- end to end: the real groups file and digest module, the real command, real processes ---------

GROUPS = """
[groups.headache-lab]
recipients = ["Headache lab <headache-lab@example.org>"]
queries = ["migraine-immunology"]
schedule = "0 7 * * 1"
timezone = "Europe/Madrid"
"""


def write_files(folder: Path, names: list[str], *, terms: dict[str, str] = TERMS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.toml").write_text(f"term = '''{terms[name]}'''\nstart = 2026-10-01\n", encoding="utf-8")
    (folder / "groups.toml").write_text(GROUPS, encoding="utf-8")


def test_end_to_end_with_the_real_groups_and_digest_modules(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill_pubmed(fake_eutils, dt.date(2026, 10, 20), days=4)
    write_files(tmp_path / "queries", sorted(TERMS))
    clock = FakeClock(MONDAY)
    worker = worker_for(engine, tmp_path, fake_eutils, clock)
    plan = jobs.load_plan(worker.settings, today=MONDAY.date())
    assert plan.problems == [] and [j.key for j in plan.jobs][-1] == "digest:headache-lab"
    results = worker.run_due(plan)
    assert lines(results)[-1] == ("digest:headache-lab", "sent")
    assert results[-1].message.startswith(  # the first run reached back before the period: 3 are older matches
        "1 new, 3 older, 0 retraction notice(s), 0 now published, 0 overflow, message <litwatch.headache-lab.")
    [sent] = (tmp_path / "outbox").glob("*.eml")
    assert "1 new paper, 3 older papers" in " ".join(sent.read_text().split())
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    clock.advance(hours=1)
    assert worker.run_due(plan) == []
    clock.now = MONDAY + dt.timedelta(days=7)  # a week without new papers: the digest job runs, sends nothing
    assert lines(worker.run_due(plan))[-1] == ("digest:headache-lab", "nothing-new")
    clock.advance(hours=1)
    assert worker.run_due(plan) == []
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def command_env(tmp_path: Path, fake: FakeEutils, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITWATCH_")}
    return env | {"PYTHONPATH": str(SRC), "LITWATCH_DATABASE_URL": database_url,
                  "LITWATCH_QUERIES_DIR": str(tmp_path / "queries"), "LITWATCH_EUTILS_URL": fake.url,
                  "LITWATCH_EMAIL": "librarian@example.org", "LITWATCH_OUTBOX": str(tmp_path / "outbox"),
                  "LITWATCH_EUROPEPMC_URL": os.environ["LITWATCH_EUROPEPMC_URL"], "LITWATCH_PUBTATOR": "off"} | extra


LITWATCH = [sys.executable, "-c", "from litwatch.cli import main; main()"]


def kill_mid_fetch(fake: FakeEutils, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `litwatch <args>` and SIGKILL it while it waits for its first EFetch answer."""
    answer = fake._efetch

    def efetch_then_stall(params: dict[str, str]) -> bytes:
        time.sleep(30)  # the process is killed while it waits for this answer
        return answer(params)

    fake._efetch = efetch_then_stall  # type: ignore[method-assign]
    try:
        with subprocess.Popen([*LITWATCH, *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) as victim:
            deadline = time.monotonic() + 60
            while fake.count("efetch.fcgi") == 0:
                assert time.monotonic() < deadline and victim.poll() is None
                time.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
    finally:
        fake._efetch = answer  # type: ignore[method-assign]
    return victim


def test_two_run_due_processes_started_together_run_each_job_exactly_once(
    engine: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    terms = dict(TERMS, **{f"topic-{n}": f"topic{n}[tiab]" for n in range(3)})
    today = dt.date.today()
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("3[4-6]*.xml")):
        fake_eutils.add_records_from_file(path, crdt=today - dt.timedelta(days=400))
    for n, term in enumerate(terms.values()):
        fake_eutils.terms[term] = fake_eutils.add_clones(3, first_pmid=92_000_000 + 100 * n, crdt=today)
    write_files(tmp_path / "queries", sorted(terms), terms=terms)
    env = command_env(tmp_path, fake_eutils, database_url)
    procs = [subprocess.Popen([*LITWATCH, "run-due"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran = sorted(line.split(":")[1] for out, _err in outputs for line in out.splitlines()
                 if line.startswith("query:") and ": ok:" in line)
    assert ran == sorted(terms)
    with engine.connect() as conn:
        per_query = dict(conn.execute(sa.text("SELECT query_name, count(*) FROM runs GROUP BY query_name")).all())
        sent = conn.execute(sa.text("SELECT count(*) FROM digests WHERE status = 'recorded'")).scalar()
    assert per_query == {name: 1 for name in terms}
    assert sent == 1 and len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert sum(out.count("digest:headache-lab: sent:") for out, _err in outputs) == 1


def test_a_killed_run_due_does_not_block_the_next_one_which_closes_its_receipt_as_interrupted(
    engine: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    today = dt.date.today()
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("3[4-6]*.xml")):
        fake_eutils.add_records_from_file(path, crdt=today)
    fake_eutils.terms[TERMS["migraine-immunology"]] = list(fake_eutils.records)
    write_files(tmp_path / "queries", ["migraine-immunology"])
    (tmp_path / "queries" / "groups.toml").unlink()
    victim = kill_mid_fetch(fake_eutils, ["run-due", "--lease-ttl", "300"],
                            command_env(tmp_path, fake_eutils, database_url))
    settings = settings_for(tmp_path, fake_eutils, database_url)
    worker = jobs.Worker(engine, settings, client=client_for(fake_eutils), lease_ttl=300)
    plan = jobs.load_plan(settings, today=today)
    started = time.monotonic()
    first = worker.run_due(plan)  # at once: the killed holder's process is gone from this host
    assert time.monotonic() - started < 10
    assert lines(first) == [("query:migraine-immunology", "ok")]
    assert "was interrupted" in first[0].message and f":{victim.pid}:" in first[0].message
    rows = run_rows(engine)
    assert [(r.status, r.window_to) for r in rows] == [("interrupted", today), ("ok", today)]
    assert rows[0].finished_at is not None and f":{victim.pid}:" in rows[0].error
    assert stored(engine) == set(fake_eutils.records) and watermark(engine, "migraine-immunology") == today


def test_run_due_told_to_stop_twice_stops_its_query_between_batches_with_the_watermark_intact(
    fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'litwatch.sqlite'}"
    today = dt.date.today()
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("3[4-6]*.xml")):
        fake_eutils.add_records_from_file(path, crdt=today)
    fake_eutils.terms[TERMS["endometriosis-genetics"]] = list(fake_eutils.records)
    write_files(tmp_path / "queries", sorted(TERMS))
    (tmp_path / "queries" / "groups.toml").unlink()
    real_efetch = fake_eutils._efetch

    def slow(params: dict[str, str]) -> bytes:
        time.sleep(0.3)
        return real_efetch(params)

    fake_eutils._efetch = slow  # type: ignore[method-assign]
    env = command_env(tmp_path, fake_eutils, url, LITWATCH_FETCH_BATCH="2")
    subprocess.run([*LITWATCH, "init"], env=env, check=True, capture_output=True)
    with subprocess.Popen([*LITWATCH, "run-due"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        deadline = time.monotonic() + 30
        while fake_eutils.count("efetch.fcgi") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: no traceback, the job in flight goes on ...
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # ... until told again: it stops at its next batch
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "query:migraine-immunology:" not in out  # nothing new was started
    assert "query:endometriosis-genetics: failed: window" in out and "litwatch is shutting down" in out
    engine = sa.create_engine(url)
    assert watermark(engine, "endometriosis-genetics") is None
    assert 0 < len(stored(engine)) < len(fake_eutils.records)
    engine.dispose()
