"""when posting an ad's moderation card and an ad report's card was claimed (the repair
sweep posts a missing card once), and an index of ad_events by user and kind (the
user's history on the moderation card, the pattern alert)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 22:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True))
    # a card that is known was posted: the sweep leaves it alone (an ad waiting with no
    # card at all gets one from the first sweep after the upgrade)
    op.execute(sa.text(
        "UPDATE ads SET card_claimed_at = COALESCE(submitted_at, updated_at) WHERE mod_message_id IS NOT NULL"
    ))
    with op.batch_alter_table('ad_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_ad_reports_status_created', ['status', 'created_at'], unique=False)
    op.execute(sa.text("UPDATE ad_reports SET card_claimed_at = created_at WHERE card_message_id IS NOT NULL"))
    with op.batch_alter_table('ad_events', schema=None) as batch_op:
        batch_op.create_index('ix_ad_events_user_kind', ['user_id', 'kind'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ad_events', schema=None) as batch_op:
        batch_op.drop_index('ix_ad_events_user_kind')
    with op.batch_alter_table('ad_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_ad_reports_status_created')
        batch_op.drop_column('card_claimed_at')
    with op.batch_alter_table('ads', schema=None) as batch_op:
        batch_op.drop_column('card_claimed_at')
