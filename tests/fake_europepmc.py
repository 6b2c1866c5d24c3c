"""A loopback fake of Europe PMC's REST ``search`` for end-to-end tests over real sockets.

``FakeEuropePmc`` runs on the loopback server of ``loopback.py`` (127.0.0.1, port 0) and holds
``results``: real Europe PMC result objects loaded from recorded answers. It
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from loopback import Fault, Loopback, Reply  # Fault: the tests inject it from here

EMPTY_ANSWER = Path(__file__).parent / "fixtures" / "europepmc" / "search_no_results.json"
VERSION = "6.9"  # as in the recorded answers
BASE_PATH = "/europepmc/webservices/rest/"
BASE_URL_FOR_LINKS = "https://www.ebi.ac.uk/europepmc/webservices/rest/"  # as nextPageUrl reads in real answers
JSON = "application/json;charset=UTF-8"
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


class FakeEuropePmc(Loopback):
    """Recorded Europe PMC results behind a loopback REST server; see the module docstring."""

    base_path = BASE_PATH
    name = "fake-europepmc"

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, Any]] = []
        self.requests: list[LoggedRequest] = []
        self.repeat_cursor = False  # True: the last full page's nextCursorMark repeats the one asked for
        self.hit_count_extra = 0  # added to hitCount, as when papers are indexed while a client pages

    # -- data, faults and the request log ----------------------------------------------------------
    def add_results_from_file(self, path: Path | str) -> list[str]:
        """Add the results of a recorded search answer; return their ids."""
        answer = json.loads(Path(path).read_text(encoding="utf-8"))
        found = answer["resultList"]["result"]
        self.results.extend(found)
        return [r["id"] for r in found]

    def busiest_second(self) -> int:
        """The most requests that arrived within any one second."""
        with self._lock:
            times = sorted(r.at for r in self.requests)
        return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)

    # -- answering -------------------------------------------------------------------------------
    def answer(self, method: str, path: str, params: dict[str, str]) -> Reply:
        fault = self.take_fault(LoggedRequest(method, path, params, time.monotonic()))
        if path != BASE_PATH + "search":
            return Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        cursor = params.get("cursorMark", "*")
        offset = _offset(cursor)
        if offset is None:
            body = json.dumps({"errCode": 400, "errMsg": f"invalid cursorMark {cursor}"}).encode()
            return Reply(400, body, JSON)
        return Reply(200, json.dumps(self._page(params, cursor, offset), indent=2).encode(), JSON, fault)

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
