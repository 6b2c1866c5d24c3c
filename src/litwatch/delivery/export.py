"""Writing papers out: CSV, JSON, BibTeX, RIS (the terminal table is the CLI's, in ``cli/search.py``).

Pure functions over ``StoredPaper`` records; the CLI streams ``search.iter_papers`` into them.
BibTeX and RIS aim at what Zotero and EndNote import cleanly: authors as ``Last, First``, the
journal, year, volume, issue, pages (MEDLINE's ``1797-8`` written out as ``1797-1798``), DOI,
PMID, abstract, and the paper's keywords plus litwatch's tags as keywords (Zotero makes them tags).
A preprint (``StoredPaper.is_preprint``) has no PMID: JSON and CSV give its ``preprint_id``
(``PPR1036674``), ``server`` and ``version`` with ``pmid`` empty; BibTeX writes it as ``@misc``
(``howpublished`` its server) and RIS as ``GEN`` (``PB`` its server, ``AN`` its Europe PMC id),
both with a note that it is a preprint, not peer reviewed.
In BibTeX, characters TeX treats specially are escaped and Latin accented letters become TeX
accent commands (``{\\"o}``); other letters (Greek, CJK) stay UTF-8, which Zotero, JabRef and
biber read. RIS is UTF-8, one line per value.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from litwatch.errors import InputError
from litwatch.files.atomic import replacing
from litwatch.records import Author
from litwatch.store.stored import StoredPaper

FORMATS = ("csv", "json", "bibtex", "ris")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CSV_COLUMNS = (
    "pmid", "preprint_id", "server", "version", "doi", "pmcid", "title", "authors", "journal", "journal_abbrev",
    "volume", "issue", "pages", "pub_year", "pub_date", "retracted", "tags", "tag_origins", "tag_identifiers",
    "queries", "keywords", "first_seen", "url", "abstract",
)
LIST_SEPARATOR = "; "

_PAGES = re.compile(r"^([A-Za-z]*)(\d+)\s*[-\u2010-\u2013]\s*([A-Za-z]*)(\d+)$")
_SPACE = re.compile(r"\s+")


def date_precision(paper: StoredPaper) -> str | None:
    """How much of ``pub_date`` is real: "day", "month" or "year" (the stored date fills in 1s)."""
    if paper.pub_date is None:
        return "year" if paper.pub_year else None
    parts = (paper.pub_date_text or "").split()
    if len(parts) >= 3 and parts[2].isdigit():
        return "day"
    if len(parts) >= 2:
        return "month"
    return "year" if paper.pub_date_text else "day"


def split_pages(pages: str | None) -> tuple[str | None, str | None]:
    """First and last page, MEDLINE's shortened last page written out.

    >>> split_pages("1797-8"), split_pages("e1500372"), split_pages("S12-5"), split_pages("964-971.e5")
    (('1797', '1798'), ('e1500372', None), ('S12', 'S15'), ('964', '971.e5'))
    """
    if not pages:
        return None, None
    match = _PAGES.match(pages.strip())
    if not match:
        parts = pages.strip().split("-")
        return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else (pages.strip(), None)
    prefix, first, end_prefix, last = match.groups()
    if len(last) < len(first):
        last = first[: len(first) - len(last)] + last
    return prefix + first, (end_prefix or prefix) + last


def json_object(paper: StoredPaper) -> dict[str, Any]:
    """Everything litwatch knows about the paper, as JSON types (dates in ISO 8601)."""
    return {
        "pmid": None if paper.is_preprint else paper.pmid,
        "preprint_id": paper.identifier if paper.is_preprint else None,
        "server": paper.server,
        "version": paper.version,
        "doi": paper.doi,
        "pmcid": paper.pmcid,
        "title": paper.title,
        "authors": [citation_name(a) for a in paper.authors],
        "journal": paper.journal,
        "journal_abbrev": paper.journal_abbrev,
        "issn": paper.issn,
        "volume": paper.volume,
        "issue": paper.issue,
        "pages": paper.pages,
        "pub_year": paper.pub_year,
        "pub_date": paper.pub_date.isoformat() if paper.pub_date else None,
        "pub_date_text": paper.pub_date_text,
        "languages": list(paper.languages),
        "retracted": paper.retracted,
        "tags": paper.tag_names,
        "tag_kinds": dict(paper.tags),
        "tag_origins": {tag: origin for tag, origin, _ in paper.tag_origins},  # pubtator3 | dictionary
        "tag_identifiers": {tag: ident for tag, _, ident in paper.tag_origins if ident},  # NCBIGene:..., MESH:...
        "queries": list(paper.queries),
        "keywords": [k.text for k in paper.keywords],
        "first_seen": paper.first_seen.isoformat() if paper.first_seen else None,
        "url": paper.url,
        "abstract": paper.abstract,
    }


def csv_row(paper: StoredPaper) -> dict[str, str]:
    """One CSV row: lists joined with ``"; "``, booleans as ``true``/``false``, empty for unknown."""
    obj = json_object(paper)
    row: dict[str, str] = {}
    for column in CSV_COLUMNS:
        value = obj[column]
        if isinstance(value, list):
            row[column] = LIST_SEPARATOR.join(value)
        elif isinstance(value, dict):
            row[column] = LIST_SEPARATOR.join(f"{key}={item}" for key, item in value.items())
        elif isinstance(value, bool):
            row[column] = "true" if value else "false"
        else:
            row[column] = "" if value is None else str(value)
    return row


# TeX accent command for each combining mark; letters take a space after them ({\c c})
_ACCENTS = {
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u", "\u0307": ".",
    "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0323": "d", "\u0327": "c", "\u0328": "k",
}
_LETTERS = {
    "ß": r"{\ss}", "æ": r"{\ae}", "Æ": r"{\AE}", "œ": r"{\oe}", "Œ": r"{\OE}", "ø": r"{\o}", "Ø": r"{\O}",
    "å": r"{\aa}", "Å": r"{\AA}", "ł": r"{\l}", "Ł": r"{\L}", "ı": r"{\i}", "đ": r"{\dj}", "Đ": r"{\DJ}",
}
_SPECIAL = {
    "\\": r"{\textbackslash}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "~": r"{\textasciitilde}", "^": r"{\textasciicircum}",
}


def _tex_char(char: str) -> str:
    if char in _SPECIAL:
        return _SPECIAL[char]
    if char.isascii():
        return char
    if char in _LETTERS:
        return _LETTERS[char]
    decomposed = unicodedata.normalize("NFD", char)
    base, marks = decomposed[0], decomposed[1:]
    if base.isascii() and base.isalpha() and len(marks) == 1 and marks in _ACCENTS:
        command = _ACCENTS[marks]
        return f"{{\\{command}{' ' if command.isalpha() else ''}{base}}}"
    return char


def bibtex_escape(text: str) -> str:
    r"""Text safe inside a braced BibTeX field: balanced, no TeX specials, accents as TeX commands.

    >>> print(bibtex_escape("Sjögren {50%} & x_y~ IL-1β"))
    Sj{\"o}gren \{50\%\} \& x\_y{\textasciitilde} IL-1β
    """
    text = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return "".join(_tex_char(c) for c in text)


def citation_name(author: Author) -> str:
    """``Last, Fore`` (the form citation managers split on), or the group's name.

    >>> citation_name(Author("Müller", "Jörg", "J")), citation_name(Author(collective_name="MIGRAINE Group"))
    ('Müller, Jörg', 'MIGRAINE Group')
    """
    if author.collective_name:
        return author.collective_name
    given = author.fore_name or author.initials
    return f"{author.last_name}, {given}" if author.last_name and given else (author.last_name or given or "")


def _bibtex_author(author: Author) -> str:
    if author.collective_name:
        return "{" + bibtex_escape(author.collective_name) + "}"
    return bibtex_escape(citation_name(author))


def _notes(paper: StoredPaper) -> str | None:
    """What a reader must know before citing: a preprint (and its version), a retraction."""
    notes = []
    if paper.is_preprint:
        notes.append("Preprint (not peer reviewed)" + (f", version {paper.version}" if paper.version else ""))
    if paper.retracted:
        notes.append("Retracted publication")
    return "; ".join(notes) or None


def bibtex_entry(paper: StoredPaper) -> str:
    """One ``@article`` entry keyed ``pmidNNNN``, or for a preprint one ``@misc`` keyed by its id."""
    first, last = split_pages(paper.pages)
    article = not paper.is_preprint
    journal = paper.journal or paper.journal_abbrev or ""
    fields: list[tuple[str, str | None]] = [
        ("author", " and ".join(_bibtex_author(a) for a in paper.authors) or None),
        ("title", bibtex_escape(paper.title) if paper.title else None),
        ("journal", bibtex_escape(journal) or None if article else None),
        ("howpublished", None if article else bibtex_escape(paper.server or journal) or None),
        ("shortjournal", bibtex_escape(paper.journal_abbrev) if paper.journal_abbrev and article else None),
        ("year", str(paper.pub_year) if paper.pub_year else None),
        ("volume", bibtex_escape(paper.volume) if paper.volume else None),
        ("number", bibtex_escape(paper.issue) if paper.issue else None),
        ("pages", bibtex_escape(first) + (f"--{bibtex_escape(last)}" if last else "") if first else None),
        ("issn", bibtex_escape(paper.issn) if paper.issn else None),
        ("doi", bibtex_escape(paper.doi) if paper.doi else None),
        ("pmid", str(paper.pmid) if article else None),
        ("pmcid", bibtex_escape(paper.pmcid) if paper.pmcid else None),
        ("url", paper.url),
        ("language", bibtex_escape(paper.languages[0]) if paper.languages else None),
        ("abstract", bibtex_escape(paper.abstract) if paper.abstract else None),
        ("keywords", ", ".join(bibtex_escape(k) for k in _keywords(paper)) or None),
        ("note", _notes(paper)),
    ]
    lines = [f"@article{{pmid{paper.pmid}," if article else f"@misc{{{paper.identifier},"]
    precision = date_precision(paper)
    for name, value in fields:
        if value is not None:
            lines.append(f"  {name} = {{{value}}},")
        if name == "year" and paper.pub_date and precision in ("month", "day"):
            lines.append(f"  month = {MONTHS[paper.pub_date.month - 1]},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _keywords(paper: StoredPaper) -> list[str]:
    """The paper's own keywords, then litwatch's tags, once each (case-insensitively)."""
    seen: dict[str, str] = {}
    for word in [k.text for k in paper.keywords] + paper.tag_names:
        word = _SPACE.sub(" ", word).strip()
        if word:
            seen.setdefault(word.casefold(), word)
    return list(seen.values())


def _ris_value(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def ris_record(paper: StoredPaper) -> str:
    """One RIS record (``TY  - JOUR`` ... ``ER  -``); PMID in AN (EndNote's accession number). A
    preprint is ``TY  - GEN`` with its server as publisher (PB) and its Europe PMC id in AN."""
    first, last = split_pages(paper.pages)
    article = not paper.is_preprint
    lines: list[tuple[str, str | None]] = [("TY", "JOUR" if article else "GEN"), ("TI", paper.title)]
    lines += [("AU", citation_name(a)) for a in paper.authors]
    if article:
        lines += [("T2", paper.journal or paper.journal_abbrev), ("J2", paper.journal_abbrev)]
    else:
        lines.append(("PB", paper.server or paper.journal))
    lines.append(("PY", str(paper.pub_year) if paper.pub_year else None))
    precision = date_precision(paper)
    if paper.pub_date and precision in ("month", "day"):
        day = f"{paper.pub_date.day:02d}" if precision == "day" else ""
        lines.append(("DA", f"{paper.pub_date.year:04d}/{paper.pub_date.month:02d}/{day}"))
    lines += [
        ("VL", paper.volume), ("IS", paper.issue), ("SP", first), ("EP", last), ("SN", paper.issn),
        ("DO", paper.doi), ("AN", paper.identifier), ("C2", paper.pmcid), ("UR", paper.url),
        ("LA", paper.languages[0] if paper.languages else None), ("AB", paper.abstract or None),
    ]
    lines += [("KW", k) for k in _keywords(paper)]
    lines.append(("N1", _notes(paper)))
    out = [f"{tag}  - {_ris_value(value)}" for tag, value in lines if value]
    out.append("ER  - ")
    return "\n".join(out) + "\n"


def to_json(papers: Iterable[StoredPaper], out: TextIO) -> int:
    """One JSON array of objects, written as it streams; returns how many papers."""
    count = 0
    out.write("[")
    for paper in papers:
        out.write(",\n  " if count else "\n  ")
        out.write(json.dumps(json_object(paper), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def to_csv(papers: Iterable[StoredPaper], out: TextIO) -> int:
    """CSV with a header row (RFC 4180 quoting); returns how many papers."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for paper in papers:
        writer.writerow(csv_row(paper))
        count += 1
    return count


def _records(render: Callable[[StoredPaper], str]) -> Callable[[Iterable[StoredPaper], TextIO], int]:
    def write(papers: Iterable[StoredPaper], out: TextIO) -> int:
        count = 0
        for paper in papers:
            out.write(("\n" if count else "") + render(paper))
            count += 1
        return count

    return write


to_bibtex = _records(bibtex_entry)
to_ris = _records(ris_record)
WRITERS: dict[str, Callable[[Iterable[StoredPaper], TextIO], int]] = {
    "csv": to_csv, "json": to_json, "bibtex": to_bibtex, "ris": to_ris,
}


def write(fmt: str, papers: Iterable[StoredPaper], out: TextIO) -> int:
    """Write ``papers`` to ``out`` in ``fmt`` (one of ``FORMATS``); returns how many were written."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise InputError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}") from None
    return writer(papers, out)


def write_file(fmt: str, papers: Iterable[StoredPaper], path: Path) -> int:
    """Write ``papers`` to the file ``path`` in ``fmt``: the file is whole or, on an error, as it was."""
    try:
        with replacing(path, encoding="utf-8", newline="") as handle:
            return write(fmt, papers, handle)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}; fix: check the folder exists and is writable") from exc
