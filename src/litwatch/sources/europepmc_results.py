"""Reading Europe PMC results: one ``core`` result in, the records the store takes out (pure).

A result becomes a :class:`~litwatch.records.PaperRecord` (title, abstract sections, authors,
DOI, journal or preprint server, dates, MeSH, keywords, chemicals, corrections) inside a
:class:`EuropePmcRecord` that adds what a preprint has and PubMed records lack: its Europe PMC
source and id (``PPR1036674``), server, version, first index date and the works it is linked to.
The client (``europepmc.py``) fetches the results; the pipeline will store them.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litwatch.records import (
    AbstractSection,
    Author,
    Chemical,
    Correction,
    Keyword,
    MeshHeading,
    MeshQualifier,
    PaperRecord,
    PublicationType,
    normalize_doi,
)

# How Europe PMC links a preprint to its journal version: {"type": "Preprint of", "source": "MED",
# "id": "<PMID>"} (seen in other projects' recorded answers; none of ours has one). Europe PMC
# makes some of these links by matching title and first author, and says so in the link's note.
PUBLISHED_RELATIONS = frozenset({"preprint of"})


@dataclass(slots=True)
class LinkedWork:
    """A work Europe PMC links to a result (``commentCorrectionList``): ``relation`` as it
    writes it ("Erratum for"), the other work's source and id, and the DOI in its citation."""

    relation: str
    source: str | None
    id: str | None
    doi: str | None = None
    citation: str | None = None
    note: str | None = None  # e.g. how Europe PMC made the link


@dataclass(slots=True)
class EuropePmcRecord:
    """One Europe PMC result: the paper as the store keeps papers, plus what a preprint adds.

    ``paper.pmid`` is 0 when Europe PMC knows no PMID (most preprints); ``paper.kind`` is
    ``preprint`` and ``paper.journal`` the preprint server for a preprint.
    """

    paper: PaperRecord
    source: str  # MED, PMC, PPR, ...
    source_id: str  # "PPR1036674", or the PMID for MED
    server: str | None = None  # bookOrReportDetails.publisher: medRxiv, bioRxiv, Research Square
    version: int | None = None
    first_index_date: dt.date | None = None
    links: list[LinkedWork] = field(default_factory=list)

    @property
    def is_preprint(self) -> bool:
        return self.paper.kind == "preprint"

    @property
    def published(self) -> list[LinkedWork]:
        """The journal versions this preprint is linked to (empty when none is known yet):
        the later step that stores preprints makes the two one work."""
        return [link for link in self.links if link.relation.lower() in PUBLISHED_RELATIONS]


_TAG = re.compile(r"<[^>]+>")
_HEADING = re.compile(r"<h4>(.*?)</h4>", re.IGNORECASE | re.DOTALL)
_CITED_DOI = re.compile(r"doi:\s*(10\.\S+?)\.?(?:\s|$)", re.IGNORECASE)


def read_result(result: Mapping[str, Any]) -> EuropePmcRecord:
    """The records in one Europe PMC result (``core``; a ``lite`` one gives what it carries)."""
    source, source_id = str(result["source"]), str(result["id"])
    journal_info = result.get("journalInfo") or {}
    journal = journal_info.get("journal") or {}
    server = (result.get("bookOrReportDetails") or {}).get("publisher")
    # core: {"pubTypeList": {"pubType": [...]}}; lite: "pubType": "review; journal article"
    types = _listed(result, "pubTypeList", "pubType") or [
        t.strip() for t in str(result.get("pubType", "")).split(";") if t.strip()
    ]
    preprint = source == "PPR" or any(str(t).lower() == "preprint" for t in types)
    links = [_link(item) for item in _listed(result, "commentCorrectionList", "commentCorrection")]
    version = str(result.get("versionNumber", ""))
    paper = PaperRecord(
        pmid=int(result["pmid"]) if str(result.get("pmid", "")).isdigit() else 0,
        kind="preprint" if preprint else "article",
        doi=normalize_doi(result.get("doi")),
        pmcid=result.get("pmcid"),
        title=_text(result.get("title", "")),
        abstract_sections=_abstract(result.get("abstractText", "")),
        authors=_authors(result),
        journal=server if preprint and server else journal.get("title"),
        journal_abbrev=journal.get("medlineAbbreviation") or journal.get("isoabbreviation"),
        issn=journal.get("issn") or journal.get("essn"),
        volume=journal_info.get("volume"),
        issue=journal_info.get("issue"),
        pages=result.get("pageInfo"),
        pub_year=int(result["pubYear"]) if str(result.get("pubYear", "")).isdigit() else None,
        pub_date=_date(result.get("firstPublicationDate")),
        pub_date_text=journal_info.get("dateOfPublication"),
        languages=[result["language"]] if result.get("language") else [],
        publication_types=[PublicationType(None, str(t)) for t in types],
        mesh=[_mesh(item) for item in _listed(result, "meshHeadingList", "meshHeading")],
        keywords=[Keyword(str(k)) for k in _listed(result, "keywordList", "keyword")],
        chemicals=[
            Chemical(None, c["name"], c.get("registryNumber") or None)
            for c in _listed(result, "chemicalList", "chemical")
        ],
        corrections=[
            Correction(link.relation.title().replace(" ", ""), int(link.id or 0), link.citation)
            for link in links
            if link.source == "MED" and (link.id or "").isdigit() and link.relation.lower() not in PUBLISHED_RELATIONS
        ],
        date_completed=_date(result.get("dateOfCompletion")),
        date_revised=_date(result.get("dateOfRevision")),
    )
    return EuropePmcRecord(
        paper=paper,
        source=source,
        source_id=source_id,
        server=server,
        version=int(version) if version.isdigit() else None,
        first_index_date=_date(result.get("firstIndexDate")),
        links=links,
    )


def _listed(result: Mapping[str, Any], outer: str, inner: str) -> list[Any]:
    """Europe PMC wraps every list twice (``{"keywordList": {"keyword": [...]}}``)."""
    value = (result.get(outer) or {}).get(inner) or []
    return value if isinstance(value, list) else [value]


def _text(markup: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", markup)).split())


def _abstract(markup: str) -> list[AbstractSection]:
    """``<h4>Objective</h4>text<h4>Design</h4>text`` as labelled sections; plain text as one."""
    parts = _HEADING.split(markup)
    sections = [AbstractSection(None, _text(parts[0]))] if _text(parts[0]) else []
    for label, body in zip(parts[1::2], parts[2::2]):
        sections.append(AbstractSection(_text(label) or None, _text(body)))
    return sections


def _authors(result: Mapping[str, Any]) -> list[Author]:
    listed = _listed(result, "authorList", "author")
    if not listed:  # a lite result has only "Mendez JS, Queme B, ..., Stern MC."
        names = [n.strip() for n in result.get("authorString", "").rstrip(".").split(",") if n.strip()]
        return [_author_from_string(name) for name in names]
    authors = []
    for item in listed:
        author_id = item.get("authorId") or {}
        affiliations = (item.get("authorAffiliationDetailsList") or {}).get("authorAffiliation") or []
        authors.append(
            Author(
                last_name=item.get("lastName"),
                fore_name=item.get("firstName"),
                initials=item.get("initials"),
                collective_name=item.get("collectiveName"),
                orcid=author_id.get("value") if author_id.get("type") == "ORCID" else None,
                affiliations=[a["affiliation"] for a in affiliations if a.get("affiliation")],
            )
        )
    return authors


def _author_from_string(name: str) -> Author:
    last, _, initials = name.rpartition(" ")
    if last and initials.isalpha() and initials.isupper():
        return Author(last_name=last, initials=initials)
    return Author(collective_name=name)


def _mesh(item: Mapping[str, Any]) -> MeshHeading:
    qualifiers = [
        MeshQualifier(None, q["qualifierName"], q.get("majorTopic_YN") == "Y")
        for q in _listed(item, "meshQualifierList", "meshQualifier")
    ]
    return MeshHeading(None, item["descriptorName"], item.get("majorTopic_YN") == "Y", qualifiers)


def _link(item: Mapping[str, Any]) -> LinkedWork:
    citation = item.get("reference")
    cited = _CITED_DOI.search(citation or "")
    return LinkedWork(
        relation=str(item.get("type", "")),
        source=item.get("source"),
        id=str(item["id"]) if item.get("id") is not None else None,
        doi=normalize_doi(cited.group(1)) if cited else None,
        citation=citation,
        note=item.get("note"),
    )


def _date(text: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text)) if text else None
    except ValueError:
        return None
