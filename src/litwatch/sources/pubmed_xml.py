"""Stream PubMed XML into PaperRecord and Deletion objects, one record in memory at a time.

Reads efetch answers and the baseline/update files (``PubmedArticleSet`` with ``PubmedArticle``,
``PubmedBookArticle`` and ``DeleteCitation``) and the old ``MedlineCitationSet`` format, plain or
gzipped. The parser never fetches anything: the DOCTYPE's DTD is not loaded, entities are not
resolved, the network is off. Each finished record is cleared and dropped from the tree, so memory
stays flat however many records a file holds. Records are read by walking each element's children
once (no XPath), because ingesting a 30,000-record baseline file must cost little more than the bare
lxml scan.

Only the record's own identifiers are read: the DOI comes from ``PubmedData/ArticleIdList`` or
``Article/ELocationID``, never from ``ReferenceList`` or ``CommentsCorrections``, which name other papers.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO, Protocol, cast

from lxml import etree
from lxml.etree import _Element

from litwatch.errors import InputError, ParseError
from litwatch.records import (
    AbstractSection,
    Author,
    Chemical,
    Correction,
    Deletion,
    Keyword,
    MeshHeading,
    MeshQualifier,
    PaperRecord,
    PublicationType,
    normalize_doi,
)

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
_MATHML = "{http://www.w3.org/1998/Math/MathML}"
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m.lower(): i for i, m in enumerate(_MONTH_NAMES, start=1)}
# A season is dated from its first month in the printed year; winter from January, since
# "2000 Winter" may have begun in December 1999 and only the year is certain.
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 1}
_DATE_TOKENS = re.compile(r"[\s\-/,;.]+")
_GZIP_MAGIC = b"\x1f\x8b"
_SPACES = re.compile("[ \t\n\r\xa0]+")
READ_BYTES = 32_768  # fed to the parser at a time, as lxml's iterparse reads a file


class _RecordError(Exception):
    """A record that is well-formed XML but lacks what every record must have (its PMID)."""


def iter_records(
    source: str | os.PathLike[str] | BinaryIO, *, name: str | None = None
) -> Iterator[PaperRecord | Deletion]:
    """Yield each record of a PubMed XML file or binary stream, in file order.

    ``source`` is a path (``.xml`` or gzipped, recognised by its magic bytes) or a binary file
    object. On malformed or truncated XML the records before the fault have already been yielded,
    then ``ParseError`` names ``name`` (default: the path) with the line and column of the fault.
    """
    with ExitStack() as stack:
        stream, label = _open(source, name, stack)
        yield from _scan(stream, label)


def parse_bytes(data: bytes, *, name: str = "<efetch answer>") -> list[PaperRecord | Deletion]:
    """Parse a whole PubMed XML answer held in memory (an efetch reply, plain or gzipped)."""
    return list(iter_records(io.BytesIO(data), name=name))


ROOT_TAGS = ("PubmedArticleSet", "MedlineCitationSet", "PubmedBookArticleSet")
_HEAD_BYTES = 65_536  # the root start tag is in here, after the XML declaration and DOCTYPE


def root_element(path: str | os.PathLike[str]) -> str | None:
    """The name of the file's root element, read from its head (decompressed if gzipped); None
    when the head cannot be read as XML up to the root (the full parse reports the fault)."""
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True, load_dtd=False)
    with ExitStack() as stack:
        try:
            stream, _label = _open(path, None, stack)
            parser.feed(stream.read(_HEAD_BYTES))
        except (etree.XMLSyntaxError, *GZIP_ERRORS):
            pass
    for _event, elem in parser.read_events():
        return str(elem.tag)
    return None


def check_root(path: str | os.PathLike[str]) -> None:
    """Raise InputError unless the file is PubMed XML (or unreadable as XML: parsing says where)."""
    root = root_element(path)
    if root is not None and root not in ROOT_TAGS:
        raise InputError(
            f"{os.fspath(path)}: not PubMed XML (root element <{root}>; expected {', '.join(ROOT_TAGS[:-1])} "
            f"or {ROOT_TAGS[-1]}); pass efetch answers or PubMed baseline/update files"
        )


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class CountingReader(io.FileIO):
    """A binary file that reports how far into it reading has gone, for a progress bar."""

    def __init__(self, path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> None:
        super().__init__(path, "rb")
        self._progress = progress
        self._reported = 0

    def _report(self) -> None:
        if self._progress is not None:
            position = self.tell()
            if position > self._reported:
                self._progress(position - self._reported)
                self._reported = position

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._report()
        return data or b""

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer) or 0
        self._report()
        return count


def open_stream(path: str | os.PathLike[str], stack: ExitStack) -> tuple[_Readable, CountingReader]:
    """The file's XML (decompressed if gzipped) and the file itself, whose ``tell()`` is the bytes read."""
    raw = stack.enter_context(CountingReader(path))
    stream, _label = _open(raw, os.fspath(path), stack)
    return stream, raw


def _open(
    source: str | os.PathLike[str] | BinaryIO, name: str | None, stack: ExitStack
) -> tuple[_Readable, str]:
    stream: BinaryIO
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        try:
            stream = stack.enter_context(open(source, "rb"))
        except OSError as exc:
            raise InputError(f"{label}: cannot read the file: {exc.strerror or exc}") from exc
    else:
        stream = source
        label = name or str(getattr(source, "name", "<stream>"))
    readable: _Readable = stream
    if stream.seekable():
        start = stream.tell()
        head = stream.read(2)
        stream.seek(start)
    else:
        head = stream.read(2)
        readable = _Prefixed(head, stream)
    if head == _GZIP_MAGIC:
        # GzipFile only reads forward here, so a stream without seek() is fine.
        readable = stack.enter_context(gzip.GzipFile(fileobj=cast(BinaryIO, readable), mode="rb"))
    return readable, label


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with the bytes already read for sniffing put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data + self._rest.read(size - len(data)) if len(data) < size else data


def _scan(stream: _Readable, label: str) -> Iterator[PaperRecord | Deletion]:
    """Feed the XML to a pull parser block by block and read each record as its end tag arrives.

    A pull parser, not ``etree.iterparse``: on a syntax error iterparse drops the events libxml2
    produced earlier in the same block, losing complete records just before the fault, while
    ``read_events()`` still has them. So every complete record before a fault is yielded, however
    the file is read (whole, in chunks, plain or gzipped), then the fault is raised.
    """
    parser = etree.XMLPullParser(
        events=("end",),
        tag=_RECORD_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
    )
    fault: etree.XMLSyntaxError | None = None
    try:
        while block := stream.read(READ_BYTES):
            try:
                parser.feed(block)
            except etree.XMLSyntaxError as exc:
                fault = exc
            yield from _read(parser.read_events(), label)
            if fault is not None:
                break
        else:
            try:
                parser.close()
            except etree.XMLSyntaxError as exc:
                # the data ended inside an element: closing it produced end events for the
                # elements left open, the record cut short among them, so none of them is read
                fault = exc
            else:
                yield from _read(parser.read_events(), label)
    except GZIP_ERRORS as exc:
        raise gzip_fault(label, exc) from exc
    if fault is not None:
        line, column = fault.position
        message = str(fault.msg).removesuffix(f", line {line}, column {column}")
        raise ParseError(label, line or None, column if line else None, message) from fault


def _read(events: Iterator[tuple[str, _Element]], label: str) -> Iterator[PaperRecord | Deletion]:
    """The records of the end events parsed so far, each element dropped once read."""
    for _event, elem in events:
        tag = elem.tag
        parent = elem.getparent()
        try:
            if tag == "PubmedArticle":
                yield _pubmed_article(elem)
            elif tag == "MedlineCitation":
                if parent is not None and parent.tag == "PubmedArticle":
                    continue  # read with its PubmedArticle, which ends next
                yield _citation(elem)
            elif tag == "PubmedBookArticle":
                yield _book_article(elem)
            else:
                yield Deletion([_int(p.text) for p in elem if p.tag == "PMID"])
        except (_RecordError, ValueError) as exc:
            raise ParseError(label, elem.sourceline, None, f"<{tag}> {exc}") from exc
        elem.clear()
        if parent is not None:
            while elem.getprevious() is not None:
                del parent[0]


GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def gzip_fault(label: str, exc: Exception) -> ParseError:
    """The fault reported for a gzipped file whose compressed data is cut short or damaged."""
    return ParseError(label, None, None, f"damaged gzip data: {exc}")


def _pubmed_article(elem: _Element) -> PaperRecord:
    record: PaperRecord | None = None
    for child in elem:
        if child.tag == "MedlineCitation":
            record = _citation(child)
        elif child.tag == "PubmedData" and record is not None:
            _pubmed_data(child, record)
    if record is None:
        raise _RecordError("has no MedlineCitation")
    return record


def _citation(mc: _Element) -> PaperRecord:
    """Read a MedlineCitation (inside a PubmedArticle or alone in a MedlineCitationSet)."""
    record = _new_record(mc)
    record.status = mc.get("Status")
    for child in mc:
        tag = child.tag
        if tag == "Article":
            _article(child, record)
        elif tag == "MeshHeadingList":
            record.mesh = [_mesh_heading(h) for h in child if h.tag == "MeshHeading"]
        elif tag == "KeywordList":
            _keywords(child, record)
        elif tag == "ChemicalList":
            record.chemicals = [_chemical(c) for c in child if c.tag == "Chemical"]
        elif tag == "CommentsCorrectionsList":
            record.corrections = [_correction(c) for c in child if c.tag == "CommentsCorrections"]
        elif tag == "GeneSymbolList":
            record.gene_symbols = [s for s in (_pcdata(g) for g in child) if s]
        elif tag == "DateCompleted":
            record.date_completed = _ymd(child)
        elif tag == "DateRevised":
            record.date_revised = _ymd(child)
        elif tag == "OtherID" and record.pmcid is None:
            # Old-format files have no PubmedData; NLM put the PMCID here.
            other = _pcdata(child) or ""
            if other.startswith("PMC") and child.get("Source") == "NLM":
                record.pmcid = other.split()[0]  # "PMC4688250 [Available on 12/22/16]"
    return record


def _new_record(parent: _Element) -> PaperRecord:
    for child in parent:
        if child.tag == "PMID":
            version = child.get("Version")
            return PaperRecord(pmid=_int(child.text), pmid_version=int(version) if version else 1)
    raise _RecordError("has no PMID")


def _article(article: _Element, record: PaperRecord) -> None:
    article_date: _Element | None = None
    legacy_affiliation: str | None = None
    for child in article:
        tag = child.tag
        if tag == "Journal":
            _journal(child, record)
        elif tag == "ArticleTitle":
            record.title = _flat(child)
        elif tag == "Abstract":
            record.abstract_sections = _abstract(child)
        elif tag == "AuthorList":
            record.authors = _authors(child)
        elif tag == "Pagination":
            record.pages = _pages(child)
        elif tag == "ELocationID":
            if record.doi is None and child.get("EIdType") == "doi":
                record.doi = normalize_doi(child.text)
        elif tag == "Language":
            _append_text(record.languages, child)
        elif tag == "PublicationTypeList":
            record.publication_types = [PublicationType(p.get("UI"), _pcdata(p) or "") for p in child]
        elif tag == "VernacularTitle":
            record.vernacular_title = _flat(child) or None
        elif tag == "ArticleDate" and article_date is None:
            article_date = child
        elif tag == "Affiliation":
            legacy_affiliation = _flat(child)
    if record.pub_year is None and article_date is not None:
        _use_article_date(article_date, record)
    if legacy_affiliation and record.authors and not record.authors[0].affiliations:
        # Before 2014 MEDLINE kept one affiliation per article: the first author's.
        record.authors[0].affiliations.append(legacy_affiliation)


def _journal(journal: _Element, record: PaperRecord) -> None:
    for child in journal:
        tag = child.tag
        if tag == "JournalIssue":
            for part in child:
                if part.tag == "Volume":
                    record.volume = _pcdata(part)
                elif part.tag == "Issue":
                    record.issue = _pcdata(part)
                elif part.tag == "PubDate":
                    _pub_date(part, record)
        elif tag == "Title":
            record.journal = _pcdata(child)
        elif tag == "ISOAbbreviation":
            record.journal_abbrev = _pcdata(child)
        elif tag == "ISSN" and record.issn is None:
            record.issn = _pcdata(child)


def _pubmed_data(data: _Element, record: PaperRecord) -> None:
    """Read History and the record's own ArticleIdList (never the ReferenceList beside it)."""
    for child in data:
        if child.tag == "History":
            for date_el in child:
                status = date_el.get("PubStatus")
                when = _ymd(date_el)
                if status and when and status not in record.history:
                    record.history[status] = when
        elif child.tag == "ArticleIdList":
            _article_ids(child, record, prefer=True)


def _article_ids(id_list: _Element, record: PaperRecord, *, prefer: bool) -> None:
    """Take DOI and PMCID from an ArticleIdList; ``prefer`` lets them replace ELocationID's."""
    found_doi = False
    for article_id in id_list:
        id_type = article_id.get("IdType")
        if id_type == "doi" and not found_doi:
            doi = normalize_doi(article_id.text)
            if doi and (prefer or record.doi is None):
                record.doi, found_doi = doi, True
        elif id_type == "pmc":
            pmcid = _pcdata(article_id)
            if pmcid:
                record.pmcid = pmcid if pmcid.startswith("PMC") else f"PMC{pmcid}"


def _book_article(elem: _Element) -> PaperRecord:
    record: PaperRecord | None = None
    for child in elem:
        if child.tag == "BookDocument":
            record = _book_document(child)
        elif child.tag == "PubmedBookData" and record is not None:
            _pubmed_data(child, record)
    if record is None:
        raise _RecordError("has no BookDocument")
    return record


def _book_document(doc: _Element) -> PaperRecord:
    """A GeneReviews-style book or chapter: the chapter title if any, else the book's."""
    record = _new_record(doc)
    record.kind = "book"
    book_title = publisher = None
    editors: list[Author] = []
    for child in doc:
        tag = child.tag
        if tag == "Book":
            for part in child:
                if part.tag == "BookTitle":
                    book_title = _flat(part)
                elif part.tag == "Publisher":
                    publisher = next((_flat(p) for p in part if p.tag == "PublisherName"), None)
                elif part.tag == "PubDate":
                    _pub_date(part, record)
                elif part.tag == "AuthorList":
                    editors = _authors(part)
                elif part.tag == "Volume":
                    record.volume = _pcdata(part)
        elif tag == "ArticleTitle":
            record.title = _flat(child)
        elif tag == "VernacularTitle":
            record.vernacular_title = _flat(child) or None
        elif tag == "AuthorList":
            record.authors = _authors(child)
        elif tag == "Abstract":
            record.abstract_sections = _abstract(child)
        elif tag == "Language":
            _append_text(record.languages, child)
        elif tag == "PublicationType":
            record.publication_types.append(PublicationType(child.get("UI"), _pcdata(child) or ""))
        elif tag == "KeywordList":
            _keywords(child, record)
        elif tag == "Pagination":
            record.pages = _pages(child)
        elif tag == "ArticleIdList":
            _article_ids(child, record, prefer=False)
        elif tag == "ELocationID" and record.doi is None and child.get("EIdType") == "doi":
            record.doi = normalize_doi(child.text)
        elif tag == "DateRevised":
            record.date_revised = _ymd(child)
    if record.title:
        record.journal = book_title
    else:
        record.title, record.journal = book_title or "", publisher
    if not record.authors:
        record.authors = editors
    return record


def _authors(author_list: _Element) -> list[Author]:
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
                    affiliation = _flat(first)
                    if affiliation:
                        affiliations.append(affiliation)
            elif tag == "CollectiveName":
                collective = _flat(child) or None
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


def _abstract(abstract: _Element) -> list[AbstractSection]:
    sections = []
    for el in abstract:
        if el.tag == "AbstractText":
            text = _flat(el)
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
            ui, name, major = child.get("UI"), _pcdata(child), child.get("MajorTopicYN") == "Y"
        elif tag == "QualifierName":
            qualifier = MeshQualifier(child.get("UI"), _pcdata(child) or "", child.get("MajorTopicYN") == "Y")
            qualifiers.append(qualifier)
    return MeshHeading(ui, name or "", major, qualifiers)


def _keywords(keyword_list: _Element, record: PaperRecord) -> None:
    owner = keyword_list.get("Owner")
    for el in keyword_list:
        text = _flat(el)
        if text:
            record.keywords.append(Keyword(text, el.get("MajorTopicYN") == "Y", owner))


def _chemical(el: _Element) -> Chemical:
    chemical = Chemical(None, "")
    for child in el:
        if child.tag == "NameOfSubstance":
            chemical.ui, chemical.name = child.get("UI"), _pcdata(child) or ""
        elif child.tag == "RegistryNumber":
            number = _pcdata(child)
            chemical.registry_number = number if number and number != "0" else None  # "0": none
    return chemical


def _correction(el: _Element) -> Correction:
    correction = Correction(el.get("RefType") or "", None)
    for child in el:
        if child.tag == "RefSource":
            correction.source = _pcdata(child)
        elif child.tag == "PMID":
            text = child.text
            correction.pmid = int(text) if text and text.strip().isdigit() else None
    return correction


def _pages(pagination: _Element) -> str | None:
    start = end = None
    for child in pagination:
        if child.tag == "MedlinePgn":
            pages = _flat(child)
            if pages:
                return pages
        elif child.tag == "StartPage":
            start = _flat(child)
        elif child.tag == "EndPage":
            end = _flat(child)
    if start and end:
        return f"{start}-{end}"
    return start or None


def _pub_date(pub_date: _Element, record: PaperRecord) -> None:
    """Fill pub_year, pub_date (first day of what is known) and pub_date_text (as printed)."""
    year = month = day = season = None
    for child in pub_date:
        text = _flat(child)
        tag = child.tag
        if tag == "Year":
            year = text
        elif tag == "Month":
            month = text
        elif tag == "Day":
            day = text
        elif tag == "Season":
            season = text
        elif tag == "MedlineDate":
            record.pub_date_text = text or None
            record.pub_year, record.pub_date = _loose_date(text)
            return
    if year is None or not year.isdigit():
        record.pub_date_text = " ".join(p for p in (year, month or season) if p) or None
        return
    month_no = _month(month) if month else None
    parts = [year]
    if month_no:
        parts.append(_MONTH_NAMES[month_no - 1])
        if day and day.isdigit():
            parts.append(str(int(day)))
    elif season or month:
        parts.append(season or month or "")
        month_no = _month(_DATE_TOKENS.split(season or month or "")[0])
    record.pub_year = int(year)
    record.pub_date_text = " ".join(parts)
    record.pub_date = _date(record.pub_year, month_no, int(day) if day and day.isdigit() else None)


def _use_article_date(article_date: _Element, record: PaperRecord) -> None:
    when = _ymd(article_date)
    if when is not None:
        record.pub_year, record.pub_date = when.year, when
        record.pub_date_text = record.pub_date_text or f"{when.year} {_MONTH_NAMES[when.month - 1]} {when.day}"


def _loose_date(text: str) -> tuple[int | None, dt.date | None]:
    """Read a MedlineDate: '2015 Oct-Dec', '1998 Dec-1999 Jan', '2000 Spring', '2019 Jan 10-17'."""
    tokens = [t for t in _DATE_TOKENS.split(text) if t]
    for i, token in enumerate(tokens):
        if len(token) == 4 and token.isdigit():
            break
    else:
        return None, None
    year, month, day = int(token), None, None
    if i + 1 < len(tokens):
        month = _month(tokens[i + 1])
        if month and i + 2 < len(tokens) and tokens[i + 2].isdigit() and len(tokens[i + 2]) <= 2:
            day = int(tokens[i + 2])
    elif i > 0:
        month = _month(tokens[i - 1])  # "Summer 2004"
    return year, _date(year, month, day)


def _month(text: str) -> int | None:
    """'Oct', 'October', '10' or a season name -> month number."""
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 12 else None
    lower = text.lower()
    return _MONTHS.get(lower[:3]) or _SEASONS.get(lower)


def _date(year: int, month: int | None, day: int | None) -> dt.date | None:
    try:
        return dt.date(year, month or 1, day or 1)
    except ValueError:
        try:
            return dt.date(year, month or 1, 1)
        except ValueError:
            return None


def _ymd(el: _Element) -> dt.date | None:
    """A Year/Month/Day element (DateCompleted, PubMedPubDate, ArticleDate) as a date."""
    year = month = day = None
    for child in el:
        tag = child.tag
        if tag == "Year":
            year = child.text
        elif tag == "Month":
            month = child.text
        elif tag == "Day":
            day = child.text
            break  # Hour and Minute may follow; they are not kept
    if not year:
        return None
    try:
        return dt.date(int(year), int(month) if month else 1, int(day) if day else 1)
    except ValueError:
        pass
    year = year.strip()
    return _date(int(year), _month(month.strip()) if month else None, None) if year.isdigit() else None


def _int(text: str | None) -> int:
    if text is None:
        raise _RecordError("has an empty PMID")
    return int(text)


def _pcdata(el: _Element) -> str | None:
    """Text of an element the DTD allows no markup in, whitespace collapsed; None when empty."""
    text: str | None = el.text
    if text is None:
        return None
    if "  " in text or "\n" in text or "\t" in text or "\r" in text or "\xa0" in text:
        text = _SPACES.sub(" ", text)
    return text.strip(" ") or None


def _append_text(target: list[str], el: _Element) -> None:
    text = _flat(el)
    if text:
        target.append(text)


def _flat(el: _Element) -> str:
    """The element's text with inline markup (<i>, <sup>, MathML) dropped and whitespace collapsed.

    Runs of XML whitespace and no-break spaces become one space; other Unicode spaces (thin,
    hair...) are kept as the authors wrote them.
    """
    text: str | None
    if len(el):
        parts: list[str] = []
        _collect(el, parts)
        text = "".join(parts)
    else:
        text = el.text
        if text is None:
            return ""
    if "  " in text or "\n" in text or "\t" in text or "\r" in text or "\xa0" in text:
        text = _SPACES.sub(" ", text)
    return text.strip(" ")


def _collect(el: _Element, parts: list[str], math: bool = False) -> None:
    """Gather text and tails in document order; inside MathML, whose tokens are indented, strip each."""
    text = el.text
    if text:
        parts.append(text.strip() if math else text)
    for child in el:
        tag = child.tag
        if isinstance(tag, str):  # not an unresolved entity reference: those stay out of the text
            _collect(child, parts, math or tag.startswith(_MATHML))
        tail = child.tail
        if tail:
            parts.append(tail.strip() if math else tail)
