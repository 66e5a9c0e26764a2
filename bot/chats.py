"""Staff chats that Telegram moved to a new id (a group upgraded to a supergroup).

Telegram answers every call to the old id with "group chat was upgraded to a supergroup
chat" and the new id; the move is stored here so that the bot keeps using the new id
after a restart, even while config.toml still names the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import outbox, pending
from bot.models import AppState, ChatMigration


async def chat_moves(session: AsyncSession) -> dict[int, int]:
    """Every recorded move, old id -> new id."""
    rows = (await session.execute(select(ChatMigration.old_chat_id, ChatMigration.new_chat_id))).all()
    return {old: new for old, new in rows}


async def record_chat_move(session: AsyncSession, *, old_chat_id: int, new_chat_id: int, now: datetime) -> bool:
    """Store a move; False when it was known already (nothing changed)."""
    row = await session.get(ChatMigration, old_chat_id, with_for_update=True)
    if row is not None and row.new_chat_id == new_chat_id:
        return False
    if row is None:
        session.add(ChatMigration(old_chat_id=old_chat_id, new_chat_id=new_chat_id, migrated_at=now))
    else:
        row.new_chat_id, row.migrated_at = new_chat_id, now
    return True


# app_state keys of a moderator's "Other…" wait (handlers/ads.py OTHER_KEY): the typed
# reason expected from this person in this chat; value "kind:ad:thread:unix time".
OTHER_REASON = "mod_other:{chat}:"


@dataclass(frozen=True)
class ChatMove:
    """What followed a staff chat to its new id."""

    fresh: bool  # False: the move was known already (nothing else changed)
    tickets: int = 0
    feedback: int = 0  # unanswered feedback whose card is posted again by the sweep
    waits: int = 0  # expectations (pending_inputs, "Other…" reasons) moved
    drafts: int = 0  # /kb conversations moved
    ads: list[int] = field(default_factory=list)  # ads waiting for moderation: post their card again
    reports: list[int] = field(default_factory=list)  # open ad reports: post their card again


async def move_chat(session: AsyncSession, *, old_chat_id: int, new_chat_id: int, now: datetime) -> ChatMove:
    """Telegram moved a staff chat to ``new_chat_id``: store the move and move everything
    keyed by the old id, in the caller's one transaction: tickets, waits for a person's
    next message (a feedback answer, a typed "Other…" reason), ``/kb`` drafts, notices
    queued for staff there (:func:`bot.outbox.move_chat`), and the
    cards of unanswered feedback, ads waiting for moderation and open reports (which the
    old chat keeps, out of reach: their place and claim are cleared here, so each is
    posted again in the new one once, by the caller after the commit or by the
    repair sweep if the bot stops first). Forum topic ids of the
    old chat mean nothing in the new one and are dropped."""
    from ads import service as ads_service
    from escalation import feedback as feedback_service
    from escalation import service as ticket_service
    from kb import editing

    if not await record_chat_move(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id, now=now):
        return ChatMove(fresh=False)
    tickets = await ticket_service.move_staff_chat(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id)
    waits = await pending.move_chat(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id)
    waits += await _move_other_reasons(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id)
    drafts = await editing.move_drafts(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id)
    feedback = await feedback_service.move_cards(session, old_chat_id=old_chat_id)
    ads, reports = await ads_service.move_cards(session, old_chat_id=old_chat_id)
    await outbox.move_chat(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id)
    return ChatMove(True, tickets, feedback, waits, drafts, ads, reports)


async def _move_other_reasons(session: AsyncSession, *, old_chat_id: int, new_chat_id: int) -> int:
    prefix = OTHER_REASON.format(chat=old_chat_id)
    rows = (await session.scalars(select(AppState).where(AppState.key.startswith(prefix, autoescape=True)))).all()
    moved = 0
    for row in rows:
        person = row.key[len(prefix):]
        key = OTHER_REASON.format(chat=new_chat_id) + person
        if await session.get(AppState, key) is not None:
            continue  # one waiting in the new chat wins; the old one stays
        parts = row.value.split(":")
        if len(parts) == 4:
            parts[2] = ""  # the old chat's topic: the reason is taken anywhere in the new chat
        session.add(AppState(key=key, value=":".join(parts)))
        await session.delete(row)
        moved += 1
    await session.flush()
    return moved
