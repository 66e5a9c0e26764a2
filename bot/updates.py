"""How Telegram updates reach the handlers, and how a re-delivered one is recognised.

Polling confirms an update to Telegram by asking for the next ones (``offset``). PTB's
updater asks right after queueing a batch, before the handlers ran: a crash then loses
the queued updates. :class:`ConfirmAfterProcessing` makes the updater wait until every
update it queued has been handled, so an update is confirmed only once its effect is in
the database; a crash before that makes Telegram deliver it again, and the marker written
with its effect (``processed_updates``, see :func:`bot.db.unit_of_work`) makes the second
delivery a no-op.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from bot.models import ProcessedUpdate


class ConfirmAfterProcessing(asyncio.Queue):  # type: ignore[type-arg]
    """The application's update queue: putting an update returns once it was processed
    (``Application`` calls ``task_done`` after the handlers), so the updater's next
    ``getUpdates`` (which confirms the batch) waits for the handlers."""

    #: Off in webhook mode: each update is an HTTP request of its own, which must not
    #: wait for the whole queue (Telegram would time out and deliver it again); what a
    #: re-delivery does is already harmless (``processed_updates``).
    wait_for_handlers = True

    async def put(self, item: object) -> None:
        await super().put(item)
        if self.wait_for_handlers and isinstance(item, Update):
            await self.join()


async def was_processed(session: AsyncSession, *, update_id: int, chat_id: int | None, message_id: int | None) -> bool:
    """Is this update, or the incoming message it carries, recorded already?"""
    found = ProcessedUpdate.update_id == update_id
    if chat_id is not None and message_id is not None:
        found = or_(found, and_(ProcessedUpdate.chat_id == chat_id, ProcessedUpdate.message_id == message_id))
    return (await session.scalar(select(ProcessedUpdate.update_id).where(found).limit(1))) is not None


async def highest_update_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(ProcessedUpdate.update_id))) or 0)


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Forget updates recorded before ``before``; returns how many."""
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
