"""A loopback fake of NCBI E-utilities for end-to-end tests over real sockets.

``FakeEutils`` runs on the loopback server of ``loopback.py`` (127.0.0.1, port 0) and holds an
in-memory PubMed: ``records[pmid] = (create_date, PubmedArticle XML bytes)``, loaded from real
recorded efetch answers and cloned under fresh PMIDs to build large collections.

It answers ``esearch.fcgi`` (GET or POST; the ``(term) AND ("YYYY/MM/DD"[crdt] : "YYYY/MM/DD"[crdt])``
window form, the same on [mdat] (the record's DateRevised, never before its create date), or
mindate/maxdate; retmax capped at 9,999 ids while Count tells the full number;
retstart; usehistory) and ``efetch.fcgi`` (ids, or WebEnv + query_key + retstart + retmax), in the
exact shapes of recorded answers. Every request is logged; ``inject`` makes requests fail.

Which records a term finds: the PMIDs pinned in ``terms[term]`` if any; otherwise, with
``FakeEutils(evaluate=True)``, the records the term really matches, evaluated the way PubMed reads
it (``fake_pubmed_search``; a term it cannot read gets an ``<ERROR>`` answer); otherwise every
record (or none with ``strict_terms``), which suits tests about paging, faults and volume.

PubMed revises records: ``revise(pmid, on=day, retracted_by=...)`` replaces a record with a revised
copy (DateRevised ``day``; a RetractionIn link and PublicationType "Retracted Publication" when
retracted), as NCBI does when a retraction notice is published, so an [mdat] window finds it.

    with FakeEutils() as fake:
        fake.add_records_from_file(path, crdt=date(2025, 1, 6))
        client = EutilsClient(fake.url, "me@example.org")
"""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import ClassVar
from xml.sax.saxutils import escape

import loopback
from fake_pubmed_search import (
    DATE_FIELDS,
    Combined,
    DateRange,
    Doc,
    Node,
    UnsupportedTerm,
    day,
    index,
    parse,
)
from loopback import Loopback, Reply

# Prologs copied from recorded answers (Biopython's esearch1.xml and a 2025 efetch).
ESEARCH_PROLOG = (
    b'<?xml version="1.0" encoding="UTF-8" ?>\n'
    b'<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    b'"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
PUBMED_PROLOG = (
    b'<?xml version="1.0" ?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)
ESEARCH_MAX_IDS = 9999
XML = "text/xml; charset=UTF-8"
# Text of the real answer to retstart > 9998 (json-edgecases fixture), here in its XML form.
RETSTART_ERROR = (
    "Search Backend failed: Exception:\n'retstart' cannot be larger than 9998. For PubMed, "
    "ESearch can only retrieve the first 9,999 records matching the query."
)
# Body of NCBI's 429 answer as quoted in biocommons/bioutils#16.
RATE_LIMIT_BODY = b'{"error":"API rate limit exceeded","api-key":"127.0.0.1","count":"4","limit":"3"}'

_WINDOW = re.compile(
    r'^\((?P<term>.*)\) AND \("(?P<lo>\d{4}/\d{2}/\d{2})"\[(?P<field>crdt|mdat)\] : '
    r'"(?P<hi>\d{4}/\d{2}/\d{2})"\[(?P=field)\]\)$',
    re.DOTALL | re.IGNORECASE,
)
_DATE_REVISED = re.compile(rb"<DateRevised>\s*<Year>(\d+)</Year>\s*<Month>(\d+)</Month>\s*<Day>(\d+)</Day>\s*</DateRevised>")
_RECORD = re.compile(rb"<(PubmedArticle|PubmedBookArticle)>.*?</\1>", re.DOTALL)
_CITATION = re.compile(rb"<MedlineCitation[ >].*?</MedlineCitation>", re.DOTALL)
_OWN_PMID = re.compile(rb'<PMID Version="(\d+)">(\d+)</PMID>')
_OWN_DOI = re.compile(
    rb'<ELocationID EIdType="doi"[^>]*>([^<]+)</ELocationID>'
    rb'|<PubmedData>.*?<ArticleIdList>(?:(?!</ArticleIdList>).)*?<ArticleId IdType="doi">([^<]+)</ArticleId>',
    re.DOTALL,
)
_CREATE_DATE = re.compile(
    rb'(<PubMedPubDate PubStatus="(?:pubmed|entrez)">\s*<Year>)\d+(</Year>\s*<Month>)\d+'
    rb"(</Month>\s*<Day>)\d+(</Day>)"
)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    params: dict[str, str]

    @property
    def endpoint(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class Fault(loopback.Fault):
    """What a faulty answer looks like: an HTTP status, an ERROR in a 200, or a cut-off body."""

    error: str | None = None  # a 200 answer whose body holds <ERROR>error</ERROR>

    rate_limit_body: ClassVar[bytes | None] = RATE_LIMIT_BODY


class FakeEutils(Loopback):
    """In-memory PubMed behind a loopback E-utilities server; see the module docstring."""

    base_path = "/entrez/eutils/"
    name = "fake-eutils"
    fault_class = Fault

    def __init__(self, *, evaluate: bool = False) -> None:
        super().__init__()
        self.records: dict[int, tuple[date, bytes]] = {}
        self.terms: dict[str, list[int]] = {}  # term -> PMIDs; a term not here is evaluated or matches all
        self.strict_terms = False  # when True a term not in `terms` matches nothing (PhraseNotFound)
        self.evaluate = evaluate  # when True a term not in `terms` finds the records it matches
        self._docs: dict[int, Doc] = {}  # records as the evaluated search sees them, read once
        self.requests: list[LoggedRequest] = []
        self._history: dict[str, list[int]] = {}
        self._webenvs = itertools.count(1)

    # -- the in-memory PubMed --------------------------------------------------------------------
    def add_record(self, pmid: int, crdt: date, xml: bytes) -> None:
        self.records[pmid] = (crdt, xml)
        self._docs.pop(pmid, None)

    def add_records_from_file(self, path: Path | str, crdt: date) -> list[int]:
        """Split a real efetch answer (PubmedArticleSet) into records; return their PMIDs.

        A file may be gzipped; an old-format MedlineCitationSet (the 2016 baseline) is served as
        PubmedArticles holding each MedlineCitation, without PubmedData, as NCBI wraps them today.
        """
        data = Path(path).read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        found = [m.group(0) for m in _RECORD.finditer(data)]
        if not found:
            found = [b"<PubmedArticle>" + m.group(0) + b"</PubmedArticle>" for m in _CITATION.finditer(data)]
        pmids = []
        for xml in found:
            own = _OWN_PMID.search(xml)
            assert own is not None, f"{path}: a record without PMID"
            pmids.append(int(own.group(2)))
            self.add_record(pmids[-1], crdt, xml)
        return pmids

    def clone_record(self, pmid: int, new_pmid: int, crdt: date, *, doi: str | None = None) -> int:
        """Copy a record under ``new_pmid`` and ``crdt``; its DOI becomes ``doi`` (default: unique)."""
        xml = self.records[pmid][1]
        own = _OWN_PMID.search(xml)
        assert own is not None
        xml = xml[: own.start()] + f'<PMID Version="{own.group(1).decode()}">{new_pmid}</PMID>'.encode() + xml[own.end():]
        xml = xml.replace(
            f'<ArticleId IdType="pubmed">{pmid}</ArticleId>'.encode(),
            f'<ArticleId IdType="pubmed">{new_pmid}</ArticleId>'.encode(),
        )
        old_doi = _OWN_DOI.search(xml)
        if old_doi is not None:
            new_doi = escape(doi or f"10.5555/litwatch.fake.{new_pmid}").encode()
            xml = xml.replace(b">" + (old_doi.group(1) or old_doi.group(2)) + b"<", b">" + new_doi + b"<")
        stamp = rb"\g<1>%d\g<2>%d\g<3>%d\g<4>" % (crdt.year, crdt.month, crdt.day)
        xml = _CREATE_DATE.sub(stamp, xml)
        self.add_record(new_pmid, crdt, xml)
        return new_pmid

    def add_clones(
        self,
        count: int,
        *,
        first_pmid: int,
        crdt: date | Callable[[int], date],
        sources: Iterable[int] | None = None,
    ) -> list[int]:
        """Add ``count`` clones of existing records (round robin) with PMIDs from ``first_pmid``.

        ``crdt`` is one date, or a function of the clone's index (0..count-1) to spread dates.
        """
        pool = list(sources if sources is not None else self.records)
        assert pool, "load some real records first"
        made = []
        for index, source in zip(range(count), itertools.cycle(pool)):
            day = crdt(index) if callable(crdt) else crdt
            made.append(self.clone_record(source, first_pmid + index, day))
        return made

    def revised_on(self, pmid: int) -> date:
        """The record's [mdat]: its DateRevised, never before its create date."""
        crdt, xml = self.records[pmid]
        found = _DATE_REVISED.search(xml)
        revised = date(*map(int, found.groups())) if found else crdt
        return max(crdt, revised)

    def revise(self, pmid: int, *, on: date, retracted_by: int | None = None,
               links: Iterable[tuple[str, int]] = ()) -> bytes:
        """Replace the record with PubMed's revised copy of ``on``; returns the new XML.

        ``retracted_by``: the PMID of a retraction notice, linked as RetractionIn, and the record
        gains PublicationType "Retracted Publication" (what NCBI adds when a paper is retracted).
        ``links``: more CommentsCorrections, as (RefType, PMID): ErratumIn, ExpressionOfConcernIn...
        """
        crdt, xml = self.records[pmid]
        stamp = f"<DateRevised><Year>{on.year}</Year><Month>{on.month:02d}</Month><Day>{on.day:02d}</Day></DateRevised>"
        xml = _DATE_REVISED.sub(stamp.encode(), xml, count=1)
        if retracted_by is not None:
            xml = xml.replace(b"</PublicationTypeList>", b'<PublicationType UI="D016441">Retracted Publication'
                              b"</PublicationType></PublicationTypeList>", 1)
            links = [("RetractionIn", retracted_by), *links]
        for ref_type, ref_pmid in links:
            link = (f'<CommentsCorrections RefType="{ref_type}"><RefSource>{ref_type} notice</RefSource>'
                    f'<PMID Version="1">{ref_pmid}</PMID></CommentsCorrections>').encode()
            if b"<CommentsCorrectionsList>" in xml:
                xml = xml.replace(b"<CommentsCorrectionsList>", b"<CommentsCorrectionsList>" + link, 1)
            else:
                xml = xml.replace(b"</MedlineCitation>", b"<CommentsCorrectionsList>" + link
                                  + b"</CommentsCorrectionsList></MedlineCitation>", 1)
        self.add_record(pmid, crdt, xml)
        return xml

    # -- the request log --------------------------------------------------------------------------
    def count(self, endpoint: str | None = None) -> int:
        """Requests received so far, all of them or those to one endpoint (``"efetch.fcgi"``)."""
        with self._lock:
            return sum(1 for r in self.requests if endpoint is None or r.endpoint == endpoint)

    # -- answering -------------------------------------------------------------------------------
    def answer(self, method: str, path: str, params: dict[str, str]) -> Reply:
        fault = self.take_fault(LoggedRequest(method, path, params))
        endpoint = path.rsplit("/", 1)[-1]
        if isinstance(fault, Fault) and fault.error is not None:
            return Reply(200, _error_body(endpoint, fault.error), XML)
        if endpoint == "esearch.fcgi":
            body = self._esearch(params)
        elif endpoint == "efetch.fcgi":
            body = self._efetch(params)
        else:
            return Reply(404, b"<html><body>Not Found</body></html>", XML)
        return Reply(200, body, XML, fault)

    def _esearch(self, params: dict[str, str]) -> bytes:
        if params.get("db", "pubmed") != "pubmed":
            return _error_body("esearch.fcgi", f"Invalid db name specified: {params['db']}")
        term = params.get("term", "").strip()
        if not term:
            return _error_body("esearch.fcgi", "Empty term and query_key - nothing todo")
        retstart = int(params.get("retstart", 0))
        if retstart > ESEARCH_MAX_IDS - 1:
            return _error_body("esearch.fcgi", RETSTART_ERROR)
        retmax = int(params.get("retmax", 20))
        lo = hi = None
        field = "crdt"
        window = _WINDOW.match(term)
        if window:
            term, lo, hi, field = window["term"].strip(), window["lo"], window["hi"], window["field"].lower()
        elif params.get("mindate") and params.get("maxdate"):
            lo, hi = params["mindate"], params["maxdate"]
        key = " ".join(term.split())
        first, last = day(lo, date.min), day(hi, date.max)
        if key in self.terms:
            candidates = [p for p in self.terms[key] if p in self.records]
        elif self.evaluate:
            try:
                candidates = self._evaluate(params["term"], params)
            except UnsupportedTerm as exc:
                return _error_body("esearch.fcgi", f"fake E-utilities cannot evaluate this term: {exc}")
            first, last = date.min, date.max  # the evaluated term holds its dates already
        elif self.strict_terms:
            candidates = []
        else:
            candidates = list(self.records)
        when = self.revised_on if field == "mdat" else (lambda p: self.records[p][0])
        matches = sorted(
            (p for p in candidates if first <= when(p) <= last),
            key=lambda p: (self.records[p][0], p),
            reverse=True,
        )
        ids = matches[retstart : min(retstart + retmax, ESEARCH_MAX_IDS)]
        parts = [f"<eSearchResult><Count>{len(matches)}</Count><RetMax>{len(ids)}</RetMax><RetStart>{retstart}</RetStart>"]
        if params.get("usehistory") == "y":
            webenv = f"MCID_fake{next(self._webenvs):020d}"
            with self._lock:
                self._history[webenv] = matches
            parts.append(f"<QueryKey>1</QueryKey><WebEnv>{webenv}</WebEnv>")
        parts.append("<IdList>\n" + "".join(f"<Id>{p}</Id>\n" for p in ids) + "</IdList>" if ids else "<IdList/>")
        label = "Modification" if field == "mdat" else "Create"
        translation = f"({term}) AND {lo}:{hi}[Date - {label}]" if lo else term
        parts.append(f"<TranslationSet/><QueryTranslation>{escape(translation)}</QueryTranslation>")
        if not matches and key not in self.terms and self.strict_terms:
            parts.append(
                f"<ErrorList><PhraseNotFound>{escape(term)}</PhraseNotFound></ErrorList>"
                "<WarningList><OutputMessage>No items found.</OutputMessage></WarningList>"
            )
        parts.append("</eSearchResult>\n")
        return ESEARCH_PROLOG + "".join(parts).encode()

    def _evaluate(self, term: str, params: dict[str, str]) -> list[int]:
        """The PMIDs the whole term (its date window included) and any mindate/maxdate match."""
        tree: Node = parse(term)
        if params.get("mindate") and params.get("maxdate"):
            datetype = DATE_FIELDS.get(params.get("datetype", "crdt").lower(), "crdt")
            bounds = DateRange(datetype, day(params["mindate"], date.min), day(params["maxdate"], date.max))
            tree = Combined("AND", tree, bounds)
        found = []
        for pmid, (crdt, xml) in list(self.records.items()):
            doc = self._docs.get(pmid)
            if doc is None:
                doc = self._docs[pmid] = index(xml, crdt)
            if tree.matches(doc):
                found.append(pmid)
        return found

    def _efetch(self, params: dict[str, str]) -> bytes:
        if params.get("db", "pubmed") != "pubmed":
            return _error_body("efetch.fcgi", f"Invalid db name specified: {params['db']}")
        if "id" in params:
            wanted = [int(i) for i in re.split(r"[,\s]+", params["id"].strip()) if i]
        elif "WebEnv" in params:
            with self._lock:
                stored = self._history.get(params["WebEnv"])
            if stored is None or params.get("query_key") != "1":
                return _error_body("efetch.fcgi", f"Unable to obtain query #{params.get('query_key')}")
            start = int(params.get("retstart", 0))
            wanted = stored[start : start + int(params.get("retmax", 20))]
        else:
            return _error_body("efetch.fcgi", "Empty id list - nothing todo")
        records = [self.records[p][1] for p in dict.fromkeys(wanted) if p in self.records]
        return PUBMED_PROLOG + b"<PubmedArticleSet>\n" + b"".join(r + b"\n" for r in records) + b"</PubmedArticleSet>"


def _error_body(endpoint: str, message: str) -> bytes:
    """An ERROR answer in the shape of the recorded esearch.baderror.xml (status 200)."""
    if endpoint == "esearch.fcgi":
        return ESEARCH_PROLOG + f"<eSearchResult>\n\t<ERROR>{escape(message)}</ERROR>\n</eSearchResult>\n".encode()
    return b'<?xml version="1.0" encoding="UTF-8" ?>\n' + (
        f"<eFetchResult>\n\t<ERROR>{escape(message)}</ERROR>\n</eFetchResult>\n".encode()
    )
