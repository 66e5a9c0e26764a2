"""covering indexes for the monthly report

Measured with benchmarks/scale.py (1,000,000 tickets, 1,000,000 ads and their
2,970,000 events): the report's period queries found their rows through one-column
indexes and then read each row from the table, about 500,000 row lookups for one
month. These indexes hold every column those queries read, in place of the
one-column indexes they replace (same leading column: every other query that used
those keeps working): the events of a period by kind (ix_ad_events_report), an ad's
events in time order with their kind (ix_ad_events_ad_at_kind: the round a decision
answers, the last event before the period's end), and the tickets opened, answered,
resolved and closed in a period (reports/models.py).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 12:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

# (table, old index, its columns, new index, its columns)
REPLACED = (
    ('ad_events', 'ix_ad_events_at', ['at'], 'ix_ad_events_report', ['kind', 'at', 'category', 'actor_id', 'reason', 'user_id', 'ad_id']),
    ('ad_events', 'ix_ad_events_ad_at', ['ad_id', 'at'], 'ix_ad_events_ad_at_kind', ['ad_id', 'at', 'kind']),
    ('tickets', 'ix_tickets_escalated_at', ['escalated_at'], 'ix_tickets_report_opened',
     ['escalated_at', 'category', 'first_response_breached', 'resolution_breached', 'user_id']),
    ('tickets', 'ix_tickets_first_response_at', ['first_response_at'], 'ix_tickets_report_first_response',
     ['first_response_at', 'escalated_at', 'assignee_id']),
    ('tickets', 'ix_tickets_resolved_at', ['resolved_at'], 'ix_tickets_report_resolved',
     ['resolved_at', 'escalated_at', 'closed_at', 'category', 'assignee_id']),
    ('tickets', 'ix_tickets_closed_at', ['closed_at'], 'ix_tickets_report_closed', ['closed_at', 'resolved_at', 'escalated_at']),
)


def upgrade() -> None:
    for table, old, _, new, columns in REPLACED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(old)
            batch_op.create_index(new, columns, unique=False)


def downgrade() -> None:
    for table, old, old_columns, new, _ in reversed(REPLACED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(new)
            batch_op.create_index(old, old_columns, unique=False)
