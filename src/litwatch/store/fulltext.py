"""Full-text search terms: what a user types, made safe for SQLite FTS5 and PostgreSQL.

What a user types is never handed to the database as query syntax: ``parse_text`` cuts it into
terms (words, ``"quoted phrases"``, ``prefix*``), and ``match`` passes each term as a bound
parameter: for SQLite FTS5 its tokens each quoted as a string, for PostgreSQL as text that
``phraseto_tsquery`` (which knows no operators) turns into a ``tsquery``; both fold accents
(PostgreSQL through ``unaccent``, migration 0009). A row of the ``papers_fts`` index (migration
0003) matches when it holds every term in its title, abstract or keywords. ``SearchTerm`` is named so beside ``files.vocab.Term``, a vocabulary's entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

_CHUNK = re.compile(r'"([^"]*)"?|(\S+)')
_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SearchTerm:
    """One thing to find: a word, or several that must stand together; ``prefix`` for ``word*``.

    ``text`` is the term as typed (PostgreSQL splits ``IL-6`` its own way, so it gets it whole).
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    text: str = field(default="", compare=False, repr=False)


def parse_text(text: str) -> list[SearchTerm]:
    """Cut what a user typed into search terms; punctuation and operators count as spaces.

    ``IL-1β`` is one term whose tokens must stand together (as the indexes split it), so is a
    ``"quoted phrase"``; a trailing ``*`` asks for a prefix. Nothing else has a meaning: ``AND``,
    ``NEAR``, ``col:``, ``^``, ``%`` and unbalanced quotes are searched for as text or dropped.

    >>> parse_text('FOXP3 "regulatory T cells" migrain* IL-1β')  # doctest: +NORMALIZE_WHITESPACE
    [SearchTerm(tokens=('FOXP3',), prefix=False),
     SearchTerm(tokens=('regulatory', 'T', 'cells'), prefix=False),
     SearchTerm(tokens=('migrain',), prefix=True), SearchTerm(tokens=('IL', '1β'), prefix=False)]
    """
    text = unicodedata.normalize("NFC", text).replace("\x00", " ")
    terms: list[SearchTerm] = []
    for match in _CHUNK.finditer(text):
        phrase, word = match.group(1), match.group(2)
        chunk = phrase if phrase is not None else word
        tokens = tuple(_TOKEN.findall(chunk))
        if tokens:
            prefix = phrase is None and chunk.rstrip().endswith("*")
            terms.append(SearchTerm(tokens, prefix, chunk.strip().rstrip("*")))
    return terms


def fts5_expression(terms: Sequence[SearchTerm]) -> str:
    """An SQLite FTS5 MATCH expression in which every token is a quoted string (never syntax).

    >>> fts5_expression([SearchTerm(("IL", "1β")), SearchTerm(("migrain",), prefix=True)])
    '"IL 1β" AND "migrain" *'
    """
    parts = ['"' + " ".join(t.tokens) + '"' + (" *" if t.prefix else "") for t in terms]
    return " AND ".join(parts)


_papers_fts_sqlite = sa.table("papers_fts", sa.column("rowid", sa.Integer))
_papers_fts_pg = sa.table("papers_fts", sa.column("pmid", sa.Integer), sa.column("document"))
# 'english' with accents folded (migration 0009), as SQLite's index folds them
_ENGLISH: sa.ColumnElement[Any] = sa.literal_column("'litwatch_english'::regconfig")


def _tsquery(term: SearchTerm, name: str) -> sa.ColumnElement[Any]:
    if term.prefix:
        # tokens are letters and digits only, so this string holds no tsquery syntax but ours
        lexemes = " <-> ".join(f"'{t}'" for t in term.tokens) + ":*"
        return sa.func.to_tsquery(_ENGLISH, sa.bindparam(name, lexemes, type_=sa.Text))
    return sa.func.phraseto_tsquery(_ENGLISH, sa.bindparam(name, term.text or " ".join(term.tokens), type_=sa.Text))


def match(terms: Sequence[SearchTerm], dialect: str) -> tuple[sa.ColumnElement[int], sa.ColumnElement[bool]]:
    """The full-text index's PMID column, and the condition that a row holds every term."""
    if dialect == "postgresql":
        query = _tsquery(terms[0], "fts_0")
        for i, term in enumerate(terms[1:], start=1):
            query = query.op("&&")(_tsquery(term, f"fts_{i}"))
        return _papers_fts_pg.c.pmid, _papers_fts_pg.c.document.op("@@")(query)
    expression = sa.bindparam("fts", fts5_expression(terms), type_=sa.Text)
    return _papers_fts_sqlite.c.rowid, sa.literal_column("papers_fts").op("MATCH")(expression)
