"""The one TOML line locator: a librarian's slip is reported at the line where the key really is,
whatever the file's shape (quoted and dotted keys, multi-line strings that look like keys)."""

from __future__ import annotations

import tomllib

import pytest

from litwatch.files import toml_lines

QUERY = '''title = "Migraine"
term = \'\'\'
migraine[tiab]
schedule = "not a key: inside the term"
\'\'\'
schedule = "0 6 * * mon"

[groups."headache-lab"]
recipients = [
    "a@example.org",
    "b@example.org",
]
queries = ["migraine-immunology"]
site.name = "Leiden"
'''


def test_keys_tables_and_items_are_found_at_their_lines() -> None:
    where = toml_lines.locate(QUERY)
    assert where.line("schedule") == 6  # not line 4, which is inside the multi-line term
    assert where.line("groups", "headache-lab") == 8
    assert where.line("groups", "headache-lab", "queries") == 13
    assert where.line("groups", "headache-lab", "site", "name") == 14
    assert where.item_line('"b@example.org"', "groups", "headache-lab", "recipients") == 11
    assert where.item_line('"c@example.org"', "groups", "headache-lab", "recipients") == 9
    assert where.top_level == {"title": [1], "term": [2], "schedule": [6], "groups": [8]}
    assert where.open_string is None


def test_a_key_set_twice_and_a_string_left_open_are_seen_in_invalid_toml() -> None:
    where = toml_lines.locate('title = "a"\ntitle = "b"\nterm = """\nmigraine\n')
    assert where.top_level["title"] == [1, 2]
    assert where.open_string == (3, '"""')


@pytest.mark.parametrize(("text", "line", "column"), [
    ('title = "a\n', 1, 11),
    ('title = "a"\nterm = [1,\n', 2, None),  # at end of document: the last line with text
    ('a = 1\n\n\nb = \n\n', 4, 5),
])
def test_a_decode_error_names_its_line(text: str, line: int, column: int | None) -> None:
    with pytest.raises(tomllib.TOMLDecodeError) as caught:
        tomllib.loads(text)
    got_line, got_column, message = toml_lines.decode_error(caught.value, text)
    assert (got_line, got_column) == (line, column)
    assert "line" not in message and message
