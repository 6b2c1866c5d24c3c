"""The one door to HTTP: the only module that imports ``requests``.

Every outside system litwatch reads over HTTP goes through :class:`HttpDoor`: NCBI E-utilities
(``eutils.py``), PubTator3 (``pubtator.py``) and Europe PMC (``europepmc.py``). A door holds the
client's ``requests`` session (its own, closed with the door, or one it was given), spaces request
starts with the client's rate limit (``rate_limit.py``), runs attempts through the one retry
policy (``litwatch.retry``) and says what went wrong as a :class:`Failure`:

- retried: 429 (its Retry-After honoured, capped), 5xx, timeouts, dropped connections, bodies cut
  off before their Content-Length, and any body the client's own check rejects (it raises a
  retryable ``Failure``): faults that asking again can mend;
- not retried, :class:`Unreachable`: no connection could be made at all (no such host, connection
  refused), the URL answers a status the client names as "nothing of ours is here" (404, 405),
  or a 200 that is a web page (HTML) where the client expects its API's answers: the setting
  is wrong, asking again would not help, so a run fails in seconds rather than minutes;
- not retried: any other 4xx or request error.

Causes are worded briefly (``connection dropped``, ``no answer within 30 s``): urllib3's own
text (pool objects, addresses in memory) never reaches a message or a log line.

Each client turns the last ``Failure`` into its own error (``EutilsError``, ``PubtatorError``,
``EuropePmcError``) with its own one-line message; the door knows no client's wording.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Self, TypeVar

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from litwatch.errors import ConfigError
from litwatch.retry import Backoff
from litwatch.sources.rate_limit import Budget, RateLimiter

__all__ = [
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "Failure",
    "HttpClient",
    "HttpDoor",
    "Session",
    "Unreachable",
    "retry_after",
]

T = TypeVar("T")
Session = requests.Session
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After would stall a scheduled run
MAX_BACKOFF = 60.0


class Failure(Exception):
    """One failed attempt; ``retryable`` says whether asking again could succeed.

    ``attempts`` is set on the failure :meth:`HttpDoor.run` gives up with: how many were made.
    """

    def __init__(self, cause: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1


class Unreachable(Failure):
    """Nothing of the client's answers at the URL set: ``reason`` is ``no such host``,
    ``connection refused`` or ``no connection could be made``, or None when a server answered
    with a status the client named (``status``)."""

    def __init__(self, cause: str, *, reason: str | None = None, status: int | None = None) -> None:
        super().__init__(cause, retryable=False)
        self.reason = reason
        self.status = status


def _status_cause(status: int, reason: str, body: bytes, url: str) -> str:
    return f"HTTP {status} {reason}"


def base_url_of(url: str, setting: str) -> str:
    """``url`` as a base for the client's paths (one trailing slash); a URL that is not http(s)
    is a ConfigError naming ``setting``."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{setting} must start with http:// or https://, got {url!r}")
    return url.rstrip("/") + "/"


class HttpDoor:
    """Session, rate limit, retry policy and request counters of one client of ``base_url``.

    ``budget`` shares the rate limit beyond this process (``rate_limit.py``), under ``budget_key``.
    """

    def __init__(
        self,
        base_url: str,
        rate: float,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        budget: Budget | None = None,
        budget_key: str | None = None,
    ) -> None:
        self.owns_session = session is None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.retry = Backoff(first=backoff, most=MAX_BACKOFF, attempts=max(0, max_retries) + 1, jitter=0.1)
        self.sleep = sleep
        self.limiter = RateLimiter(base_url, rate, clock=clock, sleep=sleep, budget=budget, budget_key=budget_key)
        self._lock = threading.Lock()
        self.requests_made = 0
        self.retries = 0

    def close(self) -> None:
        """Close the session if the door opened it."""
        if self.owns_session:
            self.session.close()

    def run(self, attempt: Callable[[int], T], *, on_retry: Callable[[int, int, Failure, float], None]) -> T:
        """``attempt(number)`` until it returns, retrying retryable Failures under ``self.retry``.

        ``on_retry(number, attempts, failure, delay)`` is told before each wait. The last Failure
        is raised with ``attempts`` set to the number of attempts made.
        """
        attempts = self.retry.attempts or 1
        made = 0

        def counted(number: int) -> T:
            nonlocal made
            made = number
            return attempt(number)

        def retrying(number: int, exc: BaseException, delay: float) -> None:
            with self._lock:
                self.retries += 1
            assert isinstance(exc, Failure)
            on_retry(number, attempts, exc, delay)

        try:
            return self.retry.run(
                counted,
                retryable=lambda exc: isinstance(exc, Failure) and exc.retryable,
                told=lambda exc: exc.retry_after if isinstance(exc, Failure) else None,
                on_retry=retrying,
                sleep=self.sleep,
            )
        except Failure as failure:
            failure.attempts = made
            raise

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        describe: Callable[[int, str, bytes, str], str] = _status_cause,
        wrong_url: Collection[int] = (),
        accept: Callable[[int, bytes], bool] = lambda status, _body: status == 200,
        on_start: Callable[[float], None] | None = None,
        web_page_is_wrong: bool = False,
    ) -> bytes:
        """One request after its turn under the rate limit: the body of a complete answer that
        ``accept`` takes (a 200 by default), or a Failure.

        ``describe(status, reason, body, url)`` words an unwanted status; a status in
        ``wrong_url`` is :class:`Unreachable`, and so is a 200 web page (HTML) when
        ``web_page_is_wrong`` (the client's API never answers one).
        """
        started = self.limiter.wait()
        with self._lock:
            self.requests_made += 1
        if on_start is not None:
            on_start(started)
        try:
            response = self.session.request(method, url, params=params, data=data, timeout=self.timeout)
            body = response.content
        except requests.Timeout as exc:  # first: a ConnectTimeout is a ConnectionError too
            raise Failure(f"{type(exc).__name__}: no answer within {self.timeout:g} s", retryable=True) from exc
        except requests.ConnectionError as exc:
            reason = _no_connection(exc)
            if reason is not None:
                raise Unreachable(reason, reason=reason) from exc
            raise Failure(f"{type(exc).__name__}: {_brief(exc)}", retryable=True) from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise Failure(f"truncated answer ({type(exc).__name__}: {exc})", retryable=True) from exc
        except requests.RequestException as exc:
            raise Failure(f"{type(exc).__name__}: {exc}", retryable=False) from exc
        status = response.status_code
        if web_page_is_wrong and status == 200 and _web_page(body):
            raise Unreachable("answered a web page (HTML), not an API answer", status=status)
        if not accept(status, body):
            cause = describe(status, response.reason, body, url)
            if status in wrong_url:
                raise Unreachable(cause, status=status)
            raise Failure(
                cause,
                retryable=status in RETRY_STATUSES,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").lower()
        if declared.isdigit() and encoding == "identity" and len(body) < int(declared):
            raise Failure(f"truncated answer: {len(body)} of {declared} bytes", retryable=True)
        return body


class HttpClient:
    """What every client built on a door shares: closing it, its retry policy, its counters.

    A subclass sets ``self._door`` in its constructor and keeps its own requests and messages.
    """

    _door: HttpDoor

    @property
    def retry(self) -> Backoff:
        """The retry policy each request runs under."""
        return self._door.retry

    @property
    def timeout(self) -> float:
        """Seconds a request may take."""
        return self._door.timeout

    @property
    def requests_made(self) -> int:
        """Requests sent so far, retries included."""
        return self._door.requests_made

    @property
    def retries(self) -> int:
        """Failed attempts that were tried again."""
        return self._door.retries

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        self._door.close()


def _web_page(body: bytes) -> bool:
    """Whether an answer is an HTML page (what a wrong URL, a login portal or a proxy's notice
    sends), read from the body: a mislabelled Content-Type must not fail a good answer."""
    return body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def _brief(exc: requests.RequestException) -> str:
    """What went wrong with a connection in a few words: the innermost reason, not urllib3's pool text."""
    reason: object = exc.args[0] if exc.args else exc
    if isinstance(reason, str):
        return reason
    reason = getattr(reason, "reason", reason)  # MaxRetryError -> ProtocolError, ...
    inner = reason.args[-1] if isinstance(reason, Exception) and len(reason.args) > 1 else None
    if isinstance(inner, BaseException):
        return f"connection dropped ({type(inner).__name__}: {inner})"
    return f"connection dropped ({reason})"


def _no_connection(exc: requests.ConnectionError) -> str | None:
    """Why no connection could be made at all (no such host, refused), or None for a dropped one."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    if isinstance(reason, NameResolutionError):
        return "no such host"
    if isinstance(reason, NewConnectionError):
        return "connection refused" if "refused" in str(reason).lower() else "no connection could be made"
    return None


def retry_after(value: str | None) -> float | None:
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
