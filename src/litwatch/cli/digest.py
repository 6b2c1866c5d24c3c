"""`litwatch digest`: each research group's state, previews, sending the digests that are due, and
settling a digest whose delivery is uncertain (--resend, --delivered)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from sqlalchemy.engine import Engine

from litwatch.cli import tables
from litwatch.cli.app import _Context, pass_ctx
from litwatch.cli.app import report_problems as _report_problems
from litwatch.cli.queries import _load_groups
from litwatch.delivery import digest as digest_mod
from litwatch.delivery import recipients
from litwatch.delivery.mail import OutboxMailer, mailer_from_settings, outbox_stem
from litwatch.errors import InputError
from litwatch.files import groups as groups_mod
from litwatch.scheduling import jobs

# Each group's state (what its next digest holds: new papers, older matches, retraction notices,
# "now published" notices), and what --send did (papers: all it listed; --wide: how many of them
# were older matches, and the overflow); the narrow tables keep room for the message's path or time.
_status_table = tables.Layout(
    narrow=("group", "recipients", "next", "new", "older", "retractions", "published", "to retry"), clip=("group",))
_sent_table = tables.Layout(
    narrow=("group", "status", "papers", "retractions", "published", "message"), clip=("group",), clip_left=("message",))
_SENT = ("group", "status", "papers", "older", "overflow", "retractions", "published", "message")


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


def _send(ctx: _Context, engine: Engine, selected: Sequence[groups_mod.Group], force: bool,
          start: dt.datetime | None, now: dt.datetime) -> bool:
    """Run each group's digest job, print the table and every problem; True when one needs a person."""
    settings = ctx.settings
    mailer = mailer_from_settings(settings)
    job_plan, worker = jobs.load_plan(settings, today=now.date()), jobs.Worker(engine, settings)
    rows: list[Sequence[object]] = []
    failed = fresh_doubt = False
    for group in selected:
        job = job_plan.digest_job(group.name)
        result = worker.run(job_plan, job, force=force, since=start)
        r = result.receipt
        if result.status == "not-due":
            rows.append((group.name, "not due", 0, 0, 0, 0, 0, f"next: {_local(jobs.due_at(engine, job), group)}"))
            continue
        if result.skipped:
            rows.append((group.name, f"skipped (sending in {result.holder or 'another process'})", *[""] * 6))
            continue
        if r is None:
            click.echo(f"litwatch: error: group {group.name}: {result.message}", err=True)
            failed = True
            continue
        for earlier in r.recovered_ids:
            rows.append((group.name, "retried", *[""] * 5, _where(mailer, earlier)))
        if r.status != "retried":
            rows.append((group.name, r.status, r.papers, r.older, r.overflow, r.retraction_notices, r.published,
                         _where(mailer, r.message_id)))
        retry = _local(jobs.due_at(engine, job), group)
        if r.error:
            click.echo(f"litwatch: error: group {group.name}: {r.error} (it is sent again, unchanged, at the next "
                       f"scheduled time, {retry}, or now with --send --force)", err=True)
        for line in r.refused:
            click.echo(f"litwatch: error: group {group.name}: not delivered to {line} (the others got it; it is sent "
                       f"again to this address alone at the next scheduled time, {retry}, or now with --send --force)",
                       err=True)
        fresh_doubt = fresh_doubt or bool(r.uncertain)
        failed = failed or bool(r.error or r.refused or r.uncertain)
    click.echo(_sent_table(_SENT, rows))
    _report_uncertain(engine, selected, "error" if fresh_doubt else "warning")
    return failed


def _report_uncertain(engine: Engine, selected: Sequence[groups_mod.Group], level: str) -> None:
    """One line for each digest some recipients may not have received, with what to do."""
    for u in recipients.uncertain(engine, [g.name for g in selected]):
        click.echo(f"litwatch: {level}: group {u.group}: digest {u.message_id} may not have reached "
                   f"{', '.join(u.addresses)} ({u.error}); it is not sent again by itself (a second copy is worse "
                   f"than a missing one): ask them, then `litwatch digest --resend '{u.message_id}'` sends it to "
                   f"them again, or `litwatch digest --delivered '{u.message_id}'` records that it arrived", err=True)


@click.command(name="digest")
@tables.wide_option
@click.option("--group", "names", multiple=True, metavar="NAME", help="Only this group (repeatable).")
@click.option("--preview", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write what would be sent (.html, .txt, .eml) to DIR; the ledger is not touched.")
@click.option("--send", is_flag=True, help="Send the digests that are due, exactly as `litwatch run-due` would.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Take papers found since this date (UTC) instead of since the last digest.")
@click.option("--force", is_flag=True,
              help="With --send: send now even if the group's schedule has not come round (retries a failed digest).")
@click.option("--resend", metavar="MESSAGE-ID",
              help="Send an uncertain digest again to the recipients it may not have reached (implies --send).")
@click.option("--delivered", metavar="MESSAGE-ID",
              help="Record that an uncertain digest did arrive, so it is no longer reported.")
@pass_ctx
def digest_command(ctx: _Context, names: tuple[str, ...], preview: Path | None, send: bool,
                   since: dt.datetime | None, force: bool, resend: str | None, delivered: str | None) -> None:
    """Digests of new papers for the research groups in groups.toml.

    Without --send or --preview, shows each group's state. Each paper goes to a group once, and
    each digest to each recipient once. --send runs the scheduler's digest job: due when the
    group's schedule fired since its last digest (sent, empty or failed). A digest whose send
    failed, or an address that was refused, is sent again, unchanged and alone, when the schedule
    next fires, or at once with --force. A digest whose outcome is unknown (the connection broke
    or the process died while the server took it) is uncertain: it is reported, never sent again
    by itself; --resend or --delivered settles it. Exit 0 when all went well (or a group was
    skipped because another process is sending it), 1 if a send failed, a recipient was refused
    or a digest became uncertain, 2 for invalid input (groups.toml, options).
    """
    if resend is not None:
        send = force = True
    if preview is not None and (send or delivered):
        raise InputError("--preview does not go with --send, --resend or --delivered: preview first, then send")
    if force and not send:
        raise InputError("--force only goes with --send")
    settings = ctx.settings
    now = dt.datetime.now(dt.UTC)
    if delivered is not None:
        if send:
            raise InputError("--delivered and --send (or --resend) do not go together")
        group_name, addresses = recipients.decide(ctx.engine(), delivered, "accepted", now)
        click.echo(f"{group_name}: {delivered.strip()} recorded as delivered to {', '.join(addresses)}")
        return
    found, problems = _load_groups(settings)
    bad = _report_problems(problems)
    by_name = {g.name: g for g in found}
    engine = ctx.engine()
    if resend is not None:
        group_name, _addresses = recipients.decide(engine, resend, "failed", now)
        names = (group_name,)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"no valid group named {unknown[0]!r} in {settings.groups_file} (known: "
                         f"{', '.join(sorted(by_name)) or 'none'}; `litwatch queries check` shows broken groups)")
    selected = [by_name[n] for n in dict.fromkeys(names)] if names else found
    start = since.replace(tzinfo=dt.UTC) if since else None
    failed = False
    if preview is not None:
        for group in selected:
            paths = digest_mod.preview_group(engine, settings, group, now=now, out_dir=preview, since=start)
            click.echo(f"{group.name}: " + (", ".join(map(str, paths)) if paths else "nothing new: nothing would be sent"))
    elif send:
        failed = _send(ctx, engine, selected, force, start, now)
    else:
        pending = digest_mod.pending_digests(engine, [g.name for g in selected])
        job_plan = jobs.load_plan(settings, today=now.date())
        status_rows: list[Sequence[object]] = []
        with engine.connect() as conn:
            for group in selected:
                plan = digest_mod.plan_digest(conn, group, now=now, since=start)
                status_rows.append((group.name, len(group.recipients), ", ".join(group.queries) or "-",
                                    f"{group.schedule} {group.timezone}", _local(jobs.due_at(engine, job_plan.digest_job(group.name)), group),
                                    len(plan.new), len(plan.older), len(plan.overflow), len(plan.notices),
                                    len(plan.published), pending.get(group.name, 0)))
        click.echo(_status_table(("group", "recipients", "queries", "schedule", "next", "new", "older", "overflow",
                           "retractions", "published", "to retry"), status_rows))
        _report_uncertain(engine, selected, "warning")
    if failed:
        sys.exit(1)
    if bad:
        click.echo(f"litwatch: error: {bad} problem(s) in {settings.groups_file} or the query files", err=True)
        sys.exit(2)


