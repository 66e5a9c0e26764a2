"""Group -3: the per-user flood limit (``limits.messages_per_minute``).

Each user of a private chat has a token bucket: it holds ``messages_per_minute``
tokens and refills at that rate; every message, edit or button press takes one. A user
whose bucket is empty gets ONE notice (at most one a minute) and everything else they
send is dropped before any other handler (or the database) sees it. Nobody else is
slowed: the check is a dictionary look-up. Staff chats and ``staff.admin_ids`` are
exempt. The buckets are rate state, not data: they live in memory and a restart
forgets them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.context import HelpdeskContext

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=1)
MAX_TRACKED = 100_000  # past that, users whose bucket is full again are forgotten


class Verdict(Enum):
    PASS = "pass"
    NOTICE = "notice"  # over the limit: drop it, and tell the user (once a minute)
    DROP = "drop"  # over the limit, already told


@dataclass
class _Bucket:
    tokens: float
    at: datetime
    noticed_at: datetime | None = None
    album: str | None = None  # the media group last charged: an album costs one token


class FloodGate:
    """Token buckets per user: ``per_minute`` messages at once, refilled continuously."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.buckets: dict[int, _Bucket] = {}

    def _refill(self, bucket: _Bucket, now: datetime) -> None:
        elapsed = max((now - bucket.at).total_seconds(), 0.0)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + elapsed * self.per_minute / WINDOW.total_seconds())
        bucket.at = now

    def take(self, user_id: int, now: datetime, album: str | None = None) -> Verdict:
        """Charge one token; the photos of one album (``media_group_id``) are charged once."""
        bucket = self.buckets.get(user_id)
        if album is not None and bucket is not None and bucket.album == album:
            return Verdict.PASS  # the rest of an album already paid for
        if bucket is None:
            if len(self.buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            bucket = self.buckets[user_id] = _Bucket(float(self.per_minute), now)
        else:
            self._refill(bucket, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.album = album
            return Verdict.PASS
        if bucket.noticed_at is None or now - bucket.noticed_at >= WINDOW:
            bucket.noticed_at = now
            return Verdict.NOTICE
        return Verdict.DROP

    def _forget_idle(self, now: datetime) -> None:
        idle = [uid for uid, b in self.buckets.items() if now - b.at >= WINDOW]
        for uid in idle:
            del self.buckets[uid]
        if len(self.buckets) >= MAX_TRACKED:  # everyone is busy: start afresh rather than grow
            self.buckets.clear()


def _gate(context: HelpdeskContext) -> FloodGate:
    per_minute = context.desk.settings.limits.messages_per_minute
    gate: FloodGate | None = context.bot_data.get("flood_gate")
    if gate is None or gate.per_minute != per_minute:
        gate = context.bot_data["flood_gate"] = FloodGate(per_minute)
    return gate


async def flood_guard(update: Update, context: HelpdeskContext) -> None:
    """Group -3, every update: let it through, or drop it (raising ApplicationHandlerStop)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or chat.type != ChatType.PRIVATE:
        return  # staff chats (groups) are exempt; updates without a user are not floods
    settings = context.desk.settings
    if not settings.limits.messages_per_minute or user.id in settings.staff.admin_ids:
        return
    message = update.effective_message
    verdict = _gate(context).take(user.id, context.now(), message.media_group_id if message is not None else None)
    if verdict is Verdict.PASS:
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer()  # stop the button's spinner; nothing else
        if verdict is Verdict.NOTICE:
            log.info("user %s is over the flood limit (%s a minute): dropping their updates", user.id, settings.limits.messages_per_minute)
            templates = context.desk.templates
            locale = templates.locale_of(None, user.language_code)
            await context.bot.send_message(
                chat.id, templates.render("flood.html", locale, limit=settings.limits.messages_per_minute)
            )
    except TelegramError as exc:
        log.info("could not tell user %s about the flood limit: %s", user.id, exc)
    raise ApplicationHandlerStop
