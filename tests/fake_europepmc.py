"""A loopback fake of Europe PMC's REST ``search`` for end-to-end tests over real sockets.

``FakeEuropePmc`` runs a small ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a background
thread and holds ``results``: real Europe PMC result objects loaded from recorded answers. It
answers ``GET {base}search`` in the shape of the recorded answers (``version``, ``hitCount``,
``nextCursorMark``, ``nextPageUrl``, ``request``, ``resultList``), understanding the window form
``(<term>) AND SRC:PPR AND FIRST_IDATE:[YYYY-MM-DD TO YYYY-MM-DD]`` (any other query matches
every result) and paging by ``cursorMark``: past the last result it answers an empty page whose
``nextCursorMark`` repeats the one asked for, as Europe PMC does at the end. A window with no
match gets the recorded empty answer. Every request is logged with its arrival time; ``inject``
makes requests fail (HTTP status with Retry-After, a body cut off mid-way, malformed JSON).

    with FakeEuropePmc() as fake:
        fake.add_results_from_file(FIXTURES / "search_lite_preprints.json")
        client = EuropePmcClient(fake.url, "me@example.org")
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

EMPTY_ANSWER = Path(__file__).parent / "fixtures" / "europepmc" / "search_no_results.json"
VERSION = "6.9"  # as in the recorded answers
BASE_PATH = "/europepmc/webservices/rest/"
BASE_URL_FOR_LINKS = "https://www.ebi.ac.uk/europepmc/webservices/rest/"  # as nextPageUrl reads in real answers
_WINDOW = re.compile(
    r"^\((?P<term>.*)\) AND SRC:PPR AND FIRST_IDATE:\[(?P<lo>\d{4}-\d{2}-\d{2}) TO (?P<hi>\d{4}-\d{2}-\d{2})\]$",
    re.DOTALL,
)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    params: dict[str, str]
    at: float  # time.monotonic() when the request arrived


@dataclass
class Fault:
    """A faulty answer: an HTTP status (with headers), a cut-off body, or malformed JSON in a 200."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncate: bool = False  # the real answer's headers and half its body, then hang up
    malformed: bool = False  # a complete 200 answer whose JSON stops half-way

    @classmethod
    def http(cls, status: int, retry_after: str | None = "0") -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=status, headers=headers, body=f"<html><body><h1>{status}</h1></body></html>".encode())


class FakeEuropePmc:
    """Recorded Europe PMC results behind a loopback REST server; see the module docstring."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.requests: list[LoggedRequest] = []
        self.repeat_cursor = False  # True: the last full page's nextCursorMark repeats the one asked for
        self.hit_count_extra = 0  # added to hitCount, as when papers are indexed while a client pages
        self._fault: Fault | None = None
        self._fault_times: int | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeEuropePmc:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-europepmc", daemon=True
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

    def __enter__(self) -> FakeEuropePmc:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{BASE_PATH}"

    # -- data, faults and the request log ----------------------------------------------------------
    def add_results_from_file(self, path: Path | str) -> list[str]:
        """Add the results of a recorded search answer; return their ids."""
        answer = json.loads(Path(path).read_text(encoding="utf-8"))
        found = answer["resultList"]["result"]
        self.results.extend(found)
        return [r["id"] for r in found]

    def inject(self, fault: Fault, *, times: int | None = None) -> None:
        """The next ``times`` requests (all of them when None) get ``fault``."""
        with self._lock:
            self._fault, self._fault_times = fault, times

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def busiest_second(self) -> int:
        """The most requests that arrived within any one second."""
        with self._lock:
            times = sorted(r.at for r in self.requests)
        return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)

    # -- answering -------------------------------------------------------------------------------
    def _handle(self, path: str, params: dict[str, str]) -> tuple[Fault | None, int, bytes]:
        with self._lock:
            self.requests.append(LoggedRequest("GET", path, params, time.monotonic()))
            fault = self._fault
            if fault is not None and self._fault_times is not None:
                self._fault_times -= 1
                if self._fault_times <= 0:
                    self._fault = None
        if path != BASE_PATH + "search":
            return None, 404, b"<html><body><h1>404 Not Found</h1></body></html>"
        cursor = params.get("cursorMark", "*")
        offset = _offset(cursor)
        if offset is None:
            return None, 400, json.dumps({"errCode": 400, "errMsg": f"invalid cursorMark {cursor}"}).encode()
        return fault, 200, json.dumps(self._page(params, cursor, offset), indent=2).encode()

    def _page(self, params: dict[str, str], cursor: str, offset: int) -> dict[str, Any]:
        query = params.get("query", "")
        matches = self.results
        window = _WINDOW.match(query)
        if window:
            lo, hi = window["lo"], window["hi"]
            matches = [r for r in matches if r.get("source") == "PPR" and lo <= r.get("firstIndexDate", "") <= hi]
        size = int(params.get("pageSize", 25))
        request = {
            "queryString": query,
            "resultType": params.get("resultType", "lite"),
            "cursorMark": cursor,
            "pageSize": size,
            "sort": "",
            "synonym": False,
        }
        if not matches:
            empty: dict[str, Any] = json.loads(EMPTY_ANSWER.read_text(encoding="utf-8"))
            return empty | {"request": request}
        page = matches[offset : offset + size]
        end = offset + len(page)
        last_full = bool(page) and end >= len(matches)
        next_cursor = cursor if not page or (last_full and self.repeat_cursor) else _cursor(end)
        next_url = BASE_URL_FOR_LINKS + "search?" + urlencode(
            {"query": query, "cursorMark": next_cursor, "resultType": request["resultType"], "pageSize": size, "format": "json"}
        )
        return {
            "version": VERSION,
            "hitCount": len(matches) + self.hit_count_extra,
            "nextCursorMark": next_cursor,
            "nextPageUrl": next_url,
            "request": request,
            "resultList": {"result": page},
        }



def _cursor(offset: int) -> str:
    """An opaque, base64 cursor like Europe PMC's (``AoIIP4HN8ig1MzEwOTI4OQ==``)."""
    return base64.b64encode(f"litwatch-fake:{offset}".encode()).decode()


def _offset(cursor: str) -> int | None:
    if cursor == "*":
        return 0
    try:
        prefix, _, number = base64.b64decode(cursor, validate=True).decode().partition(":")
    except ValueError:
        return None
    return int(number) if prefix == "litwatch-fake" and number.isdigit() else None


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeEuropePmc/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        fake: FakeEuropePmc = self.server.fake  # type: ignore[attr-defined]
        fault, status, body = fake._handle(url.path, params)
        content_type = "application/json;charset=UTF-8" if status in (200, 400) else "text/html"
        headers = {"Content-Type": content_type}
        if fault is not None and fault.status != 200:
            status, body = fault.status, fault.body
            headers = {"Content-Type": "text/html"} | fault.headers
        elif fault is not None and fault.malformed:
            body = body[: len(body) // 2]
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
