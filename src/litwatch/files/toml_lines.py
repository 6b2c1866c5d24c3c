"""Where things stand in a TOML file, for messages that name the line.

``tomllib`` reports no positions for a file that parses, and only a line and column in the text of
its error for one that does not. The checks of saved queries, digest groups and vocabularies all
need "the line of this key" to point a librarian at a slip; they find it here, one reading for all.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

# one part of a key or table path: bare, "basic" (with escapes) or 'literal'
_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_PATH = rf"\s*{_PART}(?:\s*\.\s*{_PART})*\s*"
_HEADER = re.compile(rf"^\s*(\[\[?)({_PATH})\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^({_PATH})=")
_ONE_PART = re.compile(rf"\s*({_PART})\s*\.?")
_ERROR_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_ERROR_END = re.compile(r"\s*\(at end of document\)$")


def _parts(raw: str) -> tuple[str, ...]:
    parts: list[str] = []
    for m in _ONE_PART.finditer(raw.strip()):
        part = m.group(1)
        if part.startswith('"'):
            part = part[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


@dataclass
class TomlLines:
    """The lines of a TOML text, with the line of every table header and key assignment."""

    raw: list[str]
    tables: dict[tuple[str, ...], int] = field(default_factory=dict)
    """First line of each ``[a.b]`` or ``[[a.b]]`` header, by its path."""
    keys: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    """Every line that sets a key, by its full path (the table's path, then the key's parts)."""
    top_level: dict[str, list[int]] = field(default_factory=dict)
    """Lines that set a top-level name before the first table, and the first table header's line."""
    open_string: tuple[int, str] | None = None
    """A multi-line string never closed: the line it opens on and its quotes."""

    def line(self, *path: str) -> int | None:
        """The first line setting the key ``path``, else the line of the table ``path``, else None."""
        if path in self.keys:
            return self.keys[path][0]
        return self.tables.get(path)

    def is_boundary(self, number: int) -> bool:
        """Whether line ``number`` starts a new key or table (where a multi-line value must end)."""
        text = self.raw[number - 1]
        return bool(_HEADER.match(text) or _KEY.match(text))

    def item_line(self, item: str, *path: str) -> int | None:
        """The line where ``item`` is written in the (possibly multi-line) value of key ``path``;
        the key's own line when the item is not found before the next key or table."""
        start = self.line(*path)
        if start is None:
            return None
        for number in range(start, min(start + 200, len(self.raw) + 1)):
            if item in self.raw[number - 1]:
                return number
            if number > start and self.is_boundary(number):
                break
        return start


def locate(text: str) -> TomlLines:
    """Read where each table and key of ``text`` stands (the text need not be valid TOML)."""
    found = TomlLines(text.split("\n"))
    table: tuple[str, ...] = ()
    open_delim = ""
    seen_table = False
    for number, line in enumerate(found.raw, 1):
        if open_delim:
            if open_delim in line:
                open_delim = ""
            continue
        if (header := _HEADER.match(line)) is not None:
            table = _parts(header.group(2))
            found.tables.setdefault(table, number)
            if not seen_table and table:
                found.top_level.setdefault(table[0], []).append(number)
            seen_table = True
            continue
        if (key := _KEY.match(line)) is None:
            continue
        parts = _parts(key.group(1))
        found.keys.setdefault(table + parts, []).append(number)
        if not seen_table and parts:
            found.top_level.setdefault(parts[0], []).append(number)
        value = line[key.end():].lstrip()
        for delim in ('"""', "'''"):
            if value.startswith(delim) and value.count(delim) == 1:
                open_delim, found.open_string = delim, (number, delim)
    if not open_delim:
        found.open_string = None
    return found


def decode_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, int | None, str]:
    """Where ``tomllib`` stopped (line, column; "at end of document" is the last line that has
    text) and its message without the position suffix."""
    message = str(exc)
    if (at := _ERROR_AT.search(message)) is not None:
        return int(at.group(1)), int(at.group(2)), message[: at.start()].strip()
    return len(text.rstrip().split("\n")), None, _ERROR_END.sub("", message).strip()
