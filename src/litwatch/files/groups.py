"""Research groups: who receives a digest, fed by which saved queries, filtered how, and when.

Groups live in ``groups.toml`` beside the saved queries, one table per group::

    [groups.headache-lab]
    recipients = ["Ana Ruiz <ana@example.org>", "lab@example.org"]
    queries = ["migraine-immunology"]     # saved queries that feed it
    tags = ["FOXP3", "IL-1 signalling"]   # optional: only papers with one of these tags
    schedule = "0 7 * * 1"                # optional, standard cron (0 = Sunday); default Monday 07:00
    timezone = "Europe/Madrid"            # optional, default UTC
    max_papers = 50                       # optional: more are carried to the next digest
    notify_empty = false                  # optional: send a "nothing new" digest on empty weeks
    group_by = "query"                    # optional: "query" or "tag" (needs tags)
    preprints = true                      # optional: false leaves Europe PMC preprints out

A query's own ``groups = [...]`` list connects it to a group as well; :func:`load_groups` merges
both directions. Every mistake is a :class:`~litwatch.files.queries.Problem` naming the file and line.
"""

from __future__ import annotations

import datetime as dt
import difflib
import email.utils
import itertools
import re
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litwatch.files import toml_lines
from litwatch.files.queries import Problem, SavedQuery, Severity
from litwatch.scheduling import schedules

DEFAULT_SCHEDULE = schedules.DEFAULT_DIGEST_SCHEDULE
DEFAULT_TIMEZONE = "UTC"
DEFAULT_MAX_PAPERS = 50
GROUP_KEYS = ("recipients", "queries", "tags", "schedule", "timezone", "max_papers", "notify_empty", "group_by",
              "preprints")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?")
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_A_MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # any start works for this check
_LARGE_DIGEST = 60  # papers; past this the HTML passes ~100 KB and Gmail clips the message


@dataclass(frozen=True)
class Group:
    """A group that passed the check; ``queries`` already holds the links made from query files."""

    name: str
    recipients: tuple[str, ...]
    queries: tuple[str, ...]
    tags: tuple[str, ...] = ()
    schedule: str = DEFAULT_SCHEDULE
    timezone: str = DEFAULT_TIMEZONE
    max_papers: int = DEFAULT_MAX_PAPERS
    notify_empty: bool = False
    group_by: str = "query"  # query | tag
    preprints: bool = True  # False: the group is never sent preprints (delivery/versions.py)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _type_name(value: object) -> str:
    names = {str: "a string", bool: "true/false", int: "a number", float: "a number", list: "a list",
             dict: "a table", dt.datetime: "a date-time", dt.date: "a date"}
    return names.get(type(value), type(value).__name__)


def check_recipient(text: str) -> str | None:
    """Why ``text`` is not one mail address (with an optional display name), or None when it is."""
    if _CONTROL.search(text):
        return "contains a line break or control character"
    pairs = email.utils.getaddresses([text])
    if len(pairs) != 1 or not pairs[0][1]:
        return ("is not one address (a display name with a comma must be quoted: "
                "'\"Ruiz, Ana\" <ana@example.org>')")
    if not _ADDRESS.fullmatch(pairs[0][1]):
        return "is not a mail address such as ana@example.org"
    return None


class _Checker:
    """Collects problems for one file, each at the line of the key (or list item) concerned."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.where = toml_lines.locate(text)
        self.problems: list[Problem] = []

    def report(self, line: int | None, severity: Severity, message: str) -> None:
        self.problems.append(Problem(self.path, line, message, severity))

    def line(self, group: str, key: str | None = None) -> int | None:
        return (key is not None and self.where.line("groups", group, key)) or self.where.line("groups", group)

    def item_line(self, group: str, key: str, item: str) -> int | None:
        """The line where a list item is written (lists may span lines), else the key's line."""
        if self.where.line("groups", group, key) is None:
            return self.line(group)
        return self.where.item_line(item, "groups", group, key)

    def string_list(self, name: str, body: dict[str, Any], key: str, example: str) -> list[str] | None:
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.report(self.line(name, key), "error", f"group {name!r}: '{key}' must be a list of strings, "
                        f"not {_type_name(value)}; fix: write e.g. {key} = {example}")
            return None
        for item in sorted({v for v in value if value.count(v) > 1}):
            self.report(self.item_line(name, key, item), "warning",
                        f"group {name!r}: {item!r} is listed twice in '{key}'; fix: list it once")
        return list(dict.fromkeys(v.strip() for v in value))


def _parse(path: Path) -> tuple[dict[str, Any] | None, _Checker]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        checker = _Checker(path, "")
        checker.report(None, "error", f"cannot read the groups file: {exc.strerror}; fix: check it is readable")
        return None, checker
    except UnicodeDecodeError:
        checker = _Checker(path, "")
        checker.report(None, "error", "the file is not UTF-8 text; fix: save it as UTF-8 in your editor")
        return None, checker
    checker = _Checker(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, _column, detail = toml_lines.decode_error(exc, text)
        checker.report(line, "error", f"not valid TOML: {detail}; fix: check the quotes and brackets on this "
                       "line (a group is defined once, as [groups.NAME])")
        return None, checker
    return data, checker


def _check_group(name: str, body: Any, checker: _Checker, known_queries: dict[str, SavedQuery],
                 folder: Path, vocabulary_tags: Collection[str] | None) -> Group | None:
    before = sum(p.severity == "error" for p in checker.problems)
    line = checker.line
    if not _SLUG.fullmatch(name):
        checker.report(line(name), "error", f"group name {name!r} is not a safe name; fix: use lower-case "
                       "letters, digits, '-' and '_', e.g. [groups.headache-lab]")
    if not isinstance(body, dict):
        checker.report(line(name), "error", f"group {name!r} must be a table; fix: write [groups.{name}] "
                       "with its keys below")
        return None
    for key in body:
        if key not in GROUP_KEYS:
            close = difflib.get_close_matches(key, GROUP_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            checker.report(line(name, key), "error", f"group {name!r}: unknown key {key!r}; fix: {hint}"
                           f"the keys are {', '.join(GROUP_KEYS)}")

    recipients = checker.string_list(name, body, "recipients", '["ana@example.org"]') or []
    if "recipients" not in body or (isinstance(body["recipients"], list) and not body["recipients"]):
        checker.report(line(name, "recipients"), "error", f"group {name!r} has no recipients; fix: add "
                       "recipients = [\"Ana Ruiz <ana@example.org>\"]")
    for item in recipients:
        why = check_recipient(item)
        if why:
            checker.report(checker.item_line(name, "recipients", item.split("\n")[0]), "error",
                           f"group {name!r}: recipient {item!r} {why}")

    own = checker.string_list(name, body, "queries", '["migraine-immunology"]') or []
    for query in own:
        if query in known_queries:
            continue
        if (folder / f"{query}.toml").is_file():
            why = f"the query file {query}.toml has errors (shown above), so it feeds nothing"
        else:
            close = difflib.get_close_matches(query, sorted(known_queries), n=1)
            why = (f"there is no saved query {query}.toml in {folder}"
                   + (f"; did you mean {close[0]!r}?" if close else ""))
        checker.report(checker.item_line(name, "queries", f'"{query}"'), "error",
                       f"group {name!r}: {why}; fix: name a saved query (the file name without .toml)")
    linked = [q.name for q in known_queries.values() if name in q.groups]
    fed_by = tuple(dict.fromkeys([q for q in own if q in known_queries] + linked))
    if not own and not linked:
        checker.report(line(name), "warning", f"group {name!r} is fed by no saved query, so its digests "
                       "stay empty; fix: add queries = [\"...\"] or list the group in a query's groups")

    tags = checker.string_list(name, body, "tags", '["FOXP3", "IL-1 signalling"]') or []
    if vocabulary_tags is not None:
        known_tags = {t.casefold(): t for t in vocabulary_tags}
        for tag in tags:
            if tag.casefold() not in known_tags:
                close = difflib.get_close_matches(tag.casefold(), list(known_tags), n=1)
                hint = f"did you mean {known_tags[close[0]]!r}? " if close else ""
                checker.report(checker.item_line(name, "tags", tag), "warning",
                               f"group {name!r}: tag {tag!r} is not in the vocabulary, so no paper carries "
                               f"it; fix: {hint}use a gene symbol or a pathway/condition name from vocab/")

    schedule = body.get("schedule", DEFAULT_SCHEDULE)
    if not isinstance(schedule, str):
        checker.report(line(name, "schedule"), "error", f"group {name!r}: 'schedule' must be a cron string, "
                       f"not {_type_name(schedule)}; fix: write e.g. schedule = \"0 7 * * 1\" (Mondays 07:00)")
    elif schedules.problem(schedule) is not None:
        checker.report(line(name, "schedule"), "error", f"group {name!r}: schedule {schedule!r} is not a "
                       "valid cron expression; fix: use 5 fields 'minute hour day-of-month month "
                       "day-of-week' (0 or 7 = Sunday), e.g. \"0 7 * * 1\" for Mondays 07:00")
    else:
        fires = list(itertools.islice(schedules.fires(schedules.parse(schedule), _A_MONDAY, _A_MONDAY
                                                      + dt.timedelta(days=14)), 2))
        if len(fires) == 2 and fires[1] - fires[0] < dt.timedelta(hours=23):
            checker.report(line(name, "schedule"), "warning", f"group {name!r}: schedule {schedule!r} sends "
                           "more than one digest a day; fix: send daily or weekly, e.g. \"0 7 * * 1\"")

    timezone = body.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(timezone, str):
        checker.report(line(name, "timezone"), "error", f"group {name!r}: 'timezone' must be a string such as "
                       "\"Europe/Madrid\"")
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            checker.report(line(name, "timezone"), "error", f"group {name!r}: unknown time zone {timezone!r}; "
                           "fix: use an IANA name such as \"Europe/Madrid\" or \"UTC\"")

    max_papers = body.get("max_papers", DEFAULT_MAX_PAPERS)
    if isinstance(max_papers, bool) or not isinstance(max_papers, int) or max_papers < 1:
        checker.report(line(name, "max_papers"), "error", f"group {name!r}: 'max_papers' must be a whole "
                       f"number of at least 1, not {max_papers!r}; fix: write e.g. max_papers = 50")
    elif max_papers > _LARGE_DIGEST:
        checker.report(line(name, "max_papers"), "warning", f"group {name!r}: max_papers = {max_papers} makes "
                       "messages over 100 KB, which Gmail cuts short; fix: keep it at 60 or less (the rest "
                       "comes in the next digest)")

    notify_empty = body.get("notify_empty", False)
    if not isinstance(notify_empty, bool):
        checker.report(line(name, "notify_empty"), "error", f"group {name!r}: 'notify_empty' must be true "
                       "or false (no quotes)")
    group_by = body.get("group_by", "query")
    if group_by not in ("query", "tag"):
        checker.report(line(name, "group_by"), "error", f"group {name!r}: group_by must be \"query\" or "
                       f"\"tag\", not {group_by!r}")
    elif group_by == "tag" and not tags:
        checker.report(line(name, "group_by"), "error", f"group {name!r}: group_by = \"tag\" needs a tags "
                       "list to group by; fix: add tags = [...] or use group_by = \"query\"")

    preprints = body.get("preprints", True)
    if not isinstance(preprints, bool):
        checker.report(line(name, "preprints"), "error", f"group {name!r}: 'preprints' must be true or false "
                       "(no quotes); fix: write preprints = false to leave preprints out")

    if sum(p.severity == "error" for p in checker.problems) > before:
        return None
    return Group(name=name, recipients=tuple(recipients), queries=fed_by, tags=tuple(tags),
                 schedule=str(schedule), timezone=str(timezone), max_papers=int(max_papers),
                 notify_empty=bool(notify_empty), group_by=str(group_by), preprints=preprints is not False)


def _groups_line(path: Path) -> int | None:
    try:
        return toml_lines.locate(path.read_text(encoding="utf-8-sig")).line("groups")
    except (OSError, UnicodeDecodeError):
        return None


def load_groups(path: Path, queries: Sequence[SavedQuery], *,
                vocabulary_tags: Collection[str] | None = None) -> tuple[list[Group], list[Problem]]:
    """Every group in ``path`` without an error (sorted by name), and every problem found.

    ``queries`` are the valid saved queries: a group's ``queries`` list must name them, and a
    query's ``groups`` list must name a group defined here. A missing file is no problem as long
    as no query names a group. ``vocabulary_tags``, when given, lets ``tags`` be checked.
    """
    known = {q.name: q for q in queries}
    data: dict[str, Any] | None = {}
    problems: list[Problem] = []
    checker = _Checker(path, "")
    if path.exists():
        data, checker = _parse(path)
    groups: list[Group] = []
    defined: set[str] = set()
    if data is not None:
        for key in data:
            if key != "groups":
                checker.report(None, "error", f"unknown top-level key {key!r}; fix: define each group as "
                               f"[groups.NAME] (e.g. [groups.headache-lab])")
        tables = data.get("groups", {})
        if not isinstance(tables, dict):
            checker.report(None, "error", "'groups' must be tables; fix: write [groups.NAME] headers")
            tables = {}
        defined = set(tables)
        for name, body in tables.items():
            group = _check_group(name, body, checker, known, path.parent, vocabulary_tags)
            if group is not None:
                groups.append(group)
    problems.extend(checker.problems)
    if data is not None:
        for query in queries:
            for name in query.groups:
                if name not in defined:
                    close = difflib.get_close_matches(name, sorted(defined), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    problems.append(Problem(query.path, _groups_line(query.path),
                                            f"group {name!r} is not defined in {path.name}, so no digest "
                                            f"carries this query's papers to it; fix: {hint}add "
                                            f"[groups.{name}] with its recipients to {path}", "error"))
    problems.sort(key=lambda p: (str(p.path), p.line or 0, p.severity))
    return sorted(groups, key=lambda g: g.name), problems
