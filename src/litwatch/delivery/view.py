"""What a reader sees: a digest's papers, coverage and notices read from the store and shaped for the templates.

Every value is cleaned to one line of plain text here; the templates (render.py) only lay it out.
What is new comes with its abstract under its query; older papers a backfill found come after, one
line each; a digest whose feeding queries failed says "incomplete" in its subject and at its top
(contents.py decides both, so a digest rebuilt from the ledger says the same).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.clock import utc
from litwatch.delivery import versions
from litwatch.delivery.contents import corrections, digests, failed_queries, hits, items, older_papers, papers, tags
from litwatch.files.groups import Group
from litwatch.store import models
from litwatch.store.bridges import bridges, group_conditions
from litwatch.store.engine import in_chunks

authors_t = models.table(models.Author)
states = models.table(models.QueryState)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
EXCERPT = 280  # characters of abstract shown under each title
MAX_CHIPS = 8
MARKS = {  # PubMed CommentsCorrections RefType -> (label, tone), most serious first
    "RetractionIn": ("Retracted", "danger"), "ExpressionOfConcernIn": ("Expression of concern", "warn"),
    "ErratumIn": ("Erratum published", "warn"), "UpdateIn": ("Updated version published", "warn"),
    "UpdateOf": ("Update of an earlier article", "info"), "ErratumFor": ("Correction notice", "info"),
    "RetractionOf": ("Retraction notice", "info"), "RepublishedIn": ("Republished", "info"),
}


@dataclass(frozen=True)
class Window:
    covers_from: dt.datetime
    covers_to: dt.datetime
    carried: int  # papers held over from an earlier digest


@dataclass(frozen=True)
class Entry:
    pmid: int
    title: str
    authors: str
    journal: str
    date: str
    excerpt: str
    chips: tuple[str, ...]  # genes, then pathways
    more_chips: int
    conditions: tuple[str, ...]
    marks: tuple[tuple[str, str], ...]  # (label, tone)
    also_in: tuple[str, ...]
    pubmed_url: str
    doi_url: str | None
    sort_key: tuple[dt.date, int]
    tag_keys: frozenset[str] = frozenset()  # every tag, case-folded, for grouping by tag
    badge: str | None = None  # "preprint (not peer reviewed)" for a preprint (delivery/versions.py)
    bridge: str | None = None  # "first link of TRIM32 with migraine in your library" (store/bridges.py)

    @property
    def comorbidity(self) -> bool:
        return len(self.conditions) >= 2


@dataclass(frozen=True)
class Section:
    title: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Older:
    """One line for a paper found by a search reaching back before the period."""

    pmid: int
    title: str
    year: str
    pubmed_url: str


@dataclass(frozen=True)
class Coverage:
    query: str
    found: int  # papers the query found in the period
    new: int  # of the group's new papers (in this digest or held over), how many this query found
    problem: str | None  # the query did not run cleanly in the period


@dataclass(frozen=True)
class Notice:
    pmid: int
    title: str
    journal: str
    sent_on: str
    pubmed_url: str
    retraction_url: str | None


@dataclass(frozen=True)
class DigestView:
    group: str
    subject: str
    preheader: str
    period: str
    sections: tuple[Section, ...]
    coverage: tuple[Coverage, ...]
    notices: tuple[Notice, ...]
    paper_count: int
    overflow: int
    carried: int
    max_papers: int
    comorbidity: int
    older: tuple[Older, ...] = ()
    incomplete: str | None = None  # "incomplete: 2 of 4 saved queries failed; papers may be missing"
    failed: tuple[str, ...] = ()  # the saved queries that failed
    published: tuple[versions.PublishedNotice, ...] = ()  # "now published in <journal>"


def clean(text: str | None) -> str:
    """One line of plain text: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL.sub(" ", text or "").split())


def excerpt(abstract: str | None, limit: int = EXCERPT) -> str:
    text = clean(abstract)
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + "\u2026"


def _day(value: dt.datetime, zone: Any) -> str:
    local = value.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def _entries(conn: Connection, group: Group, pmids: Sequence[int]) -> dict[int, Entry]:
    """Everything shown for each paper, read in a handful of queries."""
    names: dict[int, list[str]] = {}
    author_count: dict[int, int] = {}
    found_by: dict[int, list[str]] = {}
    tagged: dict[int, dict[str, list[str]]] = {}
    marks: dict[int, set[str]] = {}
    rows: list[sa.Row[Any]] = []
    for chunk in in_chunks(list(pmids)):
        rows += conn.execute(sa.select(papers).where(papers.c.pmid.in_(chunk))).all()
        author_count.update(conn.execute(sa.select(authors_t.c.paper_pmid, sa.func.count()).where(
            authors_t.c.paper_pmid.in_(chunk)).group_by(authors_t.c.paper_pmid)).all())
        for a in conn.execute(sa.select(authors_t.c.paper_pmid, authors_t.c.last_name, authors_t.c.initials,
                                        authors_t.c.fore_name, authors_t.c.collective_name)
                              .where(authors_t.c.paper_pmid.in_(chunk), authors_t.c.position < 3)
                              .order_by(authors_t.c.paper_pmid, authors_t.c.position)):
            name = a.collective_name or " ".join(p for p in (a.last_name, a.initials or a.fore_name) if p)
            names.setdefault(a.paper_pmid, []).append(clean(name))
        for pmid, query in conn.execute(sa.select(hits.c.paper_pmid, hits.c.query_name).where(
                hits.c.paper_pmid.in_(chunk), hits.c.query_name.in_(group.queries))):
            found_by.setdefault(pmid, []).append(query)
        for pmid, tag, kind in conn.execute(sa.select(tags.c.paper_pmid, tags.c.tag, tags.c.kind)
                                            .where(tags.c.paper_pmid.in_(chunk)).distinct()):
            tagged.setdefault(pmid, {}).setdefault(kind, []).append(clean(tag))
        for pmid, ref_type in conn.execute(sa.select(corrections.c.paper_pmid, corrections.c.ref_type).where(
                corrections.c.paper_pmid.in_(chunk), corrections.c.ref_type.in_(list(MARKS)))):
            marks.setdefault(pmid, set()).add(ref_type)
    bridging = bridges(conn, [p.pmid for p in rows], group_conditions(conn, group.tags))
    out: dict[int, Entry] = {}
    order = {q: i for i, q in enumerate(group.queries)}
    for p in rows:
        kinds = tagged.get(p.pmid, {})
        chips = sorted(set(kinds.get("gene", []))) + sorted(set(kinds.get("pathway", [])))
        refs = marks.get(p.pmid, set()) | ({"RetractionIn"} if p.retracted else set())
        who = names.get(p.pmid, [])[:3]
        authors = ", ".join(who) + (", et al." if author_count.get(p.pmid, 0) > 3 else "")
        by = sorted(set(found_by.get(p.pmid, [])), key=lambda q: order.get(q, len(order)))
        when = p.pub_date or p.date_entrez or (dt.date(p.pub_year, 1, 1) if p.pub_year else dt.date.min)
        out[p.pmid] = Entry(
            pmid=p.pmid, title=clean(p.title) or "(no title)", authors=authors or "(no authors listed)",
            journal=clean(p.journal_abbrev or p.journal), date=clean(p.pub_date_text or str(p.pub_year or "")),
            excerpt=excerpt(p.abstract), chips=tuple(chips[:MAX_CHIPS]), more_chips=max(0, len(chips) - MAX_CHIPS),
            conditions=tuple(sorted(set(kinds.get("condition", [])))),
            marks=tuple(MARKS[r] for r in MARKS if r in refs), also_in=tuple(by),
            pubmed_url=versions.entry_url(p.pmid), badge=versions.BADGE if p.kind == "preprint" else None,
            doi_url=f"https://doi.org/{quote(p.doi, safe='/:;()[]._-')}" if p.doi else None,
            sort_key=(when, p.pmid), tag_keys=frozenset(t.casefold() for ts in kinds.values() for t in ts),
            bridge=clean(bridging[p.pmid].line()) if p.pmid in bridging else None)
    return out


def entries(conn: Connection, group: Group, pmids: Sequence[int]) -> dict[int, Entry]:
    """What a reader sees of each paper (the digest's and the feed's entries)."""
    return _entries(conn, group, pmids)


def _sections(group: Group, entries: Sequence[Entry]) -> tuple[Section, ...]:
    """Papers under the first of the group's queries (or tags) that holds them, newest first."""
    keys = group.tags if group.group_by == "tag" else group.queries
    buckets: dict[str, list[Entry]] = {k: [] for k in keys}
    other: list[Entry] = []
    for entry in entries:
        have = entry.tag_keys if group.group_by == "tag" else set(entry.also_in)
        home = next((k for k in keys if (k.casefold() if group.group_by == "tag" else k) in have), None)
        (buckets[home] if home is not None else other).append(entry)
    named = [(k, v) for k, v in buckets.items() if v] + ([("Other", other)] if other else [])
    return tuple(Section(k, tuple(sorted(v, key=lambda e: e.sort_key, reverse=True))) for k, v in named)


def _coverage(conn: Connection, group: Group, window: Window, new: Sequence[int],
              new_by: dict[str, int] | None) -> tuple[Coverage, ...]:
    found: dict[str, int] = dict(conn.execute(sa.select(hits.c.query_name, sa.func.count()).where(
        hits.c.query_name.in_(group.queries), hits.c.first_found_at > window.covers_from,
        hits.c.first_found_at <= window.covers_to).group_by(hits.c.query_name)).all())
    if new_by is None:  # a digest rebuilt from the ledger: count again
        new_by = {}
        for chunk in in_chunks(list(new)):
            for query, count in conn.execute(sa.select(hits.c.query_name, sa.func.count()).where(
                    hits.c.query_name.in_(group.queries), hits.c.paper_pmid.in_(chunk)).group_by(hits.c.query_name)):
                new_by[query] = new_by.get(query, 0) + count
    state = {r.query_name: r for r in conn.execute(sa.select(states).where(states.c.query_name.in_(group.queries)))}
    out = []
    for query in group.queries:
        row, problem = state.get(query), None
        if row is None or row.last_success_at is None:
            problem = "has not run successfully yet"
        elif row.last_error:
            problem = f"last run failed: {clean(row.last_error)[:160]}"
        elif utc(row.last_success_at) < window.covers_from:
            problem = f"no successful run in this period (last {_day(utc(row.last_success_at), group.zone)})"
        out.append(Coverage(query, int(found.get(query, 0)), new_by.get(query, 0), problem))
    return tuple(out)


def _notices(conn: Connection, group: Group, pmids: Sequence[int]) -> tuple[Notice, ...]:
    if not pmids:
        return ()
    sent_on = dict(conn.execute(sa.select(items.c.paper_pmid, sa.func.min(digests.c.created_at))
                                .join(digests, digests.c.id == items.c.digest_id)
                                .where(items.c.group_name == group.name, items.c.item_kind == "paper",
                                       items.c.paper_pmid.in_(pmids)).group_by(items.c.paper_pmid)).all())
    notice_of = dict(conn.execute(sa.select(corrections.c.paper_pmid, corrections.c.ref_pmid).where(
        corrections.c.paper_pmid.in_(pmids), corrections.c.ref_type == "RetractionIn")).all())
    zone = group.zone
    return tuple(
        Notice(p.pmid, clean(p.title), clean(p.journal_abbrev or p.journal),
               _day(utc(sent_on[p.pmid]), zone) if p.pmid in sent_on else "earlier",
               f"https://pubmed.ncbi.nlm.nih.gov/{p.pmid}/",
               f"https://pubmed.ncbi.nlm.nih.gov/{notice_of[p.pmid]}/" if notice_of.get(p.pmid) else None)
        for p in conn.execute(sa.select(papers).where(papers.c.pmid.in_(pmids)).order_by(papers.c.pmid)))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _incomplete(group: Group, failed: Sequence[str]) -> str | None:
    if not failed:
        return None
    total = len(group.queries)
    return f"incomplete: {len(failed)} of {total} saved quer{'y' if total == 1 else 'ies'} failed; papers may be missing"


def _older(entry: Entry) -> Older:
    year = "" if entry.sort_key[0] == dt.date.min else str(entry.sort_key[0].year)
    return Older(entry.pmid, entry.title, year, entry.pubmed_url)


def build_view(conn: Connection, group: Group, chosen: Sequence[int], overflow: Sequence[int],
               notices: Sequence[int], window: Window, new_by: dict[str, int] | None = None,
               published: Sequence[int] = ()) -> DigestView:
    """Read what the digest shows and shape it for the templates."""
    entries = _entries(conn, group, chosen)
    older = older_papers(conn, group, chosen, window.covers_from)
    listed = [entries[p] for p in chosen if p in entries and p not in older]
    older_rows = tuple(_older(e) for e in sorted((entries[p] for p in chosen if p in entries and p in older),
                                                 key=lambda e: e.sort_key, reverse=True))
    sections = _sections(group, listed)
    notice_rows = _notices(conn, group, notices)
    published_rows = versions.published_notices(conn, published)
    failed = failed_queries(conn, group, window.covers_from, window.covers_to)
    incomplete = _incomplete(group, failed)
    comorbid = sum(e.comorbidity for e in listed)
    period = f"{_day(window.covers_from, group.zone)} \u2013 {_day(window.covers_to, group.zone)}"
    anything = listed or older_rows or notice_rows or published_rows
    parts = [_plural(len(listed), "new paper")] if listed or not (older_rows or notice_rows or published_rows) else []
    if older_rows:
        parts.append(_plural(len(older_rows), "older paper"))
    if notice_rows:
        parts.append(_plural(len(notice_rows), "retraction notice"))
    if published_rows:
        parts.append(f"{len(published_rows)} now published")
    day = _day(window.covers_to, group.zone)
    if incomplete:
        subject = f"[litwatch] {group.name}: {incomplete.split(';')[0]}; {', '.join(parts)} ({day})"
    elif anything:
        subject = f"[litwatch] {group.name}: {', '.join(parts)} ({day})"
    else:
        subject = f"[litwatch] {group.name}: nothing new ({day})"
    top = sorted({c for e in listed for c in e.chips}, key=lambda c: -sum(c in e.chips for e in listed))[:4]
    summary = ", ".join(parts) if anything or incomplete else "nothing new"
    preheader = " \u00b7 ".join(([incomplete] if incomplete else []) + [summary]
                                + ([f"{comorbid} comorbidity"] if comorbid else []) + ([", ".join(top)] if top else []))
    return DigestView(group=group.name, subject=clean(subject), preheader=clean(preheader), period=period,
                      sections=sections, coverage=_coverage(conn, group, window, list(chosen) + list(overflow), new_by),
                      notices=notice_rows, paper_count=len(listed), overflow=len(overflow),
                      carried=window.carried, max_papers=group.max_papers, comorbidity=comorbid,
                      older=older_rows, incomplete=incomplete, failed=failed, published=published_rows)
