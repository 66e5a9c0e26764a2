"""ad events and user events: append-only logs of ad state changes and user penalties,
for the report's moderation rounds; backfilled from the ads rows

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# The ads table keeps each ad's latest submission and decision only, so the backfill
# writes what is known: one submission, one decision (when the status says which) and
# the event that ended the ad's life, in that order (ids follow time within an ad).
BACKFILL = [
    # the latest submission (a resubmission when the ad had been reopened before it)
    """INSERT INTO ad_events (ad_id, user_id, category, kind, actor_id, reason, at)
       SELECT id, user_id, category, CASE WHEN resubmissions > 0 AND status <> 'draft' THEN 'resubmitted' ELSE 'submitted' END,
              NULL, NULL, submitted_at
       FROM ads WHERE submitted_at IS NOT NULL ORDER BY id""",
    # approvals: the ad went live. A take-down by a moderator overwrote decided_at and
    # decided_by with its own (decided_at = updated_at): the approval's moderator and
    # time are unknown, so it gets no actor (counted, but not timed nor attributed).
    """INSERT INTO ad_events (ad_id, user_id, category, kind, actor_id, reason, at)
       SELECT id, user_id, category, CASE WHEN auto_approved THEN 'auto_approved' ELSE 'approved' END,
              CASE WHEN status = 'taken_down' AND decided_at = updated_at THEN NULL ELSE decided_by END,
              NULL, decided_at
       FROM ads
       WHERE decided_at IS NOT NULL AND submitted_at IS NOT NULL
         AND status IN ('approved', 'expired', 'sold', 'taken_down') ORDER BY id""",
    """INSERT INTO ad_events (ad_id, user_id, category, kind, actor_id, reason, at)
       SELECT id, user_id, category, status, decided_by, decision_reason, decided_at
       FROM ads
       WHERE decided_at IS NOT NULL AND submitted_at IS NOT NULL
         AND status IN ('rejected', 'changes_requested') ORDER BY id""",
    # how it ended (updated_at is the moment of that last change)
    """INSERT INTO ad_events (ad_id, user_id, category, kind, actor_id, reason, at)
       SELECT id, user_id, category, CASE WHEN status = 'draft' THEN 'reopened' ELSE status END,
              CASE WHEN status = 'taken_down' AND decided_at = updated_at THEN decided_by ELSE NULL END,
              NULL, updated_at
       FROM ads
       WHERE submitted_at IS NOT NULL
         AND status IN ('expired', 'sold', 'taken_down', 'deleted', 'draft') ORDER BY id""",
]


def upgrade() -> None:
    op.create_table('ad_events',
    sa.Column('id', ID, nullable=False),
    sa.Column('ad_id', ID, nullable=False),
    sa.Column('user_id', ID, nullable=False),
    sa.Column('category', bot.db.SafeString(length=20), nullable=True),
    sa.Column('kind', bot.db.SafeString(length=20), nullable=False),
    sa.Column('actor_id', ID, nullable=True),
    sa.Column('reason', bot.db.SafeString(length=20), nullable=True),
    sa.Column('at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ad_id'], ['ads.id'], name=op.f('fk_ad_events_ad_id_ads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ad_events'))
    )
    with op.batch_alter_table('ad_events', schema=None) as batch_op:
        batch_op.create_index('ix_ad_events_at', ['at'], unique=False)
        batch_op.create_index('ix_ad_events_ad_at', ['ad_id', 'at'], unique=False)
    op.create_table('user_events',
    sa.Column('id', ID, nullable=False),
    sa.Column('user_id', ID, nullable=False),
    sa.Column('kind', bot.db.SafeString(length=10), nullable=False),
    sa.Column('actor_id', ID, nullable=True),
    sa.Column('until', bot.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_events_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_events'))
    )
    with op.batch_alter_table('user_events', schema=None) as batch_op:
        batch_op.create_index('ix_user_events_at', ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_events_user_id'), ['user_id'], unique=False)
    # users keep only their current status, with no date: past blocks and bans cannot
    # be dated, so user_events starts empty
    for statement in BACKFILL:
        op.execute(sa.text(statement))


def downgrade() -> None:
    with op.batch_alter_table('user_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_events_user_id'))
        batch_op.drop_index('ix_user_events_at')
    op.drop_table('user_events')
    with op.batch_alter_table('ad_events', schema=None) as batch_op:
        batch_op.drop_index('ix_ad_events_ad_at')
        batch_op.drop_index('ix_ad_events_at')
    op.drop_table('ad_events')
