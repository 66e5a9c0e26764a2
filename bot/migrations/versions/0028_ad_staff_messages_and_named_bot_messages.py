"""every message the bot posted about an ad in the staff chat (each photo of each round's
album, each moderation card), so that erasing its owner deletes the photos and redraws
every card; and the person a bot message of a case names (``ticket_messages.person_id``:
the staff member in "Thandi from support is on your case"), redacted when they are erased

Filled from what is known: an ad's current album (its first photo only: the others were
never recorded) and current card; the "on your case" notices and their copies in the
cases' history are linked to the staff member they name. Such a copy naming nobody on
the staff any more names someone already erased: its text is redacted now.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-08 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# the English "on your case" notice (ticket/claimed.html), as stored in each table: the
# outbox keeps the HTML, a case's history the text Telegram shows
CLAIMED_HTML = "'👋 <b>' || s.first_name || '</b> from support is on your case%'"
CLAIMED_TEXT = "'👋 ' || s.first_name || ' from support is on your case%'"


def _named(table: str, pattern: str) -> str:
    return (
        f"(SELECT s.id FROM staff_members s WHERE s.first_name <> '' AND {table}.text LIKE {pattern} "
        "ORDER BY s.last_seen DESC LIMIT 1)"
    )


def upgrade() -> None:
    op.create_table(
        'ad_staff_messages',
        sa.Column('chat_id', ID, autoincrement=False, nullable=False),
        sa.Column('message_id', ID, autoincrement=False, nullable=False),
        sa.Column('ad_id', ID, nullable=False),
        sa.Column('kind', bot.db.SafeString(length=8), nullable=False),
        sa.ForeignKeyConstraint(['ad_id'], ['ads.id'], name=op.f('fk_ad_staff_messages_ad_id_ads'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('chat_id', 'message_id', name=op.f('pk_ad_staff_messages')),
    )
    with op.batch_alter_table('ad_staff_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ad_staff_messages_ad_id'), ['ad_id'], unique=False)
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', ID, nullable=True))
        batch_op.create_index('ix_ticket_messages_person_id', ['person_id'], unique=False)
    op.execute(
        "INSERT INTO ad_staff_messages (chat_id, message_id, ad_id, kind) SELECT album_chat_id, album_message_id, id, 'photo' "
        "FROM ads WHERE album_chat_id IS NOT NULL AND album_message_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO ad_staff_messages (chat_id, message_id, ad_id, kind) SELECT mod_chat_id, mod_message_id, id, 'card' "
        "FROM ads WHERE mod_chat_id IS NOT NULL AND mod_message_id IS NOT NULL"
    )
    op.execute(f"UPDATE notices SET person_id = {_named('notices', CLAIMED_HTML)} WHERE kind = 'ticket_claimed' AND person_id IS NULL")
    claimed = "direction = 'bot' AND text LIKE '👋 % from support is on your case%'"
    op.execute(f"UPDATE ticket_messages SET person_id = {_named('ticket_messages', CLAIMED_TEXT)} WHERE {claimed}")
    op.execute(f"UPDATE ticket_messages SET text = '(erased)' WHERE {claimed} AND person_id IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_messages_person_id')
        batch_op.drop_column('person_id')
    with op.batch_alter_table('ad_staff_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ad_staff_messages_ad_id'))
    op.drop_table('ad_staff_messages')
