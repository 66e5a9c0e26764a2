"""relay outbox: ticket_messages.send_state (pending / sending / sent) and
tickets.card_claimed_at, so the periodic sweep can post what a crash left unsent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 19:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_state', bot.db.SafeString(length=8), nullable=True))
        batch_op.create_index('ix_ticket_messages_send_state', ['send_state'], unique=False)
    # what is there already was handled before this revision: never posted again
    op.execute(sa.text("UPDATE tickets SET card_claimed_at = escalated_at WHERE escalated_at IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_messages_send_state')
        batch_op.drop_column('send_state')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('card_claimed_at')
