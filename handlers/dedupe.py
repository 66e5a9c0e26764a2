"""Re-delivered updates: recognised before any handler runs, and never acted on twice.

Group -4 (:func:`drop_duplicates`), for every update: an update recorded as processed is
dropped; otherwise it is remembered (``bot.db.current_update``) so that the first unit of
work that writes also records it, in the same transaction as its effect. The last group
(:func:`end_of_update`) forgets it. :func:`prune` forgets old records.

Checking the database costs a query, so it is skipped for update ids above the highest
recorded one: Telegram's ids grow, and only a recorded update can be a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot import updates
from bot.context import HelpdeskContext
from bot.db import UpdateMark, current_update, unit_of_work

log = logging.getLogger(__name__)

# Telegram keeps unconfirmed updates for 24 hours; records are kept a little longer.
KEEP = timedelta(days=3)
PRUNE_SECONDS = 3600


@dataclass
class Seen:
    """The highest update id recorded (None: not read from the database yet)."""

    high_water: int | None = None

    def recorded(self, update_id: int) -> None:
        self.high_water = max(self.high_water or 0, update_id)


def _seen(context: HelpdeskContext) -> Seen:
    return context.application.bot_data.setdefault("seen_updates", Seen())  # type: ignore[no-any-return]


async def drop_duplicates(update: Update, context: HelpdeskContext) -> None:
    """Group -4: stop an update handled before; remember this one for its first effect."""
    current_update.set(None)
    message = update.message  # only new incoming messages have a (chat, message) to record
    chat_id = message.chat_id if message is not None else None
    message_id = message.message_id if message is not None else None
    seen = _seen(context)
    sessions = context.desk.sessions
    if seen.high_water is None:
        async with unit_of_work(sessions, effect=False) as session:
            seen.recorded(await updates.highest_update_id(session))
    if update.update_id <= (seen.high_water or 0):
        async with unit_of_work(sessions, effect=False) as session:
            duplicate = await updates.was_processed(session, update_id=update.update_id, chat_id=chat_id, message_id=message_id)
        if duplicate:
            log.info("update %s was handled before (re-delivered by Telegram): ignored", update.update_id)
            raise ApplicationHandlerStop
    current_update.set(
        UpdateMark(update.update_id, chat_id, message_id, context.now(), asyncio.current_task(), on_recorded=seen.recorded)
    )


async def end_of_update(update: Update, context: HelpdeskContext) -> None:
    """The last group: the update's handlers are done."""
    current_update.set(None)


async def prune(context: HelpdeskContext) -> None:
    """JobQueue, hourly: forget updates recorded more than :data:`KEEP` ago."""
    async with unit_of_work(context.desk.sessions) as session:
        removed = await updates.prune(session, before=context.now() - KEEP)
    if removed:
        log.info("forgot %d processed updates older than %s", removed, KEEP)
        # re-read the highest id: after a week of silence Telegram's ids start anew, lower
        _seen(context).high_water = None
