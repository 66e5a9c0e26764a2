"""Staff chats that Telegram moved to a new id (a group upgraded to a supergroup).

Telegram answers every call to the old id with "group chat was upgraded to a supergroup
chat" and the new id; the move is stored here so that the bot keeps using the new id
after a restart, even while config.toml still names the old one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import ChatMigration


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
