"""Bridge papers: the papers that join a gene or pathway to conditions, worth a reader's second look.

A paper is a bridge when it links a gene or pathway to two or more conditions (its tags name
both), or when it is the first paper in the store linking gene X with condition Y: no paper
first seen before it (ties: a lower PMID) carries both tags. The first kind is told first
("first link of TRIM32 with migraine in your library"), since a library that already holds
TRIM32 with migraine and with endometriosis gains less from one more such paper. Digests mark
them (``delivery/view.py``) among the group's conditions: the conditions its ``tags`` name, or
every condition when they name none (:func:`group_conditions`); ``litwatch stats --bridges``
lists them among every condition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.store import models
from litwatch.store.engine import in_chunks

papers = models.table(models.Paper)
paper_tags = models.table(models.PaperTag)
LINKS = ("gene", "pathway")


@dataclass(frozen=True)
class Bridge:
    """Why ``pmid`` is a bridge: ``first`` (the first link of ``link`` with ``conditions[0]``) or
    ``several`` (``link`` with every one of ``conditions``)."""

    pmid: int
    kind: str
    link: str
    conditions: tuple[str, ...]

    def line(self) -> str:
        if self.kind == "first":
            return f"first link of {self.link} with {self.conditions[0]} in your library"
        *rest, last = self.conditions
        return f"links {self.link} to {', '.join(rest)} and {last}"


def _tags(conn: Connection, pmids: Sequence[int] | None) -> dict[int, dict[str, set[str]]]:
    """{pmid: {kind: tags}} of these papers (every stored paper for None)."""
    query = sa.select(paper_tags.c.paper_pmid, paper_tags.c.tag, paper_tags.c.kind).distinct()
    chunks = [None] if pmids is None else in_chunks(list(pmids))
    found: dict[int, dict[str, set[str]]] = {}
    for chunk in chunks:
        where = query if chunk is None else query.where(paper_tags.c.paper_pmid.in_(chunk))
        for pmid, tag, kind in conn.execute(where):
            found.setdefault(pmid, {}).setdefault(kind, set()).add(tag)
    return found


def _first_papers(conn: Connection, genes: set[str], conditions: set[str]) -> dict[tuple[str, str], int]:
    """For each (gene, condition) pair among these tags, the first stored paper that links them."""
    gene, condition = paper_tags.alias("g"), paper_tags.alias("c")
    query = (
        sa.select(gene.c.tag, condition.c.tag, papers.c.first_seen, papers.c.pmid)
        .select_from(gene.join(condition, condition.c.paper_pmid == gene.c.paper_pmid)
                     .join(papers, papers.c.pmid == gene.c.paper_pmid))
        .where(gene.c.kind == "gene", condition.c.kind == "condition", papers.c.deleted_at.is_(None))
    )
    first: dict[tuple[str, str], tuple[dt.datetime, int]] = {}
    for chunk in in_chunks(sorted(genes)):
        rows = conn.execute(query.where(gene.c.tag.in_(chunk), condition.c.tag.in_(sorted(conditions))))
        for g, c, seen, pmid in rows:
            if (g, c) not in first or (seen, pmid) < first[(g, c)]:
                first[(g, c)] = (seen, pmid)
    return {pair: pmid for pair, (_seen, pmid) in first.items()}


def group_conditions(conn: Connection, tags: Collection[str]) -> frozenset[str] | None:
    """The conditions among a group's ``tags`` (those some stored paper carries as a condition),
    or None when they name none: then every condition is the group's."""
    if not tags:
        return None
    named = conn.execute(sa.select(paper_tags.c.tag).distinct()
                         .where(paper_tags.c.kind == "condition", paper_tags.c.tag.in_(sorted(tags)))).scalars()
    return frozenset(named) or None


def bridges(conn: Connection, pmids: Sequence[int] | None = None,
            conditions: Collection[str] | None = None) -> dict[int, Bridge]:
    """The bridges among these papers (all stored papers for None), by PMID, linking to
    ``conditions`` only (None: every condition)."""
    tagged = _tags(conn, pmids)
    if conditions is not None:
        for kinds in tagged.values():
            kinds["condition"] = kinds.get("condition", set()) & set(conditions)
    genes = {g for kinds in tagged.values() if kinds.get("condition") for g in kinds.get("gene", ())}
    conditions = {c for kinds in tagged.values() if kinds.get("gene") for c in kinds.get("condition", ())}
    first = _first_papers(conn, genes, conditions) if genes else {}
    found: dict[int, Bridge] = {}
    for pmid, kinds in sorted(tagged.items()):
        linked = sorted(kinds.get("condition", ()))
        pairs = [(g, c) for g in sorted(kinds.get("gene", ())) for c in linked if first.get((g, c)) == pmid]
        links = sorted(kinds.get("gene", ())) + sorted(kinds.get("pathway", ()))
        if pairs:
            found[pmid] = Bridge(pmid, "first", pairs[0][0], (pairs[0][1],))
        elif links and len(linked) >= 2:
            found[pmid] = Bridge(pmid, "several", links[0], tuple(linked))
    return found
