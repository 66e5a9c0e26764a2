"""report runs: what the monthly / quarterly report scheduler has sent; indexes for
the report's period queries on tickets, ads and ratings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

INDEXES = [
    ('tickets', 'escalated_at'), ('tickets', 'first_response_at'), ('tickets', 'resolved_at'), ('tickets', 'closed_at'),
    ('ads', 'submitted_at'), ('ads', 'decided_at'), ('ratings', 'sent_at'), ('ratings', 'rated_at'),
]


def upgrade() -> None:
    op.create_table('report_runs',
    sa.Column('period', bot.db.SafeString(length=8), nullable=False),
    sa.Column('status', bot.db.SafeString(length=10), nullable=False),
    sa.Column('chat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('attempts', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('claimed_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', bot.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('error', bot.db.SafeText(), nullable=True),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_report_runs'))
    )
    for table, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_{column}', [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_{column}')
    op.drop_table('report_runs')
