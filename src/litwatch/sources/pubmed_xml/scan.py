"""The scan: PubMed XML fed to a pull parser block by block, each record read as its end tag arrives.

Each finished record is cleared and dropped from the tree, so memory stays flat however many
records a file holds. The parser never fetches anything: the DOCTYPE's DTD is not loaded,
entities are not resolved, the network is off.
"""

from __future__ import annotations

import io
import os
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


def iter_records(
    source: str | os.PathLike[str] | BinaryIO, *, name: str | None = None
) -> Iterator[PaperRecord | Deletion]:
    """Yield each record of a PubMed XML file or binary stream, in file order.

    ``source`` is a path (``.xml`` or gzipped, recognised by its magic bytes) or a binary file
    object. On malformed or truncated XML the records before the fault have already been yielded,
    then ``ParseError`` names ``name`` (default: the path) with the line and column of the fault.
    """
    with ExitStack() as stack:
        stream, label = open_source(source, name, stack)
        yield from _scan(stream, label)


def parse_bytes(data: bytes, *, name: str = "<efetch answer>") -> list[PaperRecord | Deletion]:
    """Parse a whole PubMed XML answer held in memory (an efetch reply, plain or gzipped)."""
    return list(iter_records(io.BytesIO(data), name=name))


def _scan(stream: Readable, label: str) -> Iterator[PaperRecord | Deletion]:
    """Feed the XML to a pull parser block by block and read each record as its end tag arrives.

    A pull parser, not ``etree.iterparse``: on a syntax error iterparse drops the events libxml2
    produced earlier in the same block, losing complete records just before the fault, while
    ``read_events()`` still has them. So every complete record before a fault is yielded, however
    the file is read (whole, in chunks, plain or gzipped), then the fault is raised.
    """
    parser = etree.XMLPullParser(
        events=("end",),
        tag=_RECORD_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
    )
    fault: etree.XMLSyntaxError | None = None
    try:
        while block := stream.read(READ_BYTES):
            try:
                parser.feed(block)
            except etree.XMLSyntaxError as exc:
                fault = exc
            yield from _read(parser.read_events(), label)
            if fault is not None:
                break
        else:
            try:
                parser.close()
            except etree.XMLSyntaxError as exc:
                # the data ended inside an element: closing it produced end events for the
                # elements left open, the record cut short among them, so none of them is read
                fault = exc
            else:
                yield from _read(parser.read_events(), label)
    except GZIP_ERRORS as exc:
        raise gzip_fault(label, exc) from exc
    if fault is not None:
        line, column = fault.position
        message = str(fault.msg).removesuffix(f", line {line}, column {column}")
        raise ParseError(label, line or None, column if line else None, message) from fault


def _read(events: Iterator[tuple[str, _Element]], label: str) -> Iterator[PaperRecord | Deletion]:
    """The records of the end events parsed so far, each element dropped once read."""
    for _event, elem in events:
        tag = elem.tag
        parent = elem.getparent()
        try:
            if tag == "PubmedArticle":
                yield read_pubmed_article(elem)
            elif tag == "MedlineCitation":
                if parent is not None and parent.tag == "PubmedArticle":
                    continue  # read with its PubmedArticle, which ends next
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
