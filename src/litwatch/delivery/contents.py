"""What a group's next digest holds: the papers new to it, the ones held over, and retraction notices.

What goes in: papers that one of the group's saved queries found since the group's last digest
(with a two-day overlap, so a run that committed late is not missed) and that no digest of the
group holds yet, filtered by the group's tags; papers that did not fit last time come first. A
paper the group was sent that has since been retracted gets a notice. Reads only.

Two things a reader must be told apart from "new this week":

- older papers (:func:`older_papers`): found only by a search that reached back before the
  digest period (a backfill, a first run from an old ``start``, a re-search with ``--since``)
  and created in PubMed ([crdt], stored as ``date_entrez``) before it. They follow the new
  papers, within ``max_papers``, as one line each, so a backfill of years never floods a digest;
- failed feeders (:func:`failed_queries`): saved queries whose last run since the last digest
  failed. Papers may be missing, so such a digest is sent and says it is incomplete, even
  when nothing was found (never "nothing new").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from litwatch.clock import utc
from litwatch.delivery import versions
from litwatch.files.groups import Group
from litwatch.store import models
from litwatch.store.engine import in_chunks

digests = models.table(models.Digest)
items = models.table(models.DigestItem)
hits = models.table(models.QueryHit)
papers = models.table(models.Paper)
corrections = models.table(models.Correction)
tags = models.table(models.PaperTag)
runs = models.table(models.Run)
preprint_runs = models.table(models.PreprintRun)

OVERLAP = dt.timedelta(days=2)
FIRST_LOOKBACK = dt.timedelta(days=7)
# A scheduled run searches a few days back into the dates its ledger covers (overlap_days, 3 by
# default): papers created that close to the period are new, not older.
OLDER_SLACK = dt.timedelta(days=3)
FAILED = ("failed", "interrupted")


@dataclass(frozen=True)
class DigestContents:
    """The papers chosen for one digest, oldest arrival first; ``overflow`` waits for the next one."""

    covers_from: dt.datetime
    covers_to: dt.datetime
    papers: tuple[int, ...]
    overflow: tuple[int, ...]
    notices: tuple[int, ...]
    carried: int
    already_retracted: tuple[int, ...] = ()
    new_by_query: dict[str, int] | None = None  # papers (shown or overflow) each query found
    older: tuple[int, ...] = ()  # of ``papers``, the older ones (listed last, one line each; no feed entry)
    failed_queries: tuple[str, ...] = ()  # feeding queries whose last run in the period failed
    published: tuple[int, ...] = ()  # journal versions of preprints the group was sent (delivery/versions.py)

    @property
    def new(self) -> tuple[int, ...]:
        """The papers that are new this period (``papers`` without the older ones)."""
        return tuple(p for p in self.papers if p not in self.older)

    @property
    def empty(self) -> bool:
        """Nothing to tell: no paper, no notice, and every feeding query ran."""
        return not self.papers and not self.notices and not self.failed_queries and not self.published


def older_papers(conn: Connection, group: Group, pmids: Sequence[int], covers_from: dt.datetime) -> frozenset[int]:
    """Of ``pmids``, those PubMed created before the period that every hit of the group's queries
    owes to a run whose window began before it too (a backfill, a first run, a re-search).

    A hit with no run (found by hand, or by an older litwatch) counts as a regular find.
    """
    cutoff = (utc(covers_from) - OLDER_SLACK).date()
    reaching: set[int] = set()
    regular: set[int] = set()
    for chunk in in_chunks(list(pmids)):
        for pmid, window_from, created in conn.execute(
                sa.select(hits.c.paper_pmid, runs.c.window_from, papers.c.date_entrez)
                .join(papers, papers.c.pmid == hits.c.paper_pmid)
                .outerjoin(runs, runs.c.id == hits.c.run_id)
                .where(hits.c.paper_pmid.in_(chunk), hits.c.query_name.in_(group.queries))):
            old = created is not None and created < cutoff and window_from is not None and window_from < cutoff
            (reaching if old else regular).add(pmid)
    return frozenset(reaching - regular)


def failed_queries(conn: Connection, group: Group, since: dt.datetime, until: dt.datetime) -> tuple[str, ...]:
    """The group's saved queries whose last run (or last Europe PMC step) started in (since, until]
    failed or was interrupted.

    A failure mended by a later successful run in the period does not count: the failed run added
    nothing to the coverage ledger, so the later one searched those dates again.
    """
    if not group.queries:
        return ()
    failed: set[str] = set()
    for receipts in (runs, preprint_runs):  # a query's PubMed runs, then its Europe PMC steps
        last = (sa.select(sa.func.max(receipts.c.id)).where(
            receipts.c.query_name.in_(group.queries), receipts.c.started_at > since,
            receipts.c.started_at <= until, receipts.c.status.in_(("ok", *FAILED)))
            .group_by(receipts.c.query_name))
        failed |= set(conn.execute(sa.select(receipts.c.query_name).where(
            receipts.c.id.in_(last), receipts.c.status.in_(FAILED))).scalars())
    return tuple(q for q in group.queries if q in failed)


def _retracted() -> sa.ColumnElement[bool]:
    return sa.or_(papers.c.retracted.is_(True), sa.exists().where(
        corrections.c.paper_pmid == papers.c.pmid, corrections.c.ref_type == "RetractionIn"))


def plan_digest(conn: Connection, group: Group, *, now: dt.datetime, since: dt.datetime | None = None) -> DigestContents:
    """Choose what the group's next digest holds; reads only."""
    last = conn.execute(sa.select(sa.func.max(digests.c.covers_to)).where(
        digests.c.group_name == group.name, digests.c.status.in_(("recorded", "empty")))).scalar()
    if since is not None:
        covers_from = lookback = utc(since)
    elif last is not None:
        covers_from = utc(last)
        lookback = covers_from - OVERLAP
    else:
        covers_from = lookback = now - FIRST_LOOKBACK
    sent = sa.exists().where(items.c.group_name == group.name, items.c.item_kind.in_(("paper", versions.NOTICE)),
                             items.c.paper_pmid == hits.c.paper_pmid)
    carried_q = (sa.select(items.c.paper_pmid).join(digests, digests.c.id == items.c.digest_id)
                 .where(items.c.group_name == group.name, items.c.item_kind == "overflow",
                        digests.c.status == "recorded"))
    arrival = sa.func.min(hits.c.first_found_at)
    held = sa.case((hits.c.paper_pmid.in_(carried_q), 0), else_=1).label("held")
    found_by = [sa.func.max(sa.case((hits.c.query_name == q, 1), else_=0)) for q in group.queries]
    recent = sa.select(hits.c.paper_pmid).where(hits.c.query_name.in_(group.queries), hits.c.first_found_at > lookback)
    candidates = (sa.select(hits.c.paper_pmid, held, *found_by, sa.type_coerce(arrival, sa.Text).label("arrival"))
                  .join(papers, papers.c.pmid == hits.c.paper_pmid)
                  .where(hits.c.query_name.in_(group.queries),
                         sa.or_(hits.c.paper_pmid.in_(recent), hits.c.paper_pmid.in_(carried_q)),
                         papers.c.deleted_at.is_(None), ~sent, *versions.candidate_filters(group, hits.c.paper_pmid))
                  .group_by(hits.c.paper_pmid)
                  .having(sa.or_(arrival > lookback, hits.c.paper_pmid.in_(carried_q)), arrival <= now)
                  .order_by(sa.literal_column("held"), sa.literal_column("arrival"), hits.c.paper_pmid))
    if group.tags:
        candidates = candidates.where(sa.exists().where(
            tags.c.paper_pmid == hits.c.paper_pmid,
            sa.func.lower(tags.c.tag).in_([t.lower() for t in group.tags])))
    rows = conn.execute(candidates).all() if group.queries else []
    published = versions.now_published(conn, group, [r[0] for r in rows])
    rows = [r for r in rows if r[0] not in published]
    older = older_papers(conn, group, [r[0] for r in rows], covers_from)
    rows = [r for r in rows if r[0] not in older] + [r for r in rows if r[0] in older]
    chosen = tuple(r[0] for r in rows[: group.max_papers])
    overflow = tuple(r[0] for r in rows[group.max_papers:])
    new_by = {q: sum(r[2 + i] for r in rows) for i, q in enumerate(group.queries)}

    was_sent = (sa.select(items.c.paper_pmid).join(digests, digests.c.id == items.c.digest_id)
                .where(items.c.group_name == group.name, items.c.item_kind == "paper",
                       digests.c.status == "recorded"))
    noticed = sa.select(items.c.paper_pmid).where(items.c.group_name == group.name,
                                                  items.c.item_kind == "retraction_notice")
    notices = tuple(conn.execute(sa.select(papers.c.pmid).where(
        papers.c.pmid.in_(was_sent), papers.c.pmid.not_in(noticed), _retracted()).order_by(papers.c.pmid)).scalars())
    gone = tuple(conn.execute(sa.select(papers.c.pmid).where(papers.c.pmid.in_(chosen), _retracted())).scalars()) \
        if chosen else ()
    return DigestContents(covers_from, now, chosen, overflow, notices, sum(r[1] == 0 for r in rows), gone, new_by,
                          tuple(p for p in chosen if p in older), failed_queries(conn, group, covers_from, now),
                          published)

