"""how many posts of a staff-chat card timed out (Telegram gave no answer: the card may
or may not have arrived): the sweep posts such a card again after the repair grace, a
bounded number of times, then tells staff once (tickets, feedback, ads' moderation and
take-down cards, ad reports)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

TABLES = ('tickets', 'feedback', 'ads', 'ad_reports')
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # 0 for every card there is: a card that timed out before this revision stays as it
    # was (claimed, never posted again); only later timeouts are counted
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('card_timeouts', ID, server_default='0', nullable=False))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('card_timeouts')
