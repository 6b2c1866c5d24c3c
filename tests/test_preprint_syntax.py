"""The ``preprints`` search of a saved query (``files/preprint_syntax.py``): Europe PMC syntax
checked before anything is sent, each mistake reported at its file and line by ``queries check``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from litwatch.files.preprint_syntax import lint_preprints
from litwatch.files.queries import load_query

TODAY = dt.date(2026, 12, 7)


@pytest.mark.parametrize("text", [
    "TITLE_ABS:migrain*",
    'TITLE_ABS:(fibromyalg* OR "chronic widespread pain") AND TITLE_ABS:(migrain* OR headache*)',
    'AUTH:"Smith J" AND TITLE:"FOXP3 (forkhead box P3)"',  # brackets inside a phrase do not count
    "migraine AND (CGRP OR cytokin*)",
])
def test_valid_searches_pass(text: str) -> None:
    assert lint_preprints(text) == []


@pytest.mark.parametrize("text, offset, said", [
    ("TITLE_ABS:(migraine OR headache", 10, "'(' is never closed"),
    ("migraine) AND FOXP3", 8, "')' closes nothing"),
    ('TITLE_ABS:"regulatory T cell AND FOXP3', 10, 'the " opened here is never closed'),
    ("TITEL:migraine", 0, "unknown Europe PMC field TITEL:; fix: did you mean TITLE:?"),
    ("migraine AND FIRST_IDATE:[2025-01-01 TO 2025-02-01]", 13, "FIRST_IDATE: is added by litwatch"),
    ("migraine AND SRC:PPR", 13, "SRC: is added by litwatch"),
    ("migrain*[tiab] AND FOXP3", 8, "[tiab] is PubMed syntax"),
    ("   ", 0, "'preprints' is empty"),
])
def test_mistakes_are_found_where_they_are(text: str, offset: int, said: str) -> None:
    found = lint_preprints(text)
    assert any(at == offset and severity == "error" and said in message for at, severity, message in found), found


def test_queries_check_names_the_file_and_line_of_a_mistake(tmp_path: Path) -> None:
    path = tmp_path / "migraine-tregs.toml"
    path.write_text("term = '''migraine[tiab]'''\npreprints = '''\nTITLE_ABS:migraine\nAND TITEL:FOXP3\n'''\n",
                    encoding="utf-8")
    query, problems = load_query(path, today=TODAY)
    assert query is None
    assert [str(p) for p in problems] == [
        f"{path}:4: error: unknown Europe PMC field TITEL:; fix: did you mean TITLE:? "
        "see https://europepmc.org/searchsyntax for the fields"]


def test_a_valid_search_is_kept_on_the_query(tmp_path: Path) -> None:
    path = tmp_path / "migraine-tregs.toml"
    path.write_text("term = '''migraine[tiab]'''\npreprints = '''\nTITLE_ABS:migraine\n  AND FOXP3\n'''\n",
                    encoding="utf-8")
    query, problems = load_query(path, today=TODAY)
    assert problems == [] and query is not None and query.preprints == "TITLE_ABS:migraine AND FOXP3"


def test_the_shipped_queries_all_search_preprints() -> None:
    folder = Path(__file__).parent.parent / "queries"
    for path in sorted(folder.glob("*.toml")):
        if path.name != "groups.toml":
            query, problems = load_query(path, today=TODAY)
            assert problems == [] and query is not None and query.preprints, path
