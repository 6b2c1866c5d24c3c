"""The scan: PubMed XML fed to a pull parser block by block, each record read as its end tag arrives.

Each finished record is cleared and dropped from the tree, so memory stays flat however many
records a file holds, and a record that runs past ``max_record_bytes`` is refused before it is
built (one 200 MB record took 4.3 GB). The parser never fetches anything: the DOCTYPE's DTD is
not loaded, entities are not resolved, the network is off; and a file whose DOCTYPE declares
entities of its own (which PubMed files never do: it is an entity bomb or a pointer at a local
file) is refused before anything is parsed.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import BinaryIO

from lxml import etree
from lxml.etree import _Element

from litwatch.errors import ParseError
from litwatch.records import Deletion, PaperRecord
from litwatch.sources.pubmed_xml.articles import (
    RecordError,
    pmid_number,
    read_citation,
    read_pubmed_article,
)
from litwatch.sources.pubmed_xml.books import read_book_article
from litwatch.sources.pubmed_xml.stream import (
    GZIP_ERRORS,
    Readable,
    gzip_fault,
    open_source,
)

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
READ_BYTES = 32_768  # fed to the parser at a time, as lxml's iterparse reads a file
MAX_RECORD_BYTES = 32 * 1024 * 1024  # PubMed's largest records (thousands of authors) are a few MB
_ROOT_START = re.compile(rb"<(?:PubmedArticleSet|MedlineCitationSet|PubmedBookArticleSet)[\s>/]")
_PROLOG_BYTES = 1 << 20  # the DOCTYPE is looked at up to the root start tag, or this far


def iter_records(
    source: str | os.PathLike[str] | BinaryIO, *, name: str | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[PaperRecord | Deletion]:
    """Yield each record of a PubMed XML file or binary stream, in file order.

    ``source`` is a path (``.xml`` or gzipped, recognised by its magic bytes) or a binary file
    object. On malformed or truncated XML the records before the fault have already been yielded,
    then ``ParseError`` names ``name`` (default: the path) with the line and column of the fault.
    A record longer than ``max_record_bytes`` is such a fault, at the line where it starts.
    """
    with ExitStack() as stack:
        stream, label = open_source(source, name, stack)
        yield from _scan(stream, label, max_record_bytes)


def parse_bytes(data: bytes, *, name: str = "<efetch answer>") -> list[PaperRecord | Deletion]:
    """Parse a whole PubMed XML answer held in memory (an efetch reply, plain or gzipped)."""
    return list(iter_records(io.BytesIO(data), name=name))


def _scan(stream: Readable, label: str, max_record_bytes: int) -> Iterator[PaperRecord | Deletion]:
    """Feed the XML to a pull parser block by block and read each record as its end tag arrives.

    A pull parser, not ``etree.iterparse``: on a syntax error iterparse drops the events libxml2
    produced earlier in the same block, losing complete records just before the fault, while
    ``read_events()`` still has them. So every complete record before a fault is yielded, however
    the file is read (whole, in chunks, plain or gzipped), then the fault is raised.
    """
    parser = etree.XMLPullParser(
        events=("start", "end"),
        tag=_RECORD_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
    )
    fault: etree.XMLSyntaxError | None = None
    prolog = _Prolog(label)
    open_record = _OpenRecord(label, max_record_bytes)
    lines = 0  # newlines read so far: where damaged gzip data ends
    try:
        while block := stream.read(READ_BYTES):
            lines += block.count(b"\n")
            prolog.check(block)
            try:
                parser.feed(block)
            except etree.XMLSyntaxError as exc:
                fault = exc
            yield from _read(parser.read_events(), label, open_record)
            if fault is not None:
                break
            open_record.check(len(block))
        else:
            try:
                parser.close()
            except etree.XMLSyntaxError as exc:
                # the data ended inside an element: closing it produced end events for the
                # elements left open, the record cut short among them, so none of them is read
                fault = exc
            else:
                yield from _read(parser.read_events(), label, open_record)
    except GZIP_ERRORS as exc:
        raise gzip_fault(label, exc, lines + 1) from exc
    if fault is not None:
        line, column = fault.position
        message = str(fault.msg).removesuffix(f", line {line}, column {column}")
        raise ParseError(label, line or None, column if line else None, message) from fault


class _Prolog:
    """Refuses entity declarations in the DOCTYPE, looking at the bytes before the root start tag."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._head: bytearray | None = bytearray()

    def check(self, block: bytes) -> None:
        if self._head is None:
            return
        self._head += block
        root = _ROOT_START.search(self._head)
        end = root.start() if root else len(self._head)
        declared = self._head.find(b"<!ENTITY", 0, end)
        if declared >= 0:
            line = self._head.count(b"\n", 0, declared) + 1
            column = declared - (self._head.rfind(b"\n", 0, declared) + 1) + 1
            raise ParseError(self._label, line, column, "the DOCTYPE declares an entity (<!ENTITY ...>), which "
                             "PubMed XML never does (an entity bomb or a pointer at another file); refused "
                             "unread: ingest the file as NCBI sends it")
        if root or len(self._head) > _PROLOG_BYTES:
            self._head = None


class _OpenRecord:
    """The record being parsed: where it starts, and how many bytes have been fed since it started."""

    def __init__(self, label: str, limit: int) -> None:
        self._label, self._limit = label, limit
        self.elem: _Element | None = None
        self._fed = 0

    def started(self, elem: _Element) -> None:
        self.elem, self._fed = elem, 0

    def ended(self) -> None:
        self.elem = None

    def check(self, fed: int) -> None:
        """Raise ParseError once the open record has run past the limit (to within a block)."""
        if self.elem is None:
            return
        self._fed += fed
        if self._fed > self._limit:
            pmid = self.elem.findtext(".//PMID")
            raise too_large(self._label, self.elem.sourceline, str(self.elem.tag), pmid, self._limit)


def too_large(label: str, line: int | None, tag: str, pmid: str | None, limit: int) -> ParseError:
    """The fault of a record longer than ``limit`` bytes, starting at ``line``."""
    which = f"<{tag}> PMID {pmid.strip()}" if pmid and pmid.strip() else f"<{tag}>"
    return ParseError(label, line, None, f"{which} is over {limit / 1_048_576:g} MB, the limit of one record; "
                      "no real PubMed record is this large: if this one is, raise max_record_mb "
                      "(LITWATCH_MAX_RECORD_MB)")


def _read(
    events: Iterator[tuple[str, _Element]], label: str, open_record: _OpenRecord
) -> Iterator[PaperRecord | Deletion]:
    """The records of the end events parsed so far, each element dropped once read."""
    for event, elem in events:
        tag = elem.tag
        parent = elem.getparent()
        within = tag == "MedlineCitation" and parent is not None and parent.tag == "PubmedArticle"
        if event == "start":
            if not within:
                open_record.started(elem)
            continue
        if within:
            continue  # read with its PubmedArticle, which ends next
        open_record.ended()
        try:
            if tag == "PubmedArticle":
                yield read_pubmed_article(elem)
            elif tag == "MedlineCitation":
                yield read_citation(elem)
            elif tag == "PubmedBookArticle":
                yield read_book_article(elem)
            else:
                yield Deletion([pmid_number(p.text) for p in elem if p.tag == "PMID"])
        except (RecordError, ValueError) as exc:
            raise ParseError(label, elem.sourceline, None, f"<{tag}> {exc}") from exc
        elem.clear()
        if parent is not None:
            while elem.getprevious() is not None:
                del parent[0]
