"""A loopback fake of the PubTator3 export API for tests over real sockets.

``FakePubtator`` runs a ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a background thread and
holds ``documents[pmid]``: real recorded BioC JSON documents (``tests/fixtures/pubtator3/``),
cloned under fresh PMIDs to build large collections. It answers
``GET /research/pubtator3-api/publications/export/biocjson?pmids=ID,ID,...`` as PubTator3 does:
``{"PubTator3": [document, ...]}`` with the PMIDs it knows, the others simply absent. Any other
path is a 404 HTML page. Every request is logged; ``inject`` makes requests fail.

    with FakePubtator() as fake:
        fake.add_documents_from_dir(FIXTURES / "pubtator3")
        client = PubtatorClient(fake.url)
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

EXPORT_PATH = "/research/pubtator3-api/publications/export/biocjson"
RATE_LIMIT_BODY = b'{"detail":"Too Many Requests"}'


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    params: dict[str, str]

    @property
    def pmids(self) -> list[int]:
        return [int(p) for p in self.params.get("pmids", "").split(",") if p.strip()]


@dataclass
class Fault:
    """A faulty answer: an HTTP status, a body cut off mid-send, or a complete but broken body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    truncate: bool = False  # announce the real length, send half of it, hang up
    malformed: bool = False  # a 200 whose whole (correctly announced) body is half a JSON document

    @classmethod
    def http(cls, status: int, retry_after: str | None = "0") -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = RATE_LIMIT_BODY if status == 429 else f"<html><body><h1>{status}</h1></body></html>".encode()
        return cls(status=status, headers=headers, body=body)


@dataclass
class _Rule:
    fault: Fault
    times: int | None
    served: int = 0


class FakePubtator:
    """Recorded PubTator3 documents behind a loopback export API; see the module docstring."""

    def __init__(self) -> None:
        self.documents: dict[int, dict[str, Any]] = {}
        self.requests: list[LoggedRequest] = []
        self._rule: _Rule | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakePubtator:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-pubtator", daemon=True
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

    def __enter__(self) -> FakePubtator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/research/pubtator3-api/"

    # -- documents -------------------------------------------------------------------------------
    def add_document(self, document: dict[str, Any]) -> int:
        pmid = int(document["pmid"])
        self.documents[pmid] = document
        return pmid

    def add_documents_from_dir(self, folder: Path | str) -> list[int]:
        """Load every recorded document (one per ``.json`` file); return their PMIDs."""
        return [self.add_document(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(Path(folder).glob("*.json"))]

    def add_clones(self, count: int, *, first_pmid: int) -> list[int]:
        """``count`` copies of the loaded documents (round robin) under PMIDs from ``first_pmid``."""
        pool = list(self.documents.values())
        assert pool, "load some real documents first"
        made = []
        for index, source in zip(range(count), itertools.cycle(pool)):
            clone = copy.deepcopy(source)
            pmid = first_pmid + index
            clone |= {"pmid": pmid, "_id": f"{pmid}|None", "id": str(pmid)}
            made.append(self.add_document(clone))
        return made

    # -- faults and the request log --------------------------------------------------------------
    def inject(self, fault: Fault, *, times: int | None = None) -> None:
        """From now on requests get ``fault`` (at most ``times`` of them)."""
        with self._lock:
            self._rule = _Rule(fault, times)

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _handle(self, path: str, params: dict[str, str]) -> tuple[Fault | None, int, bytes]:
        with self._lock:
            self.requests.append(LoggedRequest(path, params))
            fault = None
            rule = self._rule
            if rule is not None and (rule.times is None or rule.served < rule.times):
                rule.served += 1
                fault = rule.fault
        if path != EXPORT_PATH:
            return None, 404, b"<html><body><h1>404 Not Found</h1></body></html>"
        wanted = [int(p) for p in params.get("pmids", "").split(",") if p.strip().isdigit()]
        found = [self.documents[p] for p in dict.fromkeys(wanted) if p in self.documents]
        return fault, 200, json.dumps({"PubTator3": found}).encode()


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakePubtator/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        fake: FakePubtator = self.server.fake  # type: ignore[attr-defined]
        fault, status, body = fake._handle(url.path, dict(parse_qsl(url.query, keep_blank_values=True)))
        content_type = "application/json" if status == 200 else "text/html"
        headers: dict[str, str] = {}
        if fault is not None and fault.status != 200:
            status, body = fault.status, fault.body or b""
            content_type = "application/json" if body.startswith(b"{") else "text/html"
            headers = fault.headers
        elif fault is not None and fault.malformed:
            body = body[: len(body) // 2]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
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
