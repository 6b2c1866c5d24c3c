"""runs: record the lease holder, so a receipt left `running` by a killed run can be closed

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:40:00

A run killed with SIGKILL never wrote its end: its receipt stayed at status ``running`` for good.
Each receipt now names the lease holder that ran it (host:pid:random); the next run of the query,
once it holds the lease, closes every other ``running`` receipt of that query as ``interrupted``.
Receipts written before this revision have no holder and are closed the same way.
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holder', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('holder')
