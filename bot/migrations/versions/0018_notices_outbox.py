"""the user-notice outbox: notices (ad decisions, penalties, ticket notices, feedback
answers) are written in the transaction of the decision that causes them and sent
after the commit, or by the repair sweep after a crash

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'notices',
        sa.Column('id', ID, nullable=False),
        sa.Column('chat_id', ID, nullable=False),
        sa.Column('kind', bot.db.SafeString(length=32), nullable=False),
        sa.Column('ref', bot.db.SafeString(length=64), nullable=True),
        sa.Column('text', bot.db.SafeText(), nullable=False),
        sa.Column('reply_markup', sa.JSON(), nullable=True),
        sa.Column('state', bot.db.SafeString(length=8), nullable=False),
        sa.Column('created_at', bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('sent_at', bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('message_id', ID, nullable=True),
        sa.Column('error', bot.db.SafeText(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_chat_id', ['chat_id'], unique=False)
        batch_op.create_index('ix_notices_state', ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_state')
        batch_op.drop_index('ix_notices_chat_id')
    op.drop_table('notices')
