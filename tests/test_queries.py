"""Saved query files: the PubMed syntax lint, the TOML checks with file:line, and the shipped queries."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from litwatch.errors import QueryFileError
from litwatch.files.queries import (
    Problem,
    SavedQuery,
    check_queries,
    load_queries,
    load_query,
    query_files,
)
from litwatch.files.query_syntax import lint_term

FIXTURES = Path(__file__).parent / "fixtures" / "queries"
SHIPPED = Path(__file__).parents[1] / "queries"
TODAY = datetime.date(2026, 11, 23)

# What each kind of problem says, so tables can name kinds instead of whole messages.
KINDS = {
    "tag-in-quotes": "inside the quotes",
    "and-or-mix": "AND and OR at the same level",
    "not-first": "starts with NOT",
    "unclosed-paren": "this '(' is never closed",
    "stray-paren": "this ')' has no matching '('",
    "lower-case-op": "is not an operator",
    "date-window": "date window inside the term",
    "unknown-tag": "unknown field tag",
    "unclosed-quote": "is never closed; fix: add the closing '\"'",
    "dangling-op": "dangling",
    "empty": "the term is empty",
    "two-ops": "two operators in a row",
    "op-first": "has nothing on its left",
    "empty-parens": "empty parentheses",
    "tag-no-word": "has no search word before it",
    "tag-after-group": "after ')' does not apply",
    "truncation": "truncates only at the end",
    "short-stem": "at least 4 letters before '*'",
    "curly": "curly quotes",
    "ovid": "is Ovid syntax",
    "bad-suffix": "does not go with this field",
    "unclosed-bracket": "this '[' is never closed",
}


def kinds(found: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """Name each lint result by its kind; a message matching no kind fails the test."""
    named = []
    for _, severity, message in found:
        matches = [kind for kind, text in KINDS.items() if text in message]
        assert len(matches) == 1, message
        named.append((severity, matches[0]))
    return named


def real_queries() -> list[tuple[str, str, str]]:
    """(topic, query, notes) for every row of the recorded table; quotes are data, not TSV quoting."""
    rows = (FIXTURES / "pubmed_queries.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(topic, query, notes) for topic, query, _, notes in (row.split("\t") for row in rows)]


# Row -> (the term as a librarian typed it when the query column also carries run notes, expected kinds).
# Judged by eye, one row at a time; rows not listed here must come out completely clean.
REAL_VERDICTS: dict[int, tuple[str | None, list[tuple[str, str]]]] = {
    4: ("Migraine", []),  # column adds the ATM translation "-> ... (via esearch querytranslation / ATM)"
    # y_5[Filter] keeps the last 5 years: a second rolling window on top of litwatch's own.
    # humans[Filter] and female[Filter] are genuine PubMed filters and pass.
    6: (None, [("warning", "date-window")]),
    11: (None, [("error", "tag-in-quotes")]),  # "pre-eclampsia[tiab]": the documented real bug
    # ... NOT (Review[pt] OR ...) AND (Humans[Mesh]) mixes NOT and AND only: same result in any order.
    14: (None, [("warning", "and-or-mix")]),  # the OR list before AND is not parenthesised
    15: (None, [("error", "not-first")]),  # an exclusion block cut from a longer query
    16: (None, [("error", "unclosed-paren")]),  # truncated excerpt "... OR ..."
    19: (None, [("warning", "date-window")]),  # "last 30 days"[PDat] rolling window
    # Also retmax=1000000 in the notes, over E-utilities' 9,999 cap: a client setting, not the term.
    26: (None, [("warning", "and-or-mix")]),
    27: (None, [("error", "unclosed-paren")]),  # truncated excerpt "... OR ..."
    28: (None, [("error", "lower-case-op")]),  # "Mus musculus or Rattus"
    33: ("cancer", []),  # "(usehistory=y)" is a run parameter
    34: ("PNAS[ta] AND 97[vi]", []),  # "(retstart=6)" is a run parameter
    35: ("stem cells AND hasabstract", []),  # "(TranslationStack)" names what the answer shows
    37: ("cancer", []),  # reldate/datetype/retmax/usehistory are run parameters
    38: ("obstetrics[MeSH Terms] OR fleegle[MeSH Terms]", []),  # "(db=nlmcatalog)" names the database
}


def test_the_table_judges_all_39_recorded_queries() -> None:
    assert len(real_queries()) == 39
    assert set(REAL_VERDICTS) <= set(range(39))


@pytest.mark.parametrize("row", range(39))
def test_recorded_real_queries_get_the_verdict_judged_by_eye(row: int) -> None:
    topic, query, notes = real_queries()[row]
    typed, expected = REAL_VERDICTS.get(row, (None, []))
    if typed is not None:
        assert query.startswith(typed)
    assert kinds(lint_term(typed or query)) == expected, (topic, query, notes)


def test_lint_points_at_the_offending_part_of_real_queries() -> None:
    query = real_queries()[11][1]
    [(offset, _, message)] = lint_term(query)
    assert query[offset:].startswith('[tiab]")')
    assert 'fix: move it after the closing quote: "pre-eclampsia"[tiab]' in message
    query = real_queries()[28][1]
    [(offset, _, message)] = lint_term(query)
    assert query[offset - 13: offset + 9] == "Mus musculus or Rattus"
    assert "searches 'or' as a word" in message and "write 'OR'" in message
    query = real_queries()[14][1]
    [(offset, _, message)] = lint_term(query)
    assert query[offset:].startswith("AND (intervention")
    assert "'(a OR b) AND c'" in message


@pytest.mark.parametrize(
    ("term", "expected", "points_at"),
    [
        ("   \n ", [("error", "empty")], ""),
        ('migraine[tiab] AND "aura', [("error", "unclosed-quote")], '"aura'),
        ("(migraine OR headache", [("error", "unclosed-paren")], "(migraine"),
        ("migraine OR headache)", [("error", "stray-paren")], ")"),
        ("NOT mice[mh]", [("error", "not-first")], "NOT"),
        ("AND migraine", [("error", "op-first")], "AND"),
        ("migraine AND", [("error", "dangling-op")], "AND"),
        ("(migraine OR) AND cgrp", [("error", "dangling-op")], "OR)"),
        ("migraine AND NOT mice", [("error", "two-ops")], "NOT"),
        ("migraine AND ()", [("error", "empty-parens")], "()"),
        ("migraine and aura", [("error", "lower-case-op")], "and"),
        ("migraine Or aura", [("error", "lower-case-op")], "Or"),
        ('"migraine and aura"[tiab]', [], ""),
        ('"pre-eclampsia[tiab]"', [("error", "tag-in-quotes")], "[tiab]"),
        ('"[3H]thymidine"[tiab]', [], ""),
        ("migraine[tiabs]", [("error", "unknown-tag")], "[tiabs]"),
        ("migraine[MeSH Terms:noexp] OR aura[majr:NoExp]", [], ""),
        ('"migraine aura"[tiab:~3]', [], ""),
        ("migraine[tiab:noexp]", [("error", "bad-suffix")], "[tiab:noexp]"),
        ("migraine[tiab", [("error", "unclosed-bracket")], "[tiab"),
        ("[tiab]", [("error", "tag-no-word")], "[tiab]"),
        ("(migraine OR aura)[tiab]", [("warning", "tag-after-group")], "[tiab]"),
        ("migraine AND 2026/01/01:2026/02/01[crdt]", [("warning", "date-window")], "2026/01/01"),
        ('migraine AND ("2026/01/01"[edat] : "3000"[edat])', [("warning", "date-window")] * 2, '"2026/01/01"'),
        ("migraine AND 2018:2025[dp]", [], ""),
        ("a OR b AND c", [("warning", "and-or-mix")], "AND"),
        ("(a OR b) AND (c OR d AND e)", [("warning", "and-or-mix")], "AND e"),
        ("(a OR b) AND c NOT d", [], ""),
        ("(a AND b OR c) OR (d OR e AND f)", [("warning", "and-or-mix")] * 2, "OR c"),
        ("wom*n[tiab]", [("warning", "truncation")], "wom*n"),
        ("ca*[tiab]", [("warning", "short-stem")], "ca*"),
        ("migrain*[tiab] OR \"regulatory T cell*\"[tiab]", [], ""),
        ("\u201cmigraine disorders\u201d[mh]", [("error", "curly")], "\u201c"),
        ("migraine.ti,ab. OR headache adj3 women", [("error", "ovid")] * 2, "migraine.ti,ab."),
        ("Migraine Disorders/ OR migrain$", [("error", "ovid")] * 2, "Disorders/"),
    ],
)
def test_lint_table(term: str, expected: list[tuple[str, str]], points_at: str) -> None:
    found = lint_term(term)
    assert kinds(found) == expected
    if expected:
        assert term[found[0][0]:].startswith(points_at)
    assert all("fix: " in message for _, _, message in found)


def test_every_pubmed_field_from_a_real_einfo_answer_is_a_known_tag() -> None:
    tree = ET.parse(FIXTURES / "einfo_pubmed.xml")
    fields = [(f.findtext("Name"), f.findtext("FullName")) for f in tree.iter("Field")]
    assert len(fields) == 50
    for name, full in fields:
        for tag in (name, full):
            assert not [p for p in lint_term(f"x[{tag}]") if p[1] == "error"], tag


# --- the shipped queries ---------------------------------------------------------------------

SHIPPED_NAMES = ["endometriosis-genetics", "endometriosis-migraine", "fibromyalgia-migraine", "migraine-immunology"]


def test_shipped_queries_pass_the_check_without_any_problem() -> None:
    queries, problems = load_queries(SHIPPED, today=TODAY)
    assert [str(p) for p in problems] == []
    by_name = {q.name: q for q in queries}
    assert set(SHIPPED_NAMES) <= set(by_name)
    for name in SHIPPED_NAMES:
        query = by_name[name]
        assert query.title and query.schedule == "0 6 * * mon"
        assert set(query.groups) <= {"headache-lab", "endometriosis-genetics"} and query.groups
        assert query.start < TODAY
        assert "\n" not in query.term and "[Mesh]" in query.term and "[tiab]" in query.term
    assert "TRIM32[tiab]" in by_name["endometriosis-genetics"].term
    assert "FOXP3[tiab]" in by_name["migraine-immunology"].term


# --- query files -----------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = 'term = "migraine[tiab]"\n'


@pytest.mark.parametrize(
    ("name", "text", "line", "severity", "message"),
    [
        ("a.toml", 'term = "migraine[tiab]"\ntitel = "x"\n', 2, "error", "unknown key 'titel'; fix: did you mean 'title'?"),
        ("a.toml", 'title = "Migraine"\n', None, "error", "missing key 'term'"),
        ("a.toml", "term = 42\n", 1, "error", "'term' must be a string, not a number"),
        ("a.toml", 'term = ""\n', 1, "error", "the term is empty"),
        ("a.toml", GOOD + "title = 3\n", 2, "error", "'title' must be a string"),
        ("a.toml", GOOD + 'schedule = "0 6 * *"\n', 2, "error",
         "schedule '0 6 * *' has 4 field(s); a cron schedule has 5"),
        ("a.toml", GOOD + 'schedule = "0 25 * * mon"\n', 2, "error", "schedule '0 25 * * mon' is not a valid cron expression"),
        ("a.toml", GOOD + 'schedule = "0 6 31 2 *"\n', 2, "error", "never fires"),
        ("a.toml", GOOD + "schedule = 7\n", 2, "error", "'schedule' must be a cron string"),
        ("a.toml", GOOD + 'start = "2026-01-05"\n', 2, "error", "'start' must be a TOML date, not a string; fix: write start = 2026-01-05"),
        ("a.toml", GOOD + "start = 2026-01-05T08:00:00\n", 2, "error", "not a date-time; fix: write start = 2026-01-05"),
        ("a.toml", GOOD + "start = 2026-02-30\n", 2, "error", "not valid TOML: Invalid date or datetime at column 9"),
        ("a.toml", GOOD + 'groups = "headache-lab"\n', 2, "error", "'groups' must be a list of group names"),
        ("a.toml", GOOD + 'groups = ["Headache Lab"]\n', 2, "error", "group name 'Headache Lab' is not a safe name"),
        ("a.toml", 'term = ""migraine"[mh]"\n', 1, "error", "not valid TOML: Expected newline or end of document after a statement at column 10"),
        ("a.toml", GOOD + 'title = "a"\ntitle = "b"\n', 3, "error", "'title' is set twice (lines 2 and 3)"),
        ("a.toml", "title = 'x'\nterm = '''\nmigraine[tiab]\n", 2, "error", "not valid TOML: Unterminated string"),
        ("a.toml", "[query]\n" + GOOD, 1, "error", "unknown key 'query'"),
        ("Migraine Immunology.toml", GOOD, None, "error", "is not a safe name: use lower-case letters, digits, '-' and '_'; fix: rename the file to migraine-immunology.toml"),
        ("a.toml", "term = '''\n(migraine[tiab] OR aura[tiab])\nAND \"pre-eclampsia[tiab]\"\n'''\n", 3, "error", "field tag [tiab] inside the quotes"),
        ("a.toml", "term = '''(migraine[tiab]\n  OR aura[tiab]\n  OR headache[tiab]'''\n", 1, "error", "this '(' is never closed"),
        ("a.toml", 'title = "x"\nterm = """\nmigraine[tiab] \\\n   OR aura[tiab] \\\n   OR\n"""\n', 5, "error", "dangling OR at the end"),
        ("a.toml", 'term = "migraine[tiab]\\nAND aura[tiab] or headache[tiab]"\n', 1, "error", "lower-case 'or'"),
        ("a.toml", "term = '''\nmigraine[tiab]\nAND aura[tiab]\nOR cgrp[tiab]\n'''\n", 4, "warning", "AND and OR at the same level"),
        ("a.toml", "term = '''\nmigraine[tiab]\nAND 2026/01/01:3000[crdt]'''\n", 3, "warning", "date window inside the term"),
        ("a.toml", GOOD + 'schedule = "*/5 * * * *"\n', 2, "warning", "runs more than once an hour"),
        ("a.toml", GOOD + "start = 2027-01-01\n", 2, "warning", "start 2027-01-01 is after today (2026-11-23)"),
        ("a.toml", GOOD + 'groups = ["headache-lab", "headache-lab"]\n', 2, "warning", "group 'headache-lab' is listed twice"),
    ],
)
def test_broken_query_files_name_the_file_line_and_fix(
    tmp_path: Path, name: str, text: str, line: int | None, severity: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    problems = check_queries(tmp_path, today=TODAY)
    where = f"{path}:{line}" if line else f"{path}"
    expected = f"{where}: {severity}: "
    assert any(str(p).startswith(expected) and message in str(p) for p in problems), [str(p) for p in problems]
    assert all(p.path == path and "fix: " in p.message for p in problems)
    query, _ = load_query(path, today=TODAY)
    assert (query is None) == (severity == "error")


@pytest.mark.parametrize(("term", "message"), [
    ("(" * 10_000 + "migraine[tiab]", "unbalanced parentheses: this '(' is never closed (and 9,999 more like it)"),
    ("migraine[tiab]" + ")" * 10_000, "unbalanced parentheses: this ')' has no matching '(' (and 9,999 more like it)"),
    ("(" * 10_000 + "migraine[tiab]" + ")" * 10_000, "parentheses nested more than 64 deep"),
])
def test_ten_thousand_parentheses_are_one_line_naming_the_file(tmp_path: Path, term: str, message: str) -> None:
    path = write(tmp_path, "deep.toml", f'title = "Deep"\nterm = "{term}"\n')
    problems = [str(p) for p in check_queries(tmp_path, today=TODAY) if p.severity == "error"]
    assert len(problems) <= 2 and any(p.startswith(f"{path}:2: error: {message}") for p in problems), problems
    assert load_query(path, today=TODAY)[0] is None


def test_a_file_with_only_warnings_still_loads(tmp_path: Path) -> None:
    write(tmp_path, "mixed.toml", 'term = "migraine[tiab] AND aura[tiab] OR cgrp[tiab]"\nschedule = "0 6 * * 0"\n')
    queries, problems = load_queries(tmp_path, today=TODAY)
    assert [q.name for q in queries] == ["mixed"]
    assert [p.severity for p in problems] == ["warning"]  # 0 = Sunday, as in crontab: no warning


@pytest.mark.parametrize("schedule", ["0 6 * * 1", "0 6 * * 1-5", "0 7 * * 0", "30 5 1 * *", "0 6 * * mon"])
def test_standard_cron_schedules_pass(tmp_path: Path, schedule: str) -> None:
    write(tmp_path, "ok.toml", GOOD + f'schedule = "{schedule}"\n')
    assert check_queries(tmp_path, today=TODAY) == []


def test_defaults_and_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path, "migraine-aura.toml", "term = '''\n  (migraine[tiab]\n    OR aura[tiab])\n'''\n")
    query, problems = load_query(path, today=TODAY)
    assert problems == []
    assert query == SavedQuery(
        name="migraine-aura",
        term="(migraine[tiab] OR aura[tiab])",
        title="migraine-aura",
        schedule=None,
        start=datetime.date(2026, 10, 24),
        groups=(),
        path=path,
    )


def test_a_byte_order_mark_from_a_windows_editor_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff".encode() + GOOD.encode())
    query, problems = load_query(path, today=TODAY)
    assert query is not None and problems == []


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'title = "x"\nterm = "pr\xe9-eclampsia[tiab]"\n')
    query, [problem] = load_query(path, today=TODAY)
    assert query is None
    assert str(problem).startswith(f"{path}:2: error: the file is not UTF-8 text")


def test_names_that_differ_only_by_case_are_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "migraine.toml", GOOD)
    write(tmp_path, "Migraine.toml", GOOD)
    queries, problems = load_queries(tmp_path, today=TODAY)
    messages = [str(p) for p in problems if p.severity == "error"]
    assert any(m.startswith(f"{tmp_path / 'migraine.toml'}: error: duplicate query name: migraine.toml "
                            "and Migraine.toml differ only by case") for m in messages)
    assert any(m.startswith(f"{tmp_path / 'Migraine.toml'}: error: duplicate query name") for m in messages)
    assert any("'Migraine' (the file name) is not a safe name" in m for m in messages)
    assert queries == []


def test_groups_file_and_vocab_folder_are_not_queries(tmp_path: Path) -> None:
    write(tmp_path, "groups.toml", "[headache-lab]\nrecipients = []\n")
    (tmp_path / "vocab").mkdir()
    write(tmp_path / "vocab", "genes.toml", "x = 1\n")
    write(tmp_path, "notes.txt", "not a query")
    write(tmp_path, ".hidden.toml", "x = 1\n")
    b = write(tmp_path, "b.toml", GOOD)
    a = write(tmp_path, "a.toml", GOOD)
    assert query_files(tmp_path) == [a, b]
    queries, problems = load_queries(tmp_path, today=TODAY)
    assert [q.name for q in queries] == ["a", "b"] and problems == []


def test_a_missing_folder_says_to_create_it_or_set_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "queries"
    [problem] = check_queries(missing, today=TODAY)
    assert problem.severity == "error" and problem.line is None
    assert str(problem).startswith(f"{missing}: error: the queries folder does not exist")
    assert "create it" in problem.message and "LITWATCH_QUERIES_DIR" in problem.message


def test_an_empty_folder_is_a_warning(tmp_path: Path) -> None:
    [problem] = check_queries(tmp_path, today=TODAY)
    assert problem.severity == "warning" and "no saved queries here" in problem.message


def test_problem_prints_as_file_line_severity_message_and_converts_to_an_error() -> None:
    problem = Problem(Path("queries/x.toml"), 3, "bad thing; fix: do this", "error")
    assert str(problem) == "queries/x.toml:3: error: bad thing; fix: do this"
    error = problem.to_error()
    assert isinstance(error, QueryFileError) and error.exit_code == 2
    assert str(error) == "queries/x.toml:3: bad thing; fix: do this"
