"""notices to the moderators (audience: the pattern alert goes through the outbox too,
so a crash after the rejection's commit no longer loses it) and the time a notice
refused for Telegram's flood limit is due again (retry_at: until then it, and the later
notices to the same chat, wait; other chats' notices do not)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', bot.db.SafeString(length=16), server_default='user', nullable=False))
        batch_op.add_column(sa.Column('retry_at', bot.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('audience')
