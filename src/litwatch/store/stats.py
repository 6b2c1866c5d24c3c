"""Counting the store: papers per month, tag, saved query or condition, and the comorbidity overlap.

The overlap answers the question litwatch exists for: which genes and pathways are tagged in papers
of two or more conditions (migraine, endometriosis, ...), and in how many papers of each. Papers
deleted from PubMed are never counted; ``since``/``until`` bound the publication date.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.errors import InputError
from litwatch.store import models
from litwatch.store.works import hidden_versions  # a preprint linked to its journal version

BY = ("month", "tag", "query", "condition")
SERIES = ("query", "tag", "condition")
TOPIC_KINDS = ("gene", "pathway")

papers = models.table(models.Paper)
paper_tags = models.table(models.PaperTag)
query_hits = models.table(models.QueryHit)


@dataclass(frozen=True)
class Count:
    """``papers`` under one month (``YYYY-MM``), tag, saved query or condition."""

    key: str
    papers: int
    kind: str | None = None  # a tag's kind (gene | pathway | condition)


@dataclass(frozen=True)
class Overlap:
    """One gene or pathway and the conditions whose papers it is tagged in.

    ``conditions`` maps each condition to the papers tagged with both; ``papers`` counts the
    distinct papers with this tag and any condition; ``comorbid_papers`` those where the tag
    stands beside two or more conditions in the same paper.
    """

    tag: str
    kind: str
    conditions: Mapping[str, int] = field(default_factory=dict)
    papers: int = 0
    comorbid_papers: int = 0


def _check(since: dt.date | None, until: dt.date | None) -> None:
    if since and until and since > until:
        raise InputError(f"--since {since} is after --until {until}: no date can match")


def _live(pmid: sa.ColumnElement[int], since: dt.date | None, until: dt.date | None) -> list[sa.ColumnElement[bool]]:
    """Conditions keeping papers that are not deleted and fall in the date range."""
    deleted = sa.select(papers.c.pmid).where(papers.c.deleted_at.is_not(None))
    conditions: list[sa.ColumnElement[bool]] = [pmid.not_in(deleted)]
    if since or until:
        dated = sa.select(papers.c.pmid).where(papers.c.deleted_at.is_(None))
        if since:
            dated = dated.where(papers.c.pub_date >= since)
        if until:
            dated = dated.where(papers.c.pub_date <= until)
        conditions = [pmid.in_(dated)]
    return [*conditions, ~hidden_versions(pmid)]


def _run(engine: Engine, stmt: sa.Select[Any]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(stmt))


def by_month(engine: Engine, *, since: dt.date | None = None, until: dt.date | None = None) -> list[Count]:
    """Papers per publication month, oldest first; papers without a date are left out."""
    _check(since, until)
    stmt = sa.select(papers.c.pub_date, sa.func.count().label("n")).where(
        papers.c.deleted_at.is_(None), papers.c.pub_date.is_not(None), ~hidden_versions(papers.c.pmid)
    )
    if since:
        stmt = stmt.where(papers.c.pub_date >= since)
    if until:
        stmt = stmt.where(papers.c.pub_date <= until)
    # grouping by the indexed date and rolling days up here is several times faster than
    # grouping by a computed month, which makes the database sort every row
    months: dict[str, int] = defaultdict(int)
    for row in _run(engine, stmt.group_by(papers.c.pub_date)):
        months[f"{row.pub_date:%Y-%m}"] += row.n
    return [Count(month, n) for month, n in sorted(months.items())]


def by_tag(
    engine: Engine, *, kinds: Sequence[str] | None = None, since: dt.date | None = None, until: dt.date | None = None
) -> list[Count]:
    """Papers per tag (of the given kinds), most first."""
    _check(since, until)
    papers_n = sa.func.count(sa.distinct(paper_tags.c.paper_pmid)).label("n")
    stmt = sa.select(paper_tags.c.tag, paper_tags.c.kind, papers_n).where(*_live(paper_tags.c.paper_pmid, since, until))
    if kinds:
        stmt = stmt.where(paper_tags.c.kind.in_(list(kinds)))
    stmt = stmt.group_by(paper_tags.c.tag, paper_tags.c.kind).order_by(papers_n.desc(), paper_tags.c.tag)
    return [Count(row.tag, row.n, row.kind) for row in _run(engine, stmt)]


def by_query(engine: Engine, *, since: dt.date | None = None, until: dt.date | None = None) -> list[Count]:
    """Papers per saved query, most first."""
    _check(since, until)
    papers_n = sa.func.count().label("n")
    stmt = (
        sa.select(query_hits.c.query_name, papers_n)
        .where(*_live(query_hits.c.paper_pmid, since, until))
        .group_by(query_hits.c.query_name)
        .order_by(papers_n.desc(), query_hits.c.query_name)
    )
    return [Count(row.query_name, row.n) for row in _run(engine, stmt)]


def counts(engine: Engine, by: str, *, since: dt.date | None = None, until: dt.date | None = None) -> list[Count]:
    """Papers per month, tag, query or condition (``by`` is one of ``BY``)."""
    if by == "month":
        return by_month(engine, since=since, until=until)
    if by == "tag":
        return by_tag(engine, since=since, until=until)
    if by == "query":
        return by_query(engine, since=since, until=until)
    if by == "condition":
        return by_tag(engine, kinds=("condition",), since=since, until=until)
    raise InputError(f"cannot count by {by!r}: choose one of {', '.join(BY)}")


def comorbidity(
    engine: Engine,
    *,
    min_conditions: int = 2,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[Overlap]:
    """Genes and pathways tagged in papers of at least ``min_conditions`` conditions.

    Sorted by how many conditions, then by papers, most first.
    """
    _check(since, until)
    topic = paper_tags.alias("topic")
    cond = paper_tags.alias("cond")
    live = _live(topic.c.paper_pmid, since, until)
    pair_rows = _run(
        engine,
        sa.select(topic.c.tag, topic.c.kind, cond.c.tag.label("condition"),
                  sa.func.count(sa.distinct(topic.c.paper_pmid)).label("n"))
        .join_from(topic, cond, sa.and_(cond.c.paper_pmid == topic.c.paper_pmid, cond.c.kind == "condition"))
        .where(topic.c.kind.in_(TOPIC_KINDS), *live)
        .group_by(topic.c.tag, topic.c.kind, cond.c.tag),
    )
    per_tag: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for row in pair_rows:
        per_tag[(row.tag, row.kind)][row.condition] = row.n
    wanted = {key for key, conds in per_tag.items() if len(conds) >= min_conditions}
    if not wanted:
        return []
    per_paper = (
        sa.select(paper_tags.c.paper_pmid, sa.func.count(sa.distinct(paper_tags.c.tag)).label("conditions"))
        .where(paper_tags.c.kind == "condition").group_by(paper_tags.c.paper_pmid).subquery("per_paper")
    )
    comorbid = sa.case((per_paper.c.conditions >= 2, topic.c.paper_pmid), else_=None)
    totals = {
        (row.tag, row.kind): (row.papers, row.comorbid)
        for row in _run(
            engine,
            sa.select(
                topic.c.tag,
                topic.c.kind,
                sa.func.count(sa.distinct(topic.c.paper_pmid)).label("papers"),
                sa.func.count(sa.distinct(comorbid)).label("comorbid"),
            )
            .join_from(topic, per_paper, per_paper.c.paper_pmid == topic.c.paper_pmid)
            .where(topic.c.kind.in_(TOPIC_KINDS), *live)
            .group_by(topic.c.tag, topic.c.kind),
        )
    }
    overlaps = [
        Overlap(tag, kind, dict(sorted(per_tag[(tag, kind)].items(), key=lambda kv: (-kv[1], kv[0]))),
                *totals.get((tag, kind), (0, 0)))
        for tag, kind in wanted
    ]
    overlaps.sort(key=lambda o: (-len(o.conditions), -o.comorbid_papers, -o.papers, o.tag))
    return overlaps


def monthly_series(
    engine: Engine,
    series: str,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    top: int = 8,
) -> dict[str, dict[str, int]]:
    """Papers per month for each saved query, tag or condition (the ``top`` largest): name -> month -> n."""
    _check(since, until)
    if series == "query":
        key, pmid, source = query_hits.c.query_name, query_hits.c.paper_pmid, query_hits
        extra: list[sa.ColumnElement[bool]] = []
    elif series in ("tag", "condition"):
        key, pmid, source = paper_tags.c.tag, paper_tags.c.paper_pmid, paper_tags
        extra = [paper_tags.c.kind == "condition"] if series == "condition" else []
    else:
        raise InputError(f"cannot draw one line per {series!r}: choose one of {', '.join(SERIES)}")
    leaders = (
        sa.select(key).where(*extra).group_by(key)
        .order_by(sa.func.count(sa.distinct(pmid)).desc(), key).limit(top)
    )
    stmt = (
        sa.select(key.label("name"), papers.c.pub_date, sa.func.count(sa.distinct(papers.c.pmid)).label("n"))
        .select_from(source)
        .join(papers, papers.c.pmid == pmid)
        .where(papers.c.deleted_at.is_(None), papers.c.pub_date.is_not(None), key.in_(leaders), *extra,
               ~hidden_versions(papers.c.pmid))
    )
    if since:
        stmt = stmt.where(papers.c.pub_date >= since)
    if until:
        stmt = stmt.where(papers.c.pub_date <= until)
    result: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in _run(engine, stmt.group_by(key, papers.c.pub_date)):
        result[row.name][f"{row.pub_date:%Y-%m}"] += row.n
    return {name: dict(sorted(months.items())) for name, months in result.items()}


def _month_range(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    end = tuple(map(int, last.split("-")))
    out = []
    while (year, month) <= end:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def plot(series: Mapping[str, Mapping[str, int]], path: Path, *, title: str) -> Path:
    """Draw papers per month, one line per series, into a PNG (matplotlib's Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    months = sorted({m for per in series.values() for m in per})
    if not months:
        raise InputError("nothing to plot: no dated papers match (check --since/--until, or ingest papers first)")
    axis = _month_range(months[0], months[-1])
    x = mdates.date2num([dt.date(int(m[:4]), int(m[5:]), 1) for m in axis])  # type: ignore[no-untyped-call]
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for name in sorted(series, key=lambda n: -sum(series[n].values())):
            ax.plot(x, [series[name].get(m, 0) for m in axis], label=f"{name} ({sum(series[name].values())})",
                    marker="o" if len(axis) <= 24 else None, linewidth=1.5)
        ax.set_title(title)
        ax.set_ylabel("papers per month")
        ax.set_xlabel("publication month")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis_date()
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        fig.tight_layout()
        fig.savefig(path, format="png")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
    return path
