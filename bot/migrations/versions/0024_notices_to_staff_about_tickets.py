"""notices to staff about a ticket (the SLA sweep's alerts go through the outbox, queued
with the SLA step they announce, so a crash after its commit no longer loses them), and
the person a notice's text names besides its audience (``person_id``: an assignee in a
reminder; the notice goes when that person is erased)

The new audiences (``ticket``, ``ticket_general``) are values of the existing
``audience`` column; the ticket is ``ref`` ("ticket:12") and its place in the staff chat
is looked up when the notice is sent.

Downgrade: the code before this revision knows the audiences ``user`` and ``moderators``
only. It would send a pending ``ticket`` notice as if to a user, to its ``chat_id`` (the
staff group, outside the ticket's topic), and its erasure would never find a finished one
(it looks for user and moderator notices, and ``person_id`` is gone). So the downgrade
deletes every notice of an audience it does not know, whatever its state: the SLA steps
they announced stay recorded on the tickets (nothing is announced again), and an alert
still pending is lost (the staff see the ticket in ``/queue``).

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
    op.execute(sa.text("DELETE FROM notices WHERE audience NOT IN ('user', 'moderators')"))
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_person_id')
        batch_op.drop_column('person_id')
