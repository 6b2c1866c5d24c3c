"""One work, several versions: preprints stored beside PubMed papers, and the links between them.

A preprint is a ``papers`` row of kind ``preprint`` keyed by the negative of its Europe PMC
number (``PPR1036674`` -> ``-1036674``, :func:`preprint_key`). PubMed keys are positive, so the
two never collide, and every reader of ``papers`` (search, export, stats, tagging, digests) takes
a preprint as it takes a paper without a second code path. ``preprints`` keeps what a preprint
adds (source id, server, version, its journal version as Europe PMC names it) and
``preprint_versions`` every version seen.

:func:`link_works` makes a preprint and its journal version one work (a ``work_links`` row):
``strong`` when Europe PMC links them or the published DOI is stored, ``weak`` when a non-preprint
paper has the same normalised title and first author within two years. While a link stands, the
preprint is a hidden version (:func:`hidden_versions`): search, export and stats count the work
once, by its journal version. ``litwatch merge --undo ID`` undoes a link for good: that pair is
never linked again (the preprint may still be linked to another paper).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.errors import InputError
from litwatch.sources.europepmc_results import EuropePmcRecord
from litwatch.store import models
from litwatch.store import papers as store
from litwatch.store.engine import in_chunks

preprints = models.table(models.Preprint)
versions = models.table(models.PreprintVersion)
links = models.table(models.WorkLink)
papers = models.table(models.Paper)
authors = models.table(models.Author)
PREPRINT_URL = "https://europepmc.org/article/PPR/PPR{}"  # a preprint's page, by its Europe PMC number
WEAK_YEARS = 2  # a journal version more than this many years after the preprint is another work
_PPR = re.compile(r"PPR(\d+)")


def preprint_key(source_id: str) -> int:
    """The ``papers`` key of a preprint: minus its Europe PMC number."""
    match = _PPR.fullmatch(source_id)
    if match is None:
        raise ValueError(f"not a Europe PMC preprint id (PPR<number>): {source_id!r}")
    return -int(match.group(1))


def normal_title(title: str) -> str:
    """A title as compared for a weak link: letters and digits only, accents and case folded."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


@dataclass(frozen=True)
class Saved:
    """What storing a page of preprints did: their keys, and which of them were new."""

    keys: list[int]
    new: int
    changed: list[int]


def save_preprints(conn: Connection, records: Sequence[EuropePmcRecord], *, now: dt.datetime) -> Saved:
    """Store preprints as papers (``store.save_batch``) and their preprint details, in ``conn``'s
    transaction; the same records twice change nothing but ``updated_at``."""
    keyed = [replace(r.paper, pmid=preprint_key(r.source_id)) for r in records]
    saved = store.save_batch(conn, keyed, now=now)
    owners = store.resolve_pmids(conn, [p.pmid for p in keyed])
    for record, paper in zip(records, keyed):
        journal = record.published[0] if record.published else None
        values = {
            "paper_pmid": owners.get(paper.pmid, paper.pmid), "server": record.server, "version": record.version,
            "doi": paper.doi, "first_index_date": record.first_index_date, "updated_at": now,
            "published_pmid": int(journal.id) if journal and journal.source == "MED" and journal.id
            and journal.id.isdigit() else None,
            "published_doi": journal.doi if journal else None,
        }
        updated = conn.execute(preprints.update().where(preprints.c.source_id == record.source_id).values(**values))
        if updated.rowcount == 0:
            conn.execute(preprints.insert().values(source_id=record.source_id, **values))
        if record.version is not None and conn.execute(sa.select(versions.c.version).where(
                versions.c.source_id == record.source_id, versions.c.version == record.version)).first() is None:
            conn.execute(versions.insert().values(source_id=record.source_id, version=record.version, doi=paper.doi,
                                                  first_index_date=record.first_index_date, seen_at=now))
    return Saved(sorted({owners.get(p.pmid, p.pmid) for p in keyed}), saved.new, saved.changed_pmids)


@dataclass(frozen=True)
class Link:
    """One row of ``work_links`` as ``litwatch merge`` lists it."""

    id: int
    preprint: str  # source id
    preprint_title: str
    published_pmid: int
    journal: str | None
    strength: str
    evidence: str
    undone: bool


def link_works(conn: Connection, *, now: dt.datetime) -> list[int]:
    """Link every preprint without a standing link to its journal version when one is stored
    (never a pair that was undone); returns the new links' ids."""
    rows = conn.execute(
        sa.select(preprints.c.paper_pmid, preprints.c.published_pmid, preprints.c.published_doi)
        .where(preprints.c.paper_pmid.not_in(sa.select(links.c.preprint_pmid).where(links.c.undone_at.is_(None))))
        .order_by(preprints.c.paper_pmid)
    ).all()
    undone = {(r.preprint_pmid, r.published_pmid) for r in conn.execute(
        sa.select(links.c.preprint_pmid, links.c.published_pmid).where(links.c.undone_at.is_not(None)))}
    found: dict[int, tuple[int, str, str]] = {}  # preprint -> (journal version, strength, evidence)
    for row in rows:
        strong = _strong_match(conn, row.published_pmid, row.published_doi)
        if strong is not None and (row.paper_pmid, strong[0]) not in undone:
            found.setdefault(row.paper_pmid, (strong[0], "strong", strong[1]))
    weak = _weak_matches(conn, [r.paper_pmid for r in rows if r.paper_pmid not in found], undone)
    for key, pmid in weak.items():
        found[key] = (pmid, "weak", "title+author")
    made: list[int] = []
    for key, (pmid, strength, evidence) in sorted(found.items()):
        result = conn.execute(links.insert().values(preprint_pmid=key, published_pmid=pmid, strength=strength,
                                                    evidence=evidence, made_at=now))
        pk = result.inserted_primary_key
        assert pk is not None
        made.append(int(pk[0]))
    return made


def _strong_match(conn: Connection, pmid: int | None, doi: str | None) -> tuple[int, str] | None:
    if pmid is not None:
        owner = store.resolve_pmids(conn, [pmid]).get(pmid)
        if owner is not None:
            return owner, "europepmc"
    if doi:
        owner = conn.execute(sa.select(papers.c.pmid).where(papers.c.doi == doi, papers.c.pmid > 0)).scalar()
        if owner is not None:
            return int(owner), "doi"
    return None


def _weak_matches(conn: Connection, keys: Sequence[int], undone: set[tuple[int, int]]) -> dict[int, int]:
    """Preprint -> the PubMed paper with the same normalised title and first author, published
    in the preprint's year or up to two years later. The database finds the papers whose first
    author has one of the preprints' first-author surnames (one pass over ``authors``); titles
    and names are compared folded here."""
    wanted: dict[tuple[str, str], list[tuple[int, int]]] = {}  # (title, author) -> [(key, year)]
    surnames: set[str] = set()
    first = sa.func.coalesce(authors.c.last_name, authors.c.collective_name)
    for chunk in in_chunks(list(keys)):
        for key, title, year, name in conn.execute(
                sa.select(papers.c.pmid, papers.c.title, papers.c.pub_year, first)
                .join(authors, sa.and_(authors.c.paper_pmid == papers.c.pmid, authors.c.position == 0))
                .where(papers.c.pmid.in_(chunk), papers.c.pub_year.is_not(None))):
            if name and title:
                wanted.setdefault((normal_title(title), normal_title(name)), []).append((key, year))
                surnames.add(name)
    if not wanted:
        return {}
    years = [year for found in wanted.values() for _, year in found]
    matched: dict[int, int] = {}
    for names in in_chunks(sorted(surnames)):
        candidates = conn.execute(
            sa.select(papers.c.pmid, papers.c.title, papers.c.pub_year, first)
            .join(authors, sa.and_(authors.c.paper_pmid == papers.c.pmid, authors.c.position == 0))
            .where(sa.or_(authors.c.last_name.in_(names), authors.c.collective_name.in_(names)),
                   papers.c.pmid > 0, papers.c.kind != "preprint", papers.c.deleted_at.is_(None),
                   papers.c.pub_year.between(min(years), max(years) + WEAK_YEARS))
            .order_by(papers.c.pmid))
        for pmid, title, year, name in candidates:
            for key, preprint_year in wanted.get((normal_title(title), normal_title(name)), []):
                if key not in matched and (key, pmid) not in undone and preprint_year <= year <= preprint_year + WEAK_YEARS:
                    matched[key] = int(pmid)
    return matched


def hidden_versions(pmid: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """True for a preprint whose journal version is linked: search, export and stats skip it so
    the work counts once."""
    return pmid.in_(sa.select(links.c.preprint_pmid).where(links.c.undone_at.is_(None)))


def published_versions(conn: Connection, pmids: Sequence[int]) -> dict[int, int]:
    """For each of ``pmids`` that is the journal version of a preprint: that preprint's key."""
    if not pmids:
        return {}
    return dict(conn.execute(sa.select(links.c.published_pmid, links.c.preprint_pmid).where(
        links.c.published_pmid.in_(list(pmids)), links.c.undone_at.is_(None))).all())


def list_links(conn: Connection) -> list[Link]:
    """Every link made, oldest first, undone ones included."""
    preprint_paper = papers.alias("preprint_paper")
    rows = conn.execute(
        sa.select(links, preprints.c.source_id, preprint_paper.c.title, papers.c.journal)
        .join(preprints, preprints.c.paper_pmid == links.c.preprint_pmid)
        .join(preprint_paper, preprint_paper.c.pmid == links.c.preprint_pmid)
        .join(papers, papers.c.pmid == links.c.published_pmid)
        .order_by(links.c.id)
    ).all()
    return [Link(r.id, r.source_id, r.title, r.published_pmid, r.journal, r.strength, r.evidence,
                 r.undone_at is not None) for r in rows]


def undo_link(conn: Connection, link_id: int, *, now: dt.datetime) -> Link:
    """Undo a link: the two versions are two works again, and are never linked again."""
    found = {link.id: link for link in list_links(conn)}
    if link_id not in found:
        known = ", ".join(str(i) for i in found) or "none"
        raise InputError(f"no work link {link_id} (links: {known}); `litwatch merge` lists them")
    if found[link_id].undone:
        raise InputError(f"work link {link_id} is already undone")
    conn.execute(links.update().where(links.c.id == link_id).values(undone_at=now))
    return replace(found[link_id], undone=True)
