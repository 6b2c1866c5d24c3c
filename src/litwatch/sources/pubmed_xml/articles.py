"""Journal articles: a ``PubmedArticle`` (MedlineCitation and PubmedData) or a bare ``MedlineCitation``.

Records are read by walking each element's children once (no XPath), because ingesting a
30,000-record baseline file must cost little more than the bare lxml scan. Only the record's own
identifiers are read: the DOI comes from ``PubmedData/ArticleIdList`` or ``Article/ELocationID``,
never from ``ReferenceList`` or ``CommentsCorrections``, which name other papers.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml.etree import _Element

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
from litwatch.sources.pubmed_xml.dates import read_pub_date, read_ymd, use_article_date
from litwatch.sources.pubmed_xml.text import append_text, flat, pcdata


class RecordError(Exception):
    """A record that is well-formed XML but lacks what every record must have (its PMID)."""


def read_pubmed_article(elem: _Element) -> PaperRecord:
    return read_wrapped(elem, "MedlineCitation", read_citation, "PubmedData")


def read_wrapped(elem: _Element, inner: str, read: Callable[[_Element], PaperRecord], data: str) -> PaperRecord:
    """A record element that holds the record itself (``inner``), then PubMed's data on it (``data``)."""
    record: PaperRecord | None = None
    for child in elem:
        if child.tag == inner:
            record = read(child)
        elif child.tag == data and record is not None:
            read_pubmed_data(child, record)
    if record is None:
        raise RecordError(f"has no {inner}")
    return record


def read_citation(mc: _Element) -> PaperRecord:
    """Read a MedlineCitation (inside a PubmedArticle or alone in a MedlineCitationSet)."""
    record = new_record(mc)
    record.status = mc.get("Status")
    for child in mc:
        tag = child.tag
        if tag == "Article":
            _article(child, record)
        elif tag == "MeshHeadingList":
            record.mesh = [_mesh_heading(h) for h in child if h.tag == "MeshHeading"]
        elif tag == "KeywordList":
            read_keywords(child, record)
        elif tag == "ChemicalList":
            record.chemicals = [_chemical(c) for c in child if c.tag == "Chemical"]
        elif tag == "CommentsCorrectionsList":
            record.corrections = [_correction(c) for c in child if c.tag == "CommentsCorrections"]
        elif tag == "GeneSymbolList":
            record.gene_symbols = [s for s in (pcdata(g) for g in child) if s]
        elif tag == "DateCompleted":
            record.date_completed = read_ymd(child)
        elif tag == "DateRevised":
            record.date_revised = read_ymd(child)
        elif tag == "OtherID" and record.pmcid is None:
            # Old-format files have no PubmedData; NLM put the PMCID here.
            other = pcdata(child) or ""
            if other.startswith("PMC") and child.get("Source") == "NLM":
                record.pmcid = other.split()[0]  # "PMC4688250 [Available on 12/22/16]"
    return record


def new_record(parent: _Element) -> PaperRecord:
    for child in parent:
        if child.tag == "PMID":
            version = child.get("Version")
            return PaperRecord(pmid=pmid_number(child.text), pmid_version=int(version) if version else 1)
    raise RecordError("has no PMID")


def _article(article: _Element, record: PaperRecord) -> None:
    article_date: _Element | None = None
    legacy_affiliation: str | None = None
    for child in article:
        tag = child.tag
        if tag == "Journal":
            _journal(child, record)
        elif tag == "ArticleTitle":
            record.title = flat(child)
        elif tag == "Abstract":
            record.abstract_sections = read_abstract(child)
        elif tag == "AuthorList":
            record.authors = read_authors(child)
        elif tag == "Pagination":
            record.pages = read_pages(child)
        elif tag == "ELocationID":
            if record.doi is None and child.get("EIdType") == "doi":
                record.doi = normalize_doi(child.text)
        elif tag == "Language":
            append_text(record.languages, child)
        elif tag == "PublicationTypeList":
            record.publication_types = [PublicationType(p.get("UI"), pcdata(p) or "") for p in child]
        elif tag == "VernacularTitle":
            record.vernacular_title = flat(child) or None
        elif tag == "ArticleDate" and article_date is None:
            article_date = child
        elif tag == "Affiliation":
            legacy_affiliation = flat(child)
    if record.pub_year is None and article_date is not None:
        use_article_date(article_date, record)
    if legacy_affiliation and record.authors and not record.authors[0].affiliations:
        # Before 2014 MEDLINE kept one affiliation per article: the first author's.
        record.authors[0].affiliations.append(legacy_affiliation)


def _journal(journal: _Element, record: PaperRecord) -> None:
    for child in journal:
        tag = child.tag
        if tag == "JournalIssue":
            for part in child:
                if part.tag == "Volume":
                    record.volume = pcdata(part)
                elif part.tag == "Issue":
                    record.issue = pcdata(part)
                elif part.tag == "PubDate":
                    read_pub_date(part, record)
        elif tag == "Title":
            record.journal = pcdata(child)
        elif tag == "ISOAbbreviation":
            record.journal_abbrev = pcdata(child)
        elif tag == "ISSN" and record.issn is None:
            record.issn = pcdata(child)


def read_pubmed_data(data: _Element, record: PaperRecord) -> None:
    """Read History and the record's own ArticleIdList (never the ReferenceList beside it)."""
    for child in data:
        if child.tag == "History":
            for date_el in child:
                status = date_el.get("PubStatus")
                when = read_ymd(date_el)
                if status and when and status not in record.history:
                    record.history[status] = when
        elif child.tag == "ArticleIdList":
            read_article_ids(child, record, prefer=True)


def read_article_ids(id_list: _Element, record: PaperRecord, *, prefer: bool) -> None:
    """Take DOI and PMCID from an ArticleIdList; ``prefer`` lets them replace ELocationID's."""
    found_doi = False
    for article_id in id_list:
        id_type = article_id.get("IdType")
        if id_type == "doi" and not found_doi:
            doi = normalize_doi(article_id.text)
            if doi and (prefer or record.doi is None):
                record.doi, found_doi = doi, True
        elif id_type == "pmc":
            pmcid = pcdata(article_id)
            if pmcid:
                record.pmcid = pmcid if pmcid.startswith("PMC") else f"PMC{pmcid}"


def read_authors(author_list: _Element) -> list[Author]:
    """Authors in order; ValidYN="N" entries are misspellings PubMed keeps only for searching."""
    authors = []
    for el in author_list:
        if el.tag != "Author" or el.get("ValidYN") == "N":
            continue
        last = fore = initials = collective = orcid = None
        affiliations: list[str] = []
        for child in el:
            tag = child.tag
            if tag == "LastName":  # names are plain text in the DTD and printed on one line
                last = child.text
            elif tag == "ForeName":
                fore = child.text
            elif tag == "Initials":
                initials = child.text
            elif tag == "AffiliationInfo":
                first = child[0] if len(child) else None  # DTD: (Affiliation, Identifier*)
                if first is not None and first.tag == "Affiliation":
                    affiliation = flat(first)
                    if affiliation:
                        affiliations.append(affiliation)
            elif tag == "CollectiveName":
                collective = flat(child) or None
            elif tag == "Identifier" and child.get("Source") == "ORCID":
                orcid = _orcid(child.text)
        authors.append(Author(last, fore, initials, collective, orcid, affiliations))
    return authors


def _orcid(raw: str | None) -> str | None:
    """'https://orcid.org/0000-0002-4590-746x' -> '0000-0002-4590-746X'; None if not an ORCID."""
    if not raw:
        return None
    digits = raw.strip().rstrip("/").rpartition("/")[2].replace("-", "").replace(" ", "").upper()
    if len(digits) != 16 or not digits[:15].isdigit() or not (digits[15].isdigit() or digits[15] == "X"):
        return None
    return f"{digits[:4]}-{digits[4:8]}-{digits[8:12]}-{digits[12:]}"


def read_abstract(abstract: _Element) -> list[AbstractSection]:
    sections = []
    for el in abstract:
        if el.tag == "AbstractText":
            text = flat(el)
            if text:
                sections.append(AbstractSection(el.get("Label") or None, text, el.get("NlmCategory") or None))
    return sections


def _mesh_heading(heading: _Element) -> MeshHeading:
    ui = name = None
    major = False
    qualifiers = []
    for child in heading:
        tag = child.tag
        if tag == "DescriptorName":
            ui, name, major = child.get("UI"), pcdata(child), child.get("MajorTopicYN") == "Y"
        elif tag == "QualifierName":
            qualifier = MeshQualifier(child.get("UI"), pcdata(child) or "", child.get("MajorTopicYN") == "Y")
            qualifiers.append(qualifier)
    return MeshHeading(ui, name or "", major, qualifiers)


def read_keywords(keyword_list: _Element, record: PaperRecord) -> None:
    owner = keyword_list.get("Owner")
    for el in keyword_list:
        text = flat(el)
        if text:
            record.keywords.append(Keyword(text, el.get("MajorTopicYN") == "Y", owner))


def _chemical(el: _Element) -> Chemical:
    chemical = Chemical(None, "")
    for child in el:
        if child.tag == "NameOfSubstance":
            chemical.ui, chemical.name = child.get("UI"), pcdata(child) or ""
        elif child.tag == "RegistryNumber":
            number = pcdata(child)
            chemical.registry_number = number if number and number != "0" else None  # "0": none
    return chemical


def _correction(el: _Element) -> Correction:
    correction = Correction(el.get("RefType") or "", None)
    for child in el:
        if child.tag == "RefSource":
            correction.source = pcdata(child)
        elif child.tag == "PMID":
            text = child.text
            correction.pmid = int(text) if text and text.strip().isdigit() else None
    return correction


def read_pages(pagination: _Element) -> str | None:
    start = end = None
    for child in pagination:
        if child.tag == "MedlinePgn":
            pages = flat(child)
            if pages:
                return pages
        elif child.tag == "StartPage":
            start = flat(child)
        elif child.tag == "EndPage":
            end = flat(child)
    if start and end:
        return f"{start}-{end}"
    return start or None


def pmid_number(text: str | None) -> int:
    if text is None:
        raise RecordError("has an empty PMID")
    return int(text)
