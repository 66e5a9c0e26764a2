"""users.deleted_at: when a user's personal data was erased (/deleteme, /forget)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', bot.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
