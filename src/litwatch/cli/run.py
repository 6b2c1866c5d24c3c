"""`litwatch run`, `run-due` and `schedule`: saved queries against PubMed, by hand or on schedule."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
from collections.abc import Sequence

import click
from sqlalchemy.engine import Engine

from litwatch.cli import tables
from litwatch.cli.app import _Context, pass_ctx
from litwatch.cli.app import report_problems as _report_problems
from litwatch.cli.queries import select_queries
from litwatch.clock import utcnow
from litwatch.pipeline import pubtator as pubtator_step
from litwatch.pipeline import run as runner
from litwatch.scheduling import jobs
from litwatch.sources.europepmc import EuropePmcClient
from litwatch.sources.eutils import EutilsClient
from litwatch.sources.pubtator import PubtatorClient
from litwatch.store import engine as db
from litwatch.store import rate_budget
from litwatch.store import tags as tag_store
from litwatch.store.leases import DEFAULT_TTL as _LEASE_TTL
from litwatch.tagging.tagger import Tagger

# what says a run worked; --wide adds the search count, ids seen, requests, retries, seconds...
# "updated": stored papers the update pass found revised by PubMed (retractions, errata, MeSH...)
_receipts_table = tables.Layout(narrow=("query", "window", "new", "updated", "status"), clip=("query",))


_preprints_table = tables.Layout(narrow=("preprints of", "window", "new", "status"), clip=("preprints of",))


def _print_preprint_receipts(receipts: Sequence[runner.Receipt]) -> None:
    """The Europe PMC step of each query that has one (pipeline/preprints.py), as a second table."""
    done = [r.preprints for r in receipts if r.preprints is not None]
    if done:
        click.echo()
        click.echo(_preprints_table(
            ("preprints of", "window", "count", "found", "new", "known", "linked", "requests", "retries", "status"),
            [(p.query, f"{p.window_from}..{p.window_to}", p.hit_count, p.found, p.new, p.known, p.linked,
              p.requests, p.retries, "ok" if p.ok else "FAILED") for p in done]))


def _print_receipts(receipts: Sequence[runner.Receipt]) -> None:
    headers = ("query", "window", "count", "seen", "fetched", "new", "known", "missing", "updated", "requests",
               "update_requests", "retries", "seconds", "status")
    rows = [
        (r.query, f"{r.window_from}..{r.window_to}", r.search_count, r.ids_seen, r.fetched, r.new, r.known,
         len(r.missing), r.updated, r.requests, r.update_requests, r.retries, f"{r.duration_s:.1f}",
         "FAILED" if not r.ok else r.status)
        for r in receipts
    ]
    click.echo(_receipts_table(headers, rows))
    _print_preprint_receipts(receipts)
    for r in receipts:
        for closed in r.interrupted:
            click.echo(f"{r.query}: {closed}; closed as interrupted", err=True)
        for warning in r.warnings:
            click.echo(f"{r.query}: warning: {warning}", err=True)
        if r.missing:
            shown = ", ".join(map(str, r.missing[:20])) + (" ..." if len(r.missing) > 20 else "")
            click.echo(f"{r.query}: {len(r.missing)} PMID(s) found by the search but not returned by efetch: "
                       f"{shown}", err=True)
        if r.preprints is not None:
            for warning in r.preprints.warnings:
                click.echo(f"{r.query}: warning: Europe PMC: {warning}", err=True)
        if not r.ok:
            click.echo(f"litwatch: error: query {r.query} failed: {r.error}", err=True)


@click.command(name="run")
@tables.wide_option
@click.option("--query", "names", multiple=True, metavar="NAME", help="Run only this saved query (repeatable).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Search from this date (a backfill); the range enters the coverage ledger.")
@click.option("--dry-run", is_flag=True, help="Only report counts per window; fetch and store nothing.")
@click.option("--refetch", is_flag=True, help="Fetch papers already stored again (to pick up revisions).")
@pass_ctx
def run_command(
    ctx: _Context, names: tuple[str, ...], since: dt.datetime | None, dry_run: bool, refetch: bool
) -> None:
    """Run the saved queries against PubMed and store what is new.

    A query with a `preprints` search then searches Europe PMC for preprints over the gaps in its
    coverage (from --since too; not with --dry-run); its receipts are the second table, and a
    failed Europe PMC search fails the query.
    Then PubTator3 annotates the genes and diseases of new papers (LITWATCH_PUBTATOR=off: not
    asked); papers it lacks keep dictionary tags and are asked about again by later runs, and
    PubTator3 failing is one warning, not a failed run.

    Exit 0 when every query succeeded, 1 if any failed (after finishing the others), 2 for invalid
    input (query files, options).
    """
    settings = ctx.settings
    today = dt.date.today()
    selected, bad_files = select_queries(settings, names, today)
    engine = ctx.engine()
    client = EutilsClient.from_settings(settings, budget=rate_budget.budget_for(engine, settings))
    tagger = tag_store.load_tagger(settings.vocab_dir)
    europepmc = None  # the preprints step runs after each query's PubMed part (pipeline/preprints.py)
    if any(q.preprints for q in selected) and not dry_run:
        europepmc = EuropePmcClient.from_settings(settings)
    progress = None
    if sys.stderr.isatty():
        def progress(name: str, done: int, total: int) -> None:
            click.echo(f"\r{name}: fetched {done}/{total}", err=True, nl=done >= total)
    receipts = [
        jobs.run_query_job(  # under the query's lease: never twice at once with a scheduler
            engine, client, query, today=today, overlap_days=settings.overlap_days,
            batch_size=settings.fetch_batch, since=since.date() if since else None,
            dry_run=dry_run, refetch=refetch, progress=progress, tagger=tagger, europepmc=europepmc,
        )
        for query in selected
    ]
    _print_receipts(receipts)
    if not dry_run:
        _pubtator_step(ctx, engine, tagger)
    skipped = [r for r in receipts if r.skipped is not None]
    if skipped:
        click.echo(f"skipped {len(skipped)} quer{'y' if len(skipped) == 1 else 'ies'} running in another process: "
                   + ", ".join(f"{r.query} (in {r.skipped})" for r in skipped))
    if any(not r.ok for r in receipts):
        sys.exit(1)
    if bad_files:
        click.echo(f"litwatch: error: {bad_files} problem(s) in query files; those queries did not run", err=True)
        sys.exit(2)


def _pubtator_step(ctx: _Context, engine: Engine, tagger: Tagger | None) -> None:
    """PubTator3's annotations of what the queries stored, asked once for the whole run: a line
    saying what it did, or one warning when PubTator3 failed (the run still succeeds)."""
    receipt = pubtator_step.annotate(engine, PubtatorClient.from_settings(ctx.settings), tagger,
                                     now=utcnow())
    if receipt.warning is not None:
        click.echo(f"litwatch: warning: {receipt.warning}", err=True)
    elif not receipt.quiet:
        click.echo(receipt.line())


# --- scheduled runs: `litwatch run-due` (cron, systemd timer) and `litwatch schedule` (daemon) ---


_lease_option = click.option(
    "--lease-ttl", type=click.FloatRange(min=1), default=_LEASE_TTL, show_default=True, metavar="SECONDS",
    help="How long a crashed run keeps its query or digest locked before another process takes it over.",
)


def _worker(ctx: _Context, lease_ttl: float) -> jobs.Worker:
    return jobs.Worker(ctx.engine(require_schema=False), ctx.settings, lease_ttl=lease_ttl,
                        vocab_dir=ctx.settings.vocab_dir)


def _stop_gently(worker: jobs.Worker) -> None:
    """SIGTERM or Ctrl-C: start no new job; a second one stops the job in flight at its next batch."""

    def handler(_signum: int, _frame: object) -> None:
        if worker.stopping.is_set():
            worker.abort.set()
        worker.stopping.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _what_next(failed: Sequence[jobs.JobResult]) -> str:
    """What becomes of failed jobs, said only for the kinds that failed: a query runs again on its
    schedule, a digest that failed to send goes again unchanged, an uncertain one never by itself."""
    digests = [r for r in failed if r.job.startswith("digest:")]
    uncertain = [r for r in digests if getattr(r.receipt, "uncertain", ())]
    notes = []
    if len(digests) < len(failed):
        notes.append("a failed query runs again at its next scheduled time and searches the dates it missed")
    if len(uncertain) < len(digests):
        notes.append("a digest that failed goes again, unchanged, at its next scheduled time "
                     "(or now with `litwatch digest --send --force`)")
    if uncertain:
        notes.append("an uncertain digest is never sent again by itself (`litwatch digest` says what to do)")
    return "; ".join(notes)


@click.command(name="run-due")
@_lease_option
@pass_ctx
def run_due_command(ctx: _Context, lease_ttl: float) -> None:
    """Run the saved queries and digests whose schedule has come since their last run, then exit.

    For cron or a systemd timer (every 15 minutes is plenty): each job runs once however long the
    machine was down, under a database lease so it never runs twice at once. SIGTERM or Ctrl-C
    lets the job in flight finish; a second one stops it at its next batch. Exit 0 when every job
    that was due succeeded (or nothing was due), 1 if one failed (the others still ran), 2 if a
    query or group file has an error (what the valid ones define still ran).
    """
    worker = _worker(ctx, lease_ttl)
    db.require_schema(worker.engine)
    plan = jobs.load_plan(ctx.settings, today=worker.clock().date())
    bad = _report_problems(plan.problems)
    _stop_gently(worker)
    results = worker.run_due(plan, lambda result: click.echo(result.line()))
    if not results:
        click.echo("nothing is due")
    skipped = [r for r in results if r.skipped]
    if skipped:
        click.echo(f"skipped {len(skipped)} job(s) running in another process: "
                   + ", ".join(f"{r.job} (in {r.holder or 'another process'})" for r in skipped))
    upcoming = jobs.next_due(plan, worker.clock())
    if upcoming is not None:
        click.echo(f"next: {upcoming[0]:%Y-%m-%d %H:%M} UTC: {', '.join(job.key for job in upcoming[1])}")
    failed = [r for r in results if r.failed]
    if failed:
        click.echo(f"litwatch: error: {len(failed)} job(s) failed; {_what_next(failed)}", err=True)
        sys.exit(1)
    if bad:
        click.echo(f"litwatch: error: {bad} problem(s) in the query or group files; what they define did not run",
                   err=True)
        sys.exit(2)


@click.command(name="schedule")
@_lease_option
@click.option("--watch-interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="How often to look for edited query, group and vocabulary files.")
@pass_ctx
def schedule_command(ctx: _Context, lease_ttl: float, watch_interval: float) -> None:
    """Run saved queries and digests on their schedules until stopped (a daemon).

    Catches up once on what fell due while it was not running, then runs each job when its cron
    schedule fires, logging one line per job. Edited files are picked up within WATCH-INTERVAL
    seconds, or at once on SIGHUP. SIGTERM or Ctrl-C finishes the job in flight and exits 0; a
    second one stops that job at its next batch (the coverage ledger gains nothing from it).
    """
    from litwatch.scheduling import daemon  # APScheduler is needed by this command only

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = _worker(ctx, lease_ttl)
    sys.exit(daemon.Daemon.from_settings(worker, ctx.settings, watch_interval=watch_interval).run())

