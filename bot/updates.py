"""How Telegram updates reach the handlers, and how a re-delivered one is recognised.

Polling confirms an update to Telegram by asking for the next ones (``offset``). PTB's
updater asks right after queueing a batch, before the handlers ran: a crash then loses
the queued updates. :class:`ConfirmAfterProcessing` makes the updater wait until every
update it queued has been handled, so an update is confirmed only once its effect is in
the database; a crash before that makes Telegram deliver it again, and the marker written
with its effect (``processed_updates``, see :func:`bot.db.unit_of_work`) makes the second
delivery a no-op. A webhook request is answered (and so confirmed) once its own update
was handled: :meth:`ConfirmAfterProcessing.put_and_wait`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from bot.models import ProcessedUpdate


class ConfirmAfterProcessing(asyncio.Queue):  # type: ignore[type-arg]
    """The application's update queue: putting an update returns once it was processed
    (``Application`` calls ``task_done`` after the handlers), so the updater's next
    ``getUpdates`` (which confirms the batch) waits for the handlers.

    In webhook mode (``wait_for_handlers`` off) each update is an HTTP request of its own:
    :meth:`put_and_wait` returns when that update alone was handled, not the whole queue,
    and the webhook answers 200 (which confirms it to Telegram) only then. The application
    handles one update at a time, in order (PTB's default, which the bot keeps), so the
    ``task_done`` that follows a ``get`` belongs to the update that ``get`` returned."""

    #: Off in webhook mode: a request must not wait for the whole queue (Telegram would
    #: time out and deliver it again); it waits for its own update (:meth:`put_and_wait`).
    wait_for_handlers = True

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._taken: deque[object] = deque()  # taken by the application, not yet done
        self._waiting: dict[int, asyncio.Future[bool]] = {}  # id(update) -> handled

    async def put(self, item: object) -> None:
        await super().put(item)
        if self.wait_for_handlers and isinstance(item, Update):
            await self.join()

    async def put_and_wait(self, update: Update, timeout: float) -> bool | None:
        """Queue ``update`` and wait until the application has handled it: True; not
        handled within ``timeout`` seconds (it stays queued): None."""
        handled = asyncio.get_running_loop().create_future()
        self._waiting[id(update)] = handled
        try:
            await super().put(update)
            return await asyncio.wait_for(asyncio.shield(handled), timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(id(update), None)

    async def get(self) -> object:
        item = await super().get()
        self._taken.append(item)
        return item

    def task_done(self) -> None:
        super().task_done()
        # the application's own get() precedes each task_done; at shutdown it drops what
        # is left with get_nowait(), which is not recorded: those are never "handled"
        if self._taken:
            handled = self._waiting.pop(id(self._taken.popleft()), None)
            if handled is not None and not handled.done():
                handled.set_result(True)


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
