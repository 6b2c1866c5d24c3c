"""groups.toml: the shipped groups, every mistake a librarian makes reported at its file and line,
and when each group's digest is due."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from litwatch.cli import main
from litwatch.files.groups import Group, check_recipient, load_groups
from litwatch.files.queries import load_queries
from litwatch.scheduling import schedules

SHIPPED = Path(__file__).resolve().parents[1] / "queries"
TODAY = dt.date(2026, 3, 2)

QUERIES = {
    "migraine-immunology.toml": 'term = "migraine[tiab] AND FOXP3[tiab]"\ngroups = ["headache-lab"]\n',
    "endometriosis-migraine.toml": 'term = "endometriosis[tiab] AND migraine[tiab]"\n',
    "broken.toml": 'term = "migraine[tiab] and"\n',
}
GOOD = """\
[groups.headache-lab]
recipients = ["Ana Ruiz <ana@example.org>", "lab@example.org"]
queries = ["endometriosis-migraine"]
"""


def folder(tmp_path: Path, groups: str, queries: dict[str, str] | None = None) -> Path:
    for name, text in (QUERIES if queries is None else queries).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "groups.toml").write_text(groups, encoding="utf-8")
    return tmp_path


def load(path: Path, vocabulary: list[str] | None = None) -> tuple[list[Group], list[str]]:
    queries, _ = load_queries(path, today=TODAY)
    groups, problems = load_groups(path / "groups.toml", queries, vocabulary_tags=vocabulary)
    return groups, [f"{p.path.name}:{p.line}: {p.severity}: {p.message}" for p in problems]


def test_the_shipped_groups_match_the_shipped_queries() -> None:
    queries, query_problems = load_queries(SHIPPED, today=TODAY)
    groups, problems = load_groups(SHIPPED / "groups.toml", queries)
    assert [p for p in query_problems + problems if p.severity == "error"] == []
    by_name = {g.name: g for g in groups}
    assert sorted(by_name) == ["endometriosis-genetics", "headache-lab"]
    for query in queries:
        for name in query.groups:
            assert query.name in by_name[name].queries
    assert by_name["headache-lab"].timezone == "Europe/Madrid"
    assert by_name["endometriosis-genetics"].notify_empty is True


def test_both_directions_link_a_query_to_a_group(tmp_path: Path) -> None:
    [group], problems = load(folder(tmp_path, GOOD))
    assert problems == []
    assert group == Group(name="headache-lab", recipients=("Ana Ruiz <ana@example.org>", "lab@example.org"),
                          queries=("endometriosis-migraine", "migraine-immunology"), tags=(),
                          schedule="0 7 * * 1", timezone="UTC", max_papers=50, notify_empty=False)


@pytest.mark.parametrize(("body", "expected"), [
    ('recipient = ["a@example.org"]',
     ["groups.toml:1: error: group 'headache-lab' has no recipients",
      "groups.toml:2: error: group 'headache-lab': unknown key 'recipient'; fix: did you mean 'recipients'?"]),
    ('recipients = [\n  "ana@example.org",\n  "Ruiz, Ana <ana@example.org>",\n]',
     ["groups.toml:4: error: group 'headache-lab': recipient 'Ruiz, Ana <ana@example.org>' is not one address"]),
    ('recipients = ["lab@example.org\\nBcc: x@evil.example"]',
     ["groups.toml:2: error: group 'headache-lab': recipient 'lab@example.org\\nBcc: x@evil.example' contains a line break"]),
    ('recipients = ["not-an-address"]',
     ["groups.toml:2: error: group 'headache-lab': recipient 'not-an-address' is not a mail address"]),
    ('recipients = []', ["groups.toml:2: error: group 'headache-lab' has no recipients"]),
    ('recipients = ["a@example.org"]\nqueries = ["migraine-imunology"]',
     ["groups.toml:3: error: group 'headache-lab': there is no saved query migraine-imunology.toml in",
      "did you mean 'migraine-immunology'?"]),
    ('recipients = ["a@example.org"]\nqueries = ["broken"]',
     ["groups.toml:3: error: group 'headache-lab': the query file broken.toml has errors"]),
    ('recipients = ["a@example.org"]\nschedule = "0 7 * *"',
     ["groups.toml:3: error: group 'headache-lab': schedule '0 7 * *' is not a valid cron expression"]),
    ('recipients = ["a@example.org"]\nschedule = "61 7 * * 1"', ["groups.toml:3: error:", "not a valid cron"]),
    ('recipients = ["a@example.org"]\nschedule = "0 7 30 2 *"',  # 30 February: the scheduler could never send it
     ["groups.toml:3: error: group 'headache-lab': schedule '0 7 30 2 *' is not a valid cron expression"]),
    ('recipients = ["a@example.org"]\nschedule = "*/30 * * * *"',
     ["groups.toml:3: warning: group 'headache-lab': schedule '*/30 * * * *' sends more than one digest a day"]),
    ('recipients = ["a@example.org"]\ntimezone = "Europe/Madird"',
     ["groups.toml:3: error: group 'headache-lab': unknown time zone 'Europe/Madird'"]),
    ('recipients = ["a@example.org"]\nmax_papers = 0', ["groups.toml:3: error:", "'max_papers' must be a whole number"]),
    ('recipients = ["a@example.org"]\nmax_papers = "50"', ["groups.toml:3: error:", "not '50'"]),
    ('recipients = ["a@example.org"]\nmax_papers = 500', ["groups.toml:3: warning:", "Gmail cuts short"]),
    ('recipients = ["a@example.org"]\nnotify_empty = "yes"', ["groups.toml:3: error:", "true or false"]),
    ('recipients = ["a@example.org"]\ngroup_by = "tag"', ["groups.toml:3: error:", "needs a tags list"]),
    ('recipients = ["a@example.org"]\ntags = ["FOXP3", "FOXP3"]', ["groups.toml:3: warning:", "'FOXP3' is listed twice"]),
    ('recipients = ["a@example.org"]\ntags = "FOXP3"', ["groups.toml:3: error:", "'tags' must be a list of strings"]),
])
def test_each_mistake_is_reported_at_its_line(tmp_path: Path, body: str, expected: list[str]) -> None:
    groups, problems = load(folder(tmp_path, f"[groups.headache-lab]\n{body}\n"))
    text = "\n".join(problems)
    for fragment in expected:
        assert fragment in text, text
    if any(": error:" in fragment for fragment in expected):
        assert groups == []


@pytest.mark.parametrize("name", ["evil\\r\\nBcc: x@evil.example", "lab\\nSubject: pwned", "lab: <script>", "lab\\u0000"])
def test_a_group_name_that_could_break_a_header_is_refused_at_its_line(tmp_path: Path, name: str) -> None:
    """Group names reach the Subject, the X-Litwatch-Group header and file names: only safe ones pass."""
    groups, problems = load(folder(tmp_path, GOOD + f'\n[groups."{name}"]\nrecipients = ["a@example.org"]\n'))
    assert [g.name for g in groups] == ["headache-lab"]
    assert [p for p in problems if ": error:" in p] == [
        f"groups.toml:5: error: group name {name.encode().decode('unicode_escape')!r} is not a safe name; fix: use "
        "lower-case letters, digits, '-' and '_', e.g. [groups.headache-lab]"]


def test_a_tag_missing_from_the_vocabulary_is_a_warning(tmp_path: Path) -> None:
    path = folder(tmp_path, GOOD + 'tags = ["FOXP3", "IL-1 signaling"]\n')
    groups, problems = load(path, vocabulary=["FOXP3", "IL-1 signalling"])
    assert len(groups) == 1
    assert problems == ["groups.toml:4: warning: group 'headache-lab': tag 'IL-1 signaling' is not in the vocabulary, "
                        "so no paper carries it; fix: did you mean 'IL-1 signalling'? use a gene symbol or a "
                        "pathway/condition name from vocab/"]


def test_file_level_mistakes(tmp_path: Path) -> None:
    _, problems = load(folder(tmp_path, GOOD + "\n[groups.headache-lab]\nrecipients = []\n"))
    assert problems[0].startswith("groups.toml:5: error: not valid TOML")
    _, problems = load(folder(tmp_path, 'title = "x"\n[groups."Headache Lab"]\nrecipients = ["a@example.org"]\n'))
    assert any("unknown top-level key 'title'" in p for p in problems)
    assert any(p.startswith("groups.toml:2: error: group name 'Headache Lab' is not a safe name") for p in problems)


def test_a_query_naming_an_undefined_group_is_an_error_in_the_query_file(tmp_path: Path) -> None:
    queries = dict(QUERIES)
    queries["migraine-immunology.toml"] = '# feeds two groups\nterm = "migraine[tiab]"\ngroups = ["headache-lab", "headache-lap"]\n'
    _, problems = load(folder(tmp_path, GOOD, queries))
    assert problems == ["migraine-immunology.toml:3: error: group 'headache-lap' is not defined in groups.toml, so no "
                        "digest carries this query's papers to it; fix: did you mean 'headache-lab'? add "
                        f"[groups.headache-lap] with its recipients to {tmp_path / 'groups.toml'}"]


def test_no_groups_file_is_fine_until_a_query_names_a_group(tmp_path: Path) -> None:
    queries = {k: v for k, v in QUERIES.items() if k != "migraine-immunology.toml"}
    for name, text in queries.items():
        (tmp_path / name).write_text(text)
    assert load_groups(tmp_path / "groups.toml", load_queries(tmp_path, today=TODAY)[0]) == ([], [])
    (tmp_path / "migraine-immunology.toml").write_text(QUERIES["migraine-immunology.toml"])
    _, problems = load_groups(tmp_path / "groups.toml", load_queries(tmp_path, today=TODAY)[0])
    assert [p.severity for p in problems] == ["error"] and "'headache-lab' is not defined" in problems[0].message


@pytest.mark.parametrize(("recipient", "ok"), [
    ("lab@example.org", True), ("Ana Ruiz <ana@example.org>", True), ('"Ruiz, Ana" <ana@example.org>', True),
    ("Ana Ruiz <ana@example.org>, bob@example.org", False), ("ana@example.org\r\nBcc: x@y.org", False),
    ("ana", False), ("<>", False), ("ana@", False),
])
def test_recipient_addresses(recipient: str, ok: bool) -> None:
    assert (check_recipient(recipient) is None) is ok


def next_delivery(group: Group, after: dt.datetime) -> dt.datetime | None:
    """When the scheduler sends the group's next digest: its cron read in its own timezone."""
    return schedules.next_fire(schedules.parse(group.schedule, group.timezone), after)


def test_the_schedule_is_standard_cron_in_the_group_timezone() -> None:
    madrid = Group("g", ("a@example.org",), (), timezone="Europe/Madrid")
    # Mondays 07:00 Madrid: 06:00 UTC in winter, 05:00 UTC after the clocks go forward (29 March 2026)
    assert next_delivery(madrid, dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)) == dt.datetime(2026, 3, 9, 6, 0, tzinfo=dt.UTC)
    assert next_delivery(madrid, dt.datetime(2026, 3, 27, tzinfo=dt.UTC)) == dt.datetime(2026, 3, 30, 5, 0, tzinfo=dt.UTC)
    sunday = Group("g", ("a@example.org",), (), schedule="0 7 * * 0")
    nxt = next_delivery(sunday, dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    assert nxt is not None and nxt.strftime("%A %H:%M") == "Sunday 07:00"


def test_queries_check_reports_groups_toml_at_file_and_line(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "queries")
    runner = CliRunner()
    env = {"LITWATCH_QUERIES_DIR": str(tmp_path / "queries")}
    ok = runner.invoke(main, ["queries", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "2 digest groups in" in ok.stdout and "are valid" in ok.stdout
    groups_file = tmp_path / "queries" / "groups.toml"
    groups_file.write_text(groups_file.read_text().replace('timezone = "Europe/Madrid"', 'timezone = "Madrid"'))
    bad = runner.invoke(main, ["queries", "check"], env=env)
    assert bad.exit_code == 2
    line = next(i for i, text in enumerate(groups_file.read_text().splitlines(), 1) if text == 'timezone = "Madrid"')
    assert f"{groups_file}:{line}: error: group 'headache-lab': unknown time zone 'Madrid'" in bad.stderr
