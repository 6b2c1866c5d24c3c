"""Preprints in digests: which candidates a group gets, and the "now published in" notices.

A preprint is badged "preprint (not peer reviewed)". While a preprint is linked to its journal
version (``store/works.py``) only the journal version is a candidate: the work is sent once. A
group that was sent the preprint is not sent the journal version as new: it gets one notice,
"now published in <journal>", recorded in the ledger as a ``published_notice`` item so it comes
once. A group with ``preprints = false`` (groups.toml) is never sent preprints. Reads only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.files.groups import Group
from litwatch.store import models
from litwatch.store.works import PREPRINT_URL, hidden_versions, published_versions

BADGE = "preprint (not peer reviewed)"
NOTICE = "published_notice"  # the digest_items kind
papers = models.table(models.Paper)
items = models.table(models.DigestItem)
preprints = models.table(models.Preprint)


def candidate_filters(group: Group, pmid: sa.ColumnElement[int]) -> list[sa.ColumnElement[bool]]:
    """Conditions on a digest candidate: not a preprint whose journal version is linked, and no
    preprint at all for a group that leaves them out."""
    conditions = [~hidden_versions(pmid)]
    if not group.preprints:
        conditions.append(pmid.not_in(sa.select(papers.c.pmid).where(papers.c.kind == "preprint")))
    return conditions


def now_published(conn: Connection, group: Group, candidates: Sequence[int]) -> tuple[int, ...]:
    """The candidates that are journal versions of a preprint this group was already sent."""
    preprint_of = published_versions(conn, candidates)
    if not preprint_of:
        return ()
    sent = set(conn.execute(sa.select(items.c.paper_pmid).where(
        items.c.group_name == group.name, items.c.item_kind == "paper",
        items.c.paper_pmid.in_(list(preprint_of.values())))).scalars())
    return tuple(p for p in candidates if preprint_of.get(p) in sent)


@dataclass(frozen=True)
class PublishedNotice:
    """A preprint the group was sent is now published: where, and under which title."""

    title: str
    journal: str
    server: str
    url: str


def published_notices(conn: Connection, pmids: Sequence[int]) -> tuple[PublishedNotice, ...]:
    """The notices for journal versions ``pmids`` (their preprint's server named)."""
    if not pmids:
        return ()
    preprint_of = published_versions(conn, pmids)
    servers = dict(conn.execute(sa.select(preprints.c.paper_pmid, preprints.c.server).where(
        preprints.c.paper_pmid.in_(list(preprint_of.values())))).all())
    rows = conn.execute(sa.select(papers.c.pmid, papers.c.title, papers.c.journal, papers.c.journal_abbrev)
                        .where(papers.c.pmid.in_(list(pmids))).order_by(papers.c.pmid)).all()
    return tuple(PublishedNotice(" ".join(r.title.split()), " ".join((r.journal or r.journal_abbrev or "").split()),
                                 servers.get(preprint_of.get(r.pmid)) or "a preprint server",
                                 f"https://pubmed.ncbi.nlm.nih.gov/{r.pmid}/") for r in rows)


def entry_url(pmid: int) -> str:
    """Where a reader opens a paper: PubMed, or Europe PMC for a preprint (a negative key)."""
    return PREPRINT_URL.format(-pmid) if pmid < 0 else f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
