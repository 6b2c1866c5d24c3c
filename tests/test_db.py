"""The schema the migrations build is the schema the models declare, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from litwatch.errors import StoreError
from litwatch.store import engine as db
from litwatch.store.models import Base

ENV = Path(__file__).parent.parent / "db" / "migrations" / "env.py"


def include_object():  # type: ignore[no-untyped-def]
    """env.py's filter, without running the migration environment."""
    namespace: dict[str, object] = {}
    exec(ENV.read_text().split("engine = context")[0], namespace)
    return namespace["include_object"]


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object()})
        assert compare_metadata(context, Base.metadata) == []


def test_an_uninitialised_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    with pytest.raises(StoreError, match=r"is empty; run `litwatch init`"):
        db.require_schema(engine)


def test_sqlite_connections_are_safe_against_a_kill_and_cache_a_whole_batch(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL loses no committed batch when the process is killed (only a
    power cut may take the last ones); the 16 MB page cache holds a batch without spilling it."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'lit.sqlite'}")
    with engine.connect() as conn:
        found = [conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("journal_mode", "synchronous",
                                                                              "foreign_keys", "cache_size")]
    assert found == ["wal", 1, 1, -db.SQLITE_CACHE_KIB]


def test_a_password_never_shows_in_a_database_error() -> None:
    assert db.redact_url("postgresql+psycopg://ana:s3cret@db.example.org/lit") == (
        "postgresql+psycopg://ana:***@db.example.org/lit"
    )


def test_sqlite_full_text_is_written_by_the_store_from_0004_and_by_triggers_before(tmp_path: Path) -> None:
    """0004 drops the SQLite row triggers that indexed papers (the store writes the index now);
    its downgrade puts them back as 0003 made them."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'lit.sqlite'}")
    db.migrate(engine)

    def triggers() -> set[str]:
        with engine.connect() as conn:
            return set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars())

    assert triggers() == {"papers_fts_delete"}  # a paper deleted by hand still leaves the index
    cfg = db._alembic_config(engine)  # noqa: SLF001 - the configuration `litwatch init` uses
    command.downgrade(cfg, "0003")
    assert triggers() == {"papers_fts_delete", "papers_fts_register", "papers_fts_update",
                          "papers_fts_keyword_insert", "papers_fts_keyword_update", "papers_fts_keyword_delete"}
    command.upgrade(cfg, "head")
    assert triggers() == {"papers_fts_delete"}
    engine.dispose()
