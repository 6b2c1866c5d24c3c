"""preprint coverage joins the coverage ledger

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:20:00

The ranges of first index dates whose preprints a query searched (``preprint_coverage``) become
rows of ``query_coverage`` of kind ``ppr``, so one ledger says what each query has searched in
both sources, an edited ``preprints`` term re-searches its whole span, and a backfill covers
preprints too. Moved ranges carry no fingerprint: the first run after the upgrade adopts them for
the query's ``preprints`` term, as 0007 did with watermarks.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO query_coverage (query_name, kind, term_sha256, term, covered_from, covered_to, recorded_at) "
        "SELECT c.query_name, 'ppr', NULL, NULL, c.covered_from, c.covered_to, "
        "COALESCE(r.finished_at, r.started_at) "
        "FROM preprint_coverage c JOIN preprint_runs r ON r.id = c.run_id"
    )
    op.drop_index('ix_preprint_coverage_query_name', table_name='preprint_coverage')
    op.drop_table('preprint_coverage')


def downgrade() -> None:
    op.create_table(
        'preprint_coverage',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('query_name', sa.Text(), nullable=False),
        sa.Column('covered_from', sa.Date(), nullable=False),
        sa.Column('covered_to', sa.Date(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['preprint_runs.id'], name='fk_preprint_coverage_run_id_preprint_runs',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_preprint_coverage'),
    )
    op.create_index('ix_preprint_coverage_query_name', 'preprint_coverage', ['query_name'])
    op.execute("DELETE FROM query_coverage WHERE kind = 'ppr'")  # the ranges cannot be given back their runs
