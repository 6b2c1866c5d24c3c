"""rate_budget: NCBI's request budget shared by every host on one PostgreSQL store

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:45:00

NCBI counts requests per IP address and per API key. Processes on one machine share the budget
through a file (LITWATCH_RATE_FILE); with an API key and a PostgreSQL store, processes on several
hosts share the key's budget through one row per budget, locked with SELECT ... FOR UPDATE while
the next request start is reserved (store/rate_budget.py). ``last_start`` is in seconds of the
database's own clock, so the hosts' clocks need not agree.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_budget',
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('last_start', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_rate_budget')),
    )


def downgrade() -> None:
    op.drop_table('rate_budget')
