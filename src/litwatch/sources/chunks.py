"""Cutting a PubMed XML file into chunks that are documents of their own, and placing a fault
found in a chunk back at its line and column in the file.

A file is cut just before a record's start tag (``<PubmedArticle>``, ``<PubmedBookArticle>``,
or ``<MedlineCitation`` in the old format). Each chunk but the first gets the file's XML
declaration and root start tag in front, each but the last the root end tag behind. Files whose
root is not a PubMed set, or whose DOCTYPE declares entities of its own, are not cut (``layout``
returns None). parse_pool hands the chunks to its worker processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from litwatch.errors import ParseError
from litwatch.sources.pubmed_xml import (
    GZIP_ERRORS,
    HEAD_BYTES,
    MAX_RECORD_BYTES,
    READ_BYTES,
    CountingReader,
    open_stream,
    too_large,
)

_PROBE_BYTES = 65_536  # read at a time when looking for the next record start

_ROOT = re.compile(rb"<(PubmedArticleSet|MedlineCitationSet)(?:\s[^>]*)?>")
_DECLARATION = re.compile(rb"<\?xml\s[^>]*\?>")
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[")
_MARKERS = {
    b"PubmedArticleSet": (b"<PubmedArticle>", b"<PubmedBookArticle>"),
    b"MedlineCitationSet": (b"<MedlineCitation ", b"<MedlineCitation>"),
}
_LINE_IN_MESSAGE = re.compile(r"\bline (\d+)\b")
_PMID = re.compile(rb"<PMID[^>]*>\s*(\d+)\s*</PMID>")


@dataclass(frozen=True)
class Layout:
    """What every chunk needs from the file's head to be a document of its own."""

    declaration: bytes  # b'<?xml version="1.0" encoding="UTF-8"?>', or b''
    root_start: bytes  # b'<PubmedArticleSet>'
    root_end: bytes  # b'</PubmedArticleSet>'
    markers: tuple[bytes, ...]  # the start tags a chunk may begin with
    body: int  # offset just after the root start tag: the first cut comes after it

    @property
    def prefix(self) -> bytes:
        return self.declaration + self.root_start  # no newline: a chunk's lines stay the file's


def layout(head: bytes) -> Layout | None:
    """The layout of a PubMed file from its first ``HEAD_BYTES`` (decompressed), or None: do not cut."""
    root = _ROOT.search(head)
    if root is None or _INTERNAL_SUBSET.search(head, 0, root.start()):
        return None
    declaration = _DECLARATION.search(head, 0, root.start())
    name = root.group(1)
    return Layout(
        declaration.group(0) if declaration else b"",
        root.group(0),
        b"</" + name + b">",
        _MARKERS[name],
        root.end(),
    )


def file_layout(path: Path) -> Layout | None:
    """The layout of the file at ``path`` (see ``layout``); None for a gzipped file damaged so early
    that its head cannot be read (a sequential parse reports that)."""
    with ExitStack() as stack:
        stream, _ = open_stream(path, stack)
        try:
            return layout(stream.read(HEAD_BYTES))
        except GZIP_ERRORS:
            return None


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # offset of its first byte in the (decompressed) file
    length: int
    data: bytes | None  # its bytes (gzipped files), or None: the worker reads them from the file
    raw_end: int  # bytes of the file on disk read once this chunk is done, for the progress bar
    last: bool
    damage: Exception | None = None  # the fault the stream ended with, after this chunk's bytes: damaged
    # gzip data, or a ParseError (line 1 = the chunk's start) for a record over the size limit


def plain_chunks(handle: BinaryIO, shape: Layout, chunk_bytes: int) -> Iterator[Chunk]:
    """Cut points of a plain file, found by reading a little after each ``chunk_bytes`` step."""
    size = os.fstat(handle.fileno()).st_size
    start, index = 0, 0
    first_record = _next_marker(handle, shape.body, size, shape.markers)
    while start < size:
        # a chunk ends at the first record start chunk_bytes or more into it, past its first record
        cut = _next_marker(handle, max(start + chunk_bytes, first_record + 1), size, shape.markers)
        yield Chunk(index, start, cut - start, None, cut, cut >= size)
        start, index = cut, index + 1


def _next_marker(handle: BinaryIO, position: int, size: int, markers: tuple[bytes, ...]) -> int:
    """Offset of the first record start tag at or after ``position``, or ``size`` if there is none."""
    overlap = max(len(m) for m in markers) - 1
    while position < size:
        handle.seek(position)
        window = handle.read(_PROBE_BYTES + overlap)
        found = _find_marker(window, 0, markers)
        if found >= 0:
            return position + found
        if len(window) <= overlap:
            break
        position += len(window) - overlap
    return size


def _find_marker(data: bytes | bytearray, position: int, markers: tuple[bytes, ...]) -> int:
    """Offset of the first record start tag at or after ``position`` in ``data``, or -1."""
    found = [at for at in (data.find(m, position) for m in markers) if at >= 0]
    return min(found) if found else -1


def stream_chunks(
    stream: Any, raw: CountingReader, shape: Layout, chunk_bytes: int, max_record_bytes: int = MAX_RECORD_BYTES
) -> Iterator[Chunk]:
    """Cut points of a decompressed stream (a gzipped file), each chunk's bytes read here.

    The same cuts as ``plain_chunks``: a chunk ends at the first record start ``chunk_bytes`` or
    more into it, and holds at least one record. A cut is made only at a start tag read whole, and
    the buffer holds everything before it, so no earlier start tag can be missed. The buffer never
    holds much more than ``chunk_bytes`` + ``max_record_bytes``: a record that runs past the limit
    ends the stream with its fault, after a chunk of the records before it.
    """
    buffer, start, index, at_end = bytearray(), 0, 0, False
    while True:
        if len(buffer) > chunk_bytes + max_record_bytes + READ_BYTES:
            yield from _oversized(buffer, start, index, raw, shape, max_record_bytes)
            return
        lowest = max(chunk_bytes, 1)
        if index == 0:
            first = _find_marker(buffer, shape.body, shape.markers)
            lowest = max(chunk_bytes, first + 1) if first >= 0 else -1
        cut = _find_marker(buffer, lowest, shape.markers) if lowest > 0 else -1
        if cut > 0:
            with memoryview(buffer) as view:
                data = bytes(view[:cut])
            yield Chunk(index, start, cut, data, raw.tell(), False)
            del buffer[:cut]
            start, index = start + cut, index + 1
        elif at_end:
            yield Chunk(index, start, len(buffer), bytes(buffer), raw.tell(), True)
            return
        else:
            try:  # as the parser reads a stream: what a damaged file loses is what a sequential parse loses
                block = stream.read(READ_BYTES)
            except GZIP_ERRORS as exc:  # parse what came before the damage, then report it
                yield Chunk(index, start, len(buffer), bytes(buffer), raw.tell(), True, exc)
                return
            at_end = not block
            buffer += block


def _oversized(
    buffer: bytearray, start: int, index: int, raw: CountingReader, shape: Layout, limit: int
) -> Iterator[Chunk]:
    """The chunks that end a stream whose buffer holds a record over ``limit`` bytes: the records
    before it, then an empty chunk carrying the record's fault (placed at the record's start)."""
    lowest = shape.body if index == 0 else 0
    last = at = _find_marker(buffer, lowest, shape.markers)
    while at >= 0:
        last, at = at, _find_marker(buffer, at + 1, shape.markers)
    if last < 0:  # no record starts at all: the fault is at the root start tag's end
        last = lowest
    elif last > lowest and _find_marker(buffer, lowest, shape.markers) < last:
        with memoryview(buffer) as view:
            data = bytes(view[:last])
        yield Chunk(index, start, last, data, raw.tell(), False)
    record = bytes(buffer[last : last + _PROBE_BYTES])
    tag = next((m for m in shape.markers if record.startswith(m)), shape.root_start).strip(b"<> ").decode()
    pmid = _PMID.search(record)
    fault = too_large("", 1, tag, pmid.group(1).decode() if pmid else None, limit)
    yield Chunk(max(index + 1, 1), start + last, 0, b"", raw.tell(), False, fault)


def place_fault(path: Path, label: str, chunk: Chunk, fault: tuple[Any, ...]) -> ParseError:
    """A chunk's fault, placed in the file: its line and column there, and lines named in its message."""
    line, column, message, prefix = fault
    if line is None:
        return ParseError(label, None, None, message)
    lines_before, column_of_start = _position_of(path, chunk.start)
    if line == 1 and column is not None:
        column = column - prefix + column_of_start - 1
    message = _LINE_IN_MESSAGE.sub(lambda m: f"line {int(m.group(1)) + lines_before}", message)
    return ParseError(label, line + lines_before, column, message)


def _position_of(path: Path, offset: int) -> tuple[int, int]:
    """Newlines before ``offset`` of the (decompressed) file, and the 1-based column of ``offset``."""
    lines, read, last_line_start = 0, 0, 0
    with ExitStack() as stack:
        stream, _ = open_stream(path, stack)
        while read < offset:
            block = stream.read(min(1 << 20, offset - read))
            if not block:
                break
            newline = block.rfind(b"\n")
            if newline >= 0:
                last_line_start = read + newline + 1
            lines += block.count(b"\n")
            read += len(block)
    return lines, offset - last_line_start + 1
