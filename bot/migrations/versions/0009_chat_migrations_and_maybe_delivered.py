"""chat migrations (staff chat upgraded to a supergroup) and maybe-delivered messages

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


import bot.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_migrations',
    sa.Column('old_chat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('new_chat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('migrated_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('old_chat_id', name=op.f('pk_chat_migrations'))
    )
    # delivered: NULL now means "maybe delivered" (the send timed out)
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.alter_column('delivered', existing_type=sa.Boolean(), nullable=True)


def downgrade() -> None:
    op.execute(sa.text("UPDATE ticket_messages SET delivered = true WHERE delivered IS NULL"))
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.alter_column('delivered', existing_type=sa.Boolean(), nullable=False)
    op.drop_table('chat_migrations')
