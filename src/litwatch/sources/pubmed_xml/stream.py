"""Opening PubMed XML: a path or a binary stream, plain or gzipped (recognised by its magic bytes).

Also the cheap look at a file's head that says whether it is PubMed XML at all (``check_root``),
and the reader that reports how far into a file reading has gone, for a progress bar.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, BinaryIO, Protocol, cast

from lxml import etree

from litwatch.errors import InputError, ParseError

_GZIP_MAGIC = b"\x1f\x8b"
ROOT_TAGS = ("PubmedArticleSet", "MedlineCitationSet", "PubmedBookArticleSet")
HEAD_BYTES = 65_536  # the XML declaration and the root start tag must be in here


def root_element(path: str | os.PathLike[str]) -> str | None:
    """The name of the file's root element, read from its head (decompressed if gzipped); None
    when the head cannot be read as XML up to the root (the full parse reports the fault)."""
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True, load_dtd=False)
    with ExitStack() as stack:
        try:
            stream, _label = open_source(path, None, stack)
            parser.feed(stream.read(HEAD_BYTES))
        except (etree.XMLSyntaxError, *GZIP_ERRORS):
            pass
    for _event, elem in parser.read_events():
        return str(elem.tag)
    return None


def check_root(path: str | os.PathLike[str]) -> None:
    """Raise InputError unless the file is PubMed XML (or unreadable as XML: parsing says where)."""
    root = root_element(path)
    if root is not None and root not in ROOT_TAGS:
        raise InputError(
            f"{os.fspath(path)}: not PubMed XML (root element <{root}>; expected {', '.join(ROOT_TAGS[:-1])} "
            f"or {ROOT_TAGS[-1]}); pass efetch answers or PubMed baseline/update files"
        )


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class CountingReader(io.FileIO):
    """A binary file that reports how far into it reading has gone, for a progress bar."""

    def __init__(self, path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> None:
        super().__init__(path, "rb")
        self._progress = progress
        self._reported = 0

    def _report(self) -> None:
        if self._progress is not None:
            position = self.tell()
            if position > self._reported:
                self._progress(position - self._reported)
                self._reported = position

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._report()
        return data or b""

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer) or 0
        self._report()
        return count


def open_stream(path: str | os.PathLike[str], stack: ExitStack) -> tuple[Readable, CountingReader]:
    """The file's XML (decompressed if gzipped) and the file itself, whose ``tell()`` is the bytes read."""
    raw = stack.enter_context(CountingReader(path))
    stream, _label = open_source(raw, os.fspath(path), stack)
    return stream, raw


def open_source(
    source: str | os.PathLike[str] | BinaryIO, name: str | None, stack: ExitStack
) -> tuple[Readable, str]:
    stream: BinaryIO
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        try:
            stream = stack.enter_context(open(source, "rb"))
        except OSError as exc:
            raise InputError(f"{label}: cannot read the file: {exc.strerror or exc}") from exc
    else:
        stream = source
        label = name or str(getattr(source, "name", "<stream>"))
    readable: Readable = stream
    if stream.seekable():
        start = stream.tell()
        head = stream.read(2)
        stream.seek(start)
    else:
        head = stream.read(2)
        readable = _Prefixed(head, stream)
    if head == _GZIP_MAGIC:
        # GzipFile only reads forward here, so a stream without seek() is fine.
        readable = _UpToDamage(stack.enter_context(gzip.GzipFile(fileobj=cast(BinaryIO, readable), mode="rb")))
    return readable, label


class _UpToDamage:
    """A gzip stream whose ``read`` gives the bytes decompressed before damage, and raises the fault
    on the next call. ``GzipFile.read`` raises it at once, losing what it had decompressed in that
    call: the records just before a cut would be lost with it."""

    def __init__(self, file: gzip.GzipFile) -> None:
        self._file = file
        self._fault: Exception | None = None

    def read(self, size: int, /) -> bytes:
        if self._fault is not None:
            raise self._fault
        data = bytearray()
        while len(data) < size:
            try:
                piece = self._file.read1(size - len(data))
            except GZIP_ERRORS as exc:
                if not data:
                    raise
                self._fault = exc
                break
            if not piece:
                break
            data += piece
        return bytes(data)


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with the bytes already read for sniffing put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data + self._rest.read(size - len(data)) if len(data) < size else data


GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def gzip_fault(label: str, exc: Exception, line: int | None = None) -> ParseError:
    """The fault reported for a gzipped file whose compressed data is cut short or damaged; ``line``
    is the line of the decompressed file where the readable data ends."""
    return ParseError(label, line, None, f"damaged gzip data: {exc}")
