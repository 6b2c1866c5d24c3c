"""A loopback fake of the PubTator3 export API for tests over real sockets.

``FakePubtator`` runs on the loopback server of ``loopback.py`` (127.0.0.1, port 0) and holds
``documents[pmid]``: real recorded BioC JSON documents (``tests/fixtures/pubtator3/``), cloned
under fresh PMIDs to build large collections. It answers
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import loopback
from loopback import Loopback, Reply

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
class Fault(loopback.Fault):
    """A faulty answer: an HTTP status, a body cut off mid-send, or a complete but broken body."""

    rate_limit_body: ClassVar[bytes | None] = RATE_LIMIT_BODY


class FakePubtator(Loopback):
    """Recorded PubTator3 documents behind a loopback export API; see the module docstring."""

    base_path = "/research/pubtator3-api/"
    name = "fake-pubtator"
    fault_class = Fault

    def __init__(self) -> None:
        super().__init__()
        self.documents: dict[int, dict[str, Any]] = {}
        self.requests: list[LoggedRequest] = []

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

    # -- answering -------------------------------------------------------------------------------
    def answer(self, method: str, path: str, params: dict[str, str]) -> Reply:
        fault = self.take_fault(LoggedRequest(path, params))
        if path != EXPORT_PATH:
            return Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        wanted = [int(p) for p in params.get("pmids", "").split(",") if p.strip().isdigit()]
        found = [self.documents[p] for p in dict.fromkeys(wanted) if p in self.documents]
        return Reply(200, json.dumps({"PubTator3": found}).encode(), fault=fault)
