"""Saved queries: one TOML file per PubMed search, checked before anything is sent to NCBI.

A librarian keeps ``queries/<name>.toml`` files; the file stem is the query's name. Keys:
``term`` (required, the PubMed query), ``title``, ``schedule`` (5-field cron), ``start`` (TOML
date where the first run begins), ``groups`` (the digest groups it feeds) and ``preprints`` (the
same intent as a Europe PMC search, checked by ``preprint_syntax.lint_preprints``). ``groups.toml``
and the ``vocab/`` folder beside them are reserved for other purposes.

Every mistake is reported as a :class:`Problem` naming the file and TOML line and saying how to
fix it. Errors stop ``litwatch queries check`` (and a run); warnings are only printed. The
query syntax checks live in ``query_syntax.lint_term``, a pure function over the term text.
"""

from __future__ import annotations

import datetime
import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from litwatch.errors import QueryFileError
from litwatch.files import toml_lines
from litwatch.files.preprint_syntax import lint_preprints
from litwatch.files.query_syntax import lint_term
from litwatch.scheduling import schedules

Severity = Literal["error", "warning"]

ALLOWED_KEYS = ("term", "title", "schedule", "start", "groups", "preprints")
DEFAULT_LOOKBACK = datetime.timedelta(days=30)
RESERVED_FILE = "groups.toml"
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?")


@dataclass(frozen=True)
class SavedQuery:
    """A query file that passed the check; ``term`` has its whitespace collapsed to single spaces."""

    name: str
    term: str
    title: str
    schedule: str | None
    start: datetime.date
    groups: tuple[str, ...]
    path: Path
    preprints: str | None = None  # the Europe PMC search, whitespace collapsed; None: PubMed only


@dataclass(frozen=True)
class Problem:
    """One mistake in a query file; ``line`` is None when it concerns the whole file."""

    path: Path
    line: int | None
    message: str
    severity: Severity

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.severity}: {self.message}"

    def to_error(self) -> QueryFileError:
        """The same problem as an exception, for callers that stop at the first error."""
        return QueryFileError(self.path, self.line, self.message)


_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _term_lines(text: str, key_line: int, value: str) -> list[int]:
    """The TOML line each character of the parsed ``term`` string came from."""
    after = "\n".join(text.split("\n")[key_line - 1:]).split("=", 1)[1].lstrip(" \t")
    delim = next((d for d in ('"""', "'''", '"', "'") if after.startswith(d)), "")
    body, line = after[len(delim):], key_line
    if len(delim) == 3 and body.startswith(("\n", "\r\n")):
        body, line = body[body.index("\n") + 1:], line + 1
    decoded: list[str] = []
    lines: list[int] = []
    i = 0
    while delim and len(decoded) < len(value) and i < len(body):
        c = body[i]
        if c == "\\" and delim[0] == '"':
            nxt = body[i + 1: i + 2]
            if nxt.isspace():  # line-ending backslash: the newline and following blanks vanish
                i += 1
                while i < len(body) and body[i].isspace():
                    line += body[i] == "\n"
                    i += 1
                continue
            width = {"u": 4, "U": 8}.get(nxt, 0)
            c = chr(int(body[i + 2: i + 2 + width], 16)) if width else _ESCAPES.get(nxt, nxt)
            i += 2 + width
        else:
            i += 1
            if c == "\r" and body[i: i + 1] == "\n":
                continue
        decoded.append(c)
        lines.append(line)
        if body[i - 1] == "\n":  # a real line break, not an escaped \\n
            line += 1
    if "".join(decoded) == value:
        return lines
    first = key_line + (len(delim) == 3 and after[3:].lstrip("\r").startswith("\n"))
    return [first + value[:n].count("\n") for n in range(len(value))]


def _cron_problems(expr: str, today: datetime.date) -> list[tuple[Severity, str]]:
    """Check a 5-field cron expression the way the scheduler reads it (standard cron: 0 = Sunday)."""
    problem = schedules.problem(expr)
    if problem is not None:
        return [("error", f"{problem}; fix: use 5 fields 'minute hour day-of-month month day-of-week', "
                 "e.g. '0 6 * * mon' (Mondays 06:00)")]
    noon = datetime.datetime.combine(today, datetime.time(12), datetime.UTC)
    first = schedules.next_fire(schedules.Schedule(expr), noon)
    second = schedules.next_fire(schedules.Schedule(expr), first) if first else None
    if first and second and second - first < datetime.timedelta(hours=1):
        return [("warning", f"schedule {expr!r} runs more than once an hour, but PubMed adds papers "
                 "once a day; fix: run weekly or daily, e.g. '0 6 * * mon'")]
    return []


def query_files(folder: Path) -> list[Path]:
    """Every ``*.toml`` directly in ``folder`` except ``groups.toml`` (``vocab/`` is not entered)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".toml" and p.name != RESERVED_FILE
                  and not p.name.startswith(".") and p.is_file())


def _type_name(value: object) -> str:
    names = {str: "a string", bool: "true/false", int: "a number", float: "a number", list: "a list",
             dict: "a table", datetime.datetime: "a date-time", datetime.date: "a date",
             datetime.time: "a time"}
    return names.get(type(value), type(value).__name__)


def load_query(path: Path, *, today: datetime.date) -> tuple[SavedQuery | None, list[Problem]]:
    """Read and check one query file; the query is None when any error was found."""
    problems: list[Problem] = []

    def report(line: int | None, severity: Severity, message: str) -> None:
        problems.append(Problem(path, line, message, severity))

    name = path.stem
    if not _SLUG.fullmatch(name):
        slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_") or "my-query"
        report(None, "error", f"query name {name!r} (the file name) is not a safe name: use lower-case "
               f"letters, digits, '-' and '_'; fix: rename the file to {slug}.toml")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        report(None, "error", f"cannot read the file: {exc.strerror}; fix: check it exists and is readable")
        return None, problems
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report(raw[: exc.start].count(b"\n") + 1, "error",
               "the file is not UTF-8 text; fix: save it as UTF-8 in your editor")
        return None, problems
    where = toml_lines.locate(text)
    keys, left_open = where.top_level, where.open_string
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column, detail = toml_lines.decode_error(exc, text)
        twice = [k for k, lines in keys.items() if len(lines) > 1]
        if twice:
            report(keys[twice[0]][1], "error", f"{twice[0]!r} is set twice (lines "
                   f"{keys[twice[0]][0]} and {keys[twice[0]][1]}); fix: keep one of them")
        elif column is not None:
            report(line, "error", f"not valid TOML: {detail} at column "
                   f"{column}; fix: check the quotes and brackets on this line (a term containing "
                   "double quotes is easiest written between ''' and ''')")
        elif left_open:
            report(left_open[0], "error", f"not valid TOML: Unterminated string: the {left_open[1]} "
                   f"opened on this line is never closed; fix: add {left_open[1]} after the end of the term")
        else:
            report(line, "error", f"not valid TOML: {detail} at the end of the file; "
                   "fix: close the string, list or table left open")
        return None, problems

    def line_of(key: str) -> int | None:
        return keys.get(key, [None])[0]

    for key in data:
        if key not in ALLOWED_KEYS:
            close = difflib.get_close_matches(key, ALLOWED_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            report(line_of(key), "error", f"unknown key {key!r}; fix: {hint}the keys are "
                   f"{', '.join(ALLOWED_KEYS)} (a [table] header is not used in query files)")

    term = data.get("term")
    if "term" not in data:
        report(None, "error", "missing key 'term' (the PubMed query); fix: add term = '''...''' "
               "with the query, e.g. term = '''\"Migraine Disorders\"[Mesh] OR migrain*[tiab]'''")
    elif not isinstance(term, str):
        report(line_of("term"), "error", f"'term' must be a string, not {_type_name(term)}; fix: write "
               "the query between ''' and '''")
        term = None
    else:
        term_line = line_of("term") or 1
        char_lines = _term_lines(text, term_line, term) if term else []
        for offset, severity, message in lint_term(term):
            line = char_lines[offset] if offset < len(char_lines) else term_line
            report(line, "error" if severity == "error" else "warning", message)

    title = data.get("title", name)
    if not isinstance(title, str):
        report(line_of("title"), "error", f"'title' must be a string, not {_type_name(title)}; "
               "fix: put it in double quotes")
    schedule = data.get("schedule")
    if schedule is not None and not isinstance(schedule, str):
        report(line_of("schedule"), "error", f"'schedule' must be a cron string, not "
               f"{_type_name(schedule)}; fix: write e.g. schedule = \"0 6 * * mon\"")
    elif isinstance(schedule, str):
        for severity, message in _cron_problems(schedule, today):
            report(line_of("schedule"), severity, message)

    start = data.get("start", today - DEFAULT_LOOKBACK)
    if isinstance(start, datetime.datetime) or not isinstance(start, datetime.date):
        example = "2025-01-31"
        if isinstance(start, datetime.datetime):
            example = start.date().isoformat()
        elif isinstance(start, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", start.strip()):
            example = start.strip()
        report(line_of("start"), "error", f"'start' must be a TOML date, not {_type_name(start)}; "
               f"fix: write start = {example} (no quotes, no time)")
    elif start > today:
        report(line_of("start"), "warning", f"start {start} is after today ({today}): runs find "
               "nothing before that day; fix: use a past date if you want the back-catalogue")

    groups = data.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        report(line_of("groups"), "error", "'groups' must be a list of group names; "
               "fix: write e.g. groups = [\"headache-lab\"]")
    else:
        for group in groups:
            if not _SLUG.fullmatch(group):
                report(line_of("groups"), "error", f"group name {group!r} is not a safe name; fix: use "
                       "the lower-case name used in groups.toml, e.g. \"headache-lab\"")
        for group in sorted({g for g in groups if groups.count(g) > 1}):
            report(line_of("groups"), "warning", f"group {group!r} is listed twice; fix: list it once")

    preprints = _check_preprints(data, text, line_of("preprints"), report)

    problems.sort(key=lambda p: (p.line or 0, p.severity))
    if any(p.severity == "error" for p in problems) or not (
            isinstance(term, str) and isinstance(title, str) and isinstance(start, datetime.date)):
        return None, problems
    query = SavedQuery(name=name, term=" ".join(term.split()), title=title.strip() or name,
                       schedule=schedule.strip() if schedule else None, start=start,
                       groups=tuple(dict.fromkeys(groups)), path=path, preprints=preprints)
    return query, problems


def _check_preprints(data: dict[str, Any], text: str, key_line: int | None,
                     report: Callable[[int | None, Severity, str], None]) -> str | None:
    """The query's Europe PMC search, whitespace collapsed, after reporting its mistakes by line."""
    value = data.get("preprints")
    if value is None:
        return None
    if not isinstance(value, str):
        report(key_line, "error", f"'preprints' must be a string, not {_type_name(value)}; fix: write the "
               "Europe PMC search between ''' and '''")
        return None
    line = key_line or 1
    char_lines = _term_lines(text, line, value) if value else []
    for offset, severity, message in lint_preprints(value):
        report(char_lines[offset] if offset < len(char_lines) else line,
               "error" if severity == "error" else "warning", message)
    return " ".join(value.split())


def load_queries(folder: Path, *, today: datetime.date) -> tuple[list[SavedQuery], list[Problem]]:
    """Every saved query in ``folder`` that has no error (sorted by name), and all problems found."""
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        return [], [Problem(folder, None, f"the queries folder {state}; fix: create it "
                            f"(mkdir {folder}) or set LITWATCH_QUERIES_DIR to the folder that holds your "
                            "query files", "error")]
    queries: list[SavedQuery] = []
    problems: list[Problem] = []
    files = query_files(folder)
    same_name: dict[str, list[Path]] = {}
    for path in files:
        same_name.setdefault(path.stem.casefold(), []).append(path)
    for path in files:
        query, found = load_query(path, today=today)
        problems.extend(found)
        others = [p.name for p in same_name[path.stem.casefold()] if p != path]
        if others:
            problems.append(Problem(path, None, f"duplicate query name: {path.name} and "
                                    f"{', '.join(others)} differ only by case, so neither is run; "
                                    "fix: rename or merge them", "error"))
        elif query is not None:
            queries.append(query)
    if not files:
        problems.append(Problem(folder, None, "no saved queries here; fix: add a file such as "
                                f"{folder / 'my-topic.toml'} with term = '''...'''", "warning"))
    return sorted(queries, key=lambda q: q.name), problems


def check_queries(folder: Path, *, today: datetime.date) -> list[Problem]:
    """All problems in the folder's query files, errors and warnings, file by file."""
    return load_queries(folder, today=today)[1]
