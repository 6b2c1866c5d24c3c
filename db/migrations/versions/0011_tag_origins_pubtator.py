"""tag origins: PubTator3 or the dictionary, identifiers and spans; which papers PubTator3 annotated

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:45:00

``paper_tags`` gains ``origin`` (``dictionary`` for every tag stored before, or ``pubtator3``),
``identifier`` (``NCBIGene:3552``, ``MESH:D008881``), ``span_start``/``span_end`` (document offsets
of the tag's first mention, where known) and ``species`` (NCBI Taxonomy id of a gene kept
without a human symbol). ``pubtator_papers`` records, per paper, when PubTator3 was first and
last asked about it and when its annotations arrived, so a run asks again only for papers still
missing and young enough.
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE ... ADD COLUMN: a batch copy of paper_tags would break the views over it on SQLite
    op.add_column('paper_tags', sa.Column('origin', sa.Text(), nullable=False, server_default='dictionary'))
    for name, kind in (('identifier', sa.Text()), ('span_start', sa.Integer()), ('span_end', sa.Integer()),
                       ('species', sa.Integer())):
        op.add_column('paper_tags', sa.Column(name, kind, nullable=True))
    op.create_table(
        'pubtator_papers',
        sa.Column('paper_pmid', sa.Integer(), nullable=False),
        sa.Column('first_asked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_asked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('annotated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('asks', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['paper_pmid'], ['papers.pmid'], name='fk_pubtator_papers_paper_pmid_papers',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('paper_pmid', name='pk_pubtator_papers'),
    )
    op.create_index('ix_pubtator_papers_annotated_at', 'pubtator_papers', ['annotated_at'])


def downgrade() -> None:
    op.drop_index('ix_pubtator_papers_annotated_at', table_name='pubtator_papers')
    op.drop_table('pubtator_papers')
    for column in ('species', 'span_end', 'span_start', 'identifier', 'origin'):
        op.drop_column('paper_tags', column)
