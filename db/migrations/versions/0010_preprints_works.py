"""preprints from Europe PMC: preprints, their versions, work links, receipts and coverage

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:50:00

A preprint is stored as a ``papers`` row of kind ``preprint`` keyed by the negative of its Europe
PMC number (PPR1036674 -> -1036674), so search, export, stats and digests read it like any paper;
``preprints`` keeps its source id, server and versions, ``work_links`` joins it to its journal
version, ``preprint_runs`` and ``preprint_coverage`` are the Europe PMC step's receipts and ranges.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_PAPER = dict(ondelete='CASCADE')


def upgrade() -> None:
    op.create_table(
        'preprints',
        sa.Column('source_id', sa.Text(), nullable=False),
        sa.Column('paper_pmid', sa.Integer(), nullable=False),
        sa.Column('server', sa.Text(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('doi', sa.Text(), nullable=True),
        sa.Column('first_index_date', sa.Date(), nullable=True),
        sa.Column('published_pmid', sa.Integer(), nullable=True),
        sa.Column('published_doi', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['paper_pmid'], ['papers.pmid'], name='fk_preprints_paper_pmid_papers', **_PAPER),
        sa.PrimaryKeyConstraint('source_id', name='pk_preprints'),
    )
    op.create_index('ix_preprints_paper_pmid', 'preprints', ['paper_pmid'])
    op.create_index('ix_preprints_doi', 'preprints', ['doi'])
    op.create_table(
        'preprint_versions',
        sa.Column('source_id', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('doi', sa.Text(), nullable=True),
        sa.Column('first_index_date', sa.Date(), nullable=True),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['source_id'], ['preprints.source_id'],
                                name='fk_preprint_versions_source_id_preprints', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('source_id', 'version', name='pk_preprint_versions'),
    )
    op.create_table(
        'work_links',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('preprint_pmid', sa.Integer(), nullable=False),
        sa.Column('published_pmid', sa.Integer(), nullable=False),
        sa.Column('strength', sa.Text(), nullable=False),
        sa.Column('evidence', sa.Text(), nullable=False),
        sa.Column('made_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['preprint_pmid'], ['papers.pmid'], name='fk_work_links_preprint_pmid_papers', **_PAPER),
        sa.ForeignKeyConstraint(['published_pmid'], ['papers.pmid'], name='fk_work_links_published_pmid_papers',
                                **_PAPER),
        sa.PrimaryKeyConstraint('id', name='pk_work_links'),
    )
    op.create_index('ix_work_links_preprint_pmid', 'work_links', ['preprint_pmid'])
    op.create_index('ix_work_links_published_pmid', 'work_links', ['published_pmid'])
    op.create_table(
        'preprint_runs',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('query_name', sa.Text(), nullable=False),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('window_from', sa.Date(), nullable=False),
        sa.Column('window_to', sa.Date(), nullable=False),
        sa.Column('hit_count', sa.Integer(), nullable=False),
        sa.Column('found', sa.Integer(), nullable=False),
        sa.Column('new', sa.Integer(), nullable=False),
        sa.Column('known', sa.Integer(), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('retries', sa.Integer(), nullable=False),
        sa.Column('status', sa.Text(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('warnings', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_preprint_runs'),
    )
    op.create_index('ix_preprint_runs_query_name', 'preprint_runs', ['query_name'])
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


def downgrade() -> None:
    for name in ('preprint_coverage', 'preprint_runs', 'work_links', 'preprint_versions', 'preprints'):
        op.drop_table(name)
