"""Each group's Atom feed: the papers its digests delivered, newest first, for feed readers.

The feed is a second view of the delivery ledger, not a second choice of papers: its entries are
the papers (never the retraction notices or papers only listed as older matches) of the group's
digests that the mail server accepted, the newest ``feed_entries`` of them. Every digest rewrites
``<feeds_dir>/<group>.atom`` (default ``feeds/`` beside the outbox); ``litwatch feed GROUP``
writes it on demand. An entry's id is the paper's PubMed address (a preprint's: its Europe PMC
page, and it is badged) and its ``updated`` time is when the digest that carried it was made, so
a rewrite changes nothing a reader has seen and a feed reader never shows a paper twice.
feedgen writes the XML (valid Atom 1.0, escaped), so nothing here builds markup by hand.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from feedgen.feed import FeedGenerator
from sqlalchemy.engine import Connection, Engine

from litwatch.clock import utc
from litwatch.config import Settings
from litwatch.delivery.contents import digests, items, older_papers
from litwatch.delivery.view import Entry, clean, entries
from litwatch.errors import InputError
from litwatch.files.atomic import write_atomically
from litwatch.files.groups import Group
from litwatch.store import models

log = logging.getLogger(__name__)
authors_t = models.table(models.Author)
DELIVERED = ("accepted", "recorded")
MAX_AUTHORS = 10  # names per entry; the rest are "et al." as in the digest


def delivered(conn: Connection, group: Group, limit: int) -> list[tuple[int, dt.datetime]]:
    """(PMID, when its digest was made) of the group's newest delivered new papers, newest first.

    Papers a digest listed as older matches (a backfill's, a re-search's) are not entries.
    """
    out: list[tuple[int, dt.datetime]] = []
    sent = conn.execute(sa.select(digests.c.id, digests.c.created_at, digests.c.covers_from).where(
        digests.c.group_name == group.name, digests.c.status.in_(DELIVERED))
        .order_by(digests.c.created_at.desc(), digests.c.id.desc())).all()
    for digest_id, created, covers_from in sent:
        pmids = list(conn.execute(sa.select(items.c.paper_pmid).where(
            items.c.digest_id == digest_id, items.c.item_kind == "paper").order_by(items.c.position)).scalars())
        older = older_papers(conn, group, pmids, utc(covers_from)) if covers_from is not None else frozenset()
        out += [(int(p), utc(created)) for p in pmids if p not in older]
        if len(out) >= limit:
            break
    return out[:limit]


def _authors(conn: Connection, pmids: Sequence[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    for a in conn.execute(sa.select(authors_t).where(authors_t.c.paper_pmid.in_(list(pmids)),
                                                     authors_t.c.position < MAX_AUTHORS)
                          .order_by(authors_t.c.paper_pmid, authors_t.c.position)):
        name = a.collective_name or " ".join(p for p in (a.fore_name or a.initials, a.last_name) if p)
        if clean(name):
            names.setdefault(a.paper_pmid, []).append(clean(name))
    return names


def _content(entry: Entry) -> str:
    """The entry's body as escaped HTML: where it appeared, the excerpt, the tags."""
    lines = [f"<p><i>{html.escape(entry.journal or 'journal not given')}</i>, {html.escape(entry.date)}</p>"]
    if entry.badge:
        lines.append(f"<p><b>{html.escape(entry.badge.capitalize())}</b></p>")
    if entry.marks:
        lines.append("<p><b>" + html.escape("; ".join(label for label, _tone in entry.marks)) + "</b></p>")
    if entry.excerpt:
        lines.append(f"<p>{html.escape(entry.excerpt)}</p>")
    tags = list(entry.chips) + list(entry.conditions)
    if tags:
        lines.append("<p>Tags: " + html.escape(", ".join(tags)) + "</p>")
    where = f"Europe PMC PPR{-entry.pmid}" if entry.pmid < 0 else f"PubMed {entry.pmid}"  # a preprint's key is negative
    links = [f'<a href="{html.escape(entry.pubmed_url)}">{where}</a>']
    if entry.doi_url:
        links.append(f'<a href="{html.escape(entry.doi_url)}">DOI</a>')
    lines.append("<p>" + " \u00b7 ".join(links) + "</p>")
    return "\n".join(lines)


def build_feed(conn: Connection, settings: Settings, group: Group, *, now: dt.datetime) -> tuple[bytes, int]:
    """The group's Atom document, and how many delivered papers it lists; ``now`` dates an empty feed only."""
    rows = delivered(conn, group, settings.feed_entries)
    shown = entries(conn, group, [pmid for pmid, _ in rows])
    names = _authors(conn, [pmid for pmid, _ in rows])
    fg = FeedGenerator()
    fg.id(f"urn:litwatch:feed:{group.name}")
    fg.title(f"litwatch: {group.name}")
    fg.subtitle(f"Papers the saved queries of {group.name} found, as its digests delivered them")
    fg.author({"name": f"litwatch ({group.name})"})
    fg.generator("litwatch")
    fg.language("en")
    if settings.feed_base_url:
        fg.link(href=f"{settings.feed_base_url.rstrip('/')}/{group.name}.atom", rel="self",
                type="application/atom+xml")
    fg.updated(rows[0][1] if rows else utc(now))
    for pmid, when in rows:
        entry = shown.get(pmid)
        if entry is None:  # the paper was deleted from the store since it was sent
            continue
        fe = fg.add_entry(order="append")
        fe.id(entry.pubmed_url)
        marked = [label for label, tone in entry.marks if tone == "danger"]
        marked += ["Preprint"] if entry.badge else []
        fe.title(f"[{'; '.join(marked)}] {entry.title}" if marked else entry.title)
        for name in names.get(pmid, []) or [entry.authors]:
            fe.author({"name": name})
        # one link, the PubMed page (alternate, Atom's default): feedgen 1.0 drops an entry link's
        # rel (lkiesow/python-feedgen#135), so a DOI link would read as a second alternate; the
        # DOI is in the content instead
        fe.link(href=entry.pubmed_url)
        fe.published(when)
        fe.updated(when)
        fe.summary(entry.excerpt or entry.title)
        fe.content(_content(entry), type="html")
        for tag in list(entry.chips) + list(entry.conditions):
            fe.category(term=tag)
    return bytes(fg.atom_str(pretty=True)), len(rows)


def feed_path(settings: Settings, group: Group) -> Path:
    return settings.feeds_folder / f"{group.name}.atom"


def write_feed(engine: Engine, settings: Settings, group: Group, *, now: dt.datetime,
               path: Path | None = None) -> tuple[Path, int]:
    """Write the group's feed (to ``path`` or ``<feeds_dir>/<group>.atom``) atomically; returns where,
    and how many delivered papers it lists."""
    target = path if path is not None else feed_path(settings, group)
    with engine.connect() as conn:
        data, count = build_feed(conn, settings, group, now=now)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
    except OSError as exc:
        raise InputError(f"cannot write the feed {target}: {exc.strerror}; fix: check LITWATCH_FEEDS_DIR "
                         "or the -o path") from exc
    log.info("feed for %s written to %s", group.name, target)
    return target, count


def refresh_after(engine: Engine, settings: Settings, group: Group, receipt: Any, *, now: dt.datetime) -> None:
    """Rewrite the group's feed when a digest was delivered (sent now, or finished from an earlier run).

    A feed that cannot be written is logged as a warning and does not fail the digest: the mail
    went out, and ``litwatch feed`` writes the feed again from the ledger.
    """
    if receipt.status != "sent" and not receipt.recovered:
        return
    try:
        write_feed(engine, settings, group, now=now)
    except InputError as exc:
        log.warning("%s", exc)
