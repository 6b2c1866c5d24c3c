"""digest_recipients: who got each digest, who did not (and why), whose copy is uncertain

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:40:00

One row per digest and recipient address. A refused recipient no longer stops the others, and a
retry goes to the addresses that did not get the digest only. An address is marked ``sending``
before the message content (DATA) is sent, so a digest whose outcome is unknown (the process was
killed, or the connection broke before the server answered) is known to be ``uncertain`` and is
not sent again automatically. Digests written before this revision have no rows; a pending one
gets rows for its group's recipients when it is next sent.
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digest_recipients',
    sa.Column('digest_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], name=op.f('fk_digest_recipients_digest_id_digests'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest_id', 'address', name=op.f('pk_digest_recipients'))
    )
    with op.batch_alter_table('digest_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digest_recipients_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('digest_recipients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_digest_recipients_status'))
    op.drop_table('digest_recipients')
