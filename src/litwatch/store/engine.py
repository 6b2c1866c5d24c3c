"""The one place that builds SQLAlchemy engines, runs migrations and translates database errors.

SQLite is the embedded default (a file under ``db/``); PostgreSQL is reached through a
``postgresql+psycopg://`` URL. Everything else receives the engine as an argument.

Every error the database driver raises through an engine made here becomes a ``StoreError``
(chained to the driver's error) with one line that names the database, password hidden, and says
what to do: the ``handle_error`` event below is the one door, so callers catch ``StoreError``
(a ``LitwatchError``) and never ``sqlalchemy.exc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, ExceptionContext

from litwatch.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration in db/migrations, so that every command can check the schema without
# importing alembic (a tenth of a second); tests/test_cli.py pins it to the migrations folder.
HEAD_REVISION = "0012"

DEFAULT_BUSY_TIMEOUT = 30.0  # seconds SQLite waits for another writer before "is locked"
MAX_PARAMETERS = 32_766  # bound parameters per statement on SQLite (PostgreSQL takes 65,535)
SQLITE_CACHE_KIB = 16_384  # each SQLite connection's page cache
IN_CHUNK = 500  # values per IN (...): far under MAX_PARAMETERS, with room for the other conditions
_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")
_T = TypeVar("_T")


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def in_chunks(items: Sequence[_T], size: int = IN_CHUNK) -> Iterator[Sequence[_T]]:
    """``items`` in slices small enough to bind as the values of one ``IN (...)``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # a batch of 1,000 papers with its full-text rows outgrows the default 2 MB page cache, which
    # then spills pages to the WAL mid-transaction and writes them again at commit: 16 MB (taken
    # only as used) writes a quarter fewer pages, as many as 64 MB does, for 15 MB more memory
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_message(url: URL, name: str, exc: BaseException, busy_timeout: float) -> str:
    """One line for an error of Python's sqlite3 module, by SQLite's (primary) result code."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    text = str(exc)
    where = Path(url.database or "litwatch.sqlite")
    if code in (5, 6) or "locked" in text:  # SQLITE_BUSY, SQLITE_LOCKED
        return (f"database {name} is locked: another litwatch process is writing to it; wait for it to "
                f"finish or stop it, then try again (waited {busy_timeout:g} s; "
                "LITWATCH_DATABASE_BUSY_TIMEOUT sets how long)")
    if code == 8 or "readonly" in text:  # SQLITE_READONLY
        return (f"database {name} is read-only: check that this user may write the file and its folder "
                f"{where.parent} (SQLite writes {where.name}-wal and {where.name}-shm beside it)")
    if code == 14 or "unable to open" in text:  # SQLITE_CANTOPEN
        if where.exists():
            return (f"cannot open database {name}: this user may not write its folder {where.parent} "
                    f"(SQLite writes {where.name}-wal and {where.name}-shm beside the file) or read the "
                    "file; check the permissions of both")
        return (f"cannot open database {name}: cannot create {where.name} in {where.parent}; check that "
                "the folder exists and that this user may write it")
    if code == 13:  # SQLITE_FULL
        return f"database {name}: the disk is full; free space in {where.parent} and try again"
    if code == 26:  # SQLITE_NOTADB
        return f"{name} is not an SQLite database; point LITWATCH_DATABASE_URL at a litwatch database"
    return f"database {name} failed: {_first_line(text)}"


def _postgres_message(url: URL, name: str, exc: BaseException) -> str:
    """One line for an error of psycopg: by SQLSTATE when the server sent one, else by its text."""
    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc)
    server = f"{url.host or 'localhost'}:{url.port or 5432}"
    if "Connection refused" in text:
        return (f"cannot connect to PostgreSQL at {server} ({name}): connection refused; is the server "
                "running? check host and port in LITWATCH_DATABASE_URL")
    if "resolve host" in text or "translate host name" in text:
        return f"cannot connect to PostgreSQL ({name}): unknown host {url.host!r}; check LITWATCH_DATABASE_URL"
    if state.startswith("28") or "authentication failed" in text or re.search(r'role ".*" does not exist', text):
        return (f"PostgreSQL at {server} refused user {url.username!r} ({name}): authentication failed; "
                "check the user and password in LITWATCH_DATABASE_URL")
    if state == "3D000" or re.search(r'database ".*" does not exist', text):
        return (f"PostgreSQL database {url.database!r} does not exist on {server} ({name}); create it "
                f"(createdb {url.database}) or fix LITWATCH_DATABASE_URL")
    if state == "53100":
        return f"database {name}: the server's disk is full; free space on the PostgreSQL server and try again"
    if state == "25006":
        return f"database {name} is read-only (a standby?); point LITWATCH_DATABASE_URL at the primary server"
    if state in ("55P03", "40P01"):
        return (f"database {name} is locked: another litwatch process is writing to it; wait for it to "
                "finish or stop it, then try again")
    return f"database {name} failed: {_first_line(text)}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")


def _translate_errors(engine: Engine, url: URL, name: str, busy_timeout: float) -> None:
    """Install the one door: driver errors leave this engine as one-line ``StoreError``s."""
    sqlite = url.get_backend_name() == "sqlite"

    def handle_error(context: ExceptionContext) -> None:
        if context.is_pre_ping or not isinstance(context.sqlalchemy_exception, sa.exc.DBAPIError):
            return  # the pool reconnects after a failed ping; other exceptions are bugs, kept as they are
        orig = context.original_exception
        message = _sqlite_message(url, name, orig, busy_timeout) if sqlite else _postgres_message(url, name, orig)
        raise StoreError(message) from context.sqlalchemy_exception

    sa.event.listen(engine, "handle_error", handle_error)


def _create_folder(folder: Path, name: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        reason = f"{blocker} is a file, not a folder" if not blocker.is_dir() else exc.strerror
        raise StoreError(
            f"cannot create the folder {folder} for database {name}: {reason}; "
            "set LITWATCH_DATABASE_URL to a file in a folder this user may write"
        ) from exc


def make_engine(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """Build the engine for ``url``; a SQLite file's folder is created if missing.

    ``busy_timeout`` is how many seconds SQLite waits for another process's write to end before
    giving up with "is locked".
    """
    try:
        sa_url = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            f"LITWATCH_DATABASE_URL {redact_url(url)!r} is not a database URL "
            "(expected sqlite:///path.sqlite or postgresql+psycopg://user@host/db)"
        ) from exc
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:" and not sa_url.database.startswith("file:"):
            _create_folder(Path(sa_url.database).parent, redact_url(url))
        engine = sa.create_engine(sa_url, connect_args={"timeout": busy_timeout})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        try:
            engine = sa.create_engine(sa_url, pool_pre_ping=True)
        except ImportError as exc:
            if sa_url.get_driver_name() == "psycopg":
                raise ConfigError("needs psycopg: pip install 'litwatch[postgres]'") from exc
            raise StoreError(f"cannot use database {redact_url(url)}: {exc}") from exc
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"cannot use database {redact_url(url)}: {exc}") from exc
    _translate_errors(engine, sa_url, redact_url(url), busy_timeout)
    return engine


def migrations_dir() -> Path:
    """``db/migrations`` in a checkout, or the copy packaged into the wheel."""
    packaged = resources.files("litwatch").joinpath("_migrations")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "db" / "migrations"


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> str:
    """Create or upgrade the schema to the newest migration; returns the revision now in place.

    A database already at ``HEAD_REVISION`` is left as it is without importing alembic (0.1 s).
    """
    if current_revision(engine) == HEAD_REVISION:
        return HEAD_REVISION
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")
    return head_revision()


def head_revision() -> str:
    """The newest revision in the migrations folder, as alembic reads it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when empty), read without importing alembic."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        version: str | None = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        return version


def require_schema(engine: Engine) -> None:
    """Refuse to work on a database that ``litwatch init`` has not brought up to date."""
    current = current_revision(engine)
    if current != HEAD_REVISION:
        state = "is empty" if current is None else f"is at revision {current}"
        raise StoreError(
            f"database {redact_url(str(engine.url))} {state}; run `litwatch init` to create or migrate it"
        )
