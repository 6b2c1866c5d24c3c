"""The PubTator3 step of a run (``pipeline/pubtator.py``): gene tags from PubTator3 with their
identifiers and spans, the dictionary's tags for papers it lacks until their annotations arrive,
a PubTator3 outage that fails nothing, and `tag --all` / `tag --pubtator` / `tag --explain-pmid`.

The runs fetch real recorded PubMed records (``fixtures/pubmed/metapub``) from the loopback fake
E-utilities; the loopback fake PubTator3 serves real recorded PubTator3 documents
(``fixtures/pubtator3``) cloned under the PMIDs of those records, since no recorded PubTator3
document belongs to a recorded PubMed record: the spans are those of the document PubTator3
annotated (28041912's title names p65, RELA, at 97-100).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fake_clock import FakeClock
from fake_eutils import FakeEutils
from fake_pubtator import FakePubtator, Fault
from smtp_sink import free_port
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.files.queries import SavedQuery
from litwatch.pipeline import pubtator as step
from litwatch.pipeline.run import Receipt
from litwatch.scheduling import jobs
from litwatch.sources.eutils import EutilsClient
from litwatch.sources.pubtator import PubtatorClient, read_document
from litwatch.store import tags as tag_store
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
VOCAB = ROOT / "queries" / "vocab"
P53 = 38833988  # its title names p53 and MAPK: dictionary tags TP53 (title) and MAPK/ERK signalling
STAT3 = 35649368  # STAT3 as a keyword: JAK-STAT signalling
MOLCEL = "10.1016_j.molcel.2016.11.034.json"  # PMID 28041912: p65 (RELA), IKKbeta (IKBKB), NF-kappaB (NFKB1)
TODAY = dt.date(2025, 6, 20)
NOW = dt.datetime(2025, 6, 20, 8, 0, tzinfo=dt.UTC)
QUERY = SavedQuery(name="signalling", term="signalling[tiab]", title="Signalling", schedule=None,
                   start=dt.date(2025, 6, 1), groups=(), path=Path("queries/signalling.toml"))


def document(name: str, pmid: int) -> dict[str, Any]:
    """The real recorded PubTator3 document ``name`` under ``pmid``."""
    raw: dict[str, Any] = json.loads((FIXTURES / "pubtator3" / name).read_text(encoding="utf-8"))
    clone = copy.deepcopy(raw)
    clone |= {"pmid": pmid, "_id": f"{pmid}|None", "id": str(pmid)}
    return clone


@pytest.fixture
def pubmed(fake_eutils: FakeEutils) -> FakeEutils:
    for pmid in (P53, STAT3):
        fake_eutils.add_records_from_file(FIXTURES / "pubmed" / "metapub" / f"{pmid}.xml", crdt=TODAY)
    return fake_eutils


@pytest.fixture
def pubtator() -> Iterator[FakePubtator]:
    with FakePubtator() as fake:
        yield fake


@pytest.fixture
def tagger() -> Tagger:
    loaded = tag_store.load_tagger(VOCAB)
    assert loaded is not None
    return loaded


def edited_tagger(tmp_path: Path, name: str, addition: str) -> Tagger:
    """The tagger of a copy of the shipped vocabulary with ``addition`` appended to file ``name``."""
    vocab = tmp_path / "vocab"
    shutil.copytree(VOCAB, vocab)
    with (vocab / name).open("a", encoding="utf-8") as extra:
        extra.write(addition)
    tagger = tag_store.load_tagger(vocab)
    assert tagger is not None
    return tagger


def client_for(url: str) -> PubtatorClient:
    clock = FakeClock()
    return PubtatorClient(url, sleep=clock.sleep, clock=clock, max_retries=1, backoff=0.0)


def run(engine: Engine, pubmed: FakeEutils, pubtator: PubtatorClient | None, tagger: Tagger,
        now: dt.datetime = NOW) -> Receipt:
    eutils = EutilsClient(pubmed.url, "librarian@example.org", backoff=0.0, sleep=lambda _s: None)
    return jobs.run_query_job(engine, eutils, QUERY, today=now.date(), tagger=tagger, clock=lambda: now,
                              pubtator=pubtator)


def tags(engine: Engine, pmid: int) -> set[tuple[Any, ...]]:
    """(tag, kind, field, origin, identifier, span start, span end) of one paper."""
    with engine.connect() as conn:
        return {(t["tag"], t["kind"], t["source"], t["origin"], t["identifier"], t["span_start"], t["span_end"])
                for t in tag_store.stored_tags(conn, pmid)}


def origins(engine: Engine, pmid: int, kind: str = "gene") -> set[tuple[str, str, str]]:
    return {(tag, field, origin) for tag, k, field, origin, *_ in tags(engine, pmid) if k == kind}


def test_a_run_stores_pubtator3_gene_tags_with_identifiers_and_spans(engine, pubmed, pubtator, tagger):
    pubtator.add_document(document(MOLCEL, P53))
    receipt = run(engine, pubmed, client_for(pubtator.url), tagger)
    assert receipt.ok and receipt.new == 2 and receipt.warnings == []
    assert receipt.pubtator is not None
    assert (receipt.pubtator.asked, receipt.pubtator.annotated, receipt.pubtator.missing) == (2, 1, 1)
    assert receipt.pubtator.requests == 1 and [r.pmids for r in pubtator.requests] == [[STAT3, P53]]
    stored = tags(engine, P53)
    assert ("RELA", "gene", "title", "pubtator3", "NCBIGene:5970", 97, 100) in stored
    assert ("IKBKB", "gene", "abstract", "pubtator3", "NCBIGene:3551", 823, 830) in stored  # offsets in the abstract
    # NFKB1 is curated (genes.tsv gives its NCBI Gene ID); its first mention in the abstract, "NF-kappaB"
    assert ("NFKB1", "gene", "abstract", "pubtator3", "NCBIGene:4790", 317, 326) in stored
    # PubTator3 is the gene source of title and abstract: the dictionary's TP53 (title) is gone,
    # its pathway tags stay
    assert ("TP53", "title", "dictionary") not in origins(engine, P53)
    assert ("MAPK/ERK signalling", "title", "dictionary") in origins(engine, P53, "pathway")
    # a paper PubTator3 lacks keeps the dictionary's tags, and is remembered as asked
    assert ("JAK-STAT signalling", "keyword", "dictionary") in origins(engine, STAT3, "pathway")
    with engine.connect() as conn:
        asked = conn.execute(sa.text("SELECT paper_pmid, asks, annotated_at IS NOT NULL FROM pubtator_papers "
                                     "ORDER BY paper_pmid")).all()
    assert [tuple(r) for r in asked] == [(STAT3, 1, False), (P53, 1, True)]


def test_dictionary_tags_until_pubtator3_annotates_then_the_next_run_replaces_them(
        engine, pubmed, pubtator, tagger):
    first = run(engine, pubmed, client_for(pubtator.url), tagger)
    assert first.pubtator is not None and (first.pubtator.annotated, first.pubtator.missing) == (0, 2)
    assert ("TP53", "title", "dictionary") in origins(engine, P53)
    again = run(engine, pubmed, client_for(pubtator.url), tagger, NOW + dt.timedelta(hours=1))
    assert again.pubtator is not None and again.pubtator.asked == 0  # asked an hour ago: not again yet
    pubtator.add_document(document(MOLCEL, P53))  # PubTator3 has annotated it since
    later = run(engine, pubmed, client_for(pubtator.url), tagger, NOW + dt.timedelta(days=2))
    assert later.pubtator is not None and (later.pubtator.asked, later.pubtator.annotated) == (2, 1)
    genes = origins(engine, P53)
    assert ("RELA", "title", "pubtator3") in genes and ("TP53", "title", "dictionary") not in genes
    month = run(engine, pubmed, client_for(pubtator.url), tagger, NOW + dt.timedelta(days=31))
    assert month.pubtator is not None and month.pubtator.asked == 0  # STAT3 is too old to ask about by itself


@pytest.mark.parametrize("down", ["refused", "failing"])
def test_pubtator3_down_the_run_succeeds_with_dictionary_tags_and_one_warning(
        engine, pubmed, pubtator, tagger, down):
    if down == "failing":
        pubtator.inject(Fault.http(503))
        url = pubtator.url
    else:
        url = f"http://127.0.0.1:{free_port()}/research/pubtator3-api/"
    receipt = run(engine, pubmed, client_for(url), tagger)
    assert receipt.ok and receipt.status == "ok" and receipt.new == 2
    assert len(receipt.warnings) == 1 and receipt.warnings[0].startswith("PubTator3 ")
    assert "papers keep their dictionary tags; the next run asks again" in receipt.warnings[0]
    assert ("TP53", "title", "dictionary") in origins(engine, P53)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pubtator_papers")).scalar_one() == 0


def test_off_asks_nothing(engine, pubmed, pubtator, tagger):
    receipt = run(engine, pubmed, PubtatorClient(pubtator.url, enabled=False), tagger)
    assert receipt.pubtator is not None and receipt.pubtator.off and pubtator.count() == 0
    assert ("TP53", "title", "dictionary") in origins(engine, P53)


def test_a_retag_after_a_vocabulary_edit_keeps_pubtator3_tags(engine, pubmed, pubtator, tagger, tmp_path):
    pubtator.add_document(document(MOLCEL, P53))
    run(engine, pubmed, client_for(pubtator.url), tagger)
    from_pubtator = {t for t in tags(engine, P53) if t[3] == "pubtator3"}
    edited = edited_tagger(tmp_path, "pathways.toml", '\n[pathway."p53 signalling"]\nkeywords = ["p53"]\n')
    tag_store.retag_all(engine, edited)
    assert from_pubtator <= tags(engine, P53)
    assert ("p53 signalling", "title", "dictionary") in origins(engine, P53, "pathway")  # the edit took
    assert ("TP53", "title", "dictionary") not in origins(engine, P53)
    assert ("JAK-STAT signalling", "keyword", "dictionary") in origins(engine, STAT3, "pathway")


def test_disease_annotations_tag_the_vocabularys_conditions_with_their_mesh_id(engine, pubmed, pubtator, tmp_path):
    # scisignal.abf3535 (PMID 34546791): Disease "OA" and "osteoarthritis", normalised to Osteoarthritis, MESH:D010003
    tagger = edited_tagger(tmp_path, "conditions.toml", '\n[condition.osteoarthritis]\nkeywords = ["osteoarthritis"]\n')
    pubtator.add_document(document("10.1126_scisignal.abf3535.json", P53))
    run(engine, pubmed, client_for(pubtator.url), tagger)
    conditions = {t for t in tags(engine, P53) if t[1] == "condition"}
    assert ("osteoarthritis", "condition", "title", "pubtator3", "MESH:D010003") in {t[:5] for t in conditions}


# -- the commands ---------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pubtator: FakePubtator) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'litwatch.sqlite'}")
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(ROOT / "queries"))
    monkeypatch.setenv("LITWATCH_PUBTATOR", "on")
    monkeypatch.setenv("LITWATCH_PUBTATOR_URL", pubtator.url)
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    assert runner.invoke(main, ["ingest", str(FIXTURES / "pubmed" / "metapub")]).exit_code == 0
    return runner


def test_tag_pubtator_asks_about_every_paper_lacking_annotations_whatever_its_age(cli, pubtator, tmp_path):
    pubtator.add_document(document(MOLCEL, P53))
    old = sa.create_engine(f"sqlite:///{tmp_path / 'litwatch.sqlite'}")
    with old.begin() as conn:  # ingested a year ago: too old for a run to ask about
        conn.execute(sa.text("UPDATE papers SET first_seen = :t"), {"t": NOW - dt.timedelta(days=365)})
    old.dispose()
    result = cli.invoke(main, ["tag", "--pubtator"])
    assert result.exit_code == 0, result.output
    assert result.output == "PubTator3: asked 13, annotated 1, not yet 12, 1 request: 10 tags\n"
    assert [r.pmids[:2] for r in pubtator.requests] == [[25364329, 32743745]]
    shown = cli.invoke(main, ["tag", "--explain-pmid", str(P53)])
    assert shown.exit_code == 0
    lines = shown.output.splitlines()
    assert lines[0].split() == ["tag", "kind", "field", "origin", "identifier", "span", "text"]
    assert any(line.split()[:6] == ["RELA", "gene", "title", "pubtator3", "NCBIGene:5970", "97-100"]
               for line in lines)
    assert any(line.split()[:4] == ["MAPK/ERK", "signalling", "pathway", "title"] and "dictionary" in line
               for line in lines)


def test_tag_pubtator_down_is_a_one_line_error(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("LITWATCH_PUBTATOR_URL", f"http://127.0.0.1:{free_port()}/research/pubtator3-api/")
    result = cli.invoke(main, ["tag", "--pubtator"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "cannot connect (connection refused)" in result.output


def test_tag_pubtator_when_off_says_how_to_turn_it_on(cli, monkeypatch):
    monkeypatch.setenv("LITWATCH_PUBTATOR", "off")
    result = cli.invoke(main, ["tag", "--pubtator"])
    assert result.exit_code == 2
    assert result.output == "litwatch: error: PubTator3 is off (LITWATCH_PUBTATOR=off): unset it to ask PubTator3\n"


def test_explain_pmid_of_a_paper_not_stored_is_a_one_line_error(cli):
    result = cli.invoke(main, ["tag", "--explain-pmid", "1"])
    assert result.exit_code == 2
    assert result.output == "litwatch: error: PMID 1 is not in the store (litwatch search finds stored papers)\n"


def test_a_fly_gene_takes_the_symbol_of_its_human_orthologue_named_in_the_same_paper(tmp_path):
    # embj.2023113616 names fly Bld10 (39647) and human CEP135 (9662), HomoloGene group 45709;
    # a vocabulary that knows CEP135's NCBI Gene ID (as an HGNC import does) tags both CEP135
    tagger = edited_tagger(tmp_path, "genes.tsv", "\nCEP135\tcentrosomal protein 135\t\t\t\t9662\n")
    raw = json.loads((FIXTURES / "pubtator3" / "10.15252_embj.2023113616.json").read_text(encoding="utf-8"))
    found = [(t.tag, t.text, t.identifier) for t in step.annotation_tags(read_document(raw), tagger, "v")]
    assert found[0] == ("CEP135", "Bld10", "NCBIGene:39647")  # the first mention of CEP135 in the abstract
    shipped = tag_store.load_tagger(VOCAB)
    assert shipped is not None  # without CEP135's ID: kept under PubTator's own (fly) symbol
    assert [(t.tag, t.identifier) for t in step.annotation_tags(read_document(raw), shipped, "v")][0] == (
        "Cep135", "NCBIGene:39647")


def test_search_and_exports_show_where_each_tag_came_from(cli, pubtator):
    pubtator.add_document(document(MOLCEL, P53))
    assert cli.invoke(main, ["tag", "--pubtator"]).exit_code == 0
    exported = cli.invoke(main, ["export", "--format", "json", "--tag", "RELA"])
    assert exported.exit_code == 0
    [paper] = json.loads(exported.output)
    assert paper["pmid"] == P53
    assert paper["tag_origins"]["RELA"] == "pubtator3" and paper["tag_origins"]["MAPK/ERK signalling"] == "dictionary"
    assert paper["tag_identifiers"]["RELA"] == "NCBIGene:5970" and "MAPK/ERK signalling" not in paper["tag_identifiers"]
    rows = cli.invoke(main, ["export", "--format", "csv", "--tag", "RELA"]).output.splitlines()
    header = rows[0].split(",")
    assert header[header.index("tags") + 1 : header.index("tags") + 3] == ["tag_origins", "tag_identifiers"]
    assert "RELA=pubtator3" in rows[1] and "RELA=NCBIGene:5970" in rows[1]
    table = cli.invoke(main, ["search", "--tag", "RELA"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "IKBKB*, MAPK/ERK signalling" in table.output  # the tags column, clipped at 28 characters
    assert table.output.splitlines()[-1].startswith("* tag from PubTator3's annotations")


def test_litwatch_run_with_pubtator3_down_exits_0_with_one_warning_then_catches_up(
        cli, pubtator, fake_eutils, fake_europepmc, monkeypatch):
    for path in sorted((FIXTURES / "pubmed" / "metapub").glob("*.xml")):
        fake_eutils.add_records_from_file(path, crdt=dt.date.today() - dt.timedelta(days=1))
    monkeypatch.setenv("LITWATCH_EUTILS_URL", fake_eutils.url)
    monkeypatch.setenv("LITWATCH_EUROPEPMC_URL", fake_europepmc.url)
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    monkeypatch.setenv("LITWATCH_PUBTATOR_URL", f"http://127.0.0.1:{free_port()}/research/pubtator3-api/")
    down = cli.invoke(main, ["run", "--query", "migraine-immunology"])
    assert down.exit_code == 0, down.output
    warned = [line for line in down.output.splitlines() if "PubTator3" in line]
    assert len(warned) == 1 and warned[0].startswith("litwatch: warning: PubTator3 at http://127.0.0.1:")
    assert "papers keep their dictionary tags; the next run asks again" in warned[0]
    assert "TP53" in cli.invoke(main, ["tag", "--explain-pmid", str(P53)]).output
    pubtator.add_document(document(MOLCEL, P53))
    monkeypatch.setenv("LITWATCH_PUBTATOR_URL", pubtator.url)
    up = cli.invoke(main, ["run", "--query", "migraine-immunology"])
    assert up.exit_code == 0 and "PubTator3: asked 13, annotated 1, not yet 12, 1 request\n" in up.output
    assert "TP53" not in cli.invoke(main, ["tag", "--explain-pmid", str(P53)]).output


def test_1000_new_papers_cost_10_requests_and_the_next_day_1_for_those_still_missing(pubtator, tmp_path, tagger):
    from litwatch.store import engine as db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'many.sqlite'}")
    db.migrate(engine)
    with FakeEutils() as eutils:
        eutils.add_records_from_file(FIXTURES / "pubmed" / "metapub" / f"{P53}.xml", crdt=TODAY)
        clones = eutils.add_clones(1000, first_pmid=40_000_000, crdt=TODAY)
        del eutils.records[P53]
        pubtator.add_documents_from_dir(FIXTURES / "pubtator3")
        pubtator.add_clones(980, first_pmid=40_000_000)  # PubTator3 lacks the last 20
        first = run(engine, eutils, client_for(pubtator.url), tagger)
        assert first.new == 1000 and first.pubtator is not None
        assert (first.pubtator.asked, first.pubtator.annotated, first.pubtator.requests) == (1000, 980, 10)
        next_day = run(engine, eutils, client_for(pubtator.url), tagger, NOW + dt.timedelta(days=1))
    assert next_day.pubtator is not None
    assert (next_day.pubtator.asked, next_day.pubtator.requests) == (20, 1)
    assert pubtator.requests[-1].pmids == clones[980:]
    engine.dispose()


def test_a_scheduled_run_with_pubtator3_down_is_ok_and_its_log_line_says_so(engine, pubmed, pubtator, tagger,
                                                                            tmp_path):
    from litwatch.config import Settings
    from litwatch.scheduling.plan import build_plan

    url = f"http://127.0.0.1:{free_port()}/research/pubtator3-api/"
    settings = Settings(queries_dir=tmp_path / "queries", eutils_url=pubmed.url, email="librarian@example.org",
                        pubtator_url=url, max_retries=0)
    worker = jobs.Worker(engine, settings, clock=lambda: NOW, tagger=tagger,
                         client=EutilsClient(pubmed.url, "librarian@example.org", backoff=0.0))
    [down] = worker.run_due(build_plan([QUERY], [], []))
    assert down.status == "ok" and down.receipt.new == 2
    assert f"; warning: PubTator3 at {url}: cannot connect (connection refused)" in down.line()
    assert down.message.endswith("(papers keep their dictionary tags; the next run asks again)")
    pubtator.add_document(document(MOLCEL, P53))
    worker.pubtator = client_for(pubtator.url)
    worker.clock = lambda: NOW + dt.timedelta(days=1)
    [up] = worker.run_due(build_plan([QUERY], [], []))
    assert up.status == "ok" and up.message.endswith("; PubTator3: asked 2, annotated 1, not yet 1, 1 request")
    assert ("RELA", "title", "pubtator3") in origins(engine, P53)


def test_a_revision_that_changes_the_text_is_asked_about_again_and_keeps_dictionary_tags_meanwhile(
        engine, pubmed, pubtator, tagger):
    pubtator.add_document(document(MOLCEL, P53))
    run(engine, pubmed, client_for(pubtator.url), tagger)
    assert ("RELA", "title", "pubtator3") in origins(engine, P53)
    # PubMed revises the record without touching its text: the annotations stand
    pubmed.revise(P53, on=TODAY + dt.timedelta(days=2))
    assert run(engine, pubmed, None, tagger, now=NOW + dt.timedelta(days=3)).updated == 1
    assert ("RELA", "title", "pubtator3") in origins(engine, P53)
    # a revision that rewrites the title: spans into the old text would mislead, so they go and the
    # dictionary tags the genes until PubTator3 has annotated the new text
    crdt, xml = pubmed.records[P53]
    pubmed.add_record(P53, crdt, xml.replace(b"<ArticleTitle>", b"<ArticleTitle>Revised: ", 1))
    pubmed.revise(P53, on=TODAY + dt.timedelta(days=4))
    later = NOW + dt.timedelta(days=5)
    assert run(engine, pubmed, None, tagger, now=later).updated == 1
    assert {o for _t, _f, o in origins(engine, P53)} == {"dictionary"}
    assert ("TP53", "title", "dictionary") in origins(engine, P53)
    with engine.connect() as conn:
        assert P53 in step.pending(conn, later)  # first seen days ago, revised now: asked again
    asked_before = len(pubtator.requests)
    receipt = run(engine, pubmed, client_for(pubtator.url), tagger, now=later + dt.timedelta(hours=1))
    assert receipt.pubtator is not None and receipt.pubtator.annotated == 1
    assert P53 in pubtator.requests[asked_before].pmids
    assert ("RELA", "title", "pubtator3") in origins(engine, P53)
