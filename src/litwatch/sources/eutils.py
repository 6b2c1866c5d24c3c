"""The E-utilities client: what litwatch asks NCBI, over the one HTTP door (``http.py``).

Every request carries ``tool``, ``email`` and (when set) ``api_key``, waits for its turn under a rate
limit (``rate_limit.py``: 3 requests/s, 10 with an API key) shared by every client and thread of
the process and, built from settings, by every litwatch process of the machine (``rate_file``)
or of every host on one PostgreSQL store (a ``budget`` from ``store/rate_budget.py``), and is retried (``litwatch.retry``, with exponential backoff, as ``self.retry`` says)
on 429/5xx, network faults, truncated or malformed bodies and transient ``<ERROR>`` answers
(``eutils_answers.py`` reads each answer and says which). A request that still fails raises
:class:`~litwatch.errors.EutilsError`: an empty result always means NCBI found nothing, never
that the call went wrong.

What retrying cannot mend fails at once, in one line naming ``LITWATCH_EUTILS_URL`` and what it
holds: a refused connection, a host that does not resolve, a 404, or a web page (HTML) where
E-utilities answers XML. A wrong or unreachable URL so costs a run seconds, not minutes of backoff.

The API key is a secret: it never appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from litwatch.config import NCBI_EUTILS_URL, Settings
from litwatch.errors import ConfigError, EutilsError, HistoryLost
from litwatch.sources.eutils_answers import (
    ESEARCH_MAX_IDS,
    ErrorAnswer,
    SearchResult,
    check_pubmed,
    error_detail,
    parse_esearch,
)
from litwatch.sources.http import Failure, HttpClient, HttpDoor, Session, Unreachable, base_url_of
from litwatch.sources.rate_limit import RATE_WITH_KEY, RATE_WITHOUT_KEY, Budget, FileBudget, budget_key

__all__ = ["ESEARCH_MAX_IDS", "EutilsClient", "HistoryLost", "SearchResult"]

log = logging.getLogger(__name__)

T = TypeVar("T")
EventHook = Callable[[str, dict[str, object]], None]

TOOL = "litwatch"
SETTING = "LITWATCH_EUTILS_URL"

_API_KEY_PARAM = re.compile(r"(api_key=)[^&\s'\"]+")


class EutilsClient(HttpClient):
    """Talks to E-utilities at ``base_url`` for PubMed searches and fetches."""

    def __init__(
        self,
        base_url: str,
        email: str,
        api_key: str | None = None,
        *,
        session: Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_event: EventHook | None = None,
        rate_file: Path | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.base_url = base_url_of(base_url, "E-utilities URL")
        if not email:
            raise ConfigError(_EMAIL_MISSING)
        self.email = email
        self._api_key = api_key or None
        self._on_event = on_event
        rate = RATE_WITH_KEY if self._api_key else RATE_WITHOUT_KEY
        if budget is None and rate_file is not None:
            budget = FileBudget(rate_file, clock=clock)
        self._door = HttpDoor(
            self.base_url, rate, session=session, timeout=timeout, max_retries=max_retries,
            backoff=backoff, sleep=sleep, clock=clock, budget=budget,
            budget_key=budget_key(self.base_url, self._api_key),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: Session | None = None,
        on_event: EventHook | None = None,
        budget: Budget | None = None,
    ) -> EutilsClient:
        """Build the client a run uses; NCBI requires a contact email, so one must be set.

        Its rate limit is shared through ``budget`` when given (several hosts), else through
        ``settings.rate_file`` by every process of the machine."""
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
            rate_file=settings.rate_file,
            budget=budget,
        )

    @property
    def max_retries(self) -> int:
        """Attempts after the first one a failed request gets."""
        return (self.retry.attempts or 1) - 1

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"EutilsClient(base_url={self.base_url!r}, email={self.email!r}, api_key={key})"

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
        return self._call("efetch.fcgi", params, check_pubmed, history=True)

    def _call(
        self, endpoint: str, params: Mapping[str, str], parse: Callable[[bytes], T], *, history: bool = False
    ) -> T:
        """POST to ``endpoint`` and check the answer, retrying (``self.retry``) until it works or
        attempts run out. This is the one place where failed attempts turn into an EutilsError.

        A transient ERROR answer is retried like a 5xx, except that a ``history`` request whose
        search NCBI lost fails at once as :class:`HistoryLost` (its caller searches again)."""
        url = self.base_url + endpoint
        data = {**params, "tool": TOOL, "email": self.email}
        if self._api_key:
            data["api_key"] = self._api_key

        def attempt(number: int) -> T:
            def started(at: float) -> None:
                self._emit("request", endpoint=endpoint, attempt=number, at=at)

            body = self._door.send("POST", url, data=data, describe=_describe, on_start=started,
                                   wrong_url=(404,), web_page_is_wrong=True)
            try:
                return parse(body)
            except ErrorAnswer as answer:
                if history and answer.history_lost:
                    answer.retryable = False
                raise

        def retrying(number: int, attempts: int, failure: Failure, delay: float) -> None:
            cause = self._redact(str(failure))
            log.warning("%s attempt %d/%d failed (%s); retrying in %.1f s", endpoint, number, attempts, cause, delay)
            self._emit("retry", endpoint=endpoint, attempt=number, delay=delay, cause=cause)

        try:
            return self._door.run(attempt, on_retry=retrying)
        except Unreachable as failure:
            raise EutilsError(
                f"no E-utilities at {self._redact(self.base_url)}: {self._redact(failure.cause)} (not retried: "
                f"check {SETTING}, which holds {self._redact(self.base_url)}; NCBI's is {NCBI_EUTILS_URL})"
            ) from (failure.__cause__ or failure)
        except Failure as failure:
            if history and isinstance(failure, ErrorAnswer) and failure.history_lost:
                raise HistoryLost(
                    f"E-utilities {endpoint} at {self._redact(self.base_url)}: {failure.cause} "
                    "(the history server lost the search: run the search again)"
                ) from failure
            hint = (
                " (NCBI may be busy or down: run again later)"
                if failure.retryable
                else " (not retried: asking again would not help)"
            )
            made = failure.attempts
            message = (
                f"E-utilities {endpoint} at {self._redact(self.base_url)} failed after "
                f"{made} attempt{'s' if made > 1 else ''}: {self._redact(failure.cause)}{hint}"
            )
            raise EutilsError(message) from (failure.__cause__ or failure)

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



def _describe(status: int, reason: str, body: bytes, url: str) -> str:
    detail = error_detail(body)
    return f"HTTP {status} {reason}" + (f": {detail}" if detail else "")
