"""The E-utilities client: the one place litwatch talks HTTP to NCBI.

Every request carries ``tool``, ``email`` and (when set) ``api_key``, waits for its turn under a rate
limit shared by every client and thread of the process (3 requests/s, 10 with an API key), and is
retried with exponential backoff on 429/5xx, network faults, truncated bodies and transient
``<ERROR>`` answers. A request that still fails raises :class:`~litwatch.errors.EutilsError`: an
empty result always means NCBI found nothing, never that the call went wrong.

The API key is a secret: it never appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from xml.parsers import expat

import requests
from Bio import Entrez

from litwatch.config import Settings
from litwatch.errors import ConfigError, EutilsError
from litwatch.retry import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")
EventHook = Callable[[str, dict[str, object]], None]

TOOL = "litwatch"
RATE_WITHOUT_KEY = 3.0  # requests per second NCBI allows a site without an API key
RATE_WITH_KEY = 10.0
# Starts are spaced 5% wider than 1/rate: exactly 1/3 s apart, network jitter can land a fourth
# request inside NCBI's one-second window (bench/run_requests.py saw 429s until this margin).
RATE_MARGIN = 1.05
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After would stall a scheduled run
MAX_BACKOFF = 60.0
ESEARCH_MAX_IDS = 9999  # PubMed ESearch returns ids for the first 9,999 matches only

# An <ERROR> text is retried only when it reads like a passing fault. The retstart message starts
# with "Search Backend failed" yet can never succeed, so permanent patterns are checked first.
_PERMANENT_ERRORS = ("cannot be larger than 9998",)
_TRANSIENT_ERRORS = (
    "search backend failed",
    "temporarily unavailable",
    "try again",
    "timed out",
    "timeout",
    "service unavailable",
    "server is busy",
    "rate limit exceeded",
)

# ESearch answers are parsed against Biopython's bundled esearch.dtd whatever DOCTYPE they name:
# Bio.Entrez would otherwise download a DTD it lacks, and refuses old http:// DTD addresses.
_ESEARCH_DOCTYPE = (
    b'<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    b'"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">'
)
_PROLOG = re.compile(rb"\s*(<\?xml[^>]*\?>)?\s*(<!DOCTYPE[^>]*>)?")
_ERROR_TEXT = re.compile(
    rb'<ERROR>(.*?)</ERROR>|"(?:ERROR|error)"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL
)
_API_KEY_PARAM = re.compile(r"(api_key=)[^&\s'\"]+")
_entrez_read: Callable[..., Any] = Entrez.read  # only its parser: its HTTP functions ignore Retry-After

_RATE_LOCK = threading.Lock()
_LAST_START: dict[tuple[str, object], float] = {}  # (base URL, clock) -> last request start


@dataclass
class SearchResult:
    """One ESearch answer. ``count`` is every match; ``ids`` the page asked for (at most 9,999)."""

    count: int
    ids: list[int]
    webenv: str | None = None
    query_key: str | None = None
    query_translation: str = ""
    warnings: list[str] = field(default_factory=list)


class RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart for one E-utilities host.

    The last start time lives in a module-level table guarded by a module-level lock, so every
    client and thread of the process aimed at the same host shares it. The table is keyed by
    the base URL *and* the clock, because start times read from different clocks cannot be
    compared (tests inject their own clock; production clients all use ``time.monotonic``).
    """

    def __init__(
        self,
        key: str,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.interval = RATE_MARGIN / rate
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> float:
        """Block until this caller may start a request; return the start time reserved."""
        slot_key = (self.key, self._clock)
        with _RATE_LOCK:
            now = self._clock()
            last = _LAST_START.get(slot_key)
            start = now if last is None else max(now, last + self.interval)
            _LAST_START[slot_key] = start
        if start > now:
            self._sleep(start - now)
        return start


class _Failure(Exception):
    """One failed attempt; ``retryable`` says whether asking again could succeed."""

    def __init__(self, cause: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retryable = retryable
        self.retry_after = retry_after


class EutilsClient:
    """Talks to E-utilities at ``base_url`` for PubMed searches and fetches."""

    def __init__(
        self,
        base_url: str,
        email: str,
        api_key: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_event: EventHook | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"E-utilities URL must start with http:// or https://, got {base_url!r}")
        if not email:
            raise ConfigError(_EMAIL_MISSING)
        self.base_url = base_url.rstrip("/") + "/"
        self.email = email
        self._api_key = api_key or None
        self._owns_session = session is None
        self._session = session or requests.Session()
        self.timeout = timeout
        self.retry = Backoff(first=backoff, most=MAX_BACKOFF, attempts=max(0, max_retries) + 1, jitter=0.1)
        self._sleep = sleep
        self._on_event = on_event
        rate = RATE_WITH_KEY if self._api_key else RATE_WITHOUT_KEY
        self._limiter = RateLimiter(self.base_url, rate, clock=clock, sleep=sleep)
        self._counter_lock = threading.Lock()
        self.requests_made = 0
        self.retries = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        on_event: EventHook | None = None,
    ) -> EutilsClient:
        """Build the client a run uses; NCBI requires a contact email, so one must be set."""
        if not settings.email:
            raise ConfigError(_EMAIL_MISSING)
        return cls(
            settings.eutils_url,
            settings.email,
            settings.api_key,
            session=session,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            on_event=on_event,
        )

    @property
    def max_retries(self) -> int:
        """Attempts after the first one a failed request gets."""
        return (self.retry.attempts or 1) - 1

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"EutilsClient(base_url={self.base_url!r}, email={self.email!r}, api_key={key})"

    def __enter__(self) -> EutilsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._owns_session:
            self._session.close()

    def esearch(
        self,
        term: str,
        *,
        mindate: str | None = None,
        maxdate: str | None = None,
        datetype: str = "crdt",
        retmax: int = ESEARCH_MAX_IDS,
        retstart: int = 0,
        usehistory: bool = False,
    ) -> SearchResult:
        """Search PubMed; POSTed so that long saved queries fit.

        Dates are ``YYYY/MM/DD`` (or ``YYYY``, ``YYYY/MM``) and must be given together.
        """
        if (mindate is None) != (maxdate is None):
            raise ValueError("esearch needs both mindate and maxdate, or neither")
        params = {"db": "pubmed", "term": term, "retmax": str(retmax), "retstart": str(retstart)}
        if mindate is not None and maxdate is not None:
            params |= {"datetype": datetype, "mindate": mindate, "maxdate": maxdate}
        if usehistory:
            params["usehistory"] = "y"
        return self._call("esearch.fcgi", params, lambda body: _parse_esearch(body, retmax, retstart))

    def efetch(self, pmids: Sequence[int]) -> bytes:
        """Fetch PubMed records as the raw ``PubmedArticleSet`` XML; unknown PMIDs are just absent.

        The answer is verified before it is returned: complete, well-formed, no ERROR; a body
        that is not is fetched again. Reading the records is the caller's (pipeline/run.py).
        """
        if not pmids:
            raise ValueError("efetch needs at least one PMID")
        ids = ",".join(str(int(pmid)) for pmid in pmids)
        return self._call("efetch.fcgi", {"db": "pubmed", "id": ids, "retmode": "xml"}, _check_pubmed)

    def efetch_history(self, webenv: str, query_key: str | int, retstart: int, retmax: int) -> bytes:
        """Fetch one page of a search kept on the history server (``esearch(usehistory=True)``)."""
        params = {"db": "pubmed", "WebEnv": webenv, "query_key": str(query_key)}
        params |= {"retstart": str(retstart), "retmax": str(retmax), "retmode": "xml"}
        return self._call("efetch.fcgi", params, _check_pubmed)

    def _call(self, endpoint: str, params: Mapping[str, str], parse: Callable[[bytes], T]) -> T:
        """POST to ``endpoint`` and check the answer, retrying (``self.retry``) until it works or
        attempts run out. This is the one place where failed attempts turn into an EutilsError."""
        url = self.base_url + endpoint
        data = {**params, "tool": TOOL, "email": self.email}
        if self._api_key:
            data["api_key"] = self._api_key
        attempts = self.retry.attempts or 1
        made = 0

        def attempt(number: int) -> T:
            nonlocal made
            made = number
            started = self._limiter.wait()
            with self._counter_lock:
                self.requests_made += 1
            self._emit("request", endpoint=endpoint, attempt=number, at=started)
            return parse(self._post(url, data))

        def retrying(number: int, exc: BaseException, delay: float) -> None:
            cause = self._redact(str(exc))
            with self._counter_lock:
                self.retries += 1
            log.warning("%s attempt %d/%d failed (%s); retrying in %.1f s", endpoint, number, attempts, cause, delay)
            self._emit("retry", endpoint=endpoint, attempt=number, delay=delay, cause=cause)

        try:
            return self.retry.run(
                attempt,
                retryable=lambda exc: isinstance(exc, _Failure) and exc.retryable,
                told=lambda exc: exc.retry_after if isinstance(exc, _Failure) else None,
                on_retry=retrying,
                sleep=self._sleep,
            )
        except _Failure as failure:
            hint = (
                " (NCBI may be busy or down: run again later)"
                if failure.retryable
                else " (not retried: asking again would not help)"
            )
            message = (
                f"E-utilities {endpoint} at {self._redact(self.base_url)} failed after "
                f"{made} attempt{'s' if made > 1 else ''}: {self._redact(failure.cause)}{hint}"
            )
            raise EutilsError(message) from (failure.__cause__ or failure)

    def _post(self, url: str, data: Mapping[str, str]) -> bytes:
        """Send one request; return the body of a complete 200 answer or raise _Failure."""
        try:
            response = self._session.post(url, data=data, timeout=self.timeout)
            body = response.content
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise _Failure(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except requests.RequestException as exc:
            raise _Failure(f"{type(exc).__name__}: {exc}", retryable=False) from exc
        if response.status_code != 200:
            detail = _error_text(body)
            raise _Failure(
                f"HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""),
                retryable=response.status_code in RETRY_STATUSES,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").lower()
        if declared.isdigit() and encoding == "identity" and len(body) < int(declared):
            raise _Failure(f"truncated answer: {len(body)} of {declared} bytes", retryable=True)
        return body

    def _redact(self, text: str) -> str:
        text = _API_KEY_PARAM.sub(r"\1***", text)
        return text.replace(self._api_key, "***") if self._api_key else text

    def _emit(self, event: str, **details: object) -> None:
        if self._on_event is not None:
            self._on_event(event, details)


_EMAIL_MISSING = (
    "no contact email for NCBI: set LITWATCH_EMAIL (or `email` in litwatch.toml); "
    "NCBI asks every E-utilities client for one"
)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _error_text(body: bytes) -> str:
    """The ERROR message in an XML or JSON body, shortened, or '' when there is none."""
    match = _ERROR_TEXT.search(body[:20000])
    if not match:
        return ""
    raw = match.group(1) if match.group(1) is not None else match.group(2)
    text = raw.decode("utf-8", "replace")
    if match.group(2) is not None:
        try:
            text = json.loads(f'"{text}"', strict=False)
        except ValueError:
            pass
    return " ".join(text.split())[:300]


def _error_answer(message: str) -> _Failure:
    """Classify an ERROR NCBI sent in a 200 answer as worth retrying or not."""
    lowered = message.lower()
    transient = not any(p in lowered for p in _PERMANENT_ERRORS) and any(
        p in lowered for p in _TRANSIENT_ERRORS
    )
    return _Failure(f"NCBI answered ERROR: {message}", retryable=transient)


def _check_xml(body: bytes, root: str) -> None:
    """Raise _Failure unless ``body`` is complete XML with ``root`` at the top and no ERROR."""
    if body.lstrip().startswith(b"{"):
        detail = _error_text(body)
        if detail:
            raise _error_answer(detail)
        raise _Failure("answered JSON where XML was asked for", retryable=True)
    found: list[str] = []
    errors: list[str] = []
    depth = 0
    error_text: list[str] | None = None

    def start(name: str, attrs: object) -> None:
        nonlocal depth, error_text
        depth += 1
        if depth == 1:
            found.append(name)
        if name == "ERROR" and depth <= 2:
            error_text = []

    def end(name: str) -> None:
        nonlocal depth, error_text
        depth -= 1
        if name == "ERROR" and error_text is not None:
            if "".join(error_text).strip():
                errors.append(" ".join("".join(error_text).split()))
            error_text = None

    def text(data: str) -> None:
        if error_text is not None:
            error_text.append(data)

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise _Failure(f"truncated or malformed XML ({exc})", retryable=True) from exc
    if errors:
        raise _error_answer("; ".join(errors))
    if found != [root]:
        got = f"<{found[0]}>" if found else "no element"
        raise _Failure(f"unexpected answer: {got} where <{root}> was expected", retryable=True)


_PUBMED_END = re.compile(rb"(?:</PubmedArticleSet>|<PubmedArticleSet\s*/>)\s*$")


def _check_pubmed(body: bytes) -> bytes:
    """Verify an efetch answer: no ERROR near the top, the closing tag there, well-formed between.

    The well-formedness check is expat without handlers, a quarter of what reading the records
    costs, so that a body damaged in the middle is fetched again rather than failing the run.
    """
    if b"ERROR" in body[:2048] or not _PUBMED_END.search(body[-256:]):
        _check_xml(body, "PubmedArticleSet")  # raises naming the ERROR or where the XML breaks
    try:
        expat.ParserCreate().Parse(body, True)
    except expat.ExpatError as exc:
        raise _Failure(f"malformed XML ({exc})", retryable=True) from exc
    return body


def _parse_esearch(body: bytes, retmax: int, retstart: int) -> SearchResult:
    """Read an ESearch answer with Bio.Entrez.read, never letting it reach the network.

    An answer that counts matches yet lists no id for a page that should hold some is treated
    as broken, so a glitch never passes for "nothing new".
    """
    _check_xml(body, "eSearchResult")
    prolog = _PROLOG.match(body)
    assert prolog is not None  # the pattern matches the empty string
    declaration = prolog.group(1) or b'<?xml version="1.0" encoding="UTF-8" ?>'
    local = declaration + b"\n" + _ESEARCH_DOCTYPE + b"\n" + body[prolog.end():]
    try:
        record = _entrez_read(io.BytesIO(local), validate=False)
        result = _search_result(record)
    except RuntimeError as exc:  # Bio.Entrez raises RuntimeError(text) for an <ERROR> element
        raise _error_answer(str(exc)) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise _Failure(f"unreadable ESearch answer ({exc})", retryable=True) from exc
    if retmax > 0 and retstart < min(result.count, ESEARCH_MAX_IDS) and not result.ids:
        raise _Failure(f"ESearch reported {result.count} matches but sent no ids", retryable=True)
    return result


def _quoted(text: str) -> str:
    return text if text.startswith('"') else f'"{text}"'


def _search_result(record: Any) -> SearchResult:
    errors = record.get("ErrorList") or {}
    notes = record.get("WarningList") or {}
    warnings = [f"phrase not found: {_quoted(p)}" for p in errors.get("PhraseNotFound", [])]
    warnings += [f"field not found: {_quoted(f)}" for f in errors.get("FieldNotFound", [])]
    warnings += [f"quoted phrase not found: {_quoted(p)}" for p in notes.get("QuotedPhraseNotFound", [])]
    warnings += [f"phrase ignored: {_quoted(p)}" for p in notes.get("PhraseIgnored", [])]
    warnings += [str(m) for m in notes.get("OutputMessage", [])]
    webenv = record.get("WebEnv")
    query_key = record.get("QueryKey")
    return SearchResult(
        count=int(record["Count"]),
        ids=[int(i) for i in record["IdList"]],
        webenv=str(webenv) if webenv else None,
        query_key=str(query_key) if query_key else None,
        query_translation=str(record.get("QueryTranslation", "")),
        warnings=warnings,
    )
