"""`litwatch feed`: write a group's Atom feed from the delivery ledger, on demand."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from litwatch.cli.app import _Context, existing_folder, pass_ctx
from litwatch.cli.queries import _load_groups
from litwatch.delivery import feed as feed_mod
from litwatch.errors import InputError


@click.command(name="feed")
@click.argument("group_name", metavar="GROUP")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write here instead of FEEDS_DIR/GROUP.atom; '-' writes to standard output.")
@pass_ctx
def feed_command(ctx: _Context, group_name: str, output: Path | None) -> None:
    """Write GROUP's Atom feed: the papers its digests delivered, newest first.

    Every digest sent rewrites FEEDS_DIR/GROUP.atom (LITWATCH_FEEDS_DIR, default feeds/ beside
    the outbox) with the newest LITWATCH_FEED_ENTRIES papers (default 50); this writes it now,
    for example after changing those settings. Serve the folder over HTTP and subscribe to
    GROUP.atom.
    """
    settings = ctx.settings
    found, _problems = _load_groups(settings)
    by_name = {g.name: g for g in found}
    if group_name not in by_name:
        raise InputError(f"no valid group named {group_name!r} in {settings.groups_file} (known: "
                         f"{', '.join(sorted(by_name)) or 'none'}; `litwatch queries check` shows broken groups)")
    group = by_name[group_name]
    engine = ctx.engine()
    now = dt.datetime.now(dt.UTC)
    if output is not None and str(output) == "-":
        with engine.connect() as conn:
            sys.stdout.buffer.write(feed_mod.build_feed(conn, settings, group, now=now)[0])
        return
    if output is not None:
        existing_folder(output, "-o")
    path, count = feed_mod.write_feed(engine, settings, group, now=now, path=output)
    click.echo(f"{group.name}: {count} paper(s) in {path}")
