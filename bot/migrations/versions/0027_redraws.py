"""redraws owed in the staff chat: an erasure records, in its own transaction, each
card, card copy and topic it must redraw (done after the commit, marked done; the sweep
finishes what a crash or a refusal for now left)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # empty: erasures before this revision did their redraws at once (what failed then stays as drawn)
    op.create_table(
        'redraws',
        sa.Column('id', ID, nullable=False),
        sa.Column('kind', bot.db.SafeString(length=16), nullable=False),
        sa.Column('ref', ID, nullable=False),
        sa.Column('chat_id', ID, nullable=True),
        sa.Column('message_id', ID, nullable=True),
        sa.Column('after_notice_id', ID, nullable=True),
        sa.Column('created_at', bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('attempts', ID, server_default='0', nullable=False),
        sa.Column('retry_at', bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('done_at', bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('error', bot.db.SafeText(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_redraws')),
    )
    with op.batch_alter_table('redraws', schema=None) as batch_op:
        batch_op.create_index('ix_redraws_done_at', ['done_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('redraws', schema=None) as batch_op:
        batch_op.drop_index('ix_redraws_done_at')
    op.drop_table('redraws')
