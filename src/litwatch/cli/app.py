"""The ``litwatch`` command: parses options, calls the core, turns LitwatchError into one line.

Nothing here holds pipeline logic; the scheduler calls the same core functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.config import Settings, load_settings
from litwatch.delivery import digest as digest_mod
from litwatch.delivery import export as _export
from litwatch.delivery.mail import OutboxMailer, mailer_from_settings, outbox_stem
from litwatch.errors import InputError, LitwatchError
from litwatch.files import groups as groups_mod
from litwatch.files import queries, vocab
from litwatch.pipeline import ingest
from litwatch.pipeline import run as runner
from litwatch.scheduling import jobs
from litwatch.sources.eutils import EutilsClient
from litwatch.store import engine as db
from litwatch.store import search as _search
from litwatch.store import stats as _stats
from litwatch.store import tags as tag_store
from litwatch.store.leases import DEFAULT_TTL as _LEASE_TTL
from litwatch.store.stored import StoredPaper


class _Group(click.Group):
    """Prints a LitwatchError as one line on stderr and exits with its code; no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LitwatchError as exc:
            click.echo(f"litwatch: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


class _Context:
    def __init__(self, config: Path | None) -> None:
        self._config = config
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_path=self._config)
        return self._settings

    def engine(self, *, require_schema: bool = True) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(
                self.settings.database_url, busy_timeout=self.settings.database_busy_timeout
            )
            if require_schema:
                db.require_schema(self._engine)
        return self._engine

    def close(self) -> None:
        """Release the database connections when the command ends."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_ctx = click.make_pass_decorator(_Context)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (default: $LITWATCH_CONFIG or ./litwatch.toml if present).",
)
@click.version_option(package_name="litwatch")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Literature monitoring: saved PubMed queries, a deduplicated paper store, tags and digests."""
    ctx.obj = _Context(config)
    ctx.call_on_close(ctx.obj.close)


@main.command()
@pass_ctx
def init(ctx: _Context) -> None:
    """Create the database, or migrate it to the newest schema."""
    engine = ctx.engine(require_schema=False)
    revision = db.migrate(engine)
    click.echo(f"database {db.redact_url(ctx.settings.database_url)} is at schema revision {revision}")


def _print_ingest(summary: ingest.IngestSummary) -> None:
    headers = ("file", "read", "new", "updated", "unchanged", "merged", "deleted", "skipped")
    rows: list[Sequence[object]] = []
    for report in summary.files:
        r = report.result
        rows.append((str(report.path), r.read, r.new, r.updated, r.unchanged, r.merged, r.deleted, sum(r.skipped.values())))
    t = summary.total
    if len(rows) > 1:
        rows.append(("total", t.read, t.new, t.updated, t.unchanged, t.merged, t.deleted, sum(t.skipped.values())))
    click.echo(_table(headers, rows))
    for reason, count in sorted(t.skipped.items()):
        click.echo(f"skipped {count}: {reason}")
    for error in summary.errors:
        click.echo(f"litwatch: error: {error}", err=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table: text columns left, numbers right."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int) for row in rows) and bool(rows) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


@main.command(name="ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--batch-size", default=ingest.BATCH_SIZE, show_default=True, help="Records per transaction.")
@click.option("--no-tag", is_flag=True, help="Do not tag the papers (the vocabulary is in QUERIES_DIR/vocab).")
@pass_ctx
def ingest_command(ctx: _Context, paths: tuple[Path, ...], batch_size: int, no_tag: bool) -> None:
    """Load PubMed XML files (.xml or .xml.gz, or folders of them) into the store, and tag them."""
    files = ingest.expand_paths(paths)
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: no such file (give .xml or .xml.gz files, or folders holding them)")
    engine = ctx.engine()
    total = sum(p.stat().st_size for p in files)
    vocab_dir = None if no_tag else ctx.settings.vocab_dir
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="ingesting", file=sys.stderr) as bar:
            summary = ingest.ingest_paths(
                engine, files, progress=bar.update, batch_size=batch_size, vocab_dir=vocab_dir
            )
    else:
        summary = ingest.ingest_paths(engine, files, batch_size=batch_size, vocab_dir=vocab_dir)
    _print_ingest(summary)
    if summary.errors:
        sys.exit(2)


@main.command(name="tag")
@click.option("--all", "retag", is_flag=True, help="Re-tag every paper in the store (after a vocabulary edit).")
@click.option("--explain", metavar="TEXT", help="Show every match in TEXT ('-' reads standard input).")
@click.option("--jsonl", is_flag=True, help='Read {"id": ..., "text": ...} lines on stdin; write one result line each.')
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output of --explain.")
@click.option("--batch-size", default=1000, show_default=True, help="Papers per transaction with --all.")
@pass_ctx
def tag_command(ctx: _Context, retag: bool, explain: str | None, jsonl: bool, fmt: str, batch_size: int) -> None:
    """Tag papers by gene, pathway and condition, or explain why a text is tagged."""
    if sum((retag, explain is not None, jsonl)) != 1:
        raise InputError("give exactly one of --all, --explain TEXT, --jsonl (see litwatch tag --help)")
    tagger = tag_store.load_tagger(ctx.settings.vocab_dir)
    if tagger is None:
        raise InputError(f"no vocabulary folder at {ctx.settings.vocab_dir} (set LITWATCH_QUERIES_DIR)")
    if explain is not None:
        text = sys.stdin.read() if explain == "-" else explain
        if fmt == "json":
            click.echo(json.dumps([dataclasses.asdict(m) for m in tagger.match(text)], ensure_ascii=False))
            return
        rows = [(e.match.tag, e.match.kind, e.match.text, e.match.start, e.match.end, e.status)
                for e in tagger.explain(text)]
        click.echo(_table(("tag", "kind", "text", "start", "end", "status"), rows) if rows else "no matches")
        return
    if jsonl:
        for number, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                text = item["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"standard input line {number}: expected {{\"id\": ..., \"text\": ...}} ({exc})") from exc
            matches = [dataclasses.asdict(m) for m in tagger.match(str(text))]
            click.echo(json.dumps({"id": item.get("id"), "matches": matches}, ensure_ascii=False))
        return
    engine = ctx.engine()
    if sys.stderr.isatty():
        with click.progressbar(length=_paper_count(engine), label="tagging", file=sys.stderr) as bar:
            papers, tags = tag_store.retag_all(engine, tagger, batch_size=batch_size, progress=bar.update)
    else:
        papers, tags = tag_store.retag_all(engine, tagger, batch_size=batch_size)
    click.echo(f"tagged {papers} papers: {tags} tags (vocabulary version {tagger.version})")


def _paper_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM papers")).scalar_one())


@main.group(name="vocab")
def vocab_group() -> None:
    """Tag vocabularies (the files in QUERIES_DIR/vocab)."""


@vocab_group.command(name="import-hgnc")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Genes file to write (default: QUERIES_DIR/vocab/hgnc.tsv).")
@pass_ctx
def vocab_import_hgnc(ctx: _Context, source: Path, output: Path | None) -> None:
    """Import HGNC's hgnc_complete_set.txt (downloaded from genenames.org) as a genes file."""
    dest = output or ctx.settings.vocab_dir / "hgnc.tsv"
    from litwatch.tagging import hgnc

    written = hgnc.import_hgnc(source, dest)
    click.echo(f"wrote {written} genes to {dest}; run `litwatch tag --all` to re-tag the store")

@main.group(name="queries")
def queries_group() -> None:
    """Saved PubMed queries (the files in the queries folder)."""


def _report_problems(problems: Sequence[queries.Problem]) -> int:
    """Print problems to stderr; return how many are errors."""
    for problem in problems:
        click.echo(str(problem), err=True)
    return sum(1 for p in problems if p.severity == "error")


@queries_group.command(name="check")
@pass_ctx
def queries_check(ctx: _Context) -> None:
    """Validate the saved query files, the vocabulary and groups.toml; exit 2 if any has an error."""
    settings = ctx.settings
    folder = settings.queries_dir
    found, problems = queries.load_queries(folder, today=dt.date.today())
    if settings.vocab_dir.is_dir():
        problems += [
            queries.Problem(e.path, e.line, e.message, "error") for e in vocab.check_vocabulary(settings.vocab_dir)
        ]
    groups, group_problems = _load_groups(settings, check_tags=True)
    errors = _report_problems([*problems, *group_problems])
    if errors:
        click.echo(f"{errors} error(s) in {folder} (query files, vocab/, groups.toml)", err=True)
        sys.exit(2)
    warnings = len(problems) + len(group_problems)
    click.echo(f"{len(found)} saved queries in {folder} are valid")
    if settings.vocab_dir.is_dir():
        vocabulary = vocab.load_vocabulary(settings.vocab_dir)
        kinds = {k: len(vocabulary.tags(k)) for k in ("gene", "pathway", "condition")}
        click.echo(
            f"vocabulary {settings.vocab_dir} is valid: {kinds['gene']} genes, {kinds['pathway']} pathways, "
            f"{kinds['condition']} conditions, {len(vocabulary.stoplist)} stop-list entries (version {vocabulary.version})"
        )
    click.echo(f"{len(groups)} digest groups in {settings.groups_file} are valid")
    if warnings:
        click.echo(f"{warnings} warning(s) above", err=True)


def _print_receipts(receipts: Sequence[runner.Receipt]) -> None:
    headers = ("query", "window", "count", "seen", "fetched", "new", "known", "missing", "requests",
               "retries", "seconds", "status")
    rows = [
        (r.query, f"{r.window_from}..{r.window_to}", r.search_count, r.ids_seen, r.fetched, r.new, r.known,
         len(r.missing), r.requests, r.retries, f"{r.duration_s:.1f}",
         "dry-run" if r.dry_run and r.ok else ("ok" if r.ok else "FAILED"))
        for r in receipts
    ]
    click.echo(_table(headers, rows))
    for r in receipts:
        for warning in r.warnings:
            click.echo(f"{r.query}: warning: {warning}", err=True)
        if r.missing:
            shown = ", ".join(map(str, r.missing[:20])) + (" ..." if len(r.missing) > 20 else "")
            click.echo(f"{r.query}: {len(r.missing)} PMID(s) found by the search but not returned by efetch: "
                       f"{shown}", err=True)
        if not r.ok:
            click.echo(f"litwatch: error: query {r.query} failed: {r.error}", err=True)


@main.command(name="run")
@click.option("--query", "names", multiple=True, metavar="NAME", help="Run only this saved query (repeatable).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Search from this date (a backfill; the watermark stays).")
@click.option("--dry-run", is_flag=True, help="Only report counts per window; fetch and store nothing.")
@click.option("--refetch", is_flag=True, help="Fetch papers already stored again (to pick up revisions).")
@pass_ctx
def run_command(
    ctx: _Context, names: tuple[str, ...], since: dt.datetime | None, dry_run: bool, refetch: bool
) -> None:
    """Run the saved queries against PubMed and store what is new.

    Exit 0 when every query succeeded, 1 if any failed (after finishing the others), 2 for invalid
    input (query files, options).
    """
    settings = ctx.settings
    today = dt.date.today()
    found, problems = queries.load_queries(settings.queries_dir, today=today)
    bad_files = _report_problems(problems)
    by_name = {q.name: q for q in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(
            f"no valid saved query named {unknown[0]!r} in {settings.queries_dir} "
            f"(known: {', '.join(sorted(by_name)) or 'none'}; `litwatch queries check` shows broken files)"
        )
    selected = [by_name[n] for n in dict.fromkeys(names)] if names else found
    engine = ctx.engine()
    client = EutilsClient.from_settings(settings)
    tagger = tag_store.load_tagger(settings.vocab_dir)
    progress = None
    if sys.stderr.isatty():
        def progress(name: str, done: int, total: int) -> None:
            click.echo(f"\r{name}: fetched {done}/{total}", err=True, nl=done >= total)
    receipts = [
        jobs.run_query_job(  # under the query's lease: never twice at once with a scheduler
            engine, client, query, today=today, overlap_days=settings.overlap_days,
            batch_size=settings.fetch_batch, since=since.date() if since else None,
            dry_run=dry_run, refetch=refetch, progress=progress, tagger=tagger,
        )
        for query in selected
    ]
    _print_receipts(receipts)
    if any(not r.ok for r in receipts):
        sys.exit(1)
    if bad_files:
        click.echo(f"litwatch: error: {bad_files} problem(s) in query files; those queries did not run", err=True)
        sys.exit(2)


# --- digests for research groups: `litwatch digest`, and groups.toml in `queries check` ------


def _vocabulary_tags(settings: Settings) -> list[str] | None:
    """The vocabulary's tags, to check group ``tags`` against; None when it cannot be read."""
    try:
        return vocab.load_vocabulary(settings.vocab_dir).tags()
    except (LitwatchError, OSError):
        return None


def _load_groups(settings: Settings, *, check_tags: bool = False) -> tuple[list[groups_mod.Group], list[queries.Problem]]:
    found, _ = queries.load_queries(settings.queries_dir, today=dt.date.today())
    return groups_mod.load_groups(settings.groups_file, found,
                                  vocabulary_tags=_vocabulary_tags(settings) if check_tags else None)


def _where(mailer: object, message_id: str | None) -> str:
    """Where a digest went: its outbox file, or its Message-ID."""
    if message_id and isinstance(mailer, OutboxMailer):
        return str(mailer.folder / f"{outbox_stem(message_id)}.eml")
    return message_id or ""


def _local(when: dt.datetime | None, group: groups_mod.Group) -> str:
    if when is None:
        return "now"
    local = when.astimezone(group.zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


@main.command(name="digest")
@click.option("--group", "names", multiple=True, metavar="NAME", help="Only this group (repeatable).")
@click.option("--preview", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write what would be sent (.html, .txt, .eml) to DIR; the ledger is not touched.")
@click.option("--send", is_flag=True, help="Send the digests that are due, exactly as `litwatch run-due` would.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Take papers found since this date (UTC) instead of since the last digest.")
@click.option("--force", is_flag=True,
              help="With --send: send now even if the group's schedule has not come round (retries a failed digest).")
@pass_ctx
def digest_command(ctx: _Context, names: tuple[str, ...], preview: Path | None, send: bool,
                   since: dt.datetime | None, force: bool) -> None:
    """Digests of new papers for the research groups in groups.toml.

    Without --send or --preview, shows each group's state. Each paper goes to a group once.
    --send runs the scheduler's digest job: due when the group's schedule fired since its last
    digest (sent, empty or failed); a digest whose send failed is sent again, unchanged, when the
    schedule next fires, or at once with --force. Exit 0 when all went well, 1 if a send failed,
    2 for invalid input (groups.toml, options).
    """
    if preview is not None and send:
        raise InputError("--preview and --send do not go together: preview first, then send")
    if force and not send:
        raise InputError("--force only goes with --send")
    settings = ctx.settings
    found, problems = _load_groups(settings)
    bad = _report_problems(problems)
    by_name = {g.name: g for g in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"no valid group named {unknown[0]!r} in {settings.groups_file} (known: "
                         f"{', '.join(sorted(by_name)) or 'none'}; `litwatch queries check` shows broken groups)")
    selected = [by_name[n] for n in dict.fromkeys(names)] if names else found
    start = since.replace(tzinfo=dt.UTC) if since else None
    engine = ctx.engine()
    now = dt.datetime.now(dt.UTC)
    failed = False
    if preview is not None:
        for group in selected:
            paths = digest_mod.preview_group(engine, settings, group, now=now, out_dir=preview, since=start)
            click.echo(f"{group.name}: " + (", ".join(map(str, paths)) if paths else "nothing new: nothing would be sent"))
    elif send:
        mailer = mailer_from_settings(settings)
        job_plan, worker = jobs.load_plan(settings, today=now.date()), jobs.Worker(engine, settings)
        rows: list[Sequence[object]] = []
        for group in selected:
            job = job_plan.digest_job(group.name)
            result = worker.run(job_plan, job, force=force, since=start)
            r = result.receipt
            if result.status == "not-due":
                rows.append((group.name, "not due", 0, 0, 0, f"next: {_local(jobs.due_at(engine, job), group)}"))
                continue
            if r is None:
                click.echo(f"litwatch: error: group {group.name}: {result.message}", err=True)
                failed = True
                continue
            for earlier in r.recovered_ids:
                rows.append((group.name, "retried", "", "", "", _where(mailer, earlier)))
            rows.append((group.name, r.status, r.papers, r.overflow, r.retraction_notices, _where(mailer, r.message_id)))
            if r.error:
                failed = True
                retry = _local(jobs.due_at(engine, job), group)
                click.echo(f"litwatch: error: group {group.name}: {r.error} (it is sent again, unchanged, at the next "
                           f"scheduled time, {retry}, or now with --send --force)", err=True)
        click.echo(_table(("group", "status", "papers", "overflow", "retractions", "message"), rows))
    else:
        pending = digest_mod.pending_digests(engine, [g.name for g in selected])
        job_plan = jobs.load_plan(settings, today=now.date())
        status_rows: list[Sequence[object]] = []
        with engine.connect() as conn:
            for group in selected:
                plan = digest_mod.plan_digest(conn, group, now=now, since=start)
                status_rows.append((group.name, len(group.recipients), ", ".join(group.queries) or "-",
                                    f"{group.schedule} {group.timezone}", _local(jobs.due_at(engine, job_plan.digest_job(group.name)), group),
                                    len(plan.papers) + len(plan.overflow), len(plan.notices), pending.get(group.name, 0)))
        click.echo(_table(("group", "recipients", "queries", "schedule", "next", "new", "retractions", "to retry"),
                          status_rows))
    if failed:
        sys.exit(1)
    if bad:
        click.echo(f"litwatch: error: {bad} problem(s) in {settings.groups_file} or the query files", err=True)
        sys.exit(2)


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


@main.command(name="run-due")
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
    upcoming = jobs.next_due(plan, worker.clock())
    if upcoming is not None:
        click.echo(f"next: {upcoming[0]:%Y-%m-%d %H:%M} UTC: {', '.join(job.key for job in upcoming[1])}")
    failed = sum(1 for r in results if r.failed)
    if failed:
        click.echo(f"litwatch: error: {failed} job(s) failed; each is tried again at its next scheduled time",
                   err=True)
        sys.exit(1)
    if bad:
        click.echo(f"litwatch: error: {bad} problem(s) in the query or group files; what they define did not run",
                   err=True)
        sys.exit(2)


@main.command(name="schedule")
@_lease_option
@click.option("--watch-interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="How often to look for edited query, group and vocabulary files.")
@pass_ctx
def schedule_command(ctx: _Context, lease_ttl: float, watch_interval: float) -> None:
    """Run saved queries and digests on their schedules until stopped (a daemon).

    Catches up once on what fell due while it was not running, then runs each job when its cron
    schedule fires, logging one line per job. Edited files are picked up within WATCH-INTERVAL
    seconds, or at once on SIGHUP. SIGTERM or Ctrl-C finishes the job in flight and exits 0; a
    second one stops that job at its next batch (its watermark stays).
    """
    from litwatch.scheduling import daemon  # APScheduler is needed by this command only

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = _worker(ctx, lease_ttl)
    sys.exit(daemon.Daemon.from_settings(worker, ctx.settings, watch_interval=watch_interval).run())


# --- litwatch search / export / stats: analysts query, search and export the store (issue 7) ---


SEARCH_LIMIT = 20


@contextlib.contextmanager
def _disposing(engine: Engine) -> Iterator[Engine]:
    """Close the engine's pooled connections when the command ends, whatever happens."""
    try:
        yield engine
    finally:
        engine.dispose()


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filters `search` and `export` share, in the order --help shows them."""
    decorators: tuple[Callable[[Callable[..., Any]], Callable[..., Any]], ...] = (
        click.argument("text", nargs=-1),
        click.option("--tag", "tags", multiple=True, metavar="TAG",
                     help="Only papers tagged TAG, a gene, pathway or condition as `stats --by tag` lists it "
                          "(exact name; repeat to require several)."),
        click.option("--query", "query_name", metavar="NAME", help="Only papers found by this saved query."),
        click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE",
                     help="Only papers published on or after DATE (YYYY-MM-DD)."),
        click.option("--until", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE",
                     help="Only papers published on or before DATE (YYYY-MM-DD)."),
        click.option("--retracted/--no-retracted", default=None,
                     help="Only retracted papers, or none of them (default: both)."),
    )
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _filters(text: tuple[str, ...], tags: tuple[str, ...], query_name: str | None, since: dt.datetime | None,
             until: dt.datetime | None, retracted: bool | None, limit: int | None) -> _search.Filters:
    return _search.Filters(
        text=" ".join(text) if text else None, tags=tags, query=query_name,
        since=since.date() if since else None, until=until.date() if until else None,
        retracted=retracted, limit=limit,
    )


def _explain_empty(engine: Engine, filters: _search.Filters) -> str:
    """Why nothing matched, when a filter names something the store does not know."""
    for tag in filters.tags:
        if not _search.tag_exists(engine, tag):
            similar = _search.similar_tags(engine, tag)
            hint = f" (did you mean {', '.join(similar)}?)" if similar else " (`litwatch stats --by tag` lists tags)"
            return f"no paper is tagged {tag!r}{hint}"
    if filters.query is not None and not _search.query_exists(engine, filters.query):
        return f"no paper was found by a saved query named {filters.query!r} (`litwatch stats --by query` lists them)"
    return "no papers match these filters"


@main.command(name="search")
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), default=SEARCH_LIMIT, show_default=True, metavar="N",
              help="Show at most N papers (the newest).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="A table that fits the terminal, or complete JSON / CSV for other programs.")
@pass_ctx
def search_command(ctx: _Context, text: tuple[str, ...], tags: tuple[str, ...], query_name: str | None,
                   since: dt.datetime | None, until: dt.datetime | None, retracted: bool | None, limit: int,
                   fmt: str) -> None:
    """Find papers: full text (title, abstract, keywords) and filters, newest first.

    Every word of TEXT must be in the paper (any form: `cytokine` finds cytokines); quote a
    phrase ("regulatory T cells") and end a word with * for a prefix (migrain*). Other
    punctuation is ignored. All filters must hold.
    """
    with _disposing(ctx.engine()) as engine:
        _search_command(engine, text, tags, query_name, since, until, retracted, limit, fmt)


def _search_command(engine: Engine, text: tuple[str, ...], tags: tuple[str, ...], query_name: str | None,
                    since: dt.datetime | None, until: dt.datetime | None, retracted: bool | None, limit: int,
                    fmt: str) -> None:
    filters = _filters(text, tags, query_name, since, until, retracted, limit + 1)
    papers = _search.search(engine, filters)
    more = len(papers) > limit
    papers = papers[:limit]
    if fmt == "table":
        if papers:
            click.echo(_export.table(papers, shutil.get_terminal_size((100, 24)).columns))
    else:
        _export.write(fmt, papers, sys.stdout)
    if not papers:
        click.echo(f"litwatch: {_explain_empty(engine, filters)}", err=True)
    elif more:
        click.echo(f"litwatch: more papers match; showing the newest {limit} "
                   "(raise --limit, or `litwatch export` them all)", err=True)


@main.command(name="export")
@click.option("--format", "fmt", type=click.Choice(list(_export.FORMATS)), required=True,
              help="csv or json (every field), bibtex or ris (for Zotero, EndNote, JabRef...).")
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Export at most N papers (the newest).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write to FILE (replaced whole, only once complete) instead of standard output.")
@pass_ctx
def export_command(ctx: _Context, fmt: str, text: tuple[str, ...], tags: tuple[str, ...], query_name: str | None,
                   since: dt.datetime | None, until: dt.datetime | None, retracted: bool | None, limit: int | None,
                   output: Path | None) -> None:
    """Export the papers matching the same filters as `search` (all of them unless --limit), newest first."""
    with _disposing(ctx.engine()) as engine:
        _export_command(engine, fmt, _filters(text, tags, query_name, since, until, retracted, limit), output)


def _export_command(engine: Engine, fmt: str, filters: _search.Filters, output: Path | None) -> None:
    papers: Iterator[StoredPaper] = _search.iter_papers(engine, filters)
    if output is None:
        count = _export.write(fmt, papers, sys.stdout)
    else:
        count = _export.write_file(fmt, papers, output)
        click.echo(f"exported {count} paper(s) to {output} ({fmt})", err=True)
    if not count:
        click.echo(f"litwatch: {_explain_empty(engine, filters)}", err=True)


def _overlap_rows(overlaps: Sequence[_stats.Overlap], width: int) -> list[Sequence[object]]:
    rows: list[Sequence[object]] = []
    for o in overlaps:
        where = ", ".join(f"{name} {n}" for name, n in o.conditions.items())
        rows.append((o.tag, o.kind, len(o.conditions), o.papers, o.comorbid_papers, where))
    fixed = max((sum(len(str(c)) + 2 for c in row[:5]) for row in rows), default=0) + 12
    room = max(width - fixed, 20)
    return [(*row[:5], row[5] if len(str(row[5])) <= room else str(row[5])[: room - 1] + "…") for row in rows]


@main.command(name="stats")
@click.option("--by", type=click.Choice(list(_stats.BY)), default="month", show_default=True,
              help="Count papers per publication month, tag, saved query, or condition (with the "
                   "comorbidity overlap table).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE",
              help="Count papers published on or after DATE (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE",
              help="Count papers published on or before DATE (YYYY-MM-DD).")
@click.option("--min-conditions", type=click.IntRange(min=1), default=2, show_default=True, metavar="N",
              help="With --by condition: list genes and pathways found in papers of at least N conditions.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.png",
              help="Also draw papers per month into a PNG: one line per saved query (--by month or query), "
                   "tag (--by tag) or condition (--by condition).")
@click.option("--top", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
              help="With --plot: draw the N largest queries, tags or conditions.")
@pass_ctx
def stats_command(ctx: _Context, by: str, since: dt.datetime | None, until: dt.datetime | None,
                  min_conditions: int, plot: Path | None, top: int) -> None:
    """Count papers over time, per tag, per saved query or per condition.

    --by condition adds the comorbidity overlap: the genes and pathways tagged in papers of two
    or more conditions, with the papers of each (BOTH counts papers where the gene stands beside
    two conditions at once).
    """
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot {plot}: the file must end in .png")
    with _disposing(ctx.engine()) as engine:
        _stats_command(engine, by, since.date() if since else None, until.date() if until else None,
                       min_conditions, plot, top)


def _stats_command(engine: Engine, by: str, start: dt.date | None, end: dt.date | None, min_conditions: int,
                   plot: Path | None, top: int) -> None:
    counts = _stats.counts(engine, by, since=start, until=end)
    if by == "month":
        rows: list[Sequence[object]] = [(c.key, c.papers) for c in counts]
        click.echo(_table(("month", "papers"), rows + ([("total", sum(c.papers for c in counts))] if rows else [])))
    elif by in ("tag", "condition"):
        click.echo(_table((by, "kind", "papers"), [(c.key, c.kind or "", c.papers) for c in counts]))
    else:
        click.echo(_table(("query", "papers"), [(c.key, c.papers) for c in counts]))
    if not counts:
        click.echo("litwatch: nothing to count: no paper matches (ingest or run queries first)", err=True)
    if by == "condition":
        overlaps = _stats.comorbidity(engine, min_conditions=min_conditions, since=start, until=end)
        click.echo()
        click.echo(f"Genes and pathways in papers of {min_conditions} or more conditions:")
        if overlaps:
            width = shutil.get_terminal_size((100, 24)).columns
            click.echo(_table(("tag", "kind", "conditions", "papers", "both", "papers per condition"),
                              _overlap_rows(overlaps, width)))
        else:
            click.echo("none")
    if plot is not None:
        series_kind = {"month": "query", "query": "query", "tag": "tag", "condition": "condition"}[by]
        series = _stats.monthly_series(engine, series_kind, since=start, until=end, top=top)
        _stats.plot(series, plot, title=f"litwatch: papers per month, per {series_kind}")
        click.echo(f"wrote {plot} ({len(series)} line(s), one per {series_kind})", err=True)
