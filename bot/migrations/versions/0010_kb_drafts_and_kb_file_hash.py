"""knowledge-base drafts of the staff chat, and the hash of the last imported KB file

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_drafts',
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('chat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('kind', bot.db.SafeString(length=16), nullable=False),
    sa.Column('entry_id', bot.db.SafeString(length=40), nullable=True),
    sa.Column('step', bot.db.SafeString(length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('staff_id', 'chat_id', name=op.f('pk_kb_drafts'))
    )
    with op.batch_alter_table('kb_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file_sha256', bot.db.SafeString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('kb_state', schema=None) as batch_op:
        batch_op.drop_column('file_sha256')
    op.drop_table('kb_drafts')
