"""partial indexes for the minute's sweep, and notices by ref

Measured with benchmarks/scale.py (1,000,000 tickets, 1,000,000 ads, PostgreSQL): one
run of the sweep (SLA deadlines, card, relay, notice and channel repairs; every
minute) took 1.8 s, five full scans of ``ads`` (130-160 ms each) and one of
``tickets`` (27 ms) looking for the few rows that need attention. Partial indexes
hold only those rows: ads waiting for their moderation or Take down card, channel
posts claimed and not confirmed, posts present; open tickets and unanswered feedback
whose card is not known. ``notices.ref``: erasing a user finds the notices about them
without reading the whole outbox.

The conditions repeat the queries' own (ads/service.py, escalation/service.py,
escalation/feedback.py) so that the planner can prove they apply.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 01:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

ADS_NEEDING_CARD = "mod_message_id IS NULL AND (status = 'submitted' OR (status = 'approved' AND auto_approved IS true))"
ADS_PUBLISH_IN_FLIGHT = "published_message_id IS NULL AND publish_claimed_at IS NOT NULL"
ADS_POSTED = "published_chat_id IS NOT NULL"
TICKETS_NEEDING_CARD = "card_message_id IS NULL AND status IN ('new', 'claimed', 'waiting')"
FEEDBACK_NEEDING_CARD = "staff_message_id IS NULL AND answer IS NULL"

PARTIAL = (
    ('ads', 'ix_ads_needing_card', ADS_NEEDING_CARD),
    ('ads', 'ix_ads_publish_in_flight', ADS_PUBLISH_IN_FLIGHT),
    ('ads', 'ix_ads_posted', ADS_POSTED),
    ('tickets', 'ix_tickets_needing_card', TICKETS_NEEDING_CARD),
    ('feedback', 'ix_feedback_needing_card', FEEDBACK_NEEDING_CARD),
)


def upgrade() -> None:
    for table, name, where in PARTIAL:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, ['id'], unique=False, postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_ref', ['ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_ref')
    for table, name, _ in reversed(PARTIAL):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
