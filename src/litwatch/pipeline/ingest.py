"""Loading PubMed XML files (efetch answers, baseline and update files) into the store, and
PubTator3 BioC JSON files (``sources/pubtator_files.py``) with their annotations.

Records are streamed from the parser and saved in batches, one transaction each: a crash or a
malformed file leaves every earlier batch stored and nothing half-written, and a rerun converges
because saving is idempotent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from litwatch.clock import utcnow
from litwatch.errors import InputError, Interrupted, ParseError
from litwatch.records import Deletion, PaperRecord
from litwatch.sources import pubtator_files
from litwatch.sources.pubmed_xml import MAX_RECORD_BYTES, CountingReader, check_root, iter_records
from litwatch.store import papers as store
from litwatch.store import rows

if TYPE_CHECKING:
    from litwatch.sources import parse_pool
    from litwatch.tagging.tagger import Tag, Tagger

BATCH_SIZE = 1000
PIPELINE_MIN_BYTES = 8_000_000  # below this, starting worker processes costs more than they save

Progress = Callable[[int], None]  # called with the number of bytes read since the last call


@dataclass
class FileReport:
    path: Path
    result: store.SaveResult
    error: ParseError | None = None
    last_pmid: int | None = None  # of the last paper stored, for saying where an interrupted load got to
    annotated: int = 0  # a PubTator3 file's papers that took its annotations
    annotation_tags: int = 0  # and the pubtator3 tags they make


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
    def annotated(self) -> tuple[int, int]:
        """Papers that took a PubTator3 file's annotations, and the tags they make."""
        return sum(f.annotated for f in self.files), sum(f.annotation_tags for f in self.files)

    @property
    def errors(self) -> list[ParseError]:
        return [f.error for f in self.files if f.error is not None]


def save_items(
    engine: Engine,
    items: Sequence[PaperRecord | rows.Prepared | Deletion],
    *,
    tagger: Tagger | None = None,
    tags: Mapping[int, list[Tag]] | None = None,
) -> store.SaveResult:
    """Save one batch of parsed items in one transaction, in order (a deletion after its records);
    returns what it did, as counts (``SaveResult.counts``).

    New and updated papers are tagged in the same transaction: with ``tags`` already computed
    (keyed by ``id(item)``, from the worker processes, which send prepared records) or by
    ``tagger`` here.
    """
    with engine.begin() as conn:
        return _save_into(conn, items, tagger=tagger, tags=tags)


def _save_into(
    conn: Connection,
    items: Sequence[PaperRecord | rows.Prepared | Deletion],
    *,
    tagger: Tagger | None = None,
    tags: Mapping[int, list[Tag]] | None = None,
) -> store.SaveResult:
    """:func:`save_items` in the caller's transaction."""
    result = store.SaveResult()
    pending: list[PaperRecord | rows.Prepared] = []

    def flush() -> None:
        saved = store.save_batch(conn, pending)
        if tagger is not None or tags is not None:
            from litwatch.store import tags as tag_store  # the ORM models: only when tagging

            tag_store.tag_changed(conn, pending, saved.changed_pmids, tagger=tagger, found=tags)
        result.__iadd__(saved.counts())  # memory stays flat however many papers a file holds
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
    report = FileReport(Path(), store.SaveResult())
    _Batches(engine, report, batch_size, tagger=tagger).save_all((item, None) for item in items)
    return report.result, report.error


class _Batches:
    """Saves a file's items ``batch_size`` at a time, one transaction each, into ``report``: what is
    stored is in it whenever the load stops (a fault, Ctrl-C), and so is the last PMID saved."""

    def __init__(self, engine: Engine, report: FileReport, batch_size: int, *, tagger: Tagger | None = None,
                 tagged: bool = False) -> None:
        self._engine, self._report, self._batch_size = engine, report, batch_size
        self._tagger, self._tagged = tagger, tagged
        self._batch: list[PaperRecord | rows.Prepared | Deletion] = []
        self._tags: dict[int, list[Tag]] = {}

    def save_all(self, items: Iterable[tuple[PaperRecord | rows.Prepared | Deletion, list[Tag] | None]],
                 collect: Callable[[], None] | None = None) -> None:
        """Save every item, and the batch in hand when the parser stops at a fault (kept in the report)."""
        try:
            for item, found in items:
                self._batch.append(item)
                if found is not None:
                    self._tags[id(item)] = found
                if len(self._batch) >= self._batch_size:
                    self._save()
                    if collect is not None:
                        collect()
        except ParseError as exc:
            self._report.error = exc
        self._save()

    def _save(self) -> None:
        batch = self._batch
        self._report.result += save_items(
            self._engine, batch, tagger=self._tagger, tags=self._tags if self._tagged else None
        )
        papers = [item.pmid for item in batch if not isinstance(item, Deletion)]
        if papers:
            self._report.last_pmid = papers[-1]
        self._batch, self._tags = [], {}


def ingest_file(
    engine: Engine,
    path: Path,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    vocab_dir: Path | None = None,
    tagger: Tagger | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> FileReport:
    """Load one ``.xml`` or ``.xml.gz`` file; a malformed file is reported in the FileReport, not raised.

    A large file is parsed by worker processes (``parse_pool``, which tag too, with the vocabulary
    in ``vocab_dir``) while this one writes to the database; a small one, or one that cannot be cut
    into chunks, is parsed here and tagged with ``tagger``.
    """
    report = FileReport(path, store.SaveResult())
    _load(engine, report, progress, batch_size, vocab_dir, tagger, max_record_bytes)
    return report


def _load(
    engine: Engine, report: FileReport, progress: Progress | None, batch_size: int, vocab_dir: Path | None,
    tagger: Tagger | None, max_record_bytes: int,
) -> None:
    path = report.path
    if pubtator_files.is_pubtator_file(path):
        _load_pubtator(engine, report, pubtator_files.read_file(path), batch_size, tagger)
        if progress is not None:
            progress(path.stat().st_size)
        return
    shape = _parallel_layout(path)
    if shape is not None:
        from litwatch.sources import parse_pool  # worker processes: only for large files

        with parse_pool.batch_collection() as collect:
            ahead = max(parse_pool.AHEAD_RECORDS, batch_size)  # workers parse on while a batch is written
            # closed here, not when the traceback of a Ctrl-C lets go of it: the workers stop at once
            with closing(parse_pool.parse_file(path, shape, vocab_dir=vocab_dir, progress=progress, ahead=ahead,
                                               max_record_bytes=max_record_bytes)) as chunks:
                items = (item for chunk in chunks for item in chunk)
                _Batches(engine, report, batch_size, tagged=vocab_dir is not None).save_all(items, collect)
        return
    with CountingReader(path, progress) as reader:
        records = iter_records(reader, name=str(path), max_record_bytes=max_record_bytes)
        _Batches(engine, report, batch_size, tagger=tagger).save_all((record, None) for record in records)


def _load_pubtator(engine: Engine, report: FileReport, documents: Sequence[pubtator_files.Document],
                   batch_size: int, tagger: Tagger | None) -> None:
    """Load a PubTator3 BioC JSON file, ``batch_size`` documents a transaction: the papers the
    store lacks, from PubTator3's citation, and (when tagging) every paper's PubTator3 annotations,
    stored as if PubTator3 had been asked now. A paper the store holds keeps its PubMed record."""
    from litwatch.pipeline import pubtator as pubtator_step  # the ORM models: only for these files

    for first in range(0, len(documents), batch_size):
        batch = documents[first : first + batch_size]
        with engine.begin() as conn:
            known = store.resolve_pmids(conn, [d.record.pmid for d in batch])
            fresh = [d.record for d in batch if d.record.pmid not in known]
            result = _save_into(conn, fresh, tagger=tagger)
            result.read += len(known)
            result.unchanged += len(known)
            if tagger is not None:
                # a PMID merged into another row (same DOI) keeps that row's text: its spans would not fit
                held = known | store.resolve_pmids(conn, [r.pmid for r in fresh])
                found = {d.record.pmid: d.annotations for d in batch if held.get(d.record.pmid) == d.record.pmid}
                report.annotation_tags += pubtator_step.store_annotations(conn, list(found), found, tagger, utcnow())
                report.annotated += len(found)
        report.result += result
        report.last_pmid = batch[-1].record.pmid


def _parallel_layout(path: Path) -> parse_pool.Layout | None:
    """How to cut ``path`` for the worker processes, or None to parse it here."""
    if path.stat().st_size < PIPELINE_MIN_BYTES:
        return None
    from litwatch.sources import parse_pool  # worker processes: only for large files

    return parse_pool.file_layout(path)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named, and the ``*.xml``/``*.xml.gz`` files inside folders named, in a stable order.

    A folder holding none of them is an InputError: reading nothing from it is never what was meant.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.name.endswith((".xml", ".xml.gz")) and p.is_file())
            if not inside:
                raise InputError(
                    f"{os.path.join(path, '')}: no .xml or .xml.gz files in this folder; "
                    "give the folder holding the efetch answers or PubMed baseline/update files, or the files"
                )
            found.extend(inside)
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
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> IngestSummary:
    """Load files one after another; tag with the vocabulary in ``vocab_dir`` when it exists.

    A file whose root element is not a PubMed set is an InputError raised before anything is loaded.
    Ctrl-C (KeyboardInterrupt) becomes ``Interrupted``, saying what was stored: every batch written
    before it (the one in flight is rolled back whole).
    """
    summary = IngestSummary()
    if vocab_dir is not None and not vocab_dir.is_dir():
        vocab_dir = None
    # read here first, so a slip in a vocabulary file is reported with its file and line before any
    # work starts (worker processes read it again, for their own taggers)
    tagger = None
    if vocab_dir is not None:
        from litwatch.tagging.papers import load_tagger  # the tagger's modules: not for --no-tag

        tagger = load_tagger(vocab_dir)
    for path in paths:  # and a file that is not PubMed XML (or PubTator3's JSON), before anything is stored
        if path.is_file() and pubtator_files.is_pubtator_file(path):
            pubtator_files.read_file(path)
        elif path.is_file():
            check_root(path)
    for path in paths:
        report = FileReport(path, store.SaveResult())
        summary.files.append(report)
        try:
            _load(engine, report, progress, batch_size, vocab_dir, tagger, max_record_bytes)
        except KeyboardInterrupt:
            raise Interrupted(_interrupted(summary)) from None
    return summary


def _interrupted(summary: IngestSummary) -> str:
    """What an interrupted load kept, and that running it again finishes it (saving is idempotent:
    a stored record read again is counted unchanged, not stored twice)."""
    *done, current = summary.files
    if current.result.read:
        kept = f"{current.result.read:,} records from {current.path} stored (the last one PMID {current.last_pmid})"
    else:
        kept = f"no record from {current.path} stored yet"
    if done:
        kept += f", all of the {len(done)} file{'s' if len(done) > 1 else ''} before it stored"
    return (f"interrupted: {kept}; run the same command again to load the rest: "
            "records already stored are counted unchanged, not stored twice")
