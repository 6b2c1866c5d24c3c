"""Loading PubMed XML files (efetch answers, baseline and update files) into the store.

Records are streamed from the parser and saved in batches, one transaction each: a crash or a
malformed file leaves every earlier batch stored and nothing half-written, and a rerun converges
because saving is idempotent.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import pickle
import queue as queue_module
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from . import store
from .errors import ParseError, StoreError
from .pubmed_xml import iter_records
from .records import Deletion, PaperRecord

BATCH_SIZE = 1000
PIPELINE_MIN_BYTES = 8_000_000  # below this, starting a parser process costs more than it saves

Progress = Callable[[int], None]  # called with the number of bytes read since the last call


@dataclass
class FileReport:
    path: Path
    result: store.SaveResult
    error: ParseError | None = None


@dataclass
class IngestSummary:
    files: list[FileReport] = field(default_factory=list)

    @property
    def total(self) -> store.SaveResult:
        total = store.SaveResult()
        for report in self.files:
            total += report.result
        return total

    @property
    def errors(self) -> list[ParseError]:
        return [f.error for f in self.files if f.error is not None]


class _CountingReader(io.FileIO):
    """A binary file that reports how far into it reading has gone, for a progress bar."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
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


def save_items(
    engine: Engine, items: Sequence[PaperRecord | Deletion], digests: Mapping[int, str] | None = None
) -> store.SaveResult:
    """Save one batch of parsed items in one transaction, in order (a deletion after its records)."""
    result = store.SaveResult()
    with engine.begin() as conn:
        pending: list[PaperRecord] = []
        for item in items:
            if isinstance(item, Deletion):
                result += store.save_batch(conn, pending, digests=digests)
                pending = []
                result.deleted += store.apply_deletion(conn, item)
            else:
                pending.append(item)
        result += store.save_batch(conn, pending, digests=digests)
    return result


def ingest_stream(
    engine: Engine, items: Iterator[PaperRecord | Deletion], *, batch_size: int = BATCH_SIZE
) -> tuple[store.SaveResult, ParseError | None]:
    """Save everything an iterator yields, batch by batch.

    When the parser fails, the records it yielded before the fault were complete: they are saved,
    and the error is returned beside the result so the caller can report it.
    """
    result = store.SaveResult()
    batch: list[PaperRecord | Deletion] = []
    error: ParseError | None = None
    try:
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                result += save_items(engine, batch)
                batch = []
    except ParseError as exc:
        error = exc
    result += save_items(engine, batch)
    return result, error


def ingest_file(
    engine: Engine, path: Path, *, progress: Progress | None = None, batch_size: int = BATCH_SIZE
) -> FileReport:
    """Load one ``.xml`` or ``.xml.gz`` file; a malformed file is reported in the FileReport, not raised.

    A large file is parsed in a second process while this one writes to the database, so the two
    halves of the work overlap on two cores; a small one is parsed here.
    """
    if path.stat().st_size >= PIPELINE_MIN_BYTES:
        return _ingest_pipelined(engine, path, progress, batch_size)
    reader = _CountingReader(path, progress)
    try:
        result, error = ingest_stream(engine, iter_records(reader, name=str(path)), batch_size=batch_size)
    finally:
        reader.close()
    return FileReport(path, result, error)


def _parse_worker(path: str, batch_size: int, queue: Any) -> None:
    """Child process: parse the file, fingerprint each record, send pickled batches to the parent."""
    read = 0

    def count(size: int) -> None:
        nonlocal read
        read += size

    batch: list[tuple[bytes, str | None]] = []
    reader = _CountingReader(Path(path), count)
    try:
        for item in iter_records(reader, name=path):
            blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            digest = store.digest_of_pickle(blob) if isinstance(item, PaperRecord) else None
            batch.append((blob, digest))
            if len(batch) >= batch_size:
                queue.put(("items", batch, read))
                batch = []
        queue.put(("items", batch, read))
        queue.put(("done", None, read))
    except ParseError as exc:
        queue.put(("items", batch, read))
        queue.put(("error", (exc.source, exc.line, exc.column, exc.message), read))
    except Exception as exc:  # noqa: BLE001 - reported by the parent as a failed file
        queue.put(("crash", f"{type(exc).__name__}: {exc}", read))
    finally:
        reader.close()


def _ingest_pipelined(engine: Engine, path: Path, progress: Progress | None, batch_size: int) -> FileReport:
    context = mp.get_context("spawn")
    queue = context.Queue(maxsize=4)  # bounded: memory stays flat whatever the file size
    worker = context.Process(target=_parse_worker, args=(str(path), batch_size, queue), daemon=True)
    worker.start()
    result = store.SaveResult()
    error: ParseError | None = None
    reported = 0
    try:
        while True:
            try:
                kind, payload, read = queue.get(timeout=1.0)
            except queue_module.Empty:
                if not worker.is_alive():
                    raise StoreError(f"{path}: the parser process died (exit code {worker.exitcode})") from None
                continue
            if progress is not None and read > reported:
                progress(read - reported)
                reported = read
            if kind == "items":
                items = [pickle.loads(blob) for blob, _ in payload]
                digests = {id(item): digest for item, (_, digest) in zip(items, payload) if digest}
                result += save_items(engine, items, digests)
            elif kind == "error":
                error = ParseError(*payload)
                break
            elif kind == "crash":
                raise StoreError(f"{path}: the parser process failed: {payload}")
            else:
                break
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        queue.close()
    return FileReport(path, result, error)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named, and the ``*.xml``/``*.xml.gz`` files inside folders named, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith((".xml", ".xml.gz"))))
        else:
            found.append(path)
    return found


def ingest_paths(
    engine: Engine,
    paths: Sequence[Path],
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> IngestSummary:
    summary = IngestSummary()
    for path in paths:
        summary.files.append(ingest_file(engine, path, progress=progress, batch_size=batch_size))
    return summary
