"""`litwatch ingest` of PubTator3 BioC JSON files (``sources/pubtator_files.py``): the papers the
store lacks, from PubTator3's citation, and every paper's PubTator3 annotations, with no request.

The files are the real recorded PubTator3 documents (``fixtures/pubtator3``); where a test needs
one to belong to a stored PubMed record, the real document is cloned under that record's PMID,
as in ``test_pubtator_step.py`` (no recorded PubTator3 document belongs to a recorded PubMed record).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.errors import InputError
from litwatch.pipeline import ingest
from litwatch.pipeline import pubtator as step
from litwatch.sources import pubtator_files
from litwatch.store import tags as tag_store

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
PUBTATOR = FIXTURES / "pubtator3"
VOCAB = ROOT / "queries" / "vocab"
OSTEOARTHRITIS = PUBTATOR / "10.1126_scisignal.abf3535.json"  # PMID 34546791, mouse genes
MOLCEL = PUBTATOR / "10.1016_j.molcel.2016.11.034.json"  # PMID 28041912, human genes
P53 = 38833988  # a recorded PubMed record (fixtures/pubmed/metapub)


def tags_of(engine: Engine, pmid: int) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return {(t["tag"], t["kind"], t["source"], t["origin"], t["identifier"], t["span_start"], t["span_end"])
                for t in tag_store.stored_tags(conn, pmid)}


def row(engine: Engine, pmid: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM papers WHERE pmid = :p"), {"p": pmid}).mappings().one()
        return dict(found)


def test_a_pubtator3_file_stores_its_paper_with_the_citation_pubtator3_keeps(engine):
    summary = ingest.ingest_paths(engine, [MOLCEL], vocab_dir=VOCAB)
    assert (summary.total.read, summary.total.new) == (1, 1)
    paper = row(engine, 28041912)
    assert paper["title"].startswith("A Constitutive Intrinsic Inflammatory Signaling Circuit Composed of miR-196b")
    assert (paper["journal"], paper["pub_year"], paper["doi"], paper["pmcid"]) == (
        "Mol Cell", 2017, "10.1016/j.molcel.2016.11.034", "PMC5218896")
    with engine.connect() as conn:
        authors = conn.execute(sa.text("SELECT last_name, initials FROM authors WHERE paper_pmid = 28041912 "
                                       "ORDER BY position")).all()
    assert [tuple(a) for a in authors] == [("Jeong", "JH"), ("Park", "SJ"), ("Dickinson", "SI"), ("Luo", "JL")]


def test_its_annotations_become_pubtator3_tags_whose_spans_point_into_the_stored_text(engine):
    summary = ingest.ingest_paths(engine, [MOLCEL], vocab_dir=VOCAB)
    assert summary.annotated[0] == 1
    stored = tags_of(engine, 28041912)
    assert ("RELA", "gene", "title", "pubtator3", "NCBIGene:5970", 97, 100) in stored
    assert ("IKBKB", "gene", "abstract", "pubtator3", "NCBIGene:3551", 823, 830) in stored
    paper = row(engine, 28041912)
    assert paper["title"][97:100] == "p65"
    with engine.connect() as conn:
        abstract = conn.execute(sa.text("SELECT abstract FROM papers WHERE pmid = 28041912")).scalar_one()
    assert abstract[823:830] == "IKKbeta"
    # the dictionary still tags pathways; PubTator3 is the gene source of title and abstract
    assert any(kind == "pathway" and origin == "dictionary" for _t, kind, _f, origin, *_ in stored)
    assert not any(kind == "gene" and origin == "dictionary" for _t, kind, _f, origin, *_ in stored)
    # and the run's PubTator3 step will not ask about it
    with engine.connect() as conn:
        assert 28041912 not in step.pending(conn, dt.datetime.now(dt.UTC), max_age=None)


def test_mouse_genes_take_their_human_orthologue_by_homologene_and_symbol(engine):
    # 34546791 annotates mouse genes (Il1b 16176, Nfkb1 18033) in HomoloGene groups; the shipped
    # vocabulary knows IL1B's and NFKB1's human Gene IDs, not IKBKB's
    ingest.ingest_paths(engine, [OSTEOARTHRITIS], vocab_dir=VOCAB)
    genes = {(tag, identifier) for tag, kind, _f, _o, identifier, *_ in tags_of(engine, 34546791) if kind == "gene"}
    assert ("IL1B", "NCBIGene:16176") in genes and ("NFKB1", "NCBIGene:18033") in genes
    assert ("Ikbkb", "NCBIGene:16150") in genes  # no human IKBKB in the vocabulary: PubTator's own symbol


def test_the_same_file_twice_changes_nothing(engine):
    ingest.ingest_paths(engine, [MOLCEL], vocab_dir=VOCAB)
    before = tags_of(engine, 28041912)
    again = ingest.ingest_paths(engine, [MOLCEL], vocab_dir=VOCAB)
    assert (again.total.read, again.total.new, again.total.unchanged) == (1, 0, 1)
    assert tags_of(engine, 28041912) == before


def test_a_paper_stored_from_pubmed_keeps_its_record_and_takes_the_annotations(engine, tmp_path):
    ingest.ingest_paths(engine, [FIXTURES / "pubmed" / "metapub" / f"{P53}.xml"], vocab_dir=VOCAB)
    title = row(engine, P53)["title"]
    assert ("TP53", "title", "dictionary") in {(t, f, o) for t, _k, f, o, *_ in tags_of(engine, P53)}
    raw: dict[str, Any] = copy.deepcopy(json.loads(MOLCEL.read_text(encoding="utf-8")))
    raw |= {"pmid": P53, "_id": f"{P53}|None", "id": str(P53)}
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"PubTator3": [raw]}), encoding="utf-8")
    summary = ingest.ingest_paths(engine, [export], vocab_dir=VOCAB)
    assert (summary.total.new, summary.total.unchanged, summary.annotated[0]) == (0, 1, 1)
    assert row(engine, P53)["title"] == title  # PubMed's record, not PubTator3's thinner citation
    stored = {(t, f, o) for t, _k, f, o, *_ in tags_of(engine, P53)}
    assert ("RELA", "title", "pubtator3") in stored and ("TP53", "title", "dictionary") not in stored


def test_without_tagging_the_papers_load_and_pubtator3_is_still_to_be_asked(engine):
    summary = ingest.ingest_paths(engine, [MOLCEL])
    assert (summary.total.new, summary.annotated) == (1, (0, 0))
    assert tags_of(engine, 28041912) == set()
    with engine.connect() as conn:
        assert step.pending(conn, dt.datetime.now(dt.UTC), max_age=None) == [28041912]


def test_every_recorded_document_reads_as_a_paper():
    for path in sorted(PUBTATOR.glob("*.json")):
        [document] = pubtator_files.read_file(path)
        assert document.record.pmid == document.annotations.pmid > 0
        assert document.record.title and document.record.abstract and document.record.pub_year
        assert document.record.journal and document.record.authors


# -- the command ------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'litwatch.sqlite'}")
    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(tmp_path / "queries"))
    runner = CliRunner()
    assert runner.invoke(main, ["init"], catch_exceptions=False).exit_code == 0
    return runner


def papers_in(tmp_path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'litwatch.sqlite'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM papers")).scalar_one())
    finally:
        engine.dispose()


def test_ingest_says_how_many_papers_took_annotations_and_explain_shows_them(cli):
    result = cli.invoke(main, ["ingest", str(OSTEOARTHRITIS), str(MOLCEL)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "PubTator3 annotations of 2 papers stored from the files: " in result.output
    assert result.output.rstrip().endswith("no request made")
    explained = cli.invoke(main, ["tag", "--explain-pmid", "34546791"], catch_exceptions=False)
    lines = explained.output.splitlines()
    assert lines[0].split() == ["tag", "kind", "field", "origin", "identifier", "span", "text"]
    assert "IL1B gene abstract pubtator3 NCBIGene:16176 1169-1186 interleukin-1beta" in [" ".join(x.split()) for x in lines]


def test_a_json_file_that_is_not_a_pubtator3_export_is_refused_before_anything_is_stored(cli, tmp_path):
    (tmp_path / "notes.json").write_text('{"comment": "not an export"}', encoding="utf-8")
    result = cli.invoke(main, ["ingest", str(MOLCEL), "notes.json"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.startswith("litwatch: error: notes.json: not a PubTator3 BioC JSON file (")
    assert result.output.rstrip().endswith("give files saved from PubTator3's publications/export/biocjson")
    assert len(result.output.strip().splitlines()) == 1
    assert papers_in(tmp_path) == 0  # not even the good file named before it


def test_a_document_without_a_pmid_is_named_by_its_place_in_the_file(tmp_path):
    raw = json.loads(MOLCEL.read_text(encoding="utf-8"))
    broken = {key: value for key, value in raw.items() if key not in ("pmid", "_id")} | {"id": "10.1/x"}
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"PubTator3": [raw, broken]}), encoding="utf-8")
    with pytest.raises(InputError, match=r"export\.json: document 2: no PMID \(pmid None, id '10\.1/x'\); "
                                         "nothing from this file was stored"):
        pubtator_files.read_file(path)
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(MOLCEL.read_bytes()[:500])
    with pytest.raises(InputError, match=r"truncated\.json: not a PubTator3 BioC JSON file \("):
        pubtator_files.read_file(truncated)


def test_a_document_without_a_title_is_refused_naming_its_pmid(cli, tmp_path):
    raw = json.loads(MOLCEL.read_text(encoding="utf-8"))
    raw["passages"] = [p for p in raw["passages"] if p["infons"].get("type") != "title"]
    (tmp_path / "untitled.json").write_text(json.dumps({"PubTator3": [raw]}), encoding="utf-8")
    result = cli.invoke(main, ["ingest", "untitled.json"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.strip() == ("litwatch: error: untitled.json: document 1: PMID 28041912 has no title "
                                     "passage; nothing from this file was stored: fix or remove that document")
    assert papers_in(tmp_path) == 0
