"""``litwatch schedule``: the long-running daemon; the only module that imports APScheduler.

An APScheduler 3 ``BlockingScheduler`` holds one job per saved query and per digest group, built
from the files at start and rebuilt when a file in the queries folder (or its ``vocab/``) changes,
or on SIGHUP. At start it first catches up: everything due (jobs.Worker.run_due) runs once, so a
server that was down over a weekend makes up each missed run once. Triggers fire at the times
schedules.py computes, standard cron with 0 = Sunday (APScheduler's own ``CronTrigger.from_crontab``
counts 0 as Monday). Jobs run one at a time on one worker thread (polite to NCBI, and a digest
never races its queries); ``coalesce`` and ``misfire_grace_time=None`` make a run missed while the
process was suspended or busy happen once, however late.

The scheduler only says *when*: each job is run by jobs.Worker, which takes the job's database
lease and checks it is still due, so two daemons never run a job twice. A failed job is logged
with its reason and runs again at its next fire time: a query searches what the failed run left
out, a digest whose send failed goes again unchanged, but one whose delivery is uncertain is never
sent again by itself (``litwatch digest`` says how to settle it). Before each job the database is pinged;
while it is unreachable the daemon waits with exponential backoff (1 s doubling to 5 min) and says
so in the log. SIGTERM or Ctrl-C: start nothing new, finish the job in flight, exit 0; a second
signal stops the job in flight at its next batch; that run adds nothing to the coverage ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger

from litwatch.config import Settings
from litwatch.errors import LitwatchError
from litwatch.retry import Backoff, Stopped
from litwatch.scheduling import jobs, schedules
from litwatch.scheduling.plan import JobPlan, load_plan
from litwatch.store import engine as db

log = logging.getLogger("litwatch.scheduling.daemon")

_TICK = dt.timedelta(microseconds=1)


class CroniterTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger that fires exactly when :func:`schedules.next_fire` says."""

    def __init__(self, schedule: schedules.Schedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        """The first fire time after the previous one (however long ago: the scheduler coalesces
        what was missed into one run), or for a new job the first at or after ``now``."""
        after = previous_fire_time if previous_fire_time is not None else now - _TICK
        return schedules.next_fire(self.schedule, after)

    def __str__(self) -> str:
        return f"cron[{self.schedule}]"

    def __repr__(self) -> str:
        return f"<CroniterTrigger {self.schedule}>"


def wait_for_database(
    ping: Callable[[], Any],
    *,
    stopping: threading.Event,
    where: str = "database",
    first: float = 1.0,
    most: float = 300.0,
) -> bool:
    """Call ``ping`` until it succeeds, waiting ``first`` seconds doubling to ``most`` between tries
    (litwatch.retry's policy, the one E-utilities requests use).

    Logs each failure with its reason; False when ``stopping`` was set while waiting.
    """
    failures = 0

    def failed(attempt: int, exc: BaseException, delay: float) -> None:
        nonlocal failures
        failures = attempt
        reason = str(exc).strip().splitlines()[0]
        log.error("%s unreachable (%s); retrying in %g s", where, reason, delay)

    try:
        Backoff(first=first, most=most).run(
            lambda _attempt: ping(), retryable=lambda exc: isinstance(exc, LitwatchError),  # database errors arrive as StoreError
            on_retry=failed, stopping=stopping,
        )
    except Stopped:
        return False
    if failures:
        log.warning("%s reachable again after %d failed attempt(s)", where, failures)
    return True


def _log_result(result: jobs.JobResult, *, quiet: bool = False) -> None:
    level = logging.ERROR if result.failed else logging.INFO
    if quiet and result.status == "not-due":
        level = logging.DEBUG
    log.log(level, "%s", result.line())


def _when(moment: dt.datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


class Daemon:
    """The scheduler process. ``load`` builds the jobs; ``watch`` returns a value that changes when
    the files behind them do (polled every ``watch_interval`` seconds)."""

    def __init__(
        self,
        worker: jobs.Worker,
        *,
        load: Callable[[], JobPlan],
        watch: Callable[[], object] = lambda: None,
        watch_interval: float = 10.0,
        db_retry: tuple[float, float] = (1.0, 300.0),
    ) -> None:
        self.worker = worker
        self.load = load
        self.watch = watch
        self.watch_interval = watch_interval
        self.db_retry = db_retry
        self.plan = JobPlan()
        self.scheduler = BlockingScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        self._started = threading.Event()
        self.scheduler.add_listener(lambda _event: self._started.set(), EVENT_SCHEDULER_STARTED)
        self._control: queue.SimpleQueue[str] = queue.SimpleQueue()

    @classmethod
    def from_settings(cls, worker: jobs.Worker, settings: Settings, *, watch_interval: float = 10.0) -> Daemon:
        """The daemon over the files in ``settings.queries_dir`` (queries, groups.toml, vocab/)."""

        def load() -> JobPlan:
            return load_plan(settings, today=worker.clock().astimezone(dt.UTC).date())

        def watch() -> object:
            return jobs.files_signature(settings.queries_dir), jobs.files_signature(settings.vocab_dir)

        return cls(worker, load=load, watch=watch, watch_interval=watch_interval)

    # -- control: signals and file changes arrive as words on a queue ------------------------------
    def stop(self) -> None:
        """Ask the daemon to stop (safe from a signal handler or any thread)."""
        self._control.put("stop")

    def request_reload(self) -> None:
        self._control.put("reload")

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def _control_loop(self) -> None:
        seen = self.watch()
        while True:
            try:
                word = self._control.get(timeout=self.watch_interval)
            except queue.Empty:
                word = "check"
            if word == "exit":
                return
            if word == "stop":
                self._begin_stop()
            elif not self.worker.stopping.is_set():
                now_seen = self.watch()
                if word == "check" and now_seen == seen:
                    continue
                seen = now_seen
                log.info("%s: reloading the query and group files",
                         "SIGHUP" if word == "reload" else "files changed")
                self.reload()

    def _begin_stop(self) -> None:
        if not self.worker.stopping.is_set():
            self.worker.stopping.set()
            log.info("stopping: finishing the job in flight (signal again to stop it at its next batch)")
            threading.Thread(target=self._shutdown, name="shutdown", daemon=True).start()
        elif not self.worker.abort.is_set():
            self.worker.abort.set()
            log.warning("stopping now: the job in flight stops at its next batch; the next run searches "
                        "its dates again")

    def _shutdown(self) -> None:
        self._started.wait()
        self.scheduler.shutdown(wait=True)

    # -- jobs -------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Rebuild the jobs from the files (a job whose file has an error is removed until it is
        fixed), then catch up: a new or repaired query that never ran is due at once."""
        try:
            plan = self.load()
        except Exception as exc:  # keep running on the jobs we have
            log.error("cannot read the query and group files (%s); keeping the current jobs", exc)
            return
        for problem in plan.problems:
            if problem.severity == "error":
                log.error("%s; what this file defines does not run until it is fixed", problem)
            else:
                log.warning("%s", problem)
        old = {job.key: job for job in self.plan.jobs}
        new = {job.key: job for job in plan.jobs}
        self.plan = plan
        for key in sorted(old.keys() - new.keys()):
            try:
                self.scheduler.remove_job(key)
            except JobLookupError:
                pass
            log.warning("%s: no longer scheduled (its file was removed or has an error)", key)
        now = self.worker.clock()
        for key, job in new.items():
            if key in old and old[key].schedule == job.schedule:
                continue
            self.scheduler.add_job(self._fire, CroniterTrigger(job.schedule), args=[key], id=key, name=key,
                                   replace_existing=True)
            log.info("%s: scheduled '%s', next run %s", key, job.schedule,
                     _when(schedules.next_fire(job.schedule, now)))
        # a second instance waits for the one in flight (one worker thread), so a query added or
        # repaired while a catch-up runs still runs at once instead of being skipped
        self.scheduler.add_job(self._catch_up, id="catch-up", name="catch-up", replace_existing=True,
                               max_instances=2)
        errors = sum(1 for p in plan.problems if p.severity == "error")
        log.info("%d saved queries and %d digests scheduled%s", len(plan.queries), len(plan.groups),
                 f"; {errors} file error(s) disable what they define" if errors else "")

    def _database_ready(self) -> bool:
        def ping() -> None:
            with self.worker.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        first, most = self.db_retry
        return wait_for_database(ping, stopping=self.worker.stopping, first=first, most=most,
                                 where=f"database {db.redact_url(str(self.worker.engine.url))}")

    def _fire(self, key: str) -> None:
        plan = self.plan
        job = plan.job(key)
        if job is None or self.worker.stopping.is_set() or not self._database_ready():
            return
        try:
            self.worker.run_with_feeders(plan, job, lambda result: _log_result(result, quiet=result.job != key))
        except LitwatchError as exc:  # the job runs again at its next fire time
            log.error("%s: failed: %s", key, exc)

    def _catch_up(self) -> None:
        if not self._database_ready():
            return
        try:
            results = self.worker.run_due(self.plan, _log_result)
        except LitwatchError as exc:
            log.error("catching up failed (%s); each job runs at its next time", exc)
            return
        if results:
            log.info("caught up: %d job(s) were due", len(results))

    # -- the process ------------------------------------------------------------------------------
    def run(self, *, install_signals: bool = True) -> int:
        """Run until stopped; returns the exit code (0 after a clean stop)."""
        for noisy in ("apscheduler", "alembic"):  # our own line per job is enough
            logging.getLogger(noisy).setLevel(logging.WARNING)
        control = threading.Thread(target=self._control_loop, name="control", daemon=True)
        control.start()
        if install_signals:
            self._install_signals()
        try:
            if not self._database_ready():
                return 0
            db.require_schema(self.worker.engine)
            self.reload()  # and catch up on what fell due while the daemon was not running
            log.info("litwatch schedule running as pid %d: SIGHUP reloads the files, SIGTERM or Ctrl-C stops",
                     os.getpid())
            self.scheduler.start()
        finally:
            self._control.put("exit")
            control.join()
        log.info("litwatch schedule stopped")
        return 0
