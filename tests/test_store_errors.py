"""A database that cannot be used ends a command with one line naming it and what to do, exit 1.

Every case goes through the `litwatch` command as a user types it (two as a real subprocess),
and checks the whole line: no traceback, no driver jargon without a fix.

Read-only is made real for root too (tests run as root, which ignores file modes): the file or
its folder is marked immutable with ``chattr +i``, which the kernel enforces for every user;
as another user the write bits are cleared instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fake_eutils import FakeEutils
from smtp_sink import free_port

from litwatch.cli import main

ROOT = Path(__file__).parent.parent
PAPERS = Path(__file__).parent / "fixtures" / "pubmed" / "retraction" / "npg_example.xml"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The path of a SQLite database that `litwatch init` has created, and is named by the environment."""
    path = tmp_path / "db" / "litwatch.sqlite"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(ROOT / "queries"))
    assert invoke("init").exit_code == 0
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_line_error(result: Result) -> str:
    """The error line the command printed, after checking it printed nothing else on stderr."""
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("litwatch: error: "), result.stderr
    return lines[0]


def litwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command as a separate process, as a user or cron runs it."""
    code = "import sys; from litwatch.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", ""), "LITWATCH_PUBTATOR": "off", **env})


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another process's write transaction on the database, held for the block."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or a folder) read-only for this process, even when it runs as root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("root ignores file modes and this file system has no immutable flag (chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_locked_database_during_ingest_says_who_to_wait_for(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_DATABASE_BUSY_TIMEOUT", "0.2")
    started = time.monotonic()
    with write_lock(database):
        result = invoke("ingest", str(PAPERS))
    assert time.monotonic() - started < 10  # the setting is honoured, not SQLite's 30 s default
    assert result.exit_code == 1
    assert one_line_error(result) == (
        f"litwatch: error: database sqlite:///{database} is locked: another litwatch process is writing "
        "to it; wait for it to finish or stop it, then try again (waited 0.2 s; "
        "LITWATCH_DATABASE_BUSY_TIMEOUT sets how long)"
    )


def test_a_locked_database_during_a_run_ends_it_with_the_same_line(
    database: Path, fake_eutils: FakeEutils, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_eutils.add_records_from_file(PAPERS, crdt=dt.date.today() - dt.timedelta(days=1))
    for name, value in {"LITWATCH_EUTILS_URL": fake_eutils.url, "LITWATCH_EMAIL": "librarian@example.org",
                        "LITWATCH_DATABASE_BUSY_TIMEOUT": "0.2"}.items():
        monkeypatch.setenv(name, value)
    with write_lock(database):
        result = invoke("run", "--query", "migraine-immunology")
    assert result.exit_code == 1
    assert one_line_error(result).startswith(f"litwatch: error: database sqlite:///{database} is locked: ")
    assert invoke("run", "--query", "migraine-immunology").exit_code == 0  # once the other writer is done


def test_a_locked_database_as_a_subprocess(database: Path) -> None:
    env = {"LITWATCH_DATABASE_URL": f"sqlite:///{database}", "LITWATCH_DATABASE_BUSY_TIMEOUT": "0.2",
           "LITWATCH_QUERIES_DIR": str(ROOT / "queries")}
    with write_lock(database):
        done = litwatch("ingest", str(PAPERS), env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"litwatch: error: database sqlite:///{database} is locked: ")


@pytest.mark.parametrize("subprocess_run", [False, True], ids=["cli", "subprocess"])
def test_a_folder_that_cannot_be_created_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  subprocess_run: bool) -> None:
    blocker = tmp_path / "passwd"
    blocker.write_text("root:x:0:0\n")
    url = f"sqlite:///{blocker / 'x.sqlite'}"
    expected = (f"litwatch: error: cannot create the folder {blocker} for database {url}: {blocker} is a "
                "file, not a folder; set LITWATCH_DATABASE_URL to a file in a folder this user may write")
    if subprocess_run:
        done = litwatch("init", env={"LITWATCH_DATABASE_URL": url})
        assert (done.returncode, done.stderr) == (1, expected + "\n")
        return
    monkeypatch.setenv("LITWATCH_DATABASE_URL", url)
    result = invoke("init")
    assert result.exit_code == 1
    assert one_line_error(result) == expected


@pytest.mark.parametrize(("target", "message"), [
    ("file", "database sqlite:///{db} is read-only: check that this user may write the file and its folder "
             "{folder} (SQLite writes litwatch.sqlite-wal and litwatch.sqlite-shm beside it)"),
    ("folder", "cannot open database sqlite:///{db}: this user may not write its folder {folder} (SQLite "
               "writes litwatch.sqlite-wal and litwatch.sqlite-shm beside the file) or read the file; "
               "check the permissions of both"),
])
def test_a_read_only_file_or_folder_says_what_sqlite_must_write(database: Path, target: str, message: str) -> None:
    assert not database.with_name("litwatch.sqlite-shm").exists()  # the last connection removed them
    with read_only(database if target == "file" else database.parent):
        result = invoke("ingest", str(PAPERS))
    assert result.exit_code == 1
    assert one_line_error(result) == "litwatch: error: " + message.format(db=database, folder=database.parent)
    assert invoke("ingest", str(PAPERS)).exit_code == 0  # writable again: the same command works


def test_an_unreachable_postgresql_names_host_port_and_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    url = f"postgresql+psycopg://litwatch:s3cret@127.0.0.1:{port}/litwatch"
    monkeypatch.setenv("LITWATCH_DATABASE_URL", url)
    result = invoke("init")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert line == (
        f"litwatch: error: cannot connect to PostgreSQL at 127.0.0.1:{port} "
        f"(postgresql+psycopg://litwatch:***@127.0.0.1:{port}/litwatch): connection refused; "
        "is the server running? check host and port in LITWATCH_DATABASE_URL"
    )
    assert "s3cret" not in result.output


@pytest.mark.postgres
@pytest.mark.parametrize(("wrong", "message"), [
    ({"database": "litwatch_missing_{tag}"},
     "PostgreSQL database '{url.database}' does not exist on {server} ({shown}); create it "
     "(createdb {url.database}) or fix LITWATCH_DATABASE_URL"),
    ({"username": "nobody_{tag}", "password": "wrong-pw"},
     "PostgreSQL at {server} refused user '{url.username}' ({shown}): authentication failed; check the "
     "user and password in LITWATCH_DATABASE_URL"),
], ids=["unknown-database", "unknown-user"])
def test_a_wrong_postgresql_database_or_user_says_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, wrong: dict[str, str], message: str
) -> None:
    base = os.environ.get("LITWATCH_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PostgreSQL tests need LITWATCH_TEST_POSTGRES_URL")
    tag = uuid.uuid4().hex[:8]
    url = sa.engine.make_url(base).set(**{k: v.format(tag=tag) for k, v in wrong.items()})  # type: ignore[arg-type]
    monkeypatch.setenv("LITWATCH_DATABASE_URL", url.render_as_string(hide_password=False))
    result = invoke("init")
    assert result.exit_code == 1
    assert one_line_error(result) == "litwatch: error: " + message.format(
        url=url, server=f"{url.host}:{url.port or 5432}", shown=url.render_as_string(hide_password=True))
    assert "wrong-pw" not in result.output


def test_a_file_that_is_not_a_database_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = tmp_path / "notes.sqlite"
    notes.write_text("these are my notes, not a database\n" * 100)
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{notes}")
    result = invoke("init")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        f"litwatch: error: sqlite:///{notes} is not an SQLite database; point LITWATCH_DATABASE_URL at a "
        "litwatch database"
    )
