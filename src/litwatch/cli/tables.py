"""The one table printer: aligned columns that fit the terminal, every column with ``--wide``.

A command names the columns a user needs to see that it worked (``narrow``) and the text columns
that may be shortened with "…" to fit (``clip``, or ``clip_left`` for paths, whose file name is
the part worth keeping). ``--wide`` shows every column, whole, however wide the lines get.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

_WIDE = "litwatch.wide"
MIN_CLIP = 8  # a column is never cut narrower than this (or its header)
F = TypeVar("F", bound=Callable[..., Any])


def terminal_width() -> int:
    """The terminal's width in columns ($COLUMNS first), 80 when unknown (a pipe, a file)."""
    return shutil.get_terminal_size((80, 24)).columns


def _remember_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[_WIDE] = value


def wide_option(command: F) -> F:
    """``--wide`` on a command: its tables show every column, unshortened."""
    option = click.option("--wide", is_flag=True, expose_value=False, callback=_remember_wide,
                          help="Show every column of the table, whole, even if lines get longer than the terminal.")
    return option(command)


def wide() -> bool:
    """Whether the command running now was given ``--wide``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_WIDE))


def _cut(text: str, width: int, *, left: bool) -> str:
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1:] if left else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, width: int | None = None,
          narrow: Collection[str] | None = None, clip: Collection[str] = (), clip_left: Collection[str] = (),
          max_widths: Mapping[str, int] | None = None, everything: bool = False) -> str:
    """Rows under headers: text left, numbers (columns of ints) right, two spaces apart.

    Unless ``everything``: only the ``narrow`` columns (all when None), each cut to
    ``max_widths``, then the ``clip``/``clip_left`` columns, widest first, are shortened until
    the lines fit ``width`` (the terminal's when None).
    """
    keep = [i for i, h in enumerate(headers) if everything or narrow is None or h in narrow]
    limit = None if everything else (width if width is not None else terminal_width())
    caps = {} if everything else dict(max_widths or {})
    cutting = set() if everything else set(clip) | set(clip_left)
    heads = [headers[i] for i in keep]
    cells = [[str(row[i]) for i in keep] for row in rows]
    for row in cells:
        for j, head in enumerate(heads):
            if head in cutting:
                row[j] = " ".join(row[j].split())
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in keep]
    widths = [max([len(h), *(len(r[j]) for r in cells)]) for j, h in enumerate(heads)]
    widths = [min(w, caps[h]) if h in caps else w for w, h in zip(widths, heads)]
    if limit is not None:
        floors = [min(w, max(MIN_CLIP, len(h))) for w, h in zip(widths, heads)]
        excess = sum(widths) + 2 * (len(widths) - 1) - limit
        while excess > 0:
            room = [j for j, h in enumerate(heads) if h in cutting and widths[j] > floors[j]]
            if not room:
                break
            widest = max(room, key=lambda j: widths[j])
            widths[widest] -= 1
            excess -= 1
    lines = []
    for row in [list(heads), *cells]:
        parts = []
        for j, (text, w) in enumerate(zip(row, widths)):
            text = _cut(text, w, left=heads[j] in clip_left)
            parts.append(text.rjust(w) if numeric[j] else text.ljust(w))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Layout:
    """How one command's tables fit a terminal; called like ``table(headers, rows)``.

    ``--wide`` (``wide()``) shows every column whole.
    """

    narrow: Collection[str] | None = None
    clip: Collection[str] = ()
    clip_left: Collection[str] = ()
    max_widths: Mapping[str, int] = field(default_factory=dict)

    def __call__(self, headers: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = None) -> str:
        return table(headers, rows, width=width, narrow=self.narrow, clip=self.clip, clip_left=self.clip_left,
                     max_widths=self.max_widths, everything=wide())
