"""One work, several versions (``store/works.py``): a preprint from Europe PMC and its journal
version from PubMed, found by one ``litwatch run``, are one work in search, export and stats;
``litwatch merge`` lists the link and ``--undo`` makes them two works again.

Real records on both loopback fakes: PubMed 36987902 (tests/fixtures/pubmed/metapub) and the
medRxiv preprint PPR1036674 (tests/fixtures/europepmc/search_lite_preprints.json; Research
Square's PPR1037166 where a version is needed). The recorded
preprint has no journal version, so each test gives it one the way Europe PMC would: a
``commentCorrectionList`` "Preprint of" link (strong), or the journal version's title and first
author (weak).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fake_europepmc import FakeEuropePmc
from fake_eutils import FakeEutils
from test_export import read_bibtex, read_ris

from litwatch.cli import main
from litwatch.delivery import export
from litwatch.store import engine as db
from litwatch.store import search, stats

FIXTURES = Path(__file__).parent / "fixtures"
JOURNAL_PMID = 36987902  # "Patients over 75 years admitted to the National Burn Centre, ...", Tidsskr Nor Laegeforen 2023
PREPRINT = "PPR1036674"
PREPRINT_V1 = "PPR1037166"  # Research Square, versionNumber 1
CREATED = dt.date.today() - dt.timedelta(days=2)
QUERY = """term = '''burn[tiab]'''
preprints = '''TITLE_ABS:burn'''
start = {start}
"""


def preprint_result(source_id: str = PREPRINT, **changes: Any) -> dict[str, Any]:
    answer = json.loads((FIXTURES / "europepmc" / "search_lite_preprints.json").read_text(encoding="utf-8"))
    result = copy.deepcopy(next(r for r in answer["resultList"]["result"] if r["id"] == source_id))
    result["firstIndexDate"] = CREATED.isoformat()  # inside the run's window
    result.update(changes)
    return result


STRONG = {"commentCorrectionList": {"commentCorrection": [
    {"id": str(JOURNAL_PMID), "source": "MED", "type": "Preprint of", "orderIn": 0}]}}
WEAK = {"title": "Patients over 75 years admitted to the National Burn Centre, Haukeland University Hospital, 2000-19",
        "authorString": "Bruserud Ø, Arnes K.", "pubYear": "2022"}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_eutils: FakeEutils) -> Iterator[
        tuple[CliRunner, FakeEuropePmc]]:
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "burns.toml").write_text(QUERY.format(start=CREATED - dt.timedelta(days=10)), encoding="utf-8")
    fake_eutils.add_records_from_file(FIXTURES / "pubmed" / "metapub" / f"{JOURNAL_PMID}.xml", crdt=CREATED)
    database = f"sqlite:///{tmp_path / 'litwatch.sqlite'}"
    for name, value in {"LITWATCH_DATABASE_URL": database, "LITWATCH_QUERIES_DIR": str(folder),
                        "LITWATCH_EUTILS_URL": fake_eutils.url, "LITWATCH_EMAIL": "librarian@example.org"}.items():
        monkeypatch.setenv(name, value)
    with FakeEuropePmc() as europepmc:
        monkeypatch.setenv("LITWATCH_EUROPEPMC_URL", europepmc.url)
        runner = CliRunner()
        assert runner.invoke(main, ["init"]).exit_code == 0
        yield runner, europepmc


def preprint_row(output: str) -> dict[str, str]:
    """The run's preprints table (``--wide``), as column -> value for its one query."""
    lines = output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("preprints of"))
    headers = lines[at].replace("preprints of", "query").split()
    row = dict(zip(headers, lines[at + 1].split()))
    return {k: row[k] for k in ("count", "found", "new", "known", "linked", "status")}


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


def counted(database: str) -> tuple[list[int], int, int, int]:
    """What an analyst sees: the papers search finds, those export writes, stats' papers over
    the months and the papers stats counts for the query."""
    engine = db.make_engine(database)
    try:
        found = [p.pmid for p in search.search(engine, search.Filters())]
        out = io.StringIO()
        exported = export.write("json", search.iter_papers(engine, search.Filters()), out)
        months = sum(c.papers for c in stats.by_month(engine))
        by_query = sum(c.papers for c in stats.by_query(engine))
    finally:
        engine.dispose()
    return found, exported, months, by_query


@pytest.mark.parametrize("link, strength", [(STRONG, "strong"), (WEAK, "weak")], ids=["strong", "weak"])
def test_a_preprint_and_its_journal_version_are_one_work(cli: tuple[CliRunner, FakeEuropePmc], link: dict[str, Any],
                                                         strength: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, europepmc = cli
    europepmc.results.append(preprint_result(**link))
    result = invoke(runner, "run", "--wide")
    assert result.exit_code == 0, result.output
    assert preprint_row(result.output) == {"count": "1", "found": "1", "new": "1", "known": "0", "linked": "1",
                                           "status": "ok"}
    database = os.environ["LITWATCH_DATABASE_URL"]
    assert counted(database) == ([JOURNAL_PMID], 1, 1, 1)  # once, by its journal version

    listed = invoke(runner, "merge", "--wide")
    assert PREPRINT in listed.output and str(JOURNAL_PMID) in listed.output and strength in listed.output
    assert "one work" in listed.output

    undone = invoke(runner, "merge", "--undo", "1")
    assert undone.exit_code == 0 and "two works again" in undone.output
    assert counted(database)[1:] == (2, 2, 2)
    exported = invoke(runner, "export", "--format", "json")
    urls = sorted(paper["url"] for paper in json.loads(exported.output))
    assert urls == ["https://europepmc.org/article/PPR/PPR1036674", f"https://pubmed.ncbi.nlm.nih.gov/{JOURNAL_PMID}/"]
    assert invoke(runner, "run").exit_code == 0  # the next run does not link them again
    assert sorted(counted(database)[0]) == [-1036674, JOURNAL_PMID]
    assert "undone" in invoke(runner, "merge").output


def test_undoing_a_link_that_does_not_exist_is_a_one_line_error(cli: tuple[CliRunner, FakeEuropePmc]) -> None:
    runner, _ = cli
    result = invoke(runner, "merge", "--undo", "7")
    assert result.exit_code == 2 and "no work link 7" in result.output and "Traceback" not in result.output
    assert "no preprint is linked" in invoke(runner, "merge").output


def test_a_failed_europe_pmc_search_fails_the_run_with_exit_1(cli: tuple[CliRunner, FakeEuropePmc],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    runner, _ = cli
    monkeypatch.setenv("LITWATCH_EUROPEPMC_URL", "http://127.0.0.1:9/")  # nothing listens there
    result = invoke(runner, "run")
    assert result.exit_code == 1
    assert "query burns failed: Europe PMC: no Europe PMC search at http://127.0.0.1:9/" in result.output


@pytest.mark.parametrize("changes", [{**WEAK, "pubYear": "2020"}, {**WEAK, "authorString": "Arnes K, Bruserud Ø."}],
                         ids=["three-years-earlier", "another-first-author"])
def test_a_weak_match_needs_the_first_author_within_two_years(cli: tuple[CliRunner, FakeEuropePmc],
                                                              changes: dict[str, Any]) -> None:
    runner, europepmc = cli
    europepmc.results.append(preprint_result(**changes))
    result = invoke(runner, "run", "--wide")
    assert result.exit_code == 0 and preprint_row(result.output)["linked"] == "0"
    assert counted(os.environ["LITWATCH_DATABASE_URL"])[1:] == (2, 2, 2)  # two works


def test_a_preprint_is_shown_and_exported_by_its_europe_pmc_id(cli: tuple[CliRunner, FakeEuropePmc]) -> None:
    """Two real recorded preprints, unlinked: medRxiv PPR1036674 (no version) and Research Square
    PPR1037166 (version 1). Users see their PPR ids, servers and versions, never a negative PMID."""
    runner, europepmc = cli
    europepmc.results += [preprint_result(), preprint_result(PREPRINT_V1)]
    assert invoke(runner, "run").exit_code == 0

    table = invoke(runner, "search", "--limit", "5").output
    assert table.splitlines()[0].split()[:2] == ["ID", "DATE"]
    assert {line.split()[0] for line in table.splitlines()[1:]} == {PREPRINT, PREPRINT_V1, str(JOURNAL_PMID)}
    assert "-1036674" not in table and "-1037166" not in table

    exported = {p["preprint_id"] or str(p["pmid"]): p for p in json.loads(invoke(runner, "export", "--format", "json").output)}
    assert {key: (p["pmid"], p["preprint_id"], p["server"], p["version"]) for key, p in exported.items()} == {
        PREPRINT: (None, PREPRINT, "medRxiv", None), PREPRINT_V1: (None, PREPRINT_V1, "Research Square", 1),
        str(JOURNAL_PMID): (JOURNAL_PMID, None, None, None)}
    rows = {r["preprint_id"] or r["pmid"]: r for r in csv.DictReader(io.StringIO(
        invoke(runner, "export", "--format", "csv").output))}
    assert (rows[PREPRINT_V1]["pmid"], rows[PREPRINT_V1]["server"], rows[PREPRINT_V1]["version"]) == (
        "", "Research Square", "1")
    assert rows[str(JOURNAL_PMID)]["preprint_id"] == ""

    entries = {e["ID"]: e for e in read_bibtex(invoke(runner, "export", "--format", "bibtex").output)}
    assert entries[PREPRINT]["ENTRYTYPE"] == "misc" and entries[f"pmid{JOURNAL_PMID}"]["ENTRYTYPE"] == "article"
    assert (entries[PREPRINT]["howpublished"], entries[PREPRINT]["doi"]) == ("medRxiv", "10.1101/2025.06.13.25329599")
    assert entries[PREPRINT_V1]["note"] == "Preprint (not peer reviewed), version 1"
    assert "pmid" not in entries[PREPRINT] and "journal" not in entries[PREPRINT]
    records = {dict(r)["AN"]: dict(r) for r in read_ris(invoke(runner, "export", "--format", "ris").output)}
    assert (records[PREPRINT]["TY"], records[PREPRINT]["PB"], records[PREPRINT]["DO"]) == (
        "GEN", "medRxiv", "10.1101/2025.06.13.25329599")
    assert records[str(JOURNAL_PMID)]["TY"] == "JOUR" and "T2" not in records[PREPRINT]
    assert counted(os.environ["LITWATCH_DATABASE_URL"])[1:] == (3, 3, 3)  # stats count them as before
