"""indexes for /queue and /mytickets at scale

Measured with benchmarks/scale.py (1,000,000 tickets, about 2,000 of them open):
/queue read every open ticket, joined them to all users and sorted them to show 30;
a partial index of the open tickets by age gives the 30 oldest in order. /mytickets
fetched every ticket of a user to keep the latest 10; (user_id, id) reads them
newest first and stops (it also serves every lookup by user_id, so the single-column
index goes).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

OPEN_TICKETS = "status IN ('new', 'claimed', 'waiting')"


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_user_id')
        batch_op.create_index('ix_tickets_user_id_id', ['user_id', 'id'], unique=False)
        batch_op.create_index(
            'ix_tickets_open_queue', ['escalated_at', 'id'], unique=False,
            postgresql_where=sa.text(OPEN_TICKETS), sqlite_where=sa.text(OPEN_TICKETS),
        )


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_open_queue')
        batch_op.drop_index('ix_tickets_user_id_id')
        batch_op.create_index('ix_tickets_user_id', ['user_id'], unique=False)
