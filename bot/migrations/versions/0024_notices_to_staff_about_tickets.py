"""notices to staff about a ticket (the SLA sweep's alerts go through the outbox, queued
with the SLA step they announce, so a crash after its commit no longer loses them), and
the person a notice's text names besides its audience (``person_id``: an assignee in a
reminder; the notice goes when that person is erased)

The new audiences (``ticket``, ``ticket_general``) are values of the existing
``audience`` column; the ticket is ``ref`` ("ticket:12") and its place in the staff chat
is looked up when the notice is sent.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', ID, nullable=True))
        batch_op.create_index('ix_notices_person_id', ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_person_id')
        batch_op.drop_column('person_id')
