"""query_coverage: the ranges each saved query has searched, per term; runs count the update pass

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:40:00

A watermark said only "searched up to W": a backfill (``--since``) left none, so the next run
started 30 days back and the years between were never searched; an edited term was never run
over the dates already covered. The ledger keeps every range searched completely, with the
fingerprint (sha256) of the term that searched it, for create dates (``crdt``) and for the update
pass over modification dates (``mdat``).

Existing coverage is migrated from the receipts: the windows of every run that ended ``ok``
(and a query's watermark, where no such receipt is left) become merged ``crdt`` ranges. Which
term searched them cannot be known here (the query files are not read by a migration), so they
get no fingerprint: the first run after the upgrade adopts them for the term it runs.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _merged(ranges: list[tuple[dt.date, dt.date]]) -> list[tuple[dt.date, dt.date]]:
    out: list[tuple[dt.date, dt.date]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def upgrade() -> None:
    coverage = op.create_table(
        'query_coverage',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('query_name', sa.Text(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('term_sha256', sa.Text(), nullable=True),
        sa.Column('term', sa.Text(), nullable=True),
        sa.Column('covered_from', sa.Date(), nullable=False),
        sa.Column('covered_to', sa.Date(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_query_coverage')),
    )
    op.create_index(op.f('ix_query_coverage_query_name'), 'query_coverage', ['query_name'], unique=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('update_requests', sa.Integer(), nullable=False, server_default='0'))

    conn = op.get_bind()
    ranges: dict[str, list[tuple[dt.date, dt.date]]] = {}
    for name, lo, hi in conn.execute(sa.text("SELECT query_name, window_from, window_to FROM runs WHERE status = 'ok'")):
        ranges.setdefault(name, []).append((_date(lo), _date(hi)))
    for name, watermark in conn.execute(sa.text("SELECT query_name, watermark FROM query_state "
                                                "WHERE watermark IS NOT NULL")):
        if name not in ranges:
            ranges[name] = [(_date(watermark), _date(watermark))]
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{'query_name': name, 'kind': 'crdt', 'term_sha256': None, 'term': None, 'covered_from': lo,
             'covered_to': hi, 'recorded_at': now}
            for name, found in sorted(ranges.items()) for lo, hi in _merged(found)]
    if rows:
        op.bulk_insert(coverage, rows)


def _date(value: object) -> dt.date:
    """A Date column's value: a date from PostgreSQL, an ISO string from SQLite's raw rows."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('update_requests')
        batch_op.drop_column('updated')
    op.drop_index(op.f('ix_query_coverage_query_name'), table_name='query_coverage')
    op.drop_table('query_coverage')
