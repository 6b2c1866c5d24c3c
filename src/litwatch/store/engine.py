"""The one place that builds SQLAlchemy engines and runs migrations.

SQLite is the embedded default (a file under ``db/``); PostgreSQL is reached through a
``postgresql+psycopg://`` URL. Everything else receives the engine as an argument.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration in db/migrations, so that every command can check the schema without
# importing alembic (a tenth of a second); tests/test_cli.py pins it to the migrations folder.
HEAD_REVISION = "0004"

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Build the engine for ``url``; a SQLite file's folder is created if missing."""
    try:
        sa_url = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            f"LITWATCH_DATABASE_URL {redact_url(url)!r} is not a database URL "
            "(expected sqlite:///path.sqlite or postgresql+psycopg://user@host/db)"
        ) from exc
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(sa_url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(sa_url, pool_pre_ping=True)
    except ImportError as exc:
        if sa_url.get_driver_name() == "psycopg":
            raise ConfigError("needs psycopg: pip install 'litwatch[postgres]'") from exc
        raise StoreError(f"cannot use database {redact_url(url)}: {exc}") from exc
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"cannot use database {redact_url(url)}: {exc}") from exc


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
    """Create or upgrade the schema to the newest migration; returns the revision now in place."""
    from alembic import command

    cfg = _alembic_config(engine)
    try:
        command.upgrade(cfg, "head")
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot migrate {redact_url(str(engine.url))}: {exc.orig}") from exc
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
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open database {redact_url(str(engine.url))}: {exc.orig}") from exc


def require_schema(engine: Engine) -> None:
    """Refuse to work on a database that ``litwatch init`` has not brought up to date."""
    current = current_revision(engine)
    if current != HEAD_REVISION:
        state = "is empty" if current is None else f"is at revision {current}"
        raise StoreError(
            f"database {redact_url(str(engine.url))} {state}; run `litwatch init` to create or migrate it"
        )
