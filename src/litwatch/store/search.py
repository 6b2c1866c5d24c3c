"""Finding papers in the store: the filters analysts combine, and full-text search.

``search(engine, Filters(...))`` returns the papers matching every filter, newest first, each with
its authors, keywords, tags and the saved queries that found it; ``iter_papers`` streams the same
for exports of any size. Papers deleted from PubMed are never returned.

Full-text search looks in titles, abstracts and keywords (the ``papers_fts`` index migration 0003
builds; the store keeps it current on SQLite, triggers on PostgreSQL). What a user types is never handed to the database as query syntax: it is
cut into terms here (words, ``"quoted phrases"``, ``prefix*``), and each term is passed as a bound
parameter: for SQLite FTS5 its tokens each quoted as a string, for PostgreSQL as text that
``phraseto_tsquery`` (which knows no operators) turns into a ``tsquery``. A paper matches when
every term is in its title, abstract or keywords.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.clock import utc
from litwatch.errors import InputError
from litwatch.store import models
from litwatch.store.engine import IN_CHUNK, in_chunks

MAX_TERMS = 64
FEW_IDS = 2000  # below this many papers for a tag, reading them beats walking the date index
DENSE = 5000  # from this many full-text hits, walking the date index finds the newest few sooner

papers = models.table(models.Paper)
authors = models.table(models.Author)
keywords = models.table(models.Keyword)
paper_tags = models.table(models.PaperTag)
query_hits = models.table(models.QueryHit)

_CHUNK = re.compile(r'"([^"]*)"?|(\S+)')
_TOKEN = re.compile(r"[^\W_]+")


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


@dataclass(frozen=True)
class AuthorName:
    last_name: str | None = None
    fore_name: str | None = None
    initials: str | None = None
    collective_name: str | None = None

    @property
    def display(self) -> str:
        """``Last, Fore`` (the form citation managers split on), or the group's name."""
        if self.collective_name:
            return self.collective_name
        given = self.fore_name or self.initials
        return f"{self.last_name}, {given}" if self.last_name and given else (self.last_name or given or "")


@dataclass(frozen=True)
class Paper:
    """One paper as an analyst sees it: its citation, its tags and which saved queries found it."""

    pmid: int
    title: str
    abstract: str = ""
    doi: str | None = None
    pmcid: str | None = None
    journal: str | None = None
    journal_abbrev: str | None = None
    issn: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None
    pub_year: int | None = None
    pub_date: dt.date | None = None
    pub_date_text: str | None = None
    languages: tuple[str, ...] = ()
    retracted: bool = False
    first_seen: dt.datetime | None = None
    authors: tuple[AuthorName, ...] = ()
    keywords: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = field(default=())  # (name, kind), sorted by name
    queries: tuple[str, ...] = ()

    @property
    def tag_names(self) -> list[str]:
        return [name for name, _ in self.tags]

    @property
    def url(self) -> str:
        return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"


@dataclass(frozen=True)
class Term:
    """One thing to find: a word, or several that must stand together; ``prefix`` for ``word*``.

    ``text`` is the term as typed (PostgreSQL splits ``IL-6`` its own way, so it gets it whole).
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    text: str = field(default="", compare=False, repr=False)


def parse_text(text: str) -> list[Term]:
    """Cut what a user typed into search terms; punctuation and operators count as spaces.

    ``IL-1β`` is one term whose tokens must stand together (as the indexes split it), so is a
    ``"quoted phrase"``; a trailing ``*`` asks for a prefix. Nothing else has a meaning: ``AND``,
    ``NEAR``, ``col:``, ``^``, ``%`` and unbalanced quotes are searched for as text or dropped.

    >>> parse_text('FOXP3 "regulatory T cells" migrain* IL-1β')  # doctest: +NORMALIZE_WHITESPACE
    [Term(tokens=('FOXP3',), prefix=False), Term(tokens=('regulatory', 'T', 'cells'), prefix=False),
     Term(tokens=('migrain',), prefix=True), Term(tokens=('IL', '1β'), prefix=False)]
    """
    text = unicodedata.normalize("NFC", text).replace("\x00", " ")
    terms: list[Term] = []
    for match in _CHUNK.finditer(text):
        phrase, word = match.group(1), match.group(2)
        chunk = phrase if phrase is not None else word
        tokens = tuple(_TOKEN.findall(chunk))
        if tokens:
            prefix = phrase is None and chunk.rstrip().endswith("*")
            terms.append(Term(tokens, prefix, chunk.strip().rstrip("*")))
    return terms


def fts5_expression(terms: Sequence[Term]) -> str:
    """An SQLite FTS5 MATCH expression in which every token is a quoted string (never syntax).

    >>> fts5_expression([Term(("IL", "1β")), Term(("migrain",), prefix=True)])
    '"IL 1β" AND "migrain" *'
    """
    parts = ['"' + " ".join(t.tokens) + '"' + (" *" if t.prefix else "") for t in terms]
    return " AND ".join(parts)


def _validate(filters: Filters) -> list[Term]:
    for label, value in [("tag", t) for t in filters.tags] + [("query", filters.query or "")]:
        if "\x00" in value:
            raise InputError(f"--{label} {value[:40]!r}... contains a NUL character; give the name as printed")
    if filters.since and filters.until and filters.since > filters.until:
        raise InputError(f"--since {filters.since} is after --until {filters.until}: no date can match")
    if filters.limit is not None and filters.limit < 1:
        raise InputError(f"--limit must be 1 or more, not {filters.limit}")
    if filters.text is None:
        return []
    terms = parse_text(filters.text)
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


_papers_fts_sqlite = sa.table("papers_fts", sa.column("rowid", sa.Integer))
_papers_fts_pg = sa.table("papers_fts", sa.column("pmid", sa.Integer), sa.column("document"))
_ENGLISH: sa.ColumnElement[Any] = sa.literal_column("'english'::regconfig")


def _tsquery(term: Term, name: str) -> sa.ColumnElement[Any]:
    if term.prefix:
        # tokens are letters and digits only, so this string holds no tsquery syntax but ours
        lexemes = " <-> ".join(f"'{t}'" for t in term.tokens) + ":*"
        return sa.func.to_tsquery(_ENGLISH, sa.bindparam(name, lexemes, type_=sa.Text))
    return sa.func.phraseto_tsquery(_ENGLISH, sa.bindparam(name, term.text or " ".join(term.tokens), type_=sa.Text))


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


def _text_hits(terms: Sequence[Term], filters: Filters, dialect: str) -> sa.Select[Any]:
    """PMIDs whose title, abstract or keywords hold every term and that pass the tag/query filters.

    The full-text index drives and each hit is checked against the tags by an index probe, so
    only the (few) papers passing every filter are read from ``papers`` afterwards.
    """
    pmid, match = _match(terms, dialect)
    return sa.select(pmid).where(match, *_id_filters(pmid, filters))


def _match(terms: Sequence[Term], dialect: str) -> tuple[sa.ColumnElement[int], sa.ColumnElement[bool]]:
    """The full-text index's PMID column, and the condition that a row holds every term."""
    if dialect == "postgresql":
        query = _tsquery(terms[0], "fts_0")
        for i, term in enumerate(terms[1:], start=1):
            query = query.op("&&")(_tsquery(term, f"fts_{i}"))
        return _papers_fts_pg.c.pmid, _papers_fts_pg.c.document.op("@@")(query)
    expression = sa.bindparam("fts", fts5_expression(terms), type_=sa.Text)
    return _papers_fts_sqlite.c.rowid, sa.literal_column("papers_fts").op("MATCH")(expression)


def _pmid_list(pmids: Sequence[int], dialect: str) -> sa.Select[Any]:
    """A list of PMIDs as ONE bound parameter (a JSON array, or a PostgreSQL array)."""
    if dialect == "postgresql":
        array = sa.bindparam("hits", list(pmids), type_=sa.ARRAY(sa.Integer))
        return sa.select(sa.func.unnest(array))
    each = sa.func.json_each(sa.bindparam("hits", json.dumps(list(pmids)), type_=sa.Text)).table_valued("value")
    return sa.select(each.c.value)


def _text_probe(terms: Sequence[Term], dialect: str) -> sa.ColumnElement[bool]:
    """Whether the paper in hand holds every term: one index probe per paper."""
    pmid, match = _match(terms, dialect)
    return sa.exists().where(match, pmid == papers.c.pmid)


def build_query(
    filters: Filters,
    dialect: str,
    terms: Sequence[Term] | None = None,
    *,
    few_ids: bool = False,
    hits: Sequence[int] | None = None,
) -> sa.Select[Any]:
    """The SELECT of matching papers, newest first; every value in it is a bound parameter.

    The plan depends on how many papers the filters name, as a query planner's would:

    - search text: the full-text index drives and each hit is checked against the tags, so only
      papers passing every filter are read; with ``hits`` (the complete list of those, when few)
      they are read by PMID; ``hits=()`` with a limit says they are many, and then papers are
      walked down the date index and each checked by index probes until the limit is reached.
    - no text: tags and saved query are checked paper by paper down the date index, which finds
      the newest few at once when they are common; ``few_ids`` says they are rare, and then the
      papers they name are read directly instead.
    """
    if terms is None:
        terms = _validate(filters)
    conditions: list[sa.ColumnElement[bool]] = [papers.c.deleted_at.is_(None)]
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
    stmt = (
        sa.select(papers)
        .where(*conditions)
        .order_by(papers.c.pub_date.desc().nulls_last(), papers.c.pmid.desc())
    )
    if filters.limit is not None:
        stmt = stmt.limit(filters.limit)
    return stmt


def _details(conn: Connection, pmids: Sequence[int]) -> dict[str, dict[int, list[Any]]]:
    """Authors, keywords, tags and query names of these papers, in one query per table."""
    found: dict[str, dict[int, list[Any]]] = {name: defaultdict(list) for name in ("authors", "keywords", "tags", "queries")}
    row: Any
    for chunk in in_chunks(pmids):
        for row in conn.execute(
            sa.select(authors.c.paper_pmid, authors.c.last_name, authors.c.fore_name, authors.c.initials,
                      authors.c.collective_name)
            .where(authors.c.paper_pmid.in_(chunk)).order_by(authors.c.paper_pmid, authors.c.position)
        ):
            found["authors"][row.paper_pmid].append(
                AuthorName(row.last_name, row.fore_name, row.initials, row.collective_name)
            )
        for row in conn.execute(
            sa.select(keywords.c.paper_pmid, keywords.c.keyword)
            .where(keywords.c.paper_pmid.in_(chunk)).order_by(keywords.c.paper_pmid, keywords.c.position)
        ):
            found["keywords"][row.paper_pmid].append(row.keyword)
        for row in conn.execute(
            sa.select(paper_tags.c.paper_pmid, paper_tags.c.tag, paper_tags.c.kind).distinct()
            .where(paper_tags.c.paper_pmid.in_(chunk)).order_by(paper_tags.c.paper_pmid, paper_tags.c.tag)
        ):
            found["tags"][row.paper_pmid].append((row.tag, row.kind))
        for row in conn.execute(
            sa.select(query_hits.c.paper_pmid, query_hits.c.query_name)
            .where(query_hits.c.paper_pmid.in_(chunk)).order_by(query_hits.c.paper_pmid, query_hits.c.query_name)
        ):
            found["queries"][row.paper_pmid].append(row.query_name)
    return found


def _papers(conn: Connection, rows: Sequence[Any]) -> list[Paper]:
    pmids = [row.pmid for row in rows]
    details = _details(conn, pmids)
    return [
        Paper(
            pmid=row.pmid, title=row.title, abstract=row.abstract or "", doi=row.doi, pmcid=row.pmcid,
            journal=row.journal, journal_abbrev=row.journal_abbrev, issn=row.issn, volume=row.volume,
            issue=row.issue, pages=row.pages, pub_year=row.pub_year, pub_date=row.pub_date,
            pub_date_text=row.pub_date_text,
            languages=tuple(row.languages.split(";")) if row.languages else (),
            retracted=bool(row.retracted), first_seen=utc(row.first_seen) if row.first_seen else None,
            authors=tuple(details["authors"].get(row.pmid, ())),
            keywords=tuple(details["keywords"].get(row.pmid, ())),
            tags=tuple(details["tags"].get(row.pmid, ())),
            queries=tuple(details["queries"].get(row.pmid, ())),
        )
        for row in rows
    ]


def iter_papers(engine: Engine, filters: Filters, *, chunk_size: int = IN_CHUNK) -> Iterator[Paper]:
    """Every paper matching ``filters``, newest first, read ``chunk_size`` at a time (flat memory)."""
    terms = _validate(filters)
    with engine.connect() as conn:
        dialect = engine.dialect.name
        hits: Sequence[int] | None = None
        if terms and filters.limit is not None:
            found = conn.execute(_text_hits(terms, filters, dialect).limit(DENSE)).scalars().all()
            hits = found if len(found) < DENSE else ()
            if not found:
                return
        few = not terms and (bool(filters.tags) or filters.query is not None) and (
            filters.limit is None or _few_ids(conn, filters)
        )
        stmt = build_query(filters, dialect, terms, few_ids=few, hits=hits)
        result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
        for rows in result.partitions(chunk_size):
            yield from _papers(conn, rows)


def search(engine: Engine, filters: Filters) -> list[Paper]:
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
