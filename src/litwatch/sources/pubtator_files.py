"""PubTator3 BioC JSON files (export answers saved to disk) read as papers with their annotations.

A file holds what ``{base}publications/export/biocjson`` answers: ``{"PubTator3": [document, ...]}``,
a bare list of documents, a BioC collection or a single document. Each document's title and
abstract passages, and the citation PubTator3 keeps in the title passage's infons (journal,
year, authors, PMC id) and the document's DOI, become a :class:`PaperRecord`; its Gene and
Disease annotations are read by :func:`litwatch.sources.pubtator.read_document`, with spans
relative to the passage, so they point into the record's title and abstract.

PubTator3's citation is thinner than PubMed's record (no MeSH, publication types or revision
date): a paper read from such a file is stored only when the store lacks its PMID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litwatch.errors import InputError
from litwatch.records import AbstractSection, Author, PaperRecord, normalize_doi

if TYPE_CHECKING:
    from litwatch.sources.pubtator import Annotations

SUFFIXES = (".json", ".biocjson")
_INITIALS = re.compile(r"^[A-Z][A-Za-z]{0,3}$")  # "JH", "Jr"-less initials as PubTator3 prints them
_JOURNAL_END = re.compile(r"\.\s|;")  # "Mol Cell. 2017 Jan 5;65(1):154-167." -> "Mol Cell"
_DOI_IN_CITATION = re.compile(r"doi:\s*(10\.\S+?)\.?(?:\s|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Document:
    """One document of a PubTator3 file: the paper it describes and PubTator3's annotations of it."""

    record: PaperRecord
    annotations: Annotations


def is_pubtator_file(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def read_file(path: Path) -> list[Document]:
    """Every document in ``path``; an InputError naming the file (and the document) when it is not
    a PubTator3 BioC JSON file."""
    from litwatch.sources.pubtator import answer_documents, read_document  # requests, bioc: for these files only

    try:
        body = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from exc
    try:
        raw_documents = answer_documents(body)
    except ValueError as exc:
        raise InputError(f"{path}: not a PubTator3 BioC JSON file ({_first_line(exc)}); give files saved "
                         "from PubTator3's publications/export/biocjson") from exc
    documents = []
    for number, raw in enumerate(raw_documents, 1):
        try:
            documents.append(Document(paper_record(raw), read_document(raw)))
        except ValueError as exc:
            raise InputError(f"{path}: document {number}: {_first_line(exc)}; nothing from this file was "
                             "stored: fix or remove that document") from exc
    return documents


def paper_record(raw: Mapping[str, Any]) -> PaperRecord:
    """The paper a PubTator3 document describes; ValueError when it has no PMID or no title."""
    from litwatch.sources import pubtator  # requests, bioc: for these files only

    pmid_text = pubtator.pmid_text(raw)
    if not pmid_text.isdigit() or int(pmid_text) <= 0:
        raise ValueError(f"no PMID (pmid {raw.get('pmid')!r}, id {raw.get('id')!r})")
    passages = [p for p in raw.get("passages") or () if isinstance(p, Mapping)]
    title = next((p for p in passages if _kind(p) == "title"), None)
    if title is None or not str(title.get("text") or "").strip():
        raise ValueError(f"PMID {pmid_text} has no title passage")
    infons: Mapping[str, Any] = title.get("infons") or {}
    citation = str(infons.get("journal") or "")
    journal = _JOURNAL_END.split(citation, maxsplit=1)[0].strip() or None
    year = str(infons.get("year") or "")
    doc_infons: Mapping[str, Any] = raw.get("infons") or {}
    doi_match = _DOI_IN_CITATION.search(citation)
    return PaperRecord(
        pmid=int(pmid_text),
        doi=normalize_doi(doc_infons.get("doi") or (doi_match.group(1) if doi_match else None)),
        pmcid=str(infons["article-id_pmc"]) if infons.get("article-id_pmc") else None,
        title=str(title["text"]),
        abstract_sections=[AbstractSection(None, str(p["text"])) for p in passages
                           if _kind(p) == "abstract" and str(p.get("text") or "").strip()],
        authors=[_author(name) for name in str(infons.get("authors") or "").split(",") if name.strip()],
        journal=journal,
        journal_abbrev=journal,
        pub_year=int(year) if year.isdigit() else None,
    )


def _kind(passage: Mapping[str, Any]) -> str:
    return str((passage.get("infons") or {}).get("type", ""))


def _author(name: str) -> Author:
    """'Jeong JH' -> last name Jeong, initials JH; anything else (a consortium) stays whole."""
    last, _, initials = name.strip().rpartition(" ")
    if last and _INITIALS.match(initials):
        return Author(last_name=last, initials=initials)
    return Author(collective_name=name.strip())


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
