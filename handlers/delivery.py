"""Sending through Telegram's failures: what each error means for the bot.

- 429 "retry after": PTB's ``AIORateLimiter`` (bot/app.py) waits and retries up to
  ``telegram.max_retries`` times; what still fails reaches the callers here as a
  failure worded for staff ("Telegram's flood limit"), surely not sent
  (``Failure.again``): a relay or a notice goes back to its queue, sent after retry_after.
- a timeout: the request may have reached Telegram, so the message may have arrived.
  It is recorded as *maybe delivered* and never sent again blindly (no duplicates).
  An answer the bot cannot read (200 from a broken proxy or Bot API server with a result
  PTB fails to parse) means the same for the sends that go through :func:`readable`
  (staff-chat cards and their photos): :class:`Unreadable` is a timeout.
- 403: the user blocked the bot. Recorded on the ticket; the case goes on. In a staff
  chat, the bot was removed from it.
- 400 and 403 are Telegram's answer "no" (``Failure.refused``): sending the same again
  changes nothing, so a line to staff refused so is recorded and logged once, never
  tried again every minute; the flood limit (429) and network trouble are worth another try.
- the Bot API out of reach (the connection refused: a server restarting, a network
  outage): nothing was sent, so the send is worth repeating (``Failure.again``, after
  :data:`UNREACHABLE_RETRY_SECONDS`), like one refused for the flood limit. Other network
  trouble (a 502 from a proxy, a connection cut mid-answer) may have reached Telegram.
- "group chat was upgraded to a supergroup chat" (``ChatMigrated``): a staff chat got
  a new id. :func:`chat_moved` stores the move (it survives a restart) and, in the same
  transaction, moves everything keyed by the old id (:func:`bot.chats.move_chat`);
  points the settings and the staff-chat filter at the new id, logs loudly, tells the
  admins in the new chat and posts there again the cards moderators need (ads waiting,
  open reports; tickets and feedback get theirs from the repair sweep); the caller
  sends the failed message again there. The move clears those cards and their claims in
  its transaction, so a card posted again here is claimed like any other: if the bot
  stops before posting it, the repair sweep does, once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application

from bot.chats import move_chat
from bot.config import Settings, with_chat_moves
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from escalation.service import Policy

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """A send that did not (surely) arrive, classified for the records and for staff."""

    reason: str
    blocked: bool = False  # 403: the user blocked the bot
    maybe: bool = False  # timed out: it may have arrived; not sent again
    flood: bool = False  # 429 after every retry
    retry_after: float = 0.0  # flood: Telegram's "retry after", in seconds
    refused: bool = False  # Telegram answered no (400, 403): the same send again changes nothing
    unsent: bool = False  # the Bot API was out of reach: surely not sent, worth sending again

    @property
    def again(self) -> bool:
        """Surely not sent, and worth sending again after ``retry_after`` seconds."""
        return self.flood or self.unsent


#: The Bot API out of reach: a send is tried again after this many seconds.
UNREACHABLE_RETRY_SECONDS = 30.0


class Unreadable(TimedOut):
    """Telegram answered a send with something PTB cannot read (a broken proxy or Bot API
    server: 200 with a result missing its fields). Like a timeout: the message may have
    arrived, and the bot does not know its id."""

    __slots__ = ()


async def readable(call: Awaitable[T]) -> T:
    """``await call`` (a send through PTB); an answer PTB fails to parse (not a Telegram
    error: e.g. KeyError for a missing field) is raised as :class:`Unreadable`, so that the
    caller's timeout handling applies."""
    try:
        return await call
    except TelegramError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise Unreadable(f"Telegram's answer could not be read ({type(exc).__name__}: {exc})") from exc


def failure(exc: TelegramError) -> Failure:
    if isinstance(exc, TimedOut):
        return Failure("the request timed out; it may have arrived", maybe=True)
    if isinstance(exc, Forbidden):
        return Failure(exc.message, blocked=True, refused=True)
    if isinstance(exc, BadRequest):  # not a network error, although PTB files it as one
        return Failure(exc.message, refused=True)
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        return Failure(f"Telegram's flood limit, after every retry ({exc.message})", flood=True, retry_after=seconds)
    if isinstance(exc, NetworkError) and isinstance(exc.__cause__, httpx.ConnectError):
        return Failure(f"the Bot API was out of reach, nothing was sent ({exc.message})", unsent=True, retry_after=UNREACHABLE_RETRY_SECONDS)
    if isinstance(exc, NetworkError):  # a 502, a connection cut mid-answer: it may have reached Telegram
        return Failure(f"network trouble; it may have arrived ({exc.message})", maybe=True)
    return Failure(exc.message)


async def to_staff_chat(context: HelpdeskContext, chat_id: int, send: Callable[[int], Awaitable[T]]) -> T:
    """``send(chat_id)``; when Telegram answers that the chat became a supergroup, the
    move is recorded and ``send`` runs once more with the new id."""
    try:
        return await send(chat_id)
    except ChatMigrated as exc:
        new_id = await chat_moved(context, chat_id, exc.new_chat_id)
        return await send(new_id)


def config_keys(settings: Settings, chat_id: int) -> list[str]:
    """The config.toml keys that name ``chat_id``."""
    keys = ["staff.chat_id"] if settings.staff.chat_id == chat_id else []
    keys += [f"support.departments.{name}.chat_id" for name, d in settings.support.departments.items() if d.chat_id == chat_id]
    return keys


async def chat_moved(context: HelpdeskContext, old_chat_id: int, new_chat_id: int) -> int:
    """Telegram moved a staff chat to ``new_chat_id``: remember it and use it from now on."""
    desk = context.desk
    keys = config_keys(desk.settings, old_chat_id)
    async with unit_of_work(desk.sessions) as session:
        moved = await move_chat(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id, now=context.now())
    apply_chat_moves(context.application, {old_chat_id: new_chat_id})
    if not moved.fresh:
        return new_chat_id
    desk.pending = None  # the index of pending_inputs: reloaded from the table on next use
    log.critical(
        "STAFF CHAT MOVED: Telegram upgraded chat %s to the supergroup %s. The bot uses %s from now on (stored in the "
        "database: %d tickets, %d waits for a typed answer, %d /kb drafts moved; cards of %d feedback, %d ads and %d "
        "reports posted again). Update %s in config.toml to %s.",
        old_chat_id, new_chat_id, new_chat_id, moved.tickets, moved.waits, moved.drafts, moved.feedback, len(moved.ads),
        len(moved.reports), " and ".join(keys) or "the chat id", new_chat_id,
    )
    text = desk.templates.render(
        "staff/chat_migrated.html", desk.templates.default, old=old_chat_id, new=new_chat_id, keys=keys, tickets=moved.tickets,
        waits=moved.waits, drafts=moved.drafts, cards=moved.feedback + len(moved.ads) + len(moved.reports),
    )
    try:
        await context.bot.send_message(new_chat_id, text)
    except TelegramError as exc:
        log.error("could not tell the admins in chat %s about its new id: %s", new_chat_id, exc)
    if moved.ads or moved.reports:  # their cards stayed in the old chat: moderators need them here
        # (cleared and unclaimed by the move: whichever of this and the sweep claims first posts)
        from handlers import ads  # handlers.ads imports this module

        for ad_id in moved.ads:
            await ads.post_for_moderation(context, ad_id, moved=True)
        for report_id in moved.reports:
            await ads.post_report_card(context, report_id, moved=True)
    return new_chat_id


def apply_chat_moves(app: Application, moves: dict[int, int]) -> None:  # type: ignore[type-arg]
    """Point the running bot at the new ids: settings, the staff-chat filter, forum flags."""
    if not moves:
        return
    settings = with_chat_moves(app.bot_data["settings"], moves)
    app.bot_data["settings"] = settings
    staff_filter = app.bot_data.get("staff_chat_filter")
    if staff_filter is not None:
        staff_filter.add_chat_ids(list(moves.values()))
    desk = app.bot_data.get("desk")
    if desk is not None:
        desk.settings = settings
        desk.policy = Policy.from_settings(settings)
        for old, new in moves.items():
            if old in desk.staff_chats:
                desk.staff_chats.pop(old)
                desk.staff_chats.setdefault(new, False)  # a group just upgraded is no forum yet


def describe(values: dict[str, Any], fail: Failure) -> dict[str, Any]:
    """Template values of staff/not_delivered.html for ``fail``."""
    return {**values, "blocked": fail.blocked, "maybe": fail.maybe, "flood": fail.flood, "error": fail.reason}
