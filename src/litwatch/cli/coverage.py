"""`litwatch coverage`: which dates each saved query has searched completely, and the gaps left."""

from __future__ import annotations

import datetime as dt
import json

import click

from litwatch.cli import tables
from litwatch.cli.app import _Context, pass_ctx
from litwatch.cli.queries import select_queries
from litwatch.pipeline.coverage import Coverage, coverage_of
from litwatch.store.coverage import Range

_coverage_table = tables.Layout(narrow=("query", "source", "covered", "gaps", "papers"), clip=("query", "last error"))


def _days(ranges: list[Range]) -> str:
    return ", ".join(f"{lo}..{hi}" for lo, hi in ranges) or "-"


def _rows(found: list[Coverage]) -> list[tuple[object, ...]]:
    return [(c.query, c.source, c.term_sha256[:12], _days(c.covered), _days(c.gaps),
             f"{c.last_success:%Y-%m-%d %H:%M} UTC" if c.last_success else "never", c.last_error or "", c.papers)
            for c in found]


@click.command(name="coverage")
@tables.wide_option
@click.option("--query", "names", multiple=True, metavar="NAME", help="Only this saved query (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table to read, or JSON (a list of objects) for scripts.")
@pass_ctx
def coverage_command(ctx: _Context, names: tuple[str, ...], fmt: str) -> None:
    """Show the dates each saved query's term has searched completely, and the gaps left.

    Per query and source: the fingerprint (sha256) of its term, the create-date ranges that term
    searched (for Europe PMC, the first index dates its `preprints` term searched),
    the gaps between the query's start and today (the next `litwatch run` searches them), its last
    success and last error, and how many papers it found. Ranges are inclusive.
    """
    today = dt.date.today()
    selected, _bad = select_queries(ctx.settings, names, today)
    found = coverage_of(ctx.engine(), selected, today)
    if fmt == "json":
        click.echo(json.dumps([c.as_json() for c in found], indent=2))
        return
    headers = ("query", "source", "term sha256", "covered", "gaps", "last success", "last error", "papers")
    click.echo(_coverage_table(headers, _rows(found)))
