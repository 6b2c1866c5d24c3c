"""A loopback fake of NCBI E-utilities for end-to-end tests over real sockets.

``FakeEutils`` runs a small ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a background thread
and holds an in-memory PubMed: ``records[pmid] = (create_date, PubmedArticle XML bytes)``, loaded
from real recorded efetch answers and cloned under fresh PMIDs to build large collections.

It answers ``esearch.fcgi`` (GET or POST; the ``(term) AND ("YYYY/MM/DD"[crdt] : "YYYY/MM/DD"[crdt])``
window form or mindate/maxdate; retmax capped at 9,999 ids while Count tells the full number;
retstart; usehistory) and ``efetch.fcgi`` (ids, or WebEnv + query_key + retstart + retmax), in the
exact shapes of recorded answers. Every request is logged; ``inject`` makes requests fail.

Which records a term finds: the PMIDs pinned in ``terms[term]`` if any; otherwise, with
``FakeEutils(evaluate=True)``, the records the term really matches, evaluated the way PubMed reads
it (``fake_pubmed_search``; a term it cannot read gets an ``<ERROR>`` answer); otherwise every
record (or none with ``strict_terms``), which suits tests about paging, faults and volume.

    with FakeEutils() as fake:
        fake.add_records_from_file(path, crdt=date(2025, 1, 6))
        client = EutilsClient(fake.url, "me@example.org")
"""

from __future__ import annotations

import gzip
import itertools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

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
# Text of the real answer to retstart > 9998 (json-edgecases fixture), here in its XML form.
RETSTART_ERROR = (
    "Search Backend failed: Exception:\n'retstart' cannot be larger than 9998. For PubMed, "
    "ESearch can only retrieve the first 9,999 records matching the query."
)
# Body of NCBI's 429 answer as quoted in biocommons/bioutils#16.
RATE_LIMIT_BODY = b'{"error":"API rate limit exceeded","api-key":"127.0.0.1","count":"4","limit":"3"}'

_WINDOW = re.compile(
    r'^\((?P<term>.*)\) AND \("(?P<lo>\d{4}/\d{2}/\d{2})"\[crdt\] : "(?P<hi>\d{4}/\d{2}/\d{2})"\[crdt\]\)$',
    re.DOTALL | re.IGNORECASE,
)
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
class Fault:
    """What a faulty answer looks like: an HTTP status, an ERROR in a 200, or a cut-off body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    error: str | None = None  # a 200 answer whose body holds <ERROR>error</ERROR>
    truncate: bool = False  # send the real answer's headers and half its body, then hang up

    @classmethod
    def http(cls, status: int, retry_after: str | None = "0") -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = RATE_LIMIT_BODY if status == 429 else f"<html><body><h1>{status}</h1></body></html>".encode()
        return cls(status=status, headers=headers, body=body)


@dataclass
class _Rule:
    fault: Fault
    every: int
    times: int | None
    seen: int = 0
    served: int = 0


class FakeEutils:
    """In-memory PubMed behind a loopback E-utilities server; see the module docstring."""

    def __init__(self, *, evaluate: bool = False) -> None:
        self.records: dict[int, tuple[date, bytes]] = {}
        self.terms: dict[str, list[int]] = {}  # term -> PMIDs; a term not here is evaluated or matches all
        self.strict_terms = False  # when True a term not in `terms` matches nothing (PhraseNotFound)
        self.evaluate = evaluate  # when True a term not in `terms` finds the records it matches
        self._docs: dict[int, Doc] = {}  # records as the evaluated search sees them, read once
        self.requests: list[LoggedRequest] = []
        self._history: dict[str, list[int]] = {}
        self._webenvs = itertools.count(1)
        self._rule: _Rule | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeEutils:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-eutils", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None

    def __enter__(self) -> FakeEutils:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/entrez/eutils/"

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

    # -- faults and the request log --------------------------------------------------------------
    def inject(self, fault: Fault, *, every: int = 1, times: int | None = None) -> None:
        """From now on every ``every``-th request gets ``fault`` (at most ``times`` times)."""
        with self._lock:
            self._rule = _Rule(fault, every, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._rule = None

    def count(self, endpoint: str | None = None) -> int:
        """Requests received so far, all of them or those to one endpoint (``"efetch.fcgi"``)."""
        with self._lock:
            return sum(1 for r in self.requests if endpoint is None or r.endpoint == endpoint)

    # -- answering -------------------------------------------------------------------------------
    def _handle(self, method: str, path: str, params: dict[str, str]) -> tuple[Fault | None, int, bytes]:
        with self._lock:
            self.requests.append(LoggedRequest(method, path, params))
            fault = None
            rule = self._rule
            if rule is not None and (rule.times is None or rule.served < rule.times):
                rule.seen += 1
                if rule.seen % rule.every == 0:
                    rule.served += 1
                    fault = rule.fault
        endpoint = path.rsplit("/", 1)[-1]
        if fault is not None and fault.error is not None:
            return None, 200, _error_body(endpoint, fault.error)
        if endpoint == "esearch.fcgi":
            body = self._esearch(params)
        elif endpoint == "efetch.fcgi":
            body = self._efetch(params)
        else:
            return None, 404, b"<html><body>Not Found</body></html>"
        return fault, 200, body

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
        window = _WINDOW.match(term)
        if window:
            term, lo, hi = window["term"].strip(), window["lo"], window["hi"]
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
        matches = sorted(
            (p for p in candidates if first <= self.records[p][0] <= last),
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
        translation = f"({term}) AND {lo}:{hi}[Date - Create]" if lo else term
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


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeEutils/1.0"

    def do_GET(self) -> None:
        self._answer("GET", "")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer("POST", self.rfile.read(length).decode("utf-8"))

    def _answer(self, method: str, form: str) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        params.update(parse_qsl(form, keep_blank_values=True))
        fake: FakeEutils = self.server.fake  # type: ignore[attr-defined]
        fault, status, body = fake._handle(method, url.path, params)
        headers = {"Content-Type": "text/xml; charset=UTF-8"}
        if fault is not None and fault.status != 200:
            status, body = fault.status, fault.body or b""
            headers = {"Content-Type": "application/json" if body.startswith(b"{") else "text/html"}
            headers |= fault.headers
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault is not None and fault.truncate:
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
