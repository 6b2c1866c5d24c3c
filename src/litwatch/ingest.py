"""Loading PubMed XML files (efetch answers, baseline and update files) into the store.

Records are streamed from the parser and saved in batches, one transaction each: a crash or a
malformed file leaves every earlier batch stored and nothing half-written, and a rerun converges
because saving is idempotent.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from . import store
from .errors import ParseError
from .pubmed_xml import iter_records
from .records import Deletion, PaperRecord

BATCH_SIZE = 1000

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
    """A binary file that reports how many bytes were read, for a progress bar."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        super().__init__(path, "rb")
        self._progress = progress

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if self._progress is not None and data:
            self._progress(len(data))
        return data or b""

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer) or 0
        if self._progress is not None and count:
            self._progress(count)
        return count


def save_items(engine: Engine, items: Sequence[PaperRecord | Deletion]) -> store.SaveResult:
    """Save one batch of parsed items in one transaction, in order (a deletion after its records)."""
    result = store.SaveResult()
    with engine.begin() as conn:
        pending: list[PaperRecord] = []
        for item in items:
            if isinstance(item, Deletion):
                result += store.save_batch(conn, pending)
                pending = []
                result.deleted += store.apply_deletion(conn, item)
            else:
                pending.append(item)
        result += store.save_batch(conn, pending)
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
    """Load one ``.xml`` or ``.xml.gz`` file; a malformed file is reported in the FileReport, not raised."""
    reader = _CountingReader(path, progress)
    try:
        result, error = ingest_stream(
            engine, iter_records(reader, name=str(path)), batch_size=batch_size
        )
    finally:
        reader.close()
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
