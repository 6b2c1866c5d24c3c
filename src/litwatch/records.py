"""The records that flow between pipeline stages: what the PubMed parser yields and the store saves.

Plain dataclasses with no behaviour beyond normalisation, so every stage can be tested on its own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

_DOI_PREFIX = re.compile(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalize_doi(raw: str | None) -> str | None:
    """Return the DOI in the one form the store compares: lower case, no prefix, no whitespace.

    >>> normalize_doi(" https://doi.org/10.1016/J.CELL.2020.01.001 ")
    '10.1016/j.cell.2020.01.001'
    """
    if raw is None:
        return None
    doi = _SPACE.sub("", raw)
    doi = _DOI_PREFIX.sub("", doi)
    doi = _DOI_PREFIX.sub("", doi)  # "doi:https://doi.org/..." seen in the wild
    doi = doi.lower()
    return doi if doi.startswith("10.") and "/" in doi else None


@dataclass(slots=True)
class Author:
    last_name: str | None = None
    fore_name: str | None = None
    initials: str | None = None
    collective_name: str | None = None
    orcid: str | None = None
    affiliations: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        """'Ruiz A' style, or the collective name for a consortium."""
        if self.collective_name:
            return self.collective_name
        return " ".join(p for p in (self.last_name, self.initials or self.fore_name) if p)


@dataclass(slots=True)
class MeshQualifier:
    ui: str | None
    name: str
    major_topic: bool = False


@dataclass(slots=True)
class MeshHeading:
    ui: str | None
    name: str
    major_topic: bool = False
    qualifiers: list[MeshQualifier] = field(default_factory=list)


@dataclass(slots=True)
class PublicationType:
    ui: str | None
    name: str


@dataclass(slots=True)
class Keyword:
    text: str
    major_topic: bool = False
    owner: str | None = None


@dataclass(slots=True)
class Chemical:
    ui: str | None
    name: str
    registry_number: str | None = None


@dataclass(slots=True)
class Correction:
    """A CommentsCorrections entry: ``ref_type`` is PubMed's RefType (ErratumIn, RetractionIn, ...)."""

    ref_type: str
    pmid: int | None
    source: str | None = None


@dataclass(slots=True)
class AbstractSection:
    label: str | None
    text: str
    category: str | None = None


@dataclass(slots=True)
class PaperRecord:
    """One PubmedArticle or PubmedBookArticle, markup flattened."""

    pmid: int
    pmid_version: int = 1
    kind: str = "article"  # "article" or "book"
    doi: str | None = None  # normalised with normalize_doi
    pmcid: str | None = None
    title: str = ""
    vernacular_title: str | None = None
    abstract_sections: list[AbstractSection] = field(default_factory=list)
    authors: list[Author] = field(default_factory=list)
    journal: str | None = None
    journal_abbrev: str | None = None
    issn: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None
    pub_year: int | None = None
    pub_date: dt.date | None = None  # first day of what is known (2015 Oct-Dec -> 2015-10-01)
    pub_date_text: str | None = None  # as printed: "2015 Oct-Dec", "2021 Mar 5"
    languages: list[str] = field(default_factory=list)
    publication_types: list[PublicationType] = field(default_factory=list)
    mesh: list[MeshHeading] = field(default_factory=list)
    keywords: list[Keyword] = field(default_factory=list)
    chemicals: list[Chemical] = field(default_factory=list)
    gene_symbols: list[str] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    status: str | None = None  # MedlineCitation/@Status
    date_completed: dt.date | None = None
    date_revised: dt.date | None = None
    history: dict[str, dt.date] = field(default_factory=dict)  # PubStatus -> date: entrez, pubmed, ...

    @property
    def abstract(self) -> str:
        """The abstract as one text, structured labels kept ("BACKGROUND: ...")."""
        return "\n".join(f"{s.label}: {s.text}" if s.label else s.text for s in self.abstract_sections)

    @property
    def is_retracted(self) -> bool:
        return any(c.ref_type == "RetractionIn" for c in self.corrections) or any(
            p.name == "Retracted Publication" for p in self.publication_types
        )


@dataclass(slots=True)
class Deletion:
    """A DeleteCitation block: these PMIDs were withdrawn from PubMed."""

    pmids: list[int]
