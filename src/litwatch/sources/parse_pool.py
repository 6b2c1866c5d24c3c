"""Parsing a large PubMed XML file on every core, its records coming back in file order.

A baseline file (30,000 records, 850 MB) costs more to parse than to store, so one parser process
beside the writer leaves the writer waiting. Here the file is cut into chunks of about
``CHUNK_BYTES`` at record boundaries, each a document of its own (``chunks.py``). Worker processes
parse, fingerprint (``rows.prepare``) and tag the chunks; the caller receives their records chunk
by chunk, in file order, with at most ``AHEAD_RECORDS`` records parsed ahead of it and a chunk per
worker in flight, so memory stays flat whatever the file size.

What the caller sees is what a sequential parse gives: the same records in the same order, and a
fault reported at its line and column in the file, after every record before it (and the same
records before damage in a gzipped file). A plain file is cut by reading a little around each cut
point, and each worker maps the file and parses its chunk in place, dropping the pages it is done
with; a gzipped file is decompressed here and the chunk's bytes are sent. A file that cannot be
cut (``layout`` returns None) is parsed by the caller in one piece.

Workers run at a lower priority than the writer, and the cyclic garbage collector is held back
while they work (``batch_collection``): both measured in bench/ingest_speed.py. A worker whose
writer is gone (killed with SIGKILL, so it could not stop the pool) ends itself within
``ORPHAN_POLL`` seconds (``_watch_parent``): it never outlives the writer holding ~85 MB.
"""

from __future__ import annotations

import gc
import io
import mmap
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, cast

from litwatch.errors import ParseError, StoreError
from litwatch.records import Deletion, PaperRecord
from litwatch.sources.chunks import (
    Chunk,
    Layout,
    file_layout,
    layout,
    place_fault,
    plain_chunks,
    stream_chunks,
)
from litwatch.sources.pubmed_xml import MAX_RECORD_BYTES, gzip_fault, iter_records, open_stream
from litwatch.store import rows
from litwatch.tagging.papers import load_tagger, tag_paper
from litwatch.tagging.tagger import Tag, Tagger

__all__ = [
    "AHEAD_RECORDS", "CHUNK_BYTES", "Item", "Layout", "batch_collection", "file_layout", "layout", "parse_file",
    "worker_count",
]

CHUNK_BYTES = 4_000_000
GZIP_CHUNK_BYTES = 1_000_000  # a gzipped file's chunks pass through this process: smaller ones, less memory
MAX_WORKERS = 3
COLLECT_EVERY = 16  # batches written, or chunks parsed, between two collections of cyclic garbage
AHEAD_RECORDS = 2_000  # records parsed before the writer takes them: it never waits while it has work
# Workers yield the CPU to the writer: it is the one step that cannot be shared out, so while it
# has work it should never wait for a core (bench/ingest_speed.py).
NICENESS = 10
ORPHAN_POLL = 0.2  # seconds between a worker's looks at whether its writer is still alive

Item = tuple[rows.Prepared | Deletion, list[Tag]]
Progress = Callable[[int], None]




class _Collector:
    """Called once per batch or chunk, collects cyclic garbage every ``COLLECT_EVERY`` calls
    (a batch leaves some 60 objects in cycles)."""

    def __init__(self) -> None:
        self._calls = 0

    def __call__(self) -> None:
        self._calls += 1
        if self._calls % COLLECT_EVERY == 0:
            gc.collect()


@contextmanager
def batch_collection() -> Iterator[Callable[[], None]]:
    """Collect cyclic garbage every few batches, not whenever allocations pile up.

    Bulk loading makes millions of short-lived objects (records, rows) that hold no cycles: the
    collector's automatic runs found nothing and cost 10% of ingest (bench/ingest_speed.py). While
    this is open they are off and what existed before is frozen out of every collection; call the
    function it gives after each batch, so real cycles still go.
    """
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield _Collector()
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


_tagger: Tagger | None = None
_max_record_bytes = MAX_RECORD_BYTES


def _start_worker(vocab_dir: str | None, writer: int, max_record_bytes: int) -> None:
    global _tagger, _max_record_bytes
    _watch_parent(writer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the writer's to handle: it stops the pool
    _max_record_bytes = max_record_bytes
    os.nice(NICENESS)
    _tagger = load_tagger(Path(vocab_dir)) if vocab_dir else None
    gc.freeze()  # a worker lives for one file: see batch_collection (_parse_chunk calls _collect)
    gc.disable()


def _watch_parent(writer: int) -> None:
    """End this worker as soon as the writer process ``writer`` is gone.

    A thread that looks at the parent's pid, not prctl(PR_SET_PDEATHSIG): Linux sends that signal
    when the *thread* that started the child ends, and the pool starts its workers from the
    feeder thread, which ends before the last chunks are parsed. A dead parent makes this process
    an orphan, adopted by another (its parent pid changes); that works on macOS too.
    """

    def watch() -> None:
        while os.getppid() == writer:
            time.sleep(ORPHAN_POLL)
        os._exit(1)  # nothing to save or flush: the parsed records went with the writer

    if os.getppid() != writer:
        os._exit(1)
    threading.Thread(target=watch, name="litwatch-writer-watch", daemon=True).start()


def _parse_chunk(path: str, chunk: Chunk, shape: Layout, label: str) -> tuple[list[Item], tuple[Any, ...] | None]:
    """Worker: the prepared, tagged records of one chunk, and the fault that ended it (chunk-relative)."""
    data = memoryview(chunk.data) if chunk.data is not None else _mapped(path)[chunk.start : chunk.start + chunk.length]
    prefix = shape.prefix if chunk.index > 0 else b""
    document = _Pieces(prefix, data, b"" if chunk.last else shape.root_end)
    items: list[Item] = []
    try:
        for item in iter_records(cast(BinaryIO, document), name=label, max_record_bytes=_max_record_bytes):
            if isinstance(item, PaperRecord):
                items.append((rows.prepare(item), tag_paper(_tagger, item)))
            else:
                items.append((item, []))
    except ParseError as exc:
        return items, (exc.line, exc.column, exc.message, len(prefix))
    finally:
        data.release()
        if chunk.data is None:
            _forget(path, chunk)
        _collect()
    return items, None


_maps: dict[str, tuple[Any, memoryview]] = {}
_collect = _Collector()


def _mapped(path: str) -> memoryview:
    """The worker's view of a plain file: each chunk is read from the page cache once, no copies."""
    if path not in _maps:
        with open(path, "rb") as handle:
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        _maps[path] = (mapping, memoryview(mapping))
    return _maps[path][1]


def _forget(path: str, chunk: Chunk) -> None:
    """Drop a parsed chunk's pages from this process (they stay in the page cache), so its
    resident memory does not grow with the file."""
    first = chunk.start - chunk.start % mmap.PAGESIZE
    _maps[path][0].madvise(mmap.MADV_DONTNEED, first, chunk.start + chunk.length - first)


class _Pieces(io.RawIOBase):
    """A chunk as a document: the root start tag, the chunk, the root end tag, read in place."""

    def __init__(self, *pieces: bytes | memoryview) -> None:
        self._pieces = [memoryview(p) for p in pieces if len(p)]
        self._at = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while self._pieces and self._at >= len(self._pieces[0]):
            self._pieces.pop(0)
            self._at = 0
        if not self._pieces:
            return b""
        piece = self._pieces[0]
        end = len(piece) if size is None or size < 0 else min(len(piece), self._at + size)
        data = bytes(piece[self._at : end])
        self._at = end
        return data


def worker_count() -> int:
    """One worker per core this process may run on, at most MAX_WORKERS: beyond that the writer,
    which cannot be shared out, keeps up with no more of them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
    return max(1, min(MAX_WORKERS, cores))


def parse_file(
    path: Path, shape: Layout, *, vocab_dir: Path | None = None, progress: Progress | None = None,
    workers: int | None = None, chunk_bytes: int | None = None, label: str | None = None,
    ahead: int = AHEAD_RECORDS, max_record_bytes: int = MAX_RECORD_BYTES,
) -> Generator[list[Item], None, None]:
    """Yield the records of ``path`` (prepared, with their tags), chunk by chunk in file order.

    A fault ends the iteration with ParseError at its place in the file, after every record before it.
    Workers parse on while the caller works (it writes a batch to the database), up to ``ahead``
    records parsed and not yet taken.
    """
    label = label or str(path)
    workers = workers or worker_count()
    context = mp.get_context("spawn")  # never fork a process that may hold database connections
    with ExitStack() as stack:
        stream, raw = open_stream(path, stack)
        if stream is raw:
            chunks = plain_chunks(cast(BinaryIO, raw), shape, chunk_bytes or CHUNK_BYTES)
        else:
            chunks = stream_chunks(stream, raw, shape, chunk_bytes or GZIP_CHUNK_BYTES, max_record_bytes)
        pool = stack.enter_context(ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker,
            initargs=(str(vocab_dir) if vocab_dir else None, os.getpid(), max_record_bytes),
        ))
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        feeder = _Feeder(pool, chunks, workers + 1, ahead, (str(path), shape, label))
        stack.callback(feeder.stop)
        feeder.start()
        reported = 0
        while (handed := feeder.handoff.get()) is not None:
            if isinstance(handed, BaseException):
                raise handed
            chunk, future = handed
            try:
                items, fault = future.result()
            except BrokenProcessPool as exc:
                raise StoreError(f"{label}: a parser process died: {exc}") from None
            except Exception as exc:  # a fault in the worker's own code: the file is not to blame
                raise StoreError(f"{label}: a parser process failed: {type(exc).__name__}: {exc}") from exc
            feeder.taken(len(items))
            yield items
            if progress is not None and chunk.raw_end > reported:
                progress(chunk.raw_end - reported)
                reported = chunk.raw_end
            if isinstance(chunk.damage, ParseError):
                raise place_fault(path, label, chunk, (chunk.damage.line, None, chunk.damage.message, 0))
            if chunk.damage is not None:  # placed where the chunk's data, all that could be read, ends
                end = replace(chunk, start=chunk.start + chunk.length)
                raise place_fault(path, label, end, (1, None, gzip_fault(label, chunk.damage).message, 0))
            if fault is not None:
                raise place_fault(path, label, chunk, fault)


_Handed = tuple[Chunk, "Future[tuple[list[Item], tuple[Any, ...] | None]]"] | BaseException | None


class _Feeder(threading.Thread):
    """Cuts the file and gives chunks to the workers, in a thread of its own, so that they parse on
    while the caller writes. A chunk goes to the pool when fewer than ``running`` are being parsed
    (or wait for a worker: a plain file's bytes are read by the worker, a gzipped one's held here)
    and fewer than ``ahead`` records are parsed and not yet taken. Chunks and their futures reach
    the caller through ``handoff``, in file order, then None (or the exception that stopped it)."""

    def __init__(self, pool: ProcessPoolExecutor, chunks: Iterator[Chunk], running: int, ahead: int,
                 args: tuple[str, Layout, str]) -> None:
        super().__init__(name="litwatch-chunk-feeder", daemon=True)
        self.handoff: queue.SimpleQueue[_Handed] = queue.SimpleQueue()
        self._pool, self._chunks, self._args = pool, chunks, args
        self._limits = (running, ahead)
        self._running = self._ahead = 0
        self._stopped = False
        self._state = threading.Condition()

    def run(self) -> None:
        running, ahead = self._limits
        try:
            for chunk in self._chunks:
                with self._state:
                    self._state.wait_for(lambda: self._stopped or (self._running < running and self._ahead < ahead))
                    if self._stopped:
                        return
                    self._running += 1
                # the fault a chunk ends with is the caller's to raise; the worker parses the bytes
                future = self._pool.submit(_parse_chunk, self._args[0], replace(chunk, damage=None), *self._args[1:])
                future.add_done_callback(self._parsed)
                self.handoff.put((chunk, future))
        except BaseException as exc:  # noqa: BLE001 - the caller raises it, in order
            self.handoff.put(exc)
        else:
            self.handoff.put(None)

    def _parsed(self, future: Future[tuple[list[Item], tuple[Any, ...] | None]]) -> None:
        with self._state:
            self._running -= 1
            if not future.cancelled() and future.exception() is None:
                self._ahead += len(future.result()[0])
            self._state.notify_all()

    def taken(self, records: int) -> None:
        with self._state:
            self._ahead -= records
            self._state.notify_all()

    def stop(self) -> None:
        with self._state:
            self._stopped = True
            self._state.notify_all()
        self.join()
