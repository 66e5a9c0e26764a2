"""where an ad's photos were posted before its moderation card (the album's chat and
first message): a card posted again (the sweep after a timeout, /repost) replies to
them instead of posting the photos again

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 11:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # empty for the ads there are: their photos were never recorded, so a card of theirs
    # posted again brings the photos, as before this revision
    with op.batch_alter_table('ads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('album_chat_id', ID, nullable=True))
        batch_op.add_column(sa.Column('album_message_id', ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ads', schema=None) as batch_op:
        batch_op.drop_column('album_message_id')
        batch_op.drop_column('album_chat_id')
