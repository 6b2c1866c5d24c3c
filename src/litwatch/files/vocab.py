"""Vocabularies of genes, pathways and conditions, kept as files that librarians edit.

The folder (``queries/vocab/`` by default) holds three kinds of file, read in name order:

``*.tsv``
    Genes, one a line, under a header naming the columns: ``symbol`` (required), ``name``,
    ``aliases``, ``previous``, ``names`` and ``ncbi_gene`` (the NCBI Gene ID); several values in
    one column are separated by ``|``. Symbols, aliases and previous symbols match
    case-sensitively; the name and the other ``names`` match whatever their case.
    ``tagging.hgnc.import_hgnc`` writes the HGNC table in this format, under a first line
    starting ``# Imported from``: such a file is *imported*, any other is *curated*, and where a
    written form belongs to genes of both, the curated genes win (see ``Term.curated``).
``*.toml``
    Pathways, processes and conditions as named keyword sets::

        [pathway."IL-1 signalling"]
        keywords = ["IL-1 signalling", "interleukin-1 signaling"]   # any case
        symbols = ["IL-1R"]                                          # exact case (optional)

    Tables are ``[pathway.NAME]``, ``[condition.NAME]`` or ``[gene.NAME]``.
``stoplist*.txt``
    Written forms never to tag (English words, units, common abbreviations), one a line; ``#``
    starts a comment. An entry with a capital letter stops exactly that form (``CAT``, not
    ``Cat``); an entry in lower case stops the form in any case.

A tag defined twice in one file is an error; the same tag in two files is merged (a local
``genes.tsv`` can add aliases to genes imported into ``hgnc.tsv``). Every problem is reported as a
``QueryFileError`` naming the file and line and saying what to do.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litwatch.errors import QueryFileError
from litwatch.files import toml_lines

KINDS = ("gene", "pathway", "condition")
GENE_COLUMNS = ("symbol", "name", "aliases", "previous", "names", "ncbi_gene")
IMPORTED_MARK = "# Imported from"  # the first line of a genes file written by the HGNC import
TOML_KEYS = ("keywords", "symbols", "description")

# Which of a tag's terms wins when one written form belongs to several tags of one kind:
# the approved symbol of one gene beats a previous symbol or an alias of another.
ROLE_RANK = {"symbol": 0, "keyword": 0, "previous": 1, "alias": 2, "name": 3}

@dataclass(frozen=True)
class Term:
    """One written form of a tag, and where the vocabulary defines it."""

    tag: str
    kind: str  # gene | pathway | condition
    phrase: str
    case_sensitive: bool
    source_line: int
    source_file: Path
    role: str = "alias"  # symbol | previous | alias | name | keyword
    curated: bool = True  # False for a gene of an imported file: a curated gene's form beats it


@dataclass(frozen=True)
class Vocabulary:
    """Every term of a vocabulary folder, its stop-list, and a version that changes with any file."""

    terms: tuple[Term, ...]
    stoplist: frozenset[str]  # as written: see the module docstring for what case means
    version: str  # short sha256 of the files' names and bytes
    files: tuple[Path, ...] = field(default=())
    ncbi_gene: Mapping[str, str] = field(default_factory=dict)  # gene symbol -> NCBI Gene ID

    def tags(self, kind: str | None = None) -> list[str]:
        """The distinct tags, in definition order, optionally of one kind."""
        return list(dict.fromkeys(t.tag for t in self.terms if kind is None or t.kind == kind))


def load_vocabulary(folder: Path) -> Vocabulary:
    """Read a vocabulary folder; raise the first problem found as a ``QueryFileError``."""
    vocab, problems = _read_folder(Path(folder))
    if problems:
        raise problems[0]
    return vocab


def check_vocabulary(folder: Path) -> list[QueryFileError]:
    """Every problem in a vocabulary folder, for ``litwatch queries check``; empty when it is valid."""
    return _read_folder(Path(folder))[1]


def _read_folder(folder: Path) -> tuple[Vocabulary, list[QueryFileError]]:
    problems: list[QueryFileError] = []
    if not folder.is_dir():
        problems.append(QueryFileError(folder, None, "vocabulary folder not found: create it, "
                                       "or import the HGNC table into it"))
        return Vocabulary((), frozenset(), _digest([])), problems
    files = sorted(p for p in folder.iterdir() if p.is_file() and _is_vocab_file(p))
    terms: list[Term] = []
    stop: set[str] = set()
    ncbi_gene: dict[str, str] = {}
    kinds_seen: dict[str, tuple[str, Path, int]] = {}  # tag -> kind, file, line: one kind per tag
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(QueryFileError(path, None, f"not UTF-8 text ({exc.reason} at byte "
                                           f"{exc.start}); save the file as UTF-8"))
            continue
        if path.suffix == ".tsv":
            new = list(_read_genes(path, text, problems, ncbi_gene))
        elif path.suffix == ".toml":
            new = list(_read_toml(path, text, problems))
        else:
            stop.update(_read_stoplist(text))
            continue
        clashes: set[str] = set()
        for term in new:
            first = kinds_seen.setdefault(term.tag, (term.kind, path, term.source_line))
            if first[0] != term.kind and term.tag not in clashes:
                clashes.add(term.tag)
                problems.append(QueryFileError(
                    path, term.source_line,
                    f"{term.tag!r} is a {term.kind} here but a {first[0]} at {first[1]}:{first[2]}; "
                    "give one of them another name"))
        terms.extend(new)
    return Vocabulary(tuple(terms), frozenset(stop), _digest(files), tuple(files), ncbi_gene), problems


def _is_vocab_file(path: Path) -> bool:
    return path.suffix in (".tsv", ".toml") or (path.name.startswith("stoplist") and path.suffix == ".txt")


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def split_cell(value: str) -> list[str]:
    return [v.strip() for v in value.split("|") if v.strip()]


def _read_genes(path: Path, text: str, problems: list[QueryFileError],
                ncbi_gene: dict[str, str]) -> Iterator[Term]:
    header: list[str] | None = None
    curated = not text.startswith(IMPORTED_MARK)
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = line.split("\t")
        if header is None:
            header = [c.strip().lower() for c in cells]
            unknown = [c for c in header if c not in GENE_COLUMNS]
            if unknown or "symbol" not in header or len(set(header)) != len(header):
                problems.append(QueryFileError(
                    path, lineno, f"bad header {cells!r}: the first line must name tab-separated "
                    f"columns from {', '.join(GENE_COLUMNS)}, with symbol among them, each once"))
                return
            continue
        if len(cells) != len(header):
            problems.append(QueryFileError(
                path, lineno, f"expected {len(header)} tab-separated columns ({', '.join(header)}), "
                f"found {len(cells)}; separate columns with one TAB and leave a column empty "
                "rather than dropping it"))
            continue
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        symbol = row["symbol"]
        if not symbol or any(ch.isspace() for ch in symbol):
            problems.append(QueryFileError(
                path, lineno, f"symbol {symbol!r} must be one word: put the official symbol in the "
                "first column and longer names in the name column"))
            continue
        if symbol in seen:
            problems.append(QueryFileError(
                path, lineno, f"gene {symbol!r} is already defined on line {seen[symbol]}; "
                "merge the two lines"))
            continue
        seen[symbol] = lineno

        def term(phrase: str, role: str, case_sensitive: bool) -> Term:
            return Term(symbol, "gene", phrase, case_sensitive, lineno, path, role, curated)

        if row.get("ncbi_gene") and (curated or symbol not in ncbi_gene):
            ncbi_gene[symbol] = row["ncbi_gene"]

        yield term(symbol, "symbol", True)
        if row.get("name"):
            yield term(row["name"], "name", False)
        for alias in split_cell(row.get("aliases", "")):
            yield term(alias, "alias", True)
        for prev in split_cell(row.get("previous", "")):
            yield term(prev, "previous", True)
        for name in split_cell(row.get("names", "")):
            yield term(name, "name", False)


def _read_toml(path: Path, text: str, problems: list[QueryFileError]) -> Iterator[Term]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(QueryFileError(path, toml_lines.decode_error(exc, text)[0],
                                       f"not valid TOML: {exc}; check quotes, brackets and commas"))
        return
    found = toml_lines.locate(text)
    lines = found.tables
    for kind, tables in data.items():
        line: int | None = lines.get((kind,)) or min((v for k, v in lines.items() if k[0] == kind), default=None)
        if kind not in KINDS:
            problems.append(QueryFileError(
                path, line or found.line(kind) or 1,
                f"unknown kind {kind!r}: tables are [pathway.NAME], [condition.NAME] or [gene.NAME]"))
            continue
        if not isinstance(tables, dict):
            problems.append(QueryFileError(
                path, found.line(kind) or 1, f"{kind} must be a table of named {kind}s, "
                f'like [{kind}."NAME"] followed by keywords = [...]'))
            continue
        for tag, body in tables.items():
            where = lines.get((kind, tag)) or line or 1
            yield from _toml_terms(path, found, kind, tag, body, where, problems)


def _toml_terms(path: Path, where_in: toml_lines.TomlLines, kind: str, tag: str, body: Any, where: int,
                problems: list[QueryFileError]) -> Iterator[Term]:
    if not tag.strip():
        problems.append(QueryFileError(path, where, f"empty {kind} name: give the table a name"))
        return
    if not isinstance(body, dict):
        problems.append(QueryFileError(
            path, where, f'{kind} {tag!r} must be a table: [{kind}."{tag}"] then keywords = [...]'))
        return
    for key in body:
        if key not in TOML_KEYS:
            problems.append(QueryFileError(
                path, where_in.line(kind, tag, key) or where,
                f"unknown key {key!r} in {kind} {tag!r}: use {', '.join(TOML_KEYS)}"))
    found = bad = 0
    for key, role, case_sensitive in (("keywords", "keyword", False), ("symbols", "symbol", True)):
        if key not in body:
            continue
        values = body[key]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            bad += 1
            problems.append(QueryFileError(
                path, where_in.line(kind, tag, key) or where,
                f'{key} of {kind} {tag!r} must be a list of strings, like {key} = ["a", "b"]'))
            continue
        for value in values:
            if value.strip():
                found += 1
                yield Term(tag, kind, value.strip(), case_sensitive, where, path, role)
    if not found and not bad:
        problems.append(QueryFileError(
            path, where, f"{kind} {tag!r} has no keywords: add keywords = [\"...\"]"))


def _read_stoplist(text: str) -> Iterable[str]:
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            yield entry
