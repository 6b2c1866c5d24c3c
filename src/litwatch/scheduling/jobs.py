"""Scheduled work: running a job once, under its lease, when it is due (plan.py says which are due).

One core, three drivers. ``litwatch run-due`` (cron, a systemd timer) calls :meth:`Worker.run_due`
once and exits; ``litwatch schedule`` (daemon.py) calls it at start to catch up, then
:meth:`Worker.run` for each job when its trigger fires; ``litwatch digest --send`` calls
:meth:`Worker.run` on each group's digest job (``force`` for ``--force``). All read the clock
they are given.

Every job runs under the lease of the same name (leases.py), and whether it is still due is
decided again once the lease is held: two daemons, two ``run-due`` processes, a daemon and a
manual ``litwatch run`` or ``litwatch digest --send`` never run a job at the same time, and never
twice for one fire time. Queries run before digests, so a digest goes out with what its queries
just found.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from litwatch.clock import Clock, utcnow
from litwatch.config import Settings
from litwatch.errors import InputError, LitwatchError, LockHeldError
from litwatch.files.queries import SavedQuery
from litwatch.pipeline import preprints as preprint_step
from litwatch.pipeline import pubtator as pubtator_step
from litwatch.pipeline import run as runner
from litwatch.pipeline.preprints import EuropePmc
from litwatch.pipeline.pubtator import Pubtator
from litwatch.pipeline.run import Eutils, Receipt
from litwatch.scheduling import schedules
from litwatch.scheduling.plan import Job, JobPlan, ScheduledGroup, last_attempt
from litwatch.scheduling.plan import (
    due_at as due_at,  # the CLI's names: jobs.load_plan, ...
)
from litwatch.scheduling.plan import load_plan as load_plan
from litwatch.scheduling.plan import next_due as next_due
from litwatch.store import leases
from litwatch.tagging.tagger import Tagger

log = logging.getLogger(__name__)

Report = Callable[["JobResult"], None]


class Deliver(Protocol):
    """litwatch.delivery.digest.deliver_group, or a stand-in: returns a DigestReceipt."""

    def __call__(self, engine: Engine, settings: Settings, group: Any, *, now: dt.datetime,
                 since: dt.datetime | None = None) -> Any: ...



@dataclass(frozen=True)
class JobResult:
    """One line of the log: what a job did, with its receipt."""

    job: str
    status: str  # ok | failed | skipped | not-due for queries; a digest's own status (sent, empty, ...)
    message: str
    receipt: Any = None
    holder: str | None = None  # skipped: the process running this job elsewhere

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def line(self) -> str:
        status = f"skipped (running in {self.holder or 'another process'})" if self.skipped else self.status
        return f"{self.job}: {status}: {self.message}"


def describe_receipt(receipt: Receipt) -> str:
    """A query receipt on one line."""
    text = (f"window {receipt.window_from}..{receipt.window_to}, {receipt.search_count} found, "
            f"{receipt.new} new, {receipt.known} known, {receipt.fetched} fetched, "
            f"{len(receipt.missing)} missing, {receipt.updated} updated, {receipt.requests} requests, "
            f"{receipt.duration_s:.1f} s")
    return text if receipt.ok else f"{text}; error: {receipt.error}"


def _count(value: Any) -> int:
    return len(value) if isinstance(value, Sequence) else int(value or 0)


def describe_digest(receipt: Any) -> str:
    """A DigestReceipt on one line: what the digest holds (new papers, older matches, retraction
    notices, "now published" notices) and what waits for the next one (overflow)."""
    older = _count(getattr(receipt, "older", 0))
    text = (f"{_count(receipt.papers) - older} new, {older} older, {_count(receipt.retraction_notices)} "
            f"retraction notice(s), {_count(getattr(receipt, 'published', 0))} now published, "
            f"{_count(receipt.overflow)} overflow")
    if receipt.message_id:
        text += f", message {receipt.message_id}"
    if getattr(receipt, "recovered_ids", ()):
        text += f", sent again or finished: {', '.join(receipt.recovered_ids)}"
    for line in getattr(receipt, "refused", ()):
        text += f"; not delivered to {line}"
    for line in getattr(receipt, "uncertain", ()):
        text += f"; uncertain, not sent again by itself (`litwatch digest --send` says what to do): {line}"
    return text if not receipt.error else f"{text}; error: {receipt.error}"


def _deliver_group(engine: Engine, settings: Settings, group: Any, *, now: dt.datetime,
                   since: dt.datetime | None = None) -> Any:
    from litwatch.delivery.digest import (
        deliver_group,  # imported when a digest is due: Jinja2 and mail are not needed before
    )

    from litwatch.delivery.feed import refresh_after

    receipt = deliver_group(engine, settings, group, now=now, since=since)
    refresh_after(engine, settings, group, receipt, now=now)
    return receipt


@dataclass
class Worker:
    """Runs jobs for one process: its database, settings, clock, and the seams tests replace."""

    engine: Engine
    settings: Settings
    clock: Clock = utcnow
    client: Eutils | None = None  # None: an EutilsClient built from settings on the first query
    europepmc: EuropePmc | None = None  # None: a EuropePmcClient built on the first query with preprints
    pubtator: Pubtator | None = None  # None: a PubtatorClient built from settings on the first query
    tagger: Tagger | None = None
    vocab_dir: Path | None = None  # when set, the tagger is (re)loaded from here when its files change
    deliver: Deliver = _deliver_group
    lease_ttl: float = leases.DEFAULT_TTL
    feeder_wait: float = 900.0  # seconds a digest waits for its queries running in another process
    feeder_poll: float = 1.0
    stopping: threading.Event = field(default_factory=threading.Event)  # start nothing new
    abort: threading.Event = field(default_factory=threading.Event)  # and stop at the next batch
    _vocab_seen: object = field(default=None, repr=False)

    def _client(self) -> Eutils:
        if self.client is None:
            from litwatch.sources.eutils import EutilsClient
            from litwatch.store.rate_budget import budget_for

            # NCBI's rate budget: shared with this machine's processes, or every host on the store
            self.client = EutilsClient.from_settings(self.settings, budget=budget_for(self.engine, self.settings))
        return self.client

    def _europepmc(self, query: SavedQuery) -> EuropePmc | None:
        if self.europepmc is None and query.preprints:
            from litwatch.sources.europepmc import EuropePmcClient

            self.europepmc = EuropePmcClient.from_settings(self.settings)
        return self.europepmc

    def _pubtator(self) -> Pubtator:
        if self.pubtator is None:
            from litwatch.sources.pubtator import PubtatorClient

            self.pubtator = PubtatorClient.from_settings(self.settings)
        return self.pubtator

    def _tagger(self) -> Tagger | None:
        """The tagger for the vocabulary as it is now; an error in it stops query jobs (never untagged papers)."""
        if self.vocab_dir is None:
            return self.tagger
        seen = files_signature(self.vocab_dir)
        if seen != self._vocab_seen:
            from litwatch.store.tags import load_tagger

            try:
                self.tagger = load_tagger(self.vocab_dir)
            except LitwatchError as exc:
                raise InputError(f"{exc} (saved queries do not run until the vocabulary is fixed, so no "
                                "paper is stored untagged)") from exc
            self._vocab_seen = seen
        return self.tagger

    def is_due(self, job: Job, now: dt.datetime | None = None) -> bool:
        return schedules.is_due(job.schedule, last_attempt(self.engine, job), now or self.clock())

    def due(self, plan: JobPlan) -> list[Job]:
        """The jobs due now, queries first."""
        now = self.clock()
        return [job for job in plan.jobs if self.is_due(job, now)]

    def run_due(self, plan: JobPlan, report: Report | None = None) -> list[JobResult]:
        """Run every job that is due now, queries before digests; ``report`` hears of each as it ends."""
        return self._run_each(plan, self.due(plan), report)

    def run_with_feeders(self, plan: JobPlan, job: Job, report: Report | None = None) -> list[JobResult]:
        """``job``, and for a digest first the due queries that feed it (fetch before sending)."""
        feeders = plan.feeding(job.name) if job.kind == "digest" else []
        todo = [q for q in feeders if not self.stopping.is_set() and self.is_due(q)] + [job]
        return self._run_each(plan, todo, report)

    def _run_each(self, plan: JobPlan, todo: Sequence[Job], report: Report | None) -> list[JobResult]:
        results = []
        for job in todo:
            if self.stopping.is_set():
                break
            results.append(self.run(plan, job))
            if report is not None:
                report(results[-1])
        return results

    def run(self, plan: JobPlan, job: Job, *, force: bool = False, since: dt.datetime | None = None) -> JobResult:
        """Run ``job`` if it is still due once its lease is held (``force``: due or not); never raises.

        ``since`` (digests only) takes the papers found since then instead of since the last digest.
        """
        try:
            with leases.hold(self.engine, job.key, ttl=self.lease_ttl, clock=self.clock) as lease:
                now = self.clock()
                last = last_attempt(self.engine, job)
                if not force and not schedules.is_due(job.schedule, last, now):
                    assert last is not None
                    return JobResult(job.key, "not-due", f"last ran {last:%Y-%m-%d %H:%M:%S} UTC; next at "
                                     f"{_when(schedules.next_fire(job.schedule, last))}")
                if isinstance(job.target, SavedQuery):
                    return self._query(job.target, lease, now)
                late = self._wait_for_feeders(plan, job)
                return self._digest(job.target, self.clock(), late, since)
        except LockHeldError as exc:  # running elsewhere: nothing failed
            return JobResult(job.key, "skipped", str(exc), holder=exc.holder)
        except LitwatchError as exc:  # database errors too: the engine turns them into StoreError
            return JobResult(job.key, "failed", str(exc))
        except Exception as exc:  # a bug must not stop the other jobs or the daemon
            log.exception("%s: unexpected error", job.key)
            return JobResult(job.key, "failed", f"unexpected {type(exc).__name__}: {exc}")

    def _query(self, query: SavedQuery, lease: leases.Lease, now: dt.datetime) -> JobResult:
        receipt = run_query_held(
            self.engine, self._client(), query, lease, today=now.astimezone(dt.UTC).date(),
            overlap_days=self.settings.overlap_days, batch_size=self.settings.fetch_batch,
            tagger=self._tagger(), clock=self.clock, abort=self.abort, europepmc=self._europepmc(query),
            pubtator=self._pubtator(),
        )
        message = describe_receipt(receipt)
        if receipt.preprints is not None:
            message += "; " + receipt.preprints.line().split(": ", 1)[1]
        if receipt.pubtator is not None and not receipt.pubtator.quiet:
            message += "; " + receipt.pubtator.line()
        if receipt.interrupted:
            message += "; closed " + "; ".join(receipt.interrupted)
        return JobResult(f"query:{query.name}", "ok" if receipt.ok else "failed", message, receipt)

    def _wait_for_feeders(self, plan: JobPlan, job: Job) -> str | None:
        """Wait until no other process runs a query that feeds this digest (at most ``feeder_wait``
        seconds), so the digest carries what that run finds; returns which queries are still held."""
        deadline = time.monotonic() + self.feeder_wait
        pending = [q.key for q in plan.feeding(job.name)]
        while pending:
            now = self.clock()
            pending = [key for key in pending
                       if (held := leases.current(self.engine, key)) is not None and held.expires_at > now]
            if not pending or time.monotonic() >= deadline or self.stopping.wait(self.feeder_poll):
                break
        return ", ".join(pending) or None

    def _digest(self, group: ScheduledGroup, now: dt.datetime, late: str | None = None,
                since: dt.datetime | None = None) -> JobResult:
        receipt = self.deliver(self.engine, self.settings, group, now=now, since=since)
        status = str(receipt.status)
        failed = bool(receipt.error or getattr(receipt, "refused", ()) or getattr(receipt, "uncertain", ())) \
            or status == "failed"  # a refused address or an uncertain copy needs a person too
        message = describe_digest(receipt)
        if late:
            message += f" (did not wait longer for {late}, still running elsewhere: its papers come next time)"
        return JobResult(f"digest:{group.name}", "failed" if failed else status, message, receipt)


def files_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every file directly in ``folder``: what changes when one is edited."""
    if not folder.is_dir():
        return ()
    found = []
    for path in sorted(folder.iterdir()):
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _when(moment: dt.datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def run_query_held(
    engine: Engine,
    client: Eutils,
    query: SavedQuery,
    lease: leases.Lease,
    *,
    today: dt.date,
    clock: Clock,
    abort: threading.Event | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    europepmc: EuropePmc | None = None,
    pubtator: Pubtator | None = None,
    **options: Any,
) -> Receipt:
    """runner.run_query while ``lease`` is held: between batches, stop if the lease was lost or
    ``abort`` was set (the run is recorded as failed and adds nothing to the coverage ledger); then
    the query's preprints, then PubTator3's annotations of what is stored (pipeline/pubtator.py)."""

    def checked(name: str, done: int, total: int) -> None:
        lease.check()
        if abort is not None and abort.is_set() and done < total:
            raise LitwatchError(f"stopped after {done} of {total} papers: litwatch is shutting down; the "
                                "papers stored so far stay, and the next run searches these dates again")
        if progress is not None:
            progress(name, done, total)

    receipt = runner.run_query(engine, client, query, today=today, clock=clock, progress=checked,
                               holder=lease.holder, **options)
    preprint_step.after_pubmed(engine, europepmc, query, receipt, today=today, clock=clock, options=options)
    pubtator_step.after_pubmed(engine, pubtator, receipt, now=clock(), tagger=options.get("tagger"))
    return receipt


def run_query_job(
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
    lease_ttl: float = leases.DEFAULT_TTL,
    europepmc: EuropePmc | None = None,
    pubtator: Pubtator | None = None,
) -> Receipt:
    """``runner.run_query`` under the lease ``query:<name>``, for a manual ``litwatch run``.

    Same arguments and receipt as ``runner.run_query``; when a scheduler (or another manual run)
    is running the query right now it is not started twice: the receipt is ``skipped``, naming
    the holder (nothing failed: the query is running elsewhere).
    """
    try:
        with leases.hold(engine, f"query:{query.name}", ttl=lease_ttl, clock=clock) as lease:
            return run_query_held(engine, client, query, lease, today=today, clock=clock, progress=progress,
                                  overlap_days=overlap_days, batch_size=batch_size, since=since,
                                  dry_run=dry_run, refetch=refetch, tagger=tagger, europepmc=europepmc,
                                  pubtator=pubtator)
    except LockHeldError as exc:
        return Receipt(query.name, since or today, today, dry_run=dry_run,
                       skipped=exc.holder or "another process")
