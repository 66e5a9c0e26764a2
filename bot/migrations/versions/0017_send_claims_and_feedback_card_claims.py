"""when a relay was claimed for sending (a claim stuck in "sending" is reported after a
grace period) and when posting a feedback card was claimed (the repair sweep posts a
missing feedback card once)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 21:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True))
    # a relay already stuck in "sending": claimed at the latest when it was stored
    op.execute(sa.text("UPDATE ticket_messages SET claimed_at = at WHERE send_state = 'sending'"))
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True))
    # a feedback whose card is known was posted: the sweep leaves it alone
    op.execute(sa.text("UPDATE feedback SET card_claimed_at = created_at WHERE staff_message_id IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_column('card_claimed_at')
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
