"""`litwatch search`, `export` and `stats`: analysts query, search and export the store (issue 7).

The store and the exporters (SQLAlchemy and its ORM, a third of a second) are imported when a
command runs, not when this module is loaded, so `litwatch search --help` starts without them; the
choices the options offer are therefore copies of the core's, which tests/test_cli.py pins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from litwatch.cli import tables
from litwatch.cli.app import _Context, existing_folder, pass_ctx, require_module
from litwatch.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from litwatch.store import search as _search
    from litwatch.store import stats as _stats
    from litwatch.store.stored import StoredPaper

_table = tables.table

SEARCH_LIMIT = 20
EXPORT_FORMATS = ("csv", "json", "bibtex", "ris")  # delivery.export.FORMATS
STATS_BY = ("month", "tag", "query", "condition")  # store.stats.BY
PUBTATOR3 = "pubtator3"  # store.tags.PUBTATOR3: a tag's origin when PubTator3 gave it


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
    from litwatch.store import search as _search

    return _search.Filters(
        text=" ".join(text) if text else None, tags=tags, query=query_name,
        since=since.date() if since else None, until=until.date() if until else None,
        retracted=retracted, limit=limit,
    )


def _explain_empty(engine: Engine, filters: _search.Filters) -> str:
    """Why nothing matched, when a filter names something the store does not know."""
    from litwatch.store import search as _search

    for tag in filters.tags:
        if not _search.tag_exists(engine, tag):
            similar = _search.similar_tags(engine, tag)
            hint = f" (did you mean {', '.join(similar)}?)" if similar else " (`litwatch stats --by tag` lists tags)"
            return f"no paper is tagged {tag!r}{hint}"
    if filters.query is not None and not _search.query_exists(engine, filters.query):
        return f"no paper was found by a saved query named {filters.query!r} (`litwatch stats --by query` lists them)"
    return "no papers match these filters"


@click.command(name="search")
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
    from litwatch.delivery import export as _export
    from litwatch.store import search as _search

    filters = _filters(text, tags, query_name, since, until, retracted, limit + 1)
    papers = _search.search(engine, filters)
    more = len(papers) > limit
    papers = papers[:limit]
    if fmt == "table":
        if papers:
            click.echo(papers_table(papers, tables.terminal_width()))
        if any(origin == PUBTATOR3 for p in papers for _, origin, _ in p.tag_origins):
            click.echo(f"* tag from PubTator3's annotations (`litwatch tag --explain-pmid {papers[0].pmid}` says more)")
    else:
        _export.write(fmt, papers, sys.stdout)
    if not papers:
        click.echo(f"litwatch: {_explain_empty(engine, filters)}", err=True)
    elif more:
        click.echo(f"litwatch: more papers match; showing the newest {limit} "
                   "(raise --limit, or `litwatch export` them all)", err=True)


@click.command(name="export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
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
    if output is not None:
        existing_folder(output, "-o")
    with _disposing(ctx.engine()) as engine:
        _export_command(engine, fmt, _filters(text, tags, query_name, since, until, retracted, limit), output)


def _export_command(engine: Engine, fmt: str, filters: _search.Filters, output: Path | None) -> None:
    from litwatch.delivery import export as _export
    from litwatch.store import search as _search

    papers: Iterator[StoredPaper] = _search.iter_papers(engine, filters)
    if output is None:
        count = _export.write(fmt, papers, sys.stdout)
    else:
        count = _export.write_file(fmt, papers, output)
        click.echo(f"exported {count} paper(s) to {output} ({fmt})", err=True)
    if not count:
        click.echo(f"litwatch: {_explain_empty(engine, filters)}", err=True)


def _overlap_rows(overlaps: Sequence[_stats.Overlap]) -> list[Sequence[object]]:
    return [(o.tag, o.kind, len(o.conditions), o.papers, o.comorbid_papers,
             ", ".join(f"{name} {n}" for name, n in o.conditions.items())) for o in overlaps]


@click.command(name="stats")
@click.option("--by", type=click.Choice(STATS_BY), default="month", show_default=True,
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
@click.option("--bridges", "list_bridges", is_flag=True,
              help="Also list the bridge papers: a gene or pathway with two or more conditions, or the "
                   "first paper in the store linking a gene with a condition.")
@pass_ctx
def stats_command(ctx: _Context, by: str, since: dt.datetime | None, until: dt.datetime | None,
                  min_conditions: int, plot: Path | None, top: int, list_bridges: bool) -> None:
    """Count papers over time, per tag, per saved query or per condition.

    --by condition adds the comorbidity overlap: the genes and pathways tagged in papers of two
    or more conditions, with the papers of each (BOTH counts papers where the gene stands beside
    two conditions at once). --bridges lists the papers that bridge a gene or pathway and
    conditions (digests mark them too).
    """
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot {plot}: the file must end in .png")
    if plot is not None:
        existing_folder(plot, "--plot")
        require_module("matplotlib", "plot")
    with _disposing(ctx.engine()) as engine:
        _stats_command(engine, by, since.date() if since else None, until.date() if until else None,
                       min_conditions, plot, top)
        if list_bridges:
            _bridges(engine)


def _stats_command(engine: Engine, by: str, start: dt.date | None, end: dt.date | None, min_conditions: int,
                   plot: Path | None, top: int) -> None:
    from litwatch.store import stats as _stats

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
            click.echo(_table(("tag", "kind", "conditions", "papers", "both", "papers per condition"),
                              _overlap_rows(overlaps), clip=("papers per condition",)))
        else:
            click.echo("none")
    if plot is not None:
        series_kind = {"month": "query", "query": "query", "tag": "tag", "condition": "condition"}[by]
        series = _stats.monthly_series(engine, series_kind, since=start, until=end, top=top)
        _stats.plot(series, plot, title=f"litwatch: papers per month, per {series_kind}")
        click.echo(f"wrote {plot} ({len(series)} line(s), one per {series_kind})", err=True)


def _bridges(engine: Engine) -> None:
    """`stats --bridges`: every bridge paper, the newest PMID first, with why it is one."""
    from litwatch.store.bridges import bridges

    with engine.connect() as conn:
        found = sorted(bridges(conn).values(), key=lambda b: -b.pmid)
    click.echo()
    click.echo("Bridge papers:")
    click.echo(_table(("pmid", "bridge"), [(b.pmid, b.line()) for b in found]) if found else "none")


def _date(paper: StoredPaper) -> str:
    from litwatch.delivery import export as _export

    precision = _export.date_precision(paper)
    if paper.pub_date and precision == "day":
        return f"{paper.pub_date:%Y-%m-%d}"
    if paper.pub_date and precision == "month":
        return f"{paper.pub_date:%Y-%m}"
    return str(paper.pub_year or "")


def _tag_labels(paper: StoredPaper) -> str:
    """The paper's tags, those PubTator3 gave marked with a star."""
    given = {tag for tag, origin, _ in paper.tag_origins if origin == PUBTATOR3}
    return ", ".join(tag + ("*" if tag in given else "") for tag in paper.tag_names)


def papers_table(papers: Sequence[StoredPaper], width: int) -> str:
    """Papers in ``width`` columns: the PMID (a preprint's ``PPR`` id), date, first author, title,
    and tags when there is room."""
    firsts = [(p.authors[0].last_name or p.authors[0].collective_name or "") if p.authors else "" for p in papers]
    pmid_w = max([4, *(len(p.identifier) for p in papers)])
    rows = [(p.identifier.rjust(pmid_w), _date(p), f + (" et al." if f and len(p.authors) > 1 else ""),
             ("[RETRACTED] " if p.retracted else "") + p.title, _tag_labels(p))
            for f, p in zip(firsts, papers)]
    fixed = pmid_w + max([4, *(len(r[1]) for r in rows)])
    room = width - fixed - 4 * 2
    headers = ("ID", "DATE", "AUTHOR", "TITLE", "TAGS")
    author = min(max([6, *(len(r[2]) for r in rows)]), 16, max(room // 6, 6))
    tags = min(max([4, *(len(r[4]) for r in rows)]), 28, max(room // 4, 4)) if room >= 50 else 0
    caps = {"AUTHOR": author, "TAGS": tags, "TITLE": max(room - author - tags, 12)}
    return _table(headers, rows, width=width, narrow=headers if room >= 50 else headers[:4],
                  clip=("AUTHOR", "TITLE", "TAGS"), max_widths=caps)
