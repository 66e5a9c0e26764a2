"""the time a relay that Telegram surely did not take (its flood limit after every retry,
or the Bot API out of reach) is due again: it stays queued (pending) and the sweep sends
it once this is past (retry_at: Telegram's retry_after)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-08 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_at', bot.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
