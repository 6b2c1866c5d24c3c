"""Loading PubMed XML files (efetch answers, baseline and update files) into the store.

Records are streamed from the parser and saved in batches, one transaction each: a crash or a
malformed file leaves every earlier batch stored and nothing half-written, and a rerun converges
because saving is idempotent.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import queue as queue_module
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from . import store, tag_store
from .errors import ParseError, StoreError
from .pubmed_xml import iter_records
from .records import Deletion, PaperRecord
from .tagging import Tag, Tagger

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
    engine: Engine,
    items: Sequence[PaperRecord | store.Prepared | Deletion],
    *,
    tagger: Tagger | None = None,
    tags: Mapping[int, list[Tag]] | None = None,
) -> store.SaveResult:
    """Save one batch of parsed items in one transaction, in order (a deletion after its records).

    New and updated papers are tagged in the same transaction: with ``tags`` already computed
    (keyed by ``id(item)``, from the parser process, which sends prepared records) or by
    ``tagger`` here.
    """
    result = store.SaveResult()
    with engine.begin() as conn:
        pending: list[PaperRecord | store.Prepared] = []

        def flush() -> None:
            saved = store.save_batch(conn, pending)
            changed = set(saved.changed_pmids)
            fresh = [r for r in pending if r.pmid in changed]
            if tags is not None:
                tag_store.save_tags(conn, {r.pmid: tags.get(id(r), []) for r in fresh})
            elif tagger is not None:
                tag_store.tag_records(conn, tagger, [r for r in fresh if isinstance(r, PaperRecord)])
            result.__iadd__(saved)
            pending.clear()

        for item in items:
            if isinstance(item, Deletion):
                flush()
                result.deleted += store.apply_deletion(conn, item)
            else:
                pending.append(item)
        flush()
    return result


def ingest_stream(
    engine: Engine,
    items: Iterator[PaperRecord | Deletion],
    *,
    batch_size: int = BATCH_SIZE,
    tagger: Tagger | None = None,
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
                result += save_items(engine, batch, tagger=tagger)
                batch = []
    except ParseError as exc:
        error = exc
    result += save_items(engine, batch, tagger=tagger)
    return result, error


def ingest_file(
    engine: Engine,
    path: Path,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    vocab_dir: Path | None = None,
    tagger: Tagger | None = None,
) -> FileReport:
    """Load one ``.xml`` or ``.xml.gz`` file; a malformed file is reported in the FileReport, not raised.

    A large file is parsed in a second process while this one writes to the database, so the two
    halves of the work overlap on two cores (the parser process tags too, with the vocabulary in
    ``vocab_dir``); a small one is parsed here and tagged with ``tagger``.
    """
    if path.stat().st_size >= PIPELINE_MIN_BYTES:
        return _ingest_pipelined(engine, path, progress, batch_size, vocab_dir)
    reader = _CountingReader(path, progress)
    try:
        result, error = ingest_stream(
            engine, iter_records(reader, name=str(path)), batch_size=batch_size, tagger=tagger
        )
    finally:
        reader.close()
    return FileReport(path, result, error)


def _parse_worker(path: str, batch_size: int, vocab_dir: str | None, queue: Any) -> None:
    """Child process: parse, prepare (rows and fingerprint) and tag each record, send batches on."""
    read = 0

    def count(size: int) -> None:
        nonlocal read
        read += size

    batch: list[tuple[store.Prepared | Deletion, list[Tag]]] = []
    reader = _CountingReader(Path(path), count)
    try:
        tagger = tag_store.load_tagger(Path(vocab_dir)) if vocab_dir else None
        for item in iter_records(reader, name=path):
            if isinstance(item, PaperRecord):
                batch.append((store.prepare(item), tagger.tag_record(item) if tagger is not None else []))
            else:
                batch.append((item, []))
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


def _ingest_pipelined(
    engine: Engine, path: Path, progress: Progress | None, batch_size: int, vocab_dir: Path | None
) -> FileReport:
    context = mp.get_context("spawn")
    queue = context.Queue(maxsize=4)  # bounded: memory stays flat whatever the file size
    worker = context.Process(target=_parse_worker, args=(str(path), batch_size, str(vocab_dir) if vocab_dir else None, queue), daemon=True)
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
                items = [item for item, _ in payload]
                tags = {id(item): found for item, found in payload}
                result += save_items(engine, items, tags=tags if vocab_dir else None)
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
    vocab_dir: Path | None = None,
) -> IngestSummary:
    """Load files one after another; tag with the vocabulary in ``vocab_dir`` when it exists."""
    summary = IngestSummary()
    if vocab_dir is not None and not vocab_dir.is_dir():
        vocab_dir = None
    # a parser process builds its own tagger: build one here only if some file is parsed here
    local = vocab_dir is not None and any(p.stat().st_size < PIPELINE_MIN_BYTES for p in paths)
    tagger = tag_store.load_tagger(vocab_dir) if local and vocab_dir is not None else None
    for path in paths:
        summary.files.append(
            ingest_file(engine, path, progress=progress, batch_size=batch_size, vocab_dir=vocab_dir, tagger=tagger)
        )
    return summary
