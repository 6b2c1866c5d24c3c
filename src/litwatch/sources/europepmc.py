"""The Europe PMC client: the one place litwatch talks HTTP to Europe PMC's REST ``search``.

Every request is a GET of ``{base}search?query=...&resultType=core&format=json&pageSize=...&
cursorMark=...`` carrying the contact ``email``, waits for its turn under a rate limit of 10
requests/s shared by every client of the process (``rate_limit.py``), and is retried
(``litwatch.retry``, as ``self.retry`` says) on 429 (its Retry-After honoured), 5xx, timeouts and
truncated or malformed JSON. A connection refused, a host not found or a 404 is not retried: the
URL is wrong, and the message names ``LITWATCH_EUROPEPMC_URL``. A search that still fails raises
:class:`~litwatch.errors.EuropePmcError`: an empty result always means Europe PMC found nothing.

``europepmc_results.read_result`` turns one result into the records the store takes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from litwatch.config import EUROPEPMC_URL, Settings
from litwatch.errors import ConfigError, EuropePmcError
from litwatch.retry import Backoff
from litwatch.sources.eutils import MAX_BACKOFF, RETRY_STATUSES
from litwatch.sources.eutils import _retry_after as retry_after
from litwatch.sources.eutils_answers import Failure
from litwatch.sources.rate_limit import RateLimiter

log = logging.getLogger(__name__)

RATE = 10.0  # requests per second Europe PMC asks clients to stay under
PACE = 9.0  # what the client keeps to: delays on the way must not bunch 11 requests into one second
PAGE_SIZE = 1000  # the most results Europe PMC returns per page
FIRST_CURSOR = "*"
SETTING = "LITWATCH_EUROPEPMC_URL"


class _Unreachable(Failure):
    """Nothing answers at the URL set, or something that is not Europe PMC: asking again won't help."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, retryable=False)


@dataclass(frozen=True)
class SearchReceipt:
    """What one search cost and found: ``hit_count`` is Europe PMC's own count of matches."""

    query: str
    hit_count: int
    results: int
    pages: int
    requests: int
    retries: int
    warnings: tuple[str, ...] = ()


@dataclass
class SearchAnswer:
    """Every result of a search (Europe PMC's JSON objects, in its order) and its receipt."""

    results: list[dict[str, Any]]
    receipt: SearchReceipt


@dataclass(frozen=True)
class _Page:
    hit_count: int
    results: list[dict[str, Any]]
    next_cursor: str | None


def preprint_query(query: str, start: dt.date, end: dt.date) -> str:
    """The preprints of ``query`` first indexed from ``start`` to ``end`` (both included)."""
    if not query.strip():
        raise ValueError("a Europe PMC search needs a query")
    if end < start:
        raise ValueError(f"window ends ({end}) before it starts ({start})")
    return f"({query.strip()}) AND SRC:PPR AND FIRST_IDATE:[{start.isoformat()} TO {end.isoformat()}]"


class EuropePmcClient:
    """Searches Europe PMC at ``base_url``; see the module docstring for what is retried."""

    def __init__(
        self,
        base_url: str,
        email: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{SETTING} must start with http:// or https://, got {base_url!r}")
        if not email:
            raise ConfigError(_EMAIL_MISSING)
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {PAGE_SIZE}, got {page_size}")
        self.base_url = base_url.rstrip("/") + "/"
        self.email = email
        self.page_size = page_size
        self._owns_session = session is None
        self._session = session or requests.Session()
        self.timeout = timeout
        self.retry = Backoff(first=backoff, most=MAX_BACKOFF, attempts=max(0, max_retries) + 1, jitter=0.1)
        self._sleep = sleep
        self._limiter = RateLimiter(self.base_url, PACE, clock=clock, sleep=sleep)
        self.requests_made = 0
        self.retries = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, session: requests.Session | None = None) -> EuropePmcClient:
        """The client a run uses: ``europepmc_url``, the contact ``email``, timeout and retries."""
        return cls(
            settings.europepmc_url,
            settings.email or "",
            session=session,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )

    def __repr__(self) -> str:
        return f"EuropePmcClient(base_url={self.base_url!r}, email={self.email!r})"

    def __enter__(self) -> EuropePmcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._owns_session:
            self._session.close()

    def search_preprints(self, query: str, start: dt.date, end: dt.date) -> SearchAnswer:
        """Every preprint matching ``query`` first indexed in ``start..end``, with the receipt."""
        return self.search(preprint_query(query, start, end))

    def search(self, query: str) -> SearchAnswer:
        """Every ``core`` result of ``query``, paged by ``cursorMark`` until a page comes back
        empty, without a next cursor, or with a cursor already followed (Europe PMC repeats the
        last one at the end; following it again would loop)."""
        requests_before, retries_before = self.requests_made, self.retries
        results: list[dict[str, Any]] = []
        cursor, followed = FIRST_CURSOR, {FIRST_CURSOR}
        pages, hit_count = 0, 0
        while True:
            page = self._call(query, cursor)
            pages += 1
            hit_count = hit_count or page.hit_count
            results.extend(page.results)
            if not page.results or page.next_cursor is None or page.next_cursor in followed:
                break
            cursor = page.next_cursor
            followed.add(cursor)
        warnings = []
        if len(results) < hit_count:  # e.g. preprints indexed while paging; the next run's overlap finds them
            warnings.append(f"Europe PMC counted {hit_count} results but paging gave {len(results)}")
            log.warning("%s for %r", warnings[-1], query)
        receipt = SearchReceipt(
            query=query,
            hit_count=hit_count,
            results=len(results),
            pages=pages,
            requests=self.requests_made - requests_before,
            retries=self.retries - retries_before,
            warnings=tuple(warnings),
        )
        return SearchAnswer(results, receipt)

    def _call(self, query: str, cursor: str) -> _Page:
        """One page, retried (``self.retry``) until it works or attempts run out. This is the
        one place where failed attempts turn into a EuropePmcError."""
        url = self.base_url + "search"
        params = {
            "query": query,
            "resultType": "core",
            "format": "json",
            "pageSize": str(self.page_size),
            "cursorMark": cursor,
            "email": self.email,
        }
        attempts = self.retry.attempts or 1
        made = 0

        def attempt(number: int) -> _Page:
            nonlocal made
            made = number
            self._limiter.wait()
            self.requests_made += 1
            return _read_page(self._get(url, params))

        def retrying(number: int, exc: BaseException, delay: float) -> None:
            self.retries += 1
            log.warning("Europe PMC search attempt %d/%d failed (%s); retrying in %.1f s", number, attempts, exc, delay)

        try:
            return self.retry.run(
                attempt,
                retryable=lambda exc: isinstance(exc, Failure) and exc.retryable,
                told=lambda exc: exc.retry_after if isinstance(exc, Failure) else None,
                on_retry=retrying,
                sleep=self._sleep,
            )
        except _Unreachable as failure:
            raise EuropePmcError(
                f"no Europe PMC search at {self.base_url}: {failure.cause} (not retried: "
                f"check {SETTING}, default {EUROPEPMC_URL})"
            ) from (failure.__cause__ or failure)
        except Failure as failure:
            hint = (
                " (Europe PMC may be busy or down: run again later)"
                if failure.retryable
                else " (not retried: asking again would not help)"
            )
            raise EuropePmcError(
                f"Europe PMC search at {self.base_url} failed after {made} attempt{'s' if made > 1 else ''}: "
                f"{failure.cause}{hint}"
            ) from (failure.__cause__ or failure)

    def _get(self, url: str, params: Mapping[str, str]) -> bytes:
        """Send one request; return the body of a complete 200 answer or raise Failure."""
        try:
            response = self._session.get(url, params=params, timeout=self.timeout)
            body = response.content
        except requests.Timeout as exc:
            raise Failure(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except requests.ConnectionError as exc:
            reason = exc.args[0] if exc.args else None
            reason = getattr(reason, "reason", reason)
            if isinstance(reason, NameResolutionError):
                raise _Unreachable("host not found") from exc
            if isinstance(reason, NewConnectionError):
                raise _Unreachable("connection refused") from exc
            raise Failure(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise Failure(f"truncated answer ({type(exc).__name__})", retryable=True) from exc
        except requests.RequestException as exc:
            raise Failure(f"{type(exc).__name__}: {exc}", retryable=False) from exc
        if response.status_code == 404:
            raise _Unreachable(f"HTTP 404 {response.reason} for {url}")
        if response.status_code != 200:
            raise Failure(
                f"HTTP {response.status_code} {response.reason}" + _detail(body),
                retryable=response.status_code in RETRY_STATUSES,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").lower()
        if declared.isdigit() and encoding == "identity" and len(body) < int(declared):
            raise Failure(f"truncated answer: {len(body)} of {declared} bytes", retryable=True)
        return body


_EMAIL_MISSING = (
    "no contact email for Europe PMC: set LITWATCH_EMAIL (or `email` in litwatch.toml); "
    "it is sent with every request so Europe PMC can reach whoever runs the client"
)


def _detail(body: bytes) -> str:
    """A short, one-line excerpt of an error answer's body, or ''."""
    text = " ".join(re.sub(r"<[^>]+>", " ", body[:2000].decode("utf-8", "replace")).split())
    return f": {text[:200]}" if text else ""


def _read_page(body: bytes) -> _Page:
    """One search answer, or a retryable Failure when it is cut off or not a search answer."""
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise Failure(f"malformed JSON ({exc})", retryable=True) from exc
    result_list = answer.get("resultList") if isinstance(answer, dict) else None
    results = result_list.get("result") if isinstance(result_list, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise Failure("not a Europe PMC search answer (no resultList.result)", retryable=True)
    try:
        hit_count = int(answer.get("hitCount", 0))
    except (TypeError, ValueError) as exc:
        raise Failure(f"hitCount is not a number: {answer.get('hitCount')!r}", retryable=True) from exc
    cursor = answer.get("nextCursorMark")
    return _Page(hit_count, results, cursor if isinstance(cursor, str) and cursor else None)
