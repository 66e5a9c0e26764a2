"""channel posts that survive a crash: an approved ad is claimed before it is posted
(publish_claimed_at; publish_uncertain when the post timed out or its poster
died: it may have arrived, never posted again), the photo sent before the ad's text is remembered
(published_photo_id) so that a retry does not post it twice, and refusals are counted
(channel_failures) to keep the logs bounded; an ad that is no longer approved but still
has post ids is a post to remove (the index finds them)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 22:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('ads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('publish_claimed_at', bot.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('publish_uncertain', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('published_photo_id', ID, nullable=True))
        batch_op.add_column(sa.Column('channel_failures', ID, server_default='0', nullable=False))
        batch_op.create_index('ix_ads_published_message_id', ['published_message_id'], unique=False)
    # the ads live in the channel now were posted by their current approval: claimed
    # (an approved ad with a post but no claim is the post of an earlier life, to remove)
    op.execute(
        "UPDATE ads SET publish_claimed_at = COALESCE(decided_at, updated_at) "
        "WHERE published_message_id IS NOT NULL AND publish_claimed_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table('ads', schema=None) as batch_op:
        batch_op.drop_index('ix_ads_published_message_id')
        batch_op.drop_column('channel_failures')
        batch_op.drop_column('published_photo_id')
        batch_op.drop_column('publish_uncertain')
        batch_op.drop_column('publish_claimed_at')
