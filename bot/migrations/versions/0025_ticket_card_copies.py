"""earlier copies of a ticket's staff card (posted again by the sweep or /repost, or
left behind by a transfer): a reply to one in the ticket's chat still reaches the case,
and erasing the user redraws them

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # empty: the copies posted before this revision were never recorded (only the
    # tracked card was); replies to those stay unmatched, as they were
    op.create_table('ticket_card_copies',
    sa.Column('chat_id', ID, autoincrement=False, nullable=False),
    sa.Column('message_id', ID, autoincrement=False, nullable=False),
    sa.Column('ticket_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_card_copies_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id', 'message_id', name=op.f('pk_ticket_card_copies'))
    )
    with op.batch_alter_table('ticket_card_copies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_card_copies_ticket_id'), ['ticket_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket_card_copies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_card_copies_ticket_id'))
    op.drop_table('ticket_card_copies')
