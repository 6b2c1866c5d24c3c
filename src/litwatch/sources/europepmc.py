"""The Europe PMC client: what litwatch asks Europe PMC's REST ``search``, over the one HTTP door (``http.py``).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litwatch.config import EUROPEPMC_URL, Settings
from litwatch.errors import ConfigError, EuropePmcError
from litwatch.sources.http import (
    Failure,
    HttpClient,
    HttpDoor,
    Session,
    Unreachable,
    base_url_of,
)

log = logging.getLogger(__name__)

RATE = 10.0  # requests per second Europe PMC asks clients to stay under
PACE = 9.0  # what the client keeps to: delays on the way must not bunch 11 requests into one second
PAGE_SIZE = 1000  # the most results Europe PMC returns per page
FIRST_CURSOR = "*"
SETTING = "LITWATCH_EUROPEPMC_URL"


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


class EuropePmcClient(HttpClient):
    """Searches Europe PMC at ``base_url``; see the module docstring for what is retried."""

    def __init__(
        self,
        base_url: str,
        email: str,
        *,
        session: Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url_of(base_url, SETTING)
        if not email:
            raise ConfigError(_EMAIL_MISSING)
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {PAGE_SIZE}, got {page_size}")
        self.email = email
        self.page_size = page_size
        self._door = HttpDoor(
            self.base_url, PACE, session=session, timeout=timeout, max_retries=max_retries,
            backoff=backoff, sleep=sleep, clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, session: Session | None = None) -> EuropePmcClient:
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

        def attempt(number: int) -> _Page:
            return _read_page(self._door.send("GET", url, params=params, describe=_describe, wrong_url=(404,)))

        def retrying(number: int, attempts: int, failure: Failure, delay: float) -> None:
            log.warning("Europe PMC search attempt %d/%d failed (%s); retrying in %.1f s", number, attempts, failure, delay)

        try:
            return self._door.run(attempt, on_retry=retrying)
        except Unreachable as failure:
            cause = failure.cause if failure.reason is None else _UNREACHABLE.get(failure.reason, "connection refused")
            raise EuropePmcError(
                f"no Europe PMC search at {self.base_url}: {cause} (not retried: "
                f"check {SETTING}, default {EUROPEPMC_URL})"
            ) from (failure.__cause__ or failure)
        except Failure as failure:
            hint = (
                " (Europe PMC may be busy or down: run again later)"
                if failure.retryable
                else " (not retried: asking again would not help)"
            )
            made = failure.attempts
            raise EuropePmcError(
                f"Europe PMC search at {self.base_url} failed after {made} attempt{'s' if made > 1 else ''}: "
                f"{failure.cause}{hint}"
            ) from (failure.__cause__ or failure)


_UNREACHABLE = {"no such host": "host not found"}  # Europe PMC's wording; any other: connection refused


def _describe(status: int, reason: str, body: bytes, url: str) -> str:
    if status == 404:
        return f"HTTP 404 {reason} for {url}"
    return f"HTTP {status} {reason}" + _detail(body)


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
