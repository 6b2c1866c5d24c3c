"""The E-utilities client: the one place litwatch talks HTTP to NCBI.

Every request carries ``tool``, ``email`` and (when set) ``api_key``, waits for its turn under a rate
limit shared by every client and thread of the process (``rate_limit.py``: 3 requests/s, 10 with
an API key), and is retried (``litwatch.retry``, with exponential backoff, as ``self.retry`` says)
on 429/5xx, network faults, truncated or malformed bodies and transient ``<ERROR>`` answers
(``eutils_answers.py`` reads each answer and says which). A request that still fails raises
:class:`~litwatch.errors.EutilsError`: an empty result always means NCBI found nothing, never
that the call went wrong.

The API key is a secret: it never appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests

from litwatch.config import Settings
from litwatch.errors import ConfigError, EutilsError
from litwatch.retry import Backoff
from litwatch.sources.eutils_answers import (
    ESEARCH_MAX_IDS,
    Failure,
    SearchResult,
    check_pubmed,
    error_detail,
    parse_esearch,
)
from litwatch.sources.rate_limit import RATE_WITH_KEY, RATE_WITHOUT_KEY, RateLimiter

__all__ = ["ESEARCH_MAX_IDS", "EutilsClient", "SearchResult"]

log = logging.getLogger(__name__)

T = TypeVar("T")
EventHook = Callable[[str, dict[str, object]], None]

TOOL = "litwatch"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After would stall a scheduled run
MAX_BACKOFF = 60.0

_API_KEY_PARAM = re.compile(r"(api_key=)[^&\s'\"]+")


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
        return self._call("esearch.fcgi", params, lambda body: parse_esearch(body, retmax, retstart))

    def efetch(self, pmids: Sequence[int]) -> bytes:
        """Fetch PubMed records as the raw ``PubmedArticleSet`` XML; unknown PMIDs are just absent.

        The answer is verified before it is returned: complete, well-formed, no ERROR; a body
        that is not is fetched again. Reading the records is the caller's (pipeline/run.py).
        """
        if not pmids:
            raise ValueError("efetch needs at least one PMID")
        ids = ",".join(str(int(pmid)) for pmid in pmids)
        return self._call("efetch.fcgi", {"db": "pubmed", "id": ids, "retmode": "xml"}, check_pubmed)

    def efetch_history(self, webenv: str, query_key: str | int, retstart: int, retmax: int) -> bytes:
        """Fetch one page of a search kept on the history server (``esearch(usehistory=True)``)."""
        params = {"db": "pubmed", "WebEnv": webenv, "query_key": str(query_key)}
        params |= {"retstart": str(retstart), "retmax": str(retmax), "retmode": "xml"}
        return self._call("efetch.fcgi", params, check_pubmed)

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
                retryable=lambda exc: isinstance(exc, Failure) and exc.retryable,
                told=lambda exc: exc.retry_after if isinstance(exc, Failure) else None,
                on_retry=retrying,
                sleep=self._sleep,
            )
        except Failure as failure:
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
        """Send one request; return the body of a complete 200 answer or raise Failure."""
        try:
            response = self._session.post(url, data=data, timeout=self.timeout)
            body = response.content
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise Failure(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except requests.RequestException as exc:
            raise Failure(f"{type(exc).__name__}: {exc}", retryable=False) from exc
        if response.status_code != 200:
            detail = error_detail(body)
            raise Failure(
                f"HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""),
                retryable=response.status_code in RETRY_STATUSES,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").lower()
        if declared.isdigit() and encoding == "identity" and len(body) < int(declared):
            raise Failure(f"truncated answer: {len(body)} of {declared} bytes", retryable=True)
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
