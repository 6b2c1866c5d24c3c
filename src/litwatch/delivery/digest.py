"""Digests: what is new for a research group, rendered to HTML and text, handed over exactly once.

What goes in: papers that one of the group's saved queries found since the group's last digest
(with a two-day overlap, so a run that committed late is not missed) and that no digest of the
group holds yet, filtered by the group's tags; papers that did not fit last time come first. A
paper the group was sent that has since been retracted gets a notice.

Exactly once, with the ``digests``/``digest_items`` ledger and a state folder beside the outbox:

1. prepare: the items and a Message-ID are frozen in one transaction (status ``prepared``) and
   the rendered message is kept as ``<outbox>/.state/<token>.eml``;
2. hand over: the SMTP server accepts the message (or the outbox file is written);
3. accepted: a marker ``<token>.accepted`` is written at once, then the row says ``accepted``;
4. record: the row says ``recorded``: its papers count as sent.

A later call first finishes what an earlier one left: ``accepted`` (or a marker) is recorded
without sending; ``prepared`` or ``failed`` is sent again with the same Message-ID and content.
A week with nothing to send leaves an ``empty`` row so the schedule and the window move on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import email.utils
import functools
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.config import Settings
from litwatch.delivery.mail import (
    Mailer,
    build_message,
    mailer_from_settings,
    outbox_stem,
)
from litwatch.errors import InputError, MailError, StoreError
from litwatch.files.atomic import write_atomically
from litwatch.files.groups import Group, check_recipient
from litwatch.store import models

log = logging.getLogger(__name__)

digests = models.table(models.Digest)
items = models.table(models.DigestItem)
hits = models.table(models.QueryHit)
papers = models.table(models.Paper)
corrections = models.table(models.Correction)
tags = models.table(models.PaperTag)

PENDING = ("prepared", "accepted", "failed")
OVERLAP = dt.timedelta(days=2)
FIRST_LOOKBACK = dt.timedelta(days=7)


@dataclass
class DigestReceipt:
    """What one call did for one group. ``status``: sent | nothing-new | failed."""

    group: str
    status: str
    papers: int
    overflow: int
    retraction_notices: int
    message_id: str | None
    error: str | None
    recovered: int = 0  # digests left by an earlier run and finished by this one
    recovered_ids: tuple[str, ...] = ()  # their Message-IDs


@dataclass(frozen=True)
class Plan:
    """The papers chosen for one digest, oldest arrival first; ``overflow`` waits for the next one."""

    covers_from: dt.datetime
    covers_to: dt.datetime
    papers: tuple[int, ...]
    overflow: tuple[int, ...]
    notices: tuple[int, ...]
    carried: int
    already_retracted: tuple[int, ...] = ()
    new_by_query: dict[str, int] | None = None  # papers (shown or overflow) each query found

    @property
    def empty(self) -> bool:
        return not self.papers and not self.notices


def utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (SQLite hands back naive UTC ones)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _retracted() -> sa.ColumnElement[bool]:
    return sa.or_(papers.c.retracted.is_(True), sa.exists().where(
        corrections.c.paper_pmid == papers.c.pmid, corrections.c.ref_type == "RetractionIn"))


def plan_digest(conn: Connection, group: Group, *, now: dt.datetime, since: dt.datetime | None = None) -> Plan:
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
    sent = sa.exists().where(items.c.group_name == group.name, items.c.item_kind == "paper",
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
                         papers.c.deleted_at.is_(None), ~sent)
                  .group_by(hits.c.paper_pmid)
                  .having(sa.or_(arrival > lookback, hits.c.paper_pmid.in_(carried_q)), arrival <= now)
                  .order_by(sa.literal_column("held"), sa.literal_column("arrival"), hits.c.paper_pmid))
    if group.tags:
        candidates = candidates.where(sa.exists().where(
            tags.c.paper_pmid == hits.c.paper_pmid,
            sa.func.lower(tags.c.tag).in_([t.lower() for t in group.tags])))
    rows = conn.execute(candidates).all() if group.queries else []
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
    return Plan(covers_from, now, chosen, overflow, notices, sum(r[1] == 0 for r in rows), gone, new_by)


def _plan_from_ledger(conn: Connection, row: sa.Row[Any]) -> Plan:
    """The frozen content of a prepared digest, for sending it again when its message file is lost."""
    found: dict[str, list[int]] = {"paper": [], "overflow": [], "retraction_notice": []}
    for kind, pmid in conn.execute(sa.select(items.c.item_kind, items.c.paper_pmid)
                                   .where(items.c.digest_id == row.id).order_by(items.c.position)):
        found[kind].append(pmid)
    chosen = tuple(found["paper"])
    notices = tuple(p for p in found["retraction_notice"] if p not in chosen)
    return Plan(utc(row.covers_from or row.covers_to), utc(row.covers_to), chosen, tuple(found["overflow"]),
                notices, 0)


# --- what a reader sees ----------------------------------------------------------------------

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

    @property
    def comorbidity(self) -> bool:
        return len(self.conditions) >= 2


@dataclass(frozen=True)
class Section:
    title: str
    entries: tuple[Entry, ...]


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


def _chunks(values: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _entries(conn: Connection, group: Group, pmids: Sequence[int]) -> dict[int, Entry]:
    """Everything shown for each paper, read in a handful of queries."""
    names: dict[int, list[str]] = {}
    author_count: dict[int, int] = {}
    found_by: dict[int, list[str]] = {}
    tagged: dict[int, dict[str, list[str]]] = {}
    marks: dict[int, set[str]] = {}
    rows: list[sa.Row[Any]] = []
    for chunk in _chunks(list(pmids)):
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
            pubmed_url=f"https://pubmed.ncbi.nlm.nih.gov/{p.pmid}/",
            doi_url=f"https://doi.org/{quote(p.doi, safe='/:;()[]._-')}" if p.doi else None,
            sort_key=(when, p.pmid), tag_keys=frozenset(t.casefold() for ts in kinds.values() for t in ts))
    return out


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
        for chunk in _chunks(list(new)):
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


def build_view(conn: Connection, group: Group, chosen: Sequence[int], overflow: Sequence[int],
               notices: Sequence[int], window: Window, new_by: dict[str, int] | None = None) -> DigestView:
    """Read what the digest shows and shape it for the templates."""
    entries = _entries(conn, group, chosen)
    listed = [entries[p] for p in chosen if p in entries]
    sections = _sections(group, listed)
    notice_rows = _notices(conn, group, notices)
    comorbid = sum(e.comorbidity for e in listed)
    period = f"{_day(window.covers_from, group.zone)} \u2013 {_day(window.covers_to, group.zone)}"
    parts = [_plural(len(listed), "new paper")] if listed or not notice_rows else []
    if notice_rows:
        parts.append(_plural(len(notice_rows), "retraction notice"))
    subject = (f"[litwatch] {group.name}: {', '.join(parts)} ({_day(window.covers_to, group.zone)})"
               if listed or notice_rows else f"[litwatch] {group.name}: nothing new "
               f"({_day(window.covers_to, group.zone)})")
    top = sorted({c for e in listed for c in e.chips}, key=lambda c: -sum(c in e.chips for e in listed))[:4]
    preheader = " \u00b7 ".join([", ".join(parts) or "nothing new"] + ([f"{comorbid} comorbidity"] if comorbid
                                                                      else []) + ([", ".join(top)] if top else []))
    return DigestView(group=group.name, subject=clean(subject), preheader=clean(preheader), period=period,
                      sections=sections, coverage=_coverage(conn, group, window, list(chosen) + list(overflow), new_by),
                      notices=notice_rows, paper_count=len(listed), overflow=len(overflow),
                      carried=window.carried, max_papers=group.max_papers, comorbidity=comorbid)


def wrap(text: str, width: int = 74, joiner: str = "\n  ") -> str:
    """Greedy word wrap of one cleaned line for the plain-text part; long words (URLs) stay whole."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return joiner.join(lines)


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["wrap"] = wrap
    env.filters["nobreak"] = lambda text: str(text).replace(" ", "\u00a0")
    return env


def render(view: DigestView) -> tuple[str, str]:
    """The plain-text and the HTML body (every value escaped in the HTML)."""
    env = _templates()
    return env.get_template("digest.txt").render(d=view), env.get_template("digest.html").render(d=view)


def _domain(settings: Settings) -> str:
    address = email.utils.parseaddr(settings.mail_from)[1]
    return address.rpartition("@")[2] or "litwatch.localhost"


def _check_inputs(settings: Settings, group: Group, now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise InputError("now must be a timezone-aware datetime")
    why = check_recipient(settings.mail_from)
    if why:
        raise InputError(f"LITWATCH_MAIL_FROM {settings.mail_from!r} {why}")
    for recipient in group.recipients:
        if check_recipient(recipient):
            raise InputError(f"group {group.name!r}: recipient {recipient!r} {check_recipient(recipient)}")
    if not group.recipients:
        raise InputError(f"group {group.name!r} has no recipients; fix: add them in groups.toml")


def compose(conn: Connection, settings: Settings, group: Group, plan: Plan, *, message_id: str,
            created: dt.datetime) -> tuple[DigestView, EmailMessage]:
    """Render a plan into the message that is sent (and the view it was rendered from)."""
    window = Window(plan.covers_from, plan.covers_to, plan.carried)
    view = build_view(conn, group, plan.papers, plan.overflow, plan.notices, window, plan.new_by_query)
    text, html = render(view)
    message = build_message(subject=view.subject, sender=settings.mail_from, recipients=group.recipients,
                            text=text, html=html, message_id=message_id,
                            date=email.utils.format_datetime(created),
                            headers={"X-Litwatch-Group": group.name})
    return view, message


class _State:
    """``<outbox>/.state``: each prepared message, and a marker once the server accepted it."""

    def __init__(self, settings: Settings) -> None:
        self.folder = Path(settings.outbox) / ".state"

    @staticmethod
    def token(message_id: str) -> str:
        return outbox_stem(message_id)

    def keep(self, message_id: str, message: EmailMessage) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{self.token(message_id)}.eml",
                             message.as_bytes(policy=email.policy.SMTP))
        except OSError as exc:
            log.warning("cannot keep the prepared digest in %s (%s); a retry renders it again",
                        self.folder, exc.strerror)

    def load(self, message_id: str) -> EmailMessage | None:
        path = self.folder / f"{self.token(message_id)}.eml"
        if not path.is_file():
            return None
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
        return parsed if isinstance(parsed, EmailMessage) else None

    def mark_accepted(self, message_id: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{self.token(message_id)}.accepted", message_id.encode())
        except OSError as exc:
            log.warning("cannot write the acceptance marker in %s: %s", self.folder, exc.strerror)

    def accepted(self, message_id: str) -> bool:
        return (self.folder / f"{self.token(message_id)}.accepted").is_file()

    def forget(self, message_id: str) -> None:
        for suffix in (".eml", ".accepted"):
            with contextlib.suppress(OSError):
                (self.folder / f"{self.token(message_id)}{suffix}").unlink()


def _set(engine: Engine, digest_id: int, **values: object) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(digests.update().where(digests.c.id == digest_id).values(**values))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot update digest {digest_id} in the ledger: {exc}") from exc


def _hand_over(engine: Engine, mailer: Mailer, state: _State, digest_id: int, message_id: str,
               message: EmailMessage, attempts: int, now: dt.datetime) -> str | None:
    """Send, then mark accepted and recorded; on a refusal mark failed. Returns the error, if any."""
    try:
        mailer.send(message)
    except MailError as exc:
        _set(engine, digest_id, status="failed", attempts=attempts + 1, error=str(exc))
        log.info("digest %s not delivered: %s", message_id, exc)
        return str(exc)
    state.mark_accepted(message_id)
    _set(engine, digest_id, status="accepted", accepted_at=now, attempts=attempts + 1, error=None)
    _set(engine, digest_id, status="recorded")
    state.forget(message_id)
    return None


def _finish(engine: Engine, settings: Settings, group: Group, row: sa.Row[Any], mailer: Mailer,
            state: _State, now: dt.datetime) -> str | None:
    """Finish a digest an earlier run left behind; returns the error when sending again failed."""
    if row.status == "accepted" or state.accepted(row.message_id):
        _set(engine, row.id, status="recorded", accepted_at=row.accepted_at or now, error=None)
        state.forget(row.message_id)
        log.info("digest %s was accepted before; recorded without sending again", row.message_id)
        return None
    message = state.load(row.message_id)
    if message is None:
        with engine.connect() as conn:
            _view, message = compose(conn, settings, group, _plan_from_ledger(conn, row),
                                     message_id=row.message_id, created=utc(row.created_at))
    if tuple(row.recipients.split("\n")) != group.recipients:
        del message["To"]
        message["To"] = ", ".join(group.recipients)
        _set(engine, row.id, recipients="\n".join(group.recipients))
    return _hand_over(engine, mailer, state, row.id, row.message_id, message, row.attempts, now)


def _prepare(engine: Engine, group: Group, plan: Plan, subject: str, message_id: str, now: dt.datetime,
             status: str) -> int:
    """Freeze a digest's items and Message-ID in one transaction; returns its id."""
    with engine.begin() as conn:
        digest_id = conn.execute(digests.insert().values(
            group_name=group.name, message_id=message_id, status=status, subject=subject,
            recipients="\n".join(group.recipients), created_at=now, covers_from=plan.covers_from,
            covers_to=plan.covers_to, paper_count=len(plan.papers), overflow_count=len(plan.overflow),
            attempts=0).returning(digests.c.id)).scalar_one()
        rows = [(p, "paper") for p in plan.papers] + [(p, "overflow") for p in plan.overflow] + [
            (p, "retraction_notice") for p in plan.notices + plan.already_retracted]
        if rows:
            conn.execute(items.insert(), [{"digest_id": digest_id, "paper_pmid": p, "item_kind": kind,
                                           "group_name": group.name, "position": i}
                                          for i, (p, kind) in enumerate(rows)])
    return int(digest_id)


def deliver_group(engine: Engine, settings: Settings, group: Group, *, now: dt.datetime,
                  mailer: Mailer | None = None, since: dt.datetime | None = None) -> DigestReceipt:
    """Finish what earlier runs left, then send the group's next digest; a refused send is a receipt
    with ``error``, never an exception.

    Whether a digest is due, and the lease that keeps two processes from sending one group's
    digest at once, are the scheduler's (litwatch.scheduling.jobs: the ``digest:<group>`` job,
    which ``litwatch digest --send``, ``run-due`` and ``schedule`` all run); this sends now.
    """
    _check_inputs(settings, group, now)
    now = utc(now)
    mailer = mailer if mailer is not None else mailer_from_settings(settings)
    state = _State(settings)
    with engine.connect() as conn:
        pending = conn.execute(sa.select(digests).where(digests.c.group_name == group.name,
                                                        digests.c.status.in_(PENDING))
                               .order_by(digests.c.id)).all()
    done: list[str] = []
    for row in pending:
        error = _finish(engine, settings, group, row, mailer, state, now)
        if error is not None:
            return DigestReceipt(group.name, "failed", row.paper_count, row.overflow_count,
                                 _count_notices(engine, row.id), row.message_id, error, len(done), tuple(done))
        done.append(row.message_id)
    token = f"litwatch.{group.name}.{now:%Y%m%dT%H%M%SZ}.{secrets.token_hex(4)}"
    message_id = f"<{token}@{_domain(settings)}>"
    with engine.connect() as conn:
        plan = plan_digest(conn, group, now=now, since=since)
        if plan.empty and not group.notify_empty:
            _prepare(engine, group, plan, "(nothing new: not sent)", message_id, now, "empty")
            return DigestReceipt(group.name, "nothing-new", 0, 0, 0, None, None, len(done), tuple(done))
        view, message = compose(conn, settings, group, plan, message_id=message_id, created=now)
    digest_id = _prepare(engine, group, plan, view.subject, message_id, now, "prepared")
    state.keep(message_id, message)
    error = _hand_over(engine, mailer, state, digest_id, message_id, message, 0, now)
    return DigestReceipt(group.name, "failed" if error else "sent", len(plan.papers), len(plan.overflow),
                         len(plan.notices), message_id, error, len(done), tuple(done))


def _count_notices(engine: Engine, digest_id: int) -> int:
    with engine.connect() as conn:
        row = conn.execute(sa.select(digests).where(digests.c.id == digest_id)).one()
        return len(_plan_from_ledger(conn, row).notices)


def preview_group(engine: Engine, settings: Settings, group: Group, *, now: dt.datetime, out_dir: Path,
                  since: dt.datetime | None = None) -> list[Path]:
    """Write what the next digest would hold (.html, .txt, .eml) without touching the ledger.

    Returns the files written; none when the digest would not be sent (nothing new).
    """
    _check_inputs(settings, group, now)
    now = utc(now)
    with engine.connect() as conn:
        plan = plan_digest(conn, group, now=now, since=since)
        if plan.empty and not group.notify_empty:
            return []
        _view, message = compose(conn, settings, group, plan, created=now,
                                 message_id=f"<litwatch.{group.name}.preview@{_domain(settings)}>")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{group.name}.{ext}" for ext in ("html", "txt", "eml")]
        for path, subtype in zip(paths[:2], ("html", "plain")):
            part = message.get_body(preferencelist=(subtype,))
            assert part is not None
            write_atomically(path, str(part.get_content()).encode("utf-8"))
        write_atomically(paths[2], message.as_bytes(policy=email.policy.SMTP))
    except OSError as exc:
        raise InputError(f"cannot write the preview to {out_dir}: {exc.strerror}") from exc
    return paths


def pending_digests(engine: Engine, group_names: Sequence[str]) -> dict[str, int]:
    """How many digests wait to be sent again (or recorded), per group."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(digests.c.group_name, sa.func.count()).where(
            digests.c.group_name.in_(group_names), digests.c.status.in_(PENDING))
            .group_by(digests.c.group_name)).all()
    return {name: count for name, count in rows}
