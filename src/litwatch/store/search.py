"""Finding papers in the store: the filters analysts combine, and the plan that reads them.

``search(engine, Filters(...))`` returns the papers matching every filter, newest first, as
``StoredPaper`` records with their authors, keywords, tags and the saved queries that found them;
``iter_papers`` streams the same for exports of any size. Papers deleted from PubMed are never
returned.

Full-text search looks in titles, abstracts and keywords (the ``papers_fts`` index migration 0003
builds; the store keeps it current on SQLite, triggers on PostgreSQL); ``fulltext`` turns what a
user types into terms that are always bound parameters, never query syntax.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.errors import InputError
from litwatch.store import fulltext, models
from litwatch.store.works import hidden_versions  # a preprint linked to its journal version
from litwatch.store.engine import IN_CHUNK
from litwatch.store.fulltext import SearchTerm
from litwatch.store.stored import StoredPaper, read_papers

MAX_TERMS = 64
FEW_IDS = 2000  # below this many papers for a tag, reading them beats walking the date index
DENSE = 5000  # from this many full-text hits, walking the date index finds the newest few sooner

papers = models.table(models.Paper)
paper_tags = models.table(models.PaperTag)
query_hits = models.table(models.QueryHit)


@dataclass(frozen=True)
class Filters:
    """What to look for; every field left at its default does not filter.

    ``tags`` and ``query`` are exact names (``FOXP3``, ``migraine``, ``migraine-immunology``); all
    tags given must be on a paper. ``since``/``until`` bound the publication date (inclusive).
    ``retracted``: True for retracted papers only, False to leave them out, None for both.
    """

    text: str | None = None
    tags: tuple[str, ...] = ()
    query: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    retracted: bool | None = None
    limit: int | None = None


def _validate(filters: Filters) -> list[SearchTerm]:
    for label, value in [("tag", t) for t in filters.tags] + [("query", filters.query or "")]:
        if "\x00" in value:
            raise InputError(f"--{label} {value[:40]!r}... contains a NUL character; give the name as printed")
    if filters.since and filters.until and filters.since > filters.until:
        raise InputError(f"--since {filters.since} is after --until {filters.until}: no date can match")
    if filters.limit is not None and filters.limit < 1:
        raise InputError(f"--limit must be 1 or more, not {filters.limit}")
    if filters.text is None:
        return []
    terms = fulltext.parse_text(filters.text)
    if not terms:
        raise InputError(
            f"search text {filters.text[:40]!r} has no word or number to look for "
            "(punctuation alone matches nothing; leave TEXT out to list papers by the other filters)"
        )
    if len(terms) > MAX_TERMS:
        raise InputError(
            f"search text has {len(terms)} terms; at most {MAX_TERMS} are searched at once "
            "(a paper must contain every term: shorten the text or quote a phrase)"
        )
    return terms


def _id_filters(pmid: sa.ColumnElement[int], filters: Filters) -> list[sa.ColumnElement[bool]]:
    """Tag and saved-query filters as index probes on ``pmid``."""
    conditions: list[sa.ColumnElement[bool]] = []
    for tag in dict.fromkeys(filters.tags):
        t = paper_tags.alias()
        conditions.append(sa.exists().where(t.c.paper_pmid == pmid, t.c.tag == tag))
    if filters.query is not None:
        h = query_hits.alias()
        conditions.append(sa.exists().where(h.c.query_name == filters.query, h.c.paper_pmid == pmid))
    return conditions


def _first_filter(filters: Filters) -> tuple[sa.Select[Any], Filters]:
    """The PMIDs named by the first tag (or the saved query), and the filters left to check on them."""
    if filters.tags:
        first = sa.select(paper_tags.c.paper_pmid).where(paper_tags.c.tag == filters.tags[0])
        return first, Filters(tags=filters.tags[1:], query=filters.query)
    first = sa.select(query_hits.c.paper_pmid).where(query_hits.c.query_name == filters.query)
    return first, Filters()


def _few_ids(conn: Connection, filters: Filters) -> bool:
    """Whether the first tag (or the saved query) names fewer than FEW_IDS papers (counted up to that)."""
    first, _ = _first_filter(filters)
    capped = first.limit(FEW_IDS).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()) < FEW_IDS


def _text_hits(terms: Sequence[SearchTerm], filters: Filters, dialect: str) -> sa.Select[Any]:
    """PMIDs whose title, abstract or keywords hold every term and that pass the tag/query filters.

    The full-text index drives and each hit is checked against the tags by an index probe, so
    only the (few) papers passing every filter are read from ``papers`` afterwards.
    """
    pmid, match = fulltext.match(terms, dialect)
    return sa.select(pmid).where(match, *_id_filters(pmid, filters))


def _pmid_list(pmids: Sequence[int], dialect: str) -> sa.Select[Any]:
    """A list of PMIDs as ONE bound parameter (a JSON array, or a PostgreSQL array)."""
    if dialect == "postgresql":
        array = sa.bindparam("hits", list(pmids), type_=sa.ARRAY(sa.Integer))
        return sa.select(sa.func.unnest(array))
    each = sa.func.json_each(sa.bindparam("hits", json.dumps(list(pmids)), type_=sa.Text)).table_valued("value")
    return sa.select(each.c.value)


def _text_probe(terms: Sequence[SearchTerm], dialect: str) -> sa.ColumnElement[bool]:
    """Whether the paper in hand holds every term: one index probe per paper."""
    pmid, match = fulltext.match(terms, dialect)
    return sa.exists().where(match, pmid == papers.c.pmid)


def build_query(
    filters: Filters,
    dialect: str,
    terms: Sequence[SearchTerm] | None = None,
    *,
    few_ids: bool = False,
    hits: Sequence[int] | None = None,
) -> sa.Select[Any]:
    """The SELECT of matching papers, newest first; every value in it is a bound parameter.

    The plan depends on how many papers the filters name, as a query planner's would:

    - search text: the full-text index drives and each hit is checked against the tags, so only
      papers passing every filter are read; with ``hits`` (the complete list of those, when few)
      they are read by PMID; ``hits=()`` with a limit says they are many, and then papers are
      walked down the date index and each checked by index probes until the limit is reached
      (on PostgreSQL, the planner's estimate of the hits decides that, see ``_estimated_rows``).
    - no text: tags and saved query are checked paper by paper down the date index, which finds
      the newest few at once when they are common; ``few_ids`` says they are rare, and then the
      papers they name are read directly instead.

    On PostgreSQL a walk down the date index with a limit reads PMIDs only, then the rows of those
    that made the limit: each walked row of ``papers`` costs a random read there.
    """
    if terms is None:
        terms = _validate(filters)
    conditions: list[sa.ColumnElement[bool]] = [papers.c.deleted_at.is_(None), ~hidden_versions(papers.c.pmid)]
    if terms and hits:
        conditions.append(papers.c.pmid.in_(_pmid_list(hits, dialect)))
    elif terms and hits is not None:
        conditions.extend(_id_filters(papers.c.pmid, filters))
        conditions.append(_text_probe(terms, dialect))
    elif terms:
        conditions.append(papers.c.pmid.in_(_text_hits(terms, filters, dialect)))
    elif few_ids:
        first, rest = _first_filter(filters)
        conditions.append(papers.c.pmid.in_(first.where(*_id_filters(first.selected_columns[0], rest))))
    else:
        conditions.extend(_id_filters(papers.c.pmid, filters))
    if filters.since is not None:
        conditions.append(papers.c.pub_date >= filters.since)
    if filters.until is not None:
        conditions.append(papers.c.pub_date <= filters.until)
    if filters.retracted is not None:
        conditions.append(papers.c.retracted if filters.retracted else sa.not_(papers.c.retracted))
    newest_first = (papers.c.pub_date.desc().nulls_last(), papers.c.pmid.desc())
    if filters.limit is not None and dialect == "postgresql" and not (terms and hits):
        # walk the date index for the PMIDs alone (an index-only scan), then read the few rows
        # that made the limit, instead of every wide row walked past on the way
        top = sa.select(papers.c.pmid).where(*conditions).order_by(*newest_first).limit(filters.limit)
        return sa.select(papers).where(papers.c.pmid.in_(top)).order_by(*newest_first)
    stmt = sa.select(papers).where(*conditions).order_by(*newest_first)
    if filters.limit is not None:
        stmt = stmt.limit(filters.limit)
    return stmt


def _estimated_rows(conn: Connection, stmt: sa.Select[Any]) -> float:
    """How many rows PostgreSQL's planner expects ``stmt`` to return (its statistics, not a count).

    Listing the full-text hits to learn that they are many reads a table row per hit, most from
    disk on a large store (bench/search_speed.py --explain: 200-300 ms for the common words); the
    estimate costs a plan. Either way the answer is the same, only the plan differs.
    """
    compiled = stmt.compile(dialect=conn.dialect)
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def iter_papers(engine: Engine, filters: Filters, *, chunk_size: int = IN_CHUNK) -> Iterator[StoredPaper]:
    """Every paper matching ``filters``, newest first, read ``chunk_size`` at a time (flat memory)."""
    terms = _validate(filters)
    with engine.connect() as conn:
        dialect = engine.dialect.name
        hits: Sequence[int] | None = None
        if terms and filters.limit is not None:
            if dialect == "postgresql" and _estimated_rows(conn, _text_hits(terms, filters, dialect)) >= DENSE:
                hits = ()
            else:
                found = conn.execute(_text_hits(terms, filters, dialect).limit(DENSE)).scalars().all()
                hits = found if len(found) < DENSE else ()
                if not found:
                    return
        few = not terms and (bool(filters.tags) or filters.query is not None) and (
            filters.limit is None or _few_ids(conn, filters)
        )
        stmt = build_query(filters, dialect, terms, few_ids=few, hits=hits)
        # a server-side cursor keeps an export's memory flat, but on PostgreSQL it costs a round
        # trip per DECLARE, FETCH and CLOSE: a search's few rows are read in one answer instead
        few_rows = filters.limit is not None and filters.limit <= chunk_size
        streaming: dict[str, Any] = {} if few_rows else {"stream_results": True, "yield_per": chunk_size}
        result = conn.execution_options(**streaming).execute(stmt)
        for rows in result.partitions(chunk_size):
            yield from read_papers(conn, rows)


def search(engine: Engine, filters: Filters) -> list[StoredPaper]:
    """The papers matching every filter, newest first (at most ``filters.limit``)."""
    return list(iter_papers(engine, filters))


def tag_exists(engine: Engine, tag: str) -> bool:
    """Whether any paper carries this tag (to tell a typo from a tag with no match in the other filters)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(paper_tags.c.tag).where(paper_tags.c.tag == tag).limit(1)).first() is not None


def similar_tags(engine: Engine, tag: str, limit: int = 5) -> list[str]:
    """Tags spelled like ``tag`` whatever the case, for a "did you mean" hint."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(paper_tags.c.tag).distinct()
            .where(sa.func.lower(paper_tags.c.tag) == tag.lower()).limit(limit)
        )
        return [row.tag for row in rows]


def query_exists(engine: Engine, name: str) -> bool:
    """Whether a saved query of this name has found any paper."""
    with engine.connect() as conn:
        stmt = sa.select(query_hits.c.query_name).where(query_hits.c.query_name == name).limit(1)
        return conn.execute(stmt).first() is not None
