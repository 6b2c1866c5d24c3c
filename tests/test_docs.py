"""The documentation tells the truth: commands and options are documented, and its examples run.

Every litwatch command must have --help text and appear, with each of its options, in the
README or docs/ (a new command without docs fails here). The examples in docs/analysts.md marked
``<!-- test: ... -->`` run here against a real store: the SQL on SQLite and PostgreSQL, the
sqlite3 shell, psql, the sqlite3 and psycopg Python snippets, and the SQL of the pandas snippets
(pandas itself is not a dependency, so its SQL runs through sqlite3 and psycopg).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import psycopg
import pytest
from sqlalchemy.engine import Engine
from test_search import library_store, load_library

from litwatch.cli import main
from litwatch.store import engine as db

ROOT = Path(__file__).resolve().parent.parent
ANALYSTS = ROOT / "docs" / "analysts.md"


def all_commands(group: click.Group, prefix: str = "") -> list[str]:
    """Every leaf command under ``group``, as "queries check" for a subcommand."""
    names: list[str] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # litwatch loads its commands when asked for them
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            names += all_commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


COVERED = tuple(all_commands(main))
DOC_DB = "db/litwatch.sqlite"
DOC_PG = "postgresql://litwatch@localhost/litwatch"
EXAMPLE = re.compile(r"<!-- test: ([\w-]+) -->\s*```(\w+)\n(.*?)```", re.DOTALL)


def documentation() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def undocumented(group: click.Group, names: Sequence[str], text: str) -> list[str]:
    """What is missing for each named command (``"queries check"`` for a subcommand): help, docs."""
    problems = []
    for name in names:
        command: click.Command | None = group
        for part in name.split():
            command = command.get_command(click.Context(command), part) if isinstance(command, click.Group) else None
        if command is None:
            problems.append(f"litwatch {name}: no such command")
            continue
        if not (command.help or "").strip():
            problems.append(f"litwatch {name}: no --help text")
        if f"litwatch {name}" not in text:
            problems.append(f"litwatch {name}: not in README.md or docs/")
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            flags = [f for f in param.opts + param.secondary_opts if f.startswith("--")] or param.opts
            if not param.help:
                problems.append(f"litwatch {name} {flags[0]}: no help text")
            for flag in flags:
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
                    problems.append(f"litwatch {name} {flag}: not in README.md or docs/")
    return problems


def test_covered_commands_have_help_and_docs() -> None:
    assert undocumented(main, COVERED, documentation()) == []


def test_the_check_catches_what_is_missing() -> None:
    @click.group()
    def cli() -> None:
        """A CLI."""

    @cli.command()
    @click.option("--level", type=int)
    @click.option("--dry-run/--no-dry-run", help="Only pretend.")
    def frobnicate(level: int, dry_run: bool) -> None:
        pass

    text = "Run `litwatch frobnicate --dry-run`."
    assert undocumented(cli, ["frobnicate", "vanish"], text) == [
        "litwatch frobnicate: no --help text",
        "litwatch frobnicate --level: no help text",
        "litwatch frobnicate --level: not in README.md or docs/",
        "litwatch frobnicate --no-dry-run: not in README.md or docs/",
        "litwatch vanish: no such command",
    ]


def test_every_command_listed_in_help_output(capsys: pytest.CaptureFixture[str]) -> None:
    for name in COVERED:
        with pytest.raises(SystemExit) as exit_:
            main([*name.split(), "--help"], prog_name="litwatch")
        assert exit_.value.code == 0
        assert f"Usage: litwatch {name}" in capsys.readouterr().out


# --- the examples ------------------------------------------------------------------------------

def examples(kind: str) -> list[str]:
    found = [body for name, _, body in EXAMPLE.findall(ANALYSTS.read_text(encoding="utf-8")) if name == kind]
    assert found, f"no example marked {kind!r} in {ANALYSTS.name}"
    return found


def pandas_sql(kind: str) -> str:
    """The SQL of the pandas example for ``kind`` (sqlite or postgresql)."""
    for body in examples("pandas"):
        if ("sqlite3.connect" in body) == (kind == "sqlite"):
            match = re.search(r'read_sql\("""(.*?)"""', body, re.DOTALL)
            assert match
            return match.group(1)
    raise AssertionError(f"no pandas example for {kind}")


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("docs") / "litwatch.sqlite"
    engine = db.make_engine(f"sqlite:///{path}")
    db.migrate(engine)
    load_library(engine)
    engine.dispose()
    yield path


@pytest.fixture(scope="module")
def postgres_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from library_store("postgresql", tmp_path_factory)


def libpq(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")


def test_sql_examples_run_on_sqlite(sqlite_store: Path) -> None:
    with contextlib.closing(sqlite3.connect(sqlite_store)) as conn:
        for sql in examples("sql") + examples("sqlite-sql") + [pandas_sql("sqlite")]:
            conn.execute(sql).fetchall()
        assert conn.execute(examples("sqlite-sql")[0]).fetchall()  # the fixtures hold such papers


@pytest.mark.postgres
def test_sql_examples_run_on_postgresql(postgres_store: Engine) -> None:
    with psycopg.connect(libpq(postgres_store)) as conn:
        for sql in examples("sql") + examples("postgresql-sql") + [pandas_sql("postgresql")]:
            conn.execute(sql).fetchall()
        assert conn.execute(examples("postgresql-sql")[0]).fetchall()


def test_sqlite3_shell_example(sqlite_store: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 shell is not installed")
    [body] = examples("sqlite3-cli")
    command, *shown = body.strip().splitlines()
    args = shlex.split(command.removeprefix("$ ").replace(DOC_DB, str(sqlite_store)))
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[:2] == shown[:2]  # the header; counts depend on the store
    assert {line.split()[0] for line in lines[2:]} == {"condition", "gene", "pathway"}


def test_python_sqlite3_example(sqlite_store: Path) -> None:
    [body] = examples("python-sqlite3")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(body.replace(DOC_DB, str(sqlite_store)), "analysts.md", "exec"), {})  # noqa: S102
    assert out.getvalue().startswith("[('TNF', ")


@pytest.mark.postgres
def test_psql_example(postgres_store: Engine) -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    [body] = examples("psql")
    args = shlex.split(body.strip().removeprefix("$ ").replace(DOC_PG, libpq(postgres_store)))
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["condition", "|", "genes"]
    assert "migraine" in result.stdout


@pytest.mark.postgres
def test_python_psycopg_example(postgres_store: Engine) -> None:
    [body] = examples("python-psycopg")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(body.replace(DOC_PG, libpq(postgres_store)), "analysts.md", "exec"), {})  # noqa: S102
    assert out.getvalue().startswith("[('TNF', ")
