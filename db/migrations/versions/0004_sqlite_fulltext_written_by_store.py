"""SQLite: the store writes the full-text index, row triggers no longer do

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:40:00

On SQLite, indexing a paper from a row trigger cost three times what the same FTS5 insert costs
when the store sends it itself, once per batch (bench/ingest_speed.py: 3.1 s against 1.0 s for
30,000 papers; FTS5 flushes its pending terms at every statement savepoint a trigger opens). So
``store.save_batch``, the only writer of papers, now writes ``papers_fts`` for every paper it
inserts or revises, in the same transaction. The trigger on DELETE FROM papers stays, so a paper
deleted by hand leaves the index too.

PostgreSQL keeps its statement-level triggers: they run once per statement, not per row.
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


DROPPED = (
    "papers_fts_register",
    "papers_fts_update",
    "papers_fts_keyword_insert",
    "papers_fts_keyword_update",
    "papers_fts_keyword_delete",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in DROPPED:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in _sqlite_0003_triggers():
        op.execute(statement)


def _sqlite_0003_triggers() -> list[str]:
    """The row triggers migration 0003 created, as it created them."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_m0003", Path(__file__).with_name("0003_fulltext_and_views.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [s for s in module.SQLITE_UP if s.startswith("CREATE TRIGGER") and any(n in s for n in DROPPED)]
