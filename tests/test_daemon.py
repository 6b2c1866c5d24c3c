"""`litwatch schedule`: cron triggers, reloads, faults, shutdown, and two daemons on one database.

In-process daemons run on a thread (no signal handlers); the signal and multi-daemon tests start
real processes against the loopback fake E-utilities. Schedules in seconds ("* * * * * */2", a
croniter extension the files never allow) keep the multi-daemon test short.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from fake_eutils import FakeEutils, Fault
from sqlalchemy.engine import Engine
from test_jobs import LITWATCH, command_env

from litwatch.clock import utc
from litwatch.config import Settings
from litwatch.errors import StoreError
from litwatch.pipeline import run as runner
from litwatch.scheduling import daemon, jobs, schedules
from litwatch.scheduling.plan import Job, JobPlan
from litwatch.sources.eutils import EutilsClient
from litwatch.store import engine as db
from litwatch.store import models

FIXTURES = Path(__file__).parent / "fixtures"
SRC = Path(__file__).resolve().parents[1] / "src"
TODAY = dt.date.today()
TERMS = {"endometriosis-genetics": "endometriosis[tiab] AND TRIM32[tiab]",
         "migraine-immunology": "migraine[tiab] AND FOXP3[tiab]"}
GROUPS = """
[groups.headache-lab]
recipients = ["Headache lab <headache-lab@example.org>"]
queries = ["migraine-immunology"]
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def fill(fake: FakeEutils, folder: Path, *, papers: int = 3, schedule: str | None = None) -> None:
    """Real recorded records as ``papers`` new papers per saved query, and the query files."""
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("3[4-6]*.xml")):
        fake.add_records_from_file(path, crdt=TODAY - dt.timedelta(days=400))
    sources = list(fake.records)
    folder.mkdir(parents=True, exist_ok=True)
    for n, (name, term) in enumerate(sorted(TERMS.items())):
        fake.terms[term] = fake.add_clones(papers, first_pmid=93_000_000 + 1000 * n, crdt=TODAY, sources=sources)
        line = f'schedule = "{schedule}"\n' if schedule else ""
        (folder / f"{name}.toml").write_text(f"term = '''{term}'''\nstart = {TODAY}\n{line}", encoding="utf-8")


def settings_for(tmp_path: Path, fake: FakeEutils) -> Settings:
    return Settings(queries_dir=tmp_path / "queries", eutils_url=fake.url, email="librarian@example.org",
                    outbox=tmp_path / "outbox", pubtator="off")


# -- triggers -------------------------------------------------------------------------------------

def test_the_trigger_fires_monday_for_1_where_apschedulers_from_crontab_says_tuesday() -> None:
    wednesday = at("2026-11-25 12:00")
    trigger = daemon.CroniterTrigger(schedules.parse("0 7 * * 1"))
    assert trigger.get_next_fire_time(None, wednesday) == at("2026-11-30 07:00")  # a Monday
    apscheduler_reading = CronTrigger.from_crontab("0 7 * * 1", timezone="UTC").get_next_fire_time(None, wednesday)
    assert apscheduler_reading.strftime("%A") == "Tuesday"  # why daemon.py does not use it


@pytest.mark.parametrize(("expr", "tz"), [("0 7 * * 1", "Europe/Madrid"), ("30 2 * * *", "Europe/Madrid"),
                                          ("15 6 1,15 * 0", "UTC"), ("0 5 * * mon-fri", "America/New_York")])
def test_the_trigger_fires_exactly_when_the_due_logic_says(expr: str, tz: str) -> None:
    schedule = schedules.parse(expr, tz)
    trigger = daemon.CroniterTrigger(schedule)
    start, end = at("2026-03-01 00:00"), at("2026-11-30 00:00")  # both daylight-saving changes
    fired, previous = [], None
    while (fire := trigger.get_next_fire_time(previous, previous or start)) is not None and fire < end:
        fired.append(fire)
        previous = fire
    assert fired == list(schedules.fires(schedule, start, end))


def test_a_trigger_behind_the_clock_offers_the_first_missed_time_then_catches_up() -> None:
    trigger = daemon.CroniterTrigger(schedules.parse("0 5 * * *"))
    back = at("2026-11-23 09:00")  # three weeks after the last fire: the scheduler coalesces them into one run
    assert trigger.get_next_fire_time(at("2026-11-02 05:00"), back) == at("2026-11-03 05:00")
    assert trigger.get_next_fire_time(None, back) == at("2026-11-24 05:00")


# -- the database going away ------------------------------------------------------------------------

def test_waiting_for_the_database_backs_off_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([StoreError("connection refused"), StoreError("connection refused"), None])

    def ping() -> None:
        answer = next(answers)
        if answer is not None:
            raise answer

    caplog.set_level(logging.INFO, "litwatch")
    started = time.monotonic()
    assert daemon.wait_for_database(ping, stopping=threading.Event(), first=0.05, most=0.08)
    assert time.monotonic() - started >= 0.13
    assert [r.getMessage() for r in caplog.records] == [
        "database unreachable (connection refused); retrying in 0.05 s",
        "database unreachable (connection refused); retrying in 0.08 s",  # doubled, up to the most
        "database reachable again after 2 failed attempt(s)"]


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        upstream = socket.create_connection(self.server.upstream)  # type: ignore[attr-defined]

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                dst.close()

        back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        back.start()
        pump(self.request, upstream)
        back.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_the_daemon_waits_out_an_unreachable_database_then_runs(
    database_url: str, fake_eutils: FakeEutils, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL behind a proxy that is not up yet: the daemon reports, retries, then catches up."""
    real = sa.engine.make_url(database_url)
    db.migrate(setup := db.make_engine(database_url))
    setup.dispose()
    port = free_port()
    engine = db.make_engine(real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))
    fill(fake_eutils, tmp_path / "queries")
    worker = jobs.Worker(engine, settings_for(tmp_path, fake_eutils),
                         client=EutilsClient(fake_eutils.url, "x@example.org", backoff=0, sleep=lambda s: None))
    d = daemon.Daemon.from_settings(worker, worker.settings)
    d.db_retry = (0.2, 0.4)
    caplog.set_level(logging.INFO, "litwatch")
    with running(d):
        wait_for(lambda: sum("unreachable" in r.getMessage() for r in caplog.records) >= 2)
        proxy = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Pipe)
        proxy.upstream = (real.host or "127.0.0.1", real.port or 5432)  # type: ignore[attr-defined]
        proxy.daemon_threads = True
        threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            wait_for(lambda: "caught up: 2 job(s) were due" in caplog.text)
        finally:
            d.stop()
    proxy.shutdown()
    proxy.server_close()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"database postgresql+psycopg://postgres@127.0.0.1:{port}/") and "unreachable" in m
               and "retrying in 0.2 s" in m for m in messages)
    assert any("reachable again after" in m for m in messages)
    assert sum(": ok: window" in m for m in messages) == 2
    engine.dispose()


# -- in-process daemons ----------------------------------------------------------------------------

class running:
    """Run a Daemon on a thread for the ``with`` block; stop it and wait at the end."""

    def __init__(self, d: daemon.Daemon) -> None:
        self.d = d
        self.thread = threading.Thread(target=d.run, kwargs={"install_signals": False})

    def __enter__(self) -> daemon.Daemon:
        self.thread.start()
        return self.d

    def __exit__(self, *exc: object) -> None:
        self.d.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def job_ids(d: daemon.Daemon) -> set[str]:
    return {j.id for j in d.scheduler.get_jobs()} - {"catch-up"}


def queries_and_worker(engine: Engine, fake: FakeEutils, tmp_path: Path) -> tuple[Path, jobs.Worker]:
    """A queries folder with two saved queries and a group, and a worker over it that never waits."""
    folder = tmp_path / "queries"
    fill(fake, folder)
    (folder / "groups.toml").write_text(GROUPS, encoding="utf-8")
    worker = jobs.Worker(engine, settings_for(tmp_path, fake),
                         client=EutilsClient(fake.url, "x@example.org", backoff=0, sleep=lambda s: None))
    return folder, worker


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # in-process: one backend is enough
def test_jobs_follow_the_files_a_broken_file_disables_only_its_query_loudly_until_fixed(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, worker = queries_and_worker(engine, fake_eutils, tmp_path)
    caplog.set_level(logging.INFO, "litwatch")
    with running(daemon.Daemon.from_settings(worker, worker.settings, watch_interval=0.1)) as d:
        wait_for(lambda: "caught up: 3 job(s) were due" in caplog.text)
        assert job_ids(d) == {"query:endometriosis-genetics", "query:migraine-immunology", "digest:headache-lab"}
        assert d.scheduler.get_job("digest:headache-lab").next_run_time.strftime("%A %H:%M") == "Monday 07:00"
        (folder / "migraine-immunology.toml").write_text("term = '''(migraine[tiab]'''\n", encoding="utf-8")
        wait_for(lambda: "query:migraine-immunology" not in job_ids(d))
        assert "migraine-immunology.toml:1: error: unbalanced parentheses" in caplog.text
        assert "query:endometriosis-genetics" in job_ids(d)  # the others keep their schedule
        (folder / "new-topic.toml").write_text(
            f"term = '''{TERMS['migraine-immunology']}'''\nschedule = \"0 6 * * 0\"\nstart = {TODAY}\n", encoding="utf-8")
        (folder / "migraine-immunology.toml").write_text(f"term = '''{TERMS['migraine-immunology']}'''\n",
                                                         encoding="utf-8")
        wait_for(lambda: "query:new-topic: ok" in caplog.text)  # a new query runs at once, then on schedule
        assert d.scheduler.get_job("query:new-topic").next_run_time.strftime("%A %H:%M") == "Sunday 06:00"
        wait_for(lambda: {"query:migraine-immunology", "query:new-topic"} <= job_ids(d))
        d.request_reload()
        wait_for(lambda: "SIGHUP: reloading" in caplog.text)
    assert "litwatch schedule stopped" in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # in-process: one backend is enough
def test_a_query_added_while_a_catch_up_runs_still_runs_at_once(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, worker = queries_and_worker(engine, fake_eutils, tmp_path)
    release, busy = threading.Event(), threading.Event()
    real_run_due = worker.run_due

    def slow_first_catch_up(plan: Any, report: Any = None) -> Any:
        if not busy.is_set():
            busy.set()
            release.wait(20)
        return real_run_due(plan, report)

    worker.run_due = slow_first_catch_up  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, "litwatch")
    with running(daemon.Daemon.from_settings(worker, worker.settings, watch_interval=60)) as d:
        assert busy.wait(20)  # the start-up catch-up is in flight
        (folder / "new-topic.toml").write_text(
            f"term = '''{TERMS['migraine-immunology']}'''\nschedule = \"0 6 * * 0\"\nstart = {TODAY}\n", encoding="utf-8")
        d.request_reload()
        wait_for(lambda: "query:new-topic: scheduled" in caplog.text)
        release.set()
        wait_for(lambda: "query:new-topic: ok" in caplog.text)  # not only at its Sunday 06:00
    assert "skipped: maximum number of running instances" not in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # in-process: one backend is enough
def test_a_failing_job_is_logged_and_retried_at_its_next_time_without_stopping_the_others(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(fake_eutils, tmp_path / "queries")
    fake_eutils.inject(Fault(error="Search Backend failed: database is not available"), times=2)
    client = EutilsClient(fake_eutils.url, "x@example.org", backoff=0, sleep=lambda s: None, max_retries=1)
    worker = jobs.Worker(engine, settings_for(tmp_path, fake_eutils), client=client)
    every = schedules.parse("* * * * * */1")
    d = daemon.Daemon(worker, load=lambda: fast(jobs.load_plan(worker.settings, today=TODAY), every))
    caplog.set_level(logging.INFO, "litwatch")
    with running(d):
        wait_for(lambda: caplog.text.count(": ok: window") >= 3)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and all("failed: window" in r.getMessage() and "Search Backend failed" in r.getMessage()
                            for r in failures)
    assert "query:endometriosis-genetics: ok" in caplog.text and "query:migraine-immunology: ok" in caplog.text


def fast(plan: JobPlan, every: schedules.Schedule) -> JobPlan:
    plan.jobs = [Job(j.kind, j.name, every, j.target) for j in plan.jobs]
    return plan


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # in-process: one backend is enough
def test_a_run_missed_while_the_process_was_suspended_is_made_up_once(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill(fake_eutils, tmp_path / "queries")
    worker = jobs.Worker(engine, settings_for(tmp_path, fake_eutils),
                         client=EutilsClient(fake_eutils.url, "x@example.org", backoff=0, sleep=lambda s: None))
    plan = jobs.load_plan(worker.settings, today=TODAY)
    plan.jobs = plan.jobs[:1]
    d = daemon.Daemon(worker, load=lambda: plan)
    fired: list[str] = []
    d._fire = fired.append  # type: ignore[method-assign]
    with running(d):
        wait_for(lambda: d.scheduler.running and bool(job_ids(d)))
        key = plan.jobs[0].key
        d.scheduler.modify_job(key, next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        d.scheduler.wakeup()
        wait_for(lambda: fired == [key])
        time.sleep(0.3)
    assert fired == [key]  # three days of daily fire times: one run


# -- real processes: signals, two daemons -----------------------------------------------------------

@pytest.fixture
def slow_efetch(fake_eutils: FakeEutils) -> Iterator[threading.Event]:
    """Each efetch answer takes 0.3 s; the event is set when the first one is asked for."""
    asked = threading.Event()
    real = fake_eutils._efetch

    def slow(params: dict[str, str]) -> bytes:
        asked.set()
        time.sleep(0.3)
        return real(params)

    fake_eutils._efetch = slow  # type: ignore[method-assign]
    yield asked
    fake_eutils._efetch = real  # type: ignore[method-assign]


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_during_a_job_ends_cleanly_with_the_watermark_intact(
    signals: int, fake_eutils: FakeEutils, slow_efetch: threading.Event, tmp_path: Path
) -> None:
    """One SIGTERM: the job in flight finishes, then exit 0. Two: it stops at its next batch."""
    url = f"sqlite:///{tmp_path / 'litwatch.sqlite'}"
    db.migrate(engine := db.make_engine(url))
    fill(fake_eutils, tmp_path / "queries", papers=10)
    (tmp_path / "queries" / "endometriosis-genetics.toml").unlink()
    env = command_env(tmp_path, fake_eutils, url, LITWATCH_FETCH_BATCH="2")
    with subprocess.Popen([*LITWATCH, "schedule"], env=env, stderr=subprocess.PIPE, text=True) as proc:
        assert slow_efetch.wait(30)
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.1)
        _out, log = proc.communicate(timeout=30)
    assert proc.returncode == 0, log
    assert "stopping: finishing the job in flight" in log and "litwatch schedule stopped" in log
    with engine.connect() as conn:
        run = conn.execute(sa.select(models.table(models.Run))).one()
        mark = runner.get_watermark(conn, "migraine-immunology")
        papers = conn.execute(sa.text("SELECT count(*) FROM papers")).scalar()
    if signals == 1:
        assert "query:migraine-immunology: ok: window" in log and ", 10 new," in log
        assert (run.status, mark, papers) == ("ok", TODAY, 10)
    else:
        assert "stopping now: the job in flight stops at its next batch" in log
        assert run.status == "failed" and "litwatch is shutting down" in run.error
        assert mark is None and 0 < (papers or 0) < 10  # stored batches stay; the watermark did not move
    assert "Traceback" not in log
    engine.dispose()


TWO_SECOND_DAEMON = textwrap.dedent("""
    import logging, sys
    from litwatch.scheduling import daemon
    from litwatch.store import engine as db
    from litwatch.scheduling import jobs
    from litwatch.scheduling import schedules
    from litwatch.scheduling.plan import Job
    from litwatch.config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    worker = jobs.Worker(db.make_engine(settings.database_url), settings)
    every = schedules.parse("* * * * * */2")
    d = daemon.Daemon.from_settings(worker, settings)
    files = d.load

    def load():
        plan = files()
        plan.jobs = [Job(j.kind, j.name, every, j.target) for j in plan.jobs]
        return plan

    d.load = load
    sys.exit(d.run())
""")


def test_two_schedulers_on_one_database_run_each_job_once_per_fire_time(
    engine: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    fill(fake_eutils, tmp_path / "queries")
    (tmp_path / "queries" / "groups.toml").write_text(GROUPS, encoding="utf-8")
    env = command_env(tmp_path, fake_eutils, database_url)
    procs = [subprocess.Popen([sys.executable, "-c", TWO_SECOND_DAEMON], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while count_runs(engine) < 8:  # 2 queries x (catch-up + 3 fire times)
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        logs = [p.communicate(timeout=30)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    runs, digests = models.table(models.Run), models.table(models.Digest)
    with engine.connect() as conn:
        started = conn.execute(sa.select(runs.c.query_name, runs.c.started_at, runs.c.status)).all()
        sent = conn.execute(sa.select(digests.c.created_at, digests.c.status)).all()
    for name in TERMS:
        slots = [fire_slot(r.started_at) for r in started if r.query_name == name]
        assert len(slots) >= 4 and len(slots) == len(set(slots)), (name, sorted(slots))
    digest_slots = [fire_slot(d.created_at) for d in sent]
    assert len(digest_slots) >= 3 and len(digest_slots) == len(set(digest_slots))
    assert {r.status for r in started} == {"ok"} and {d.status for d in sent} <= {"recorded", "empty"}
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1  # the first digest; the rest were empty weeks
    for log in logs:  # both daemons took part: each ran jobs or found them held or done by the other
        assert sum(": ok: window" in line or ": skipped (running in " in line or ": not-due: " in line
                   for line in log.splitlines()) >= 2, log
        assert "Traceback" not in log


def count_runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM runs WHERE status = 'ok'")).scalar() or 0)


def fire_slot(moment: Any) -> dt.datetime:
    """The two-second fire time a run belongs to (the last one at or before it started)."""
    moment = utc(moment)
    return moment.replace(microsecond=0) - dt.timedelta(seconds=moment.second % 2)
