"""Keyboards and safe sending helpers shared by the handlers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.error import BadRequest, TelegramError

from bot.context import HelpdeskContext
from kb.service import EntryView

log = logging.getLogger(__name__)

T = TypeVar("T")


async def guarded(what: str, action: Awaitable[T]) -> T | None:
    """One item of a sweep's loop: an exception (not a Telegram error the item's own code
    handles, but e.g. an answer the bot cannot read, or a row changed under it) is logged
    with ``what`` and the loop goes on with the next item; the next sweep tries this one
    again. Without it one odd item would hold back every item behind it, every sweep."""
    try:
        return await action
    except Exception:
        log.exception("%s failed; the sweep goes on with the next one", what)
        return None
BUTTON_TEXT_MAX = 60


def short(text: str, limit: int = BUTTON_TEXT_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def main_menu(context: HelpdeskContext) -> ReplyKeyboardMarkup:
    """The main menu. Only features that exist are listed (no dead buttons)."""
    rows = [
        [KeyboardButton(context.label("menu_ask")), KeyboardButton(context.label("menu_post_ad"))],
        [KeyboardButton(context.label("menu_my_ads")), KeyboardButton(context.label("menu_support"))],
        [KeyboardButton(context.label("menu_guides")), KeyboardButton(context.label("menu_feedback"))],
        [KeyboardButton(context.label("menu_help")), KeyboardButton(context.label("menu_language"))],
    ]
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, is_persistent=True)


def answer_keyboard(context: HelpdeskContext, entry: EntryView, question_id: int | None) -> InlineKeyboardMarkup | None:
    """Vote buttons (while a vote is possible) above the entry's follow-up buttons."""
    rows: list[list[InlineKeyboardButton]] = []
    if question_id is not None:
        rows.append(
            [
                InlineKeyboardButton(context.label("btn_helpful"), callback_data=f"v:{question_id}:1"),
                InlineKeyboardButton(context.label("btn_not_helpful"), callback_data=f"v:{question_id}:0"),
            ]
        )
    for f in entry.followups:
        target = context.desk.kb.get(f.entry)
        if target is not None:
            rows.append([InlineKeyboardButton(short("➡️ " + target.title), callback_data=f"f:{target.id}")])
        elif f.url and f.label:
            rows.append([InlineKeyboardButton(short("🔗 " + f.label), url=f.url)])
    return InlineKeyboardMarkup(rows) if rows else None


async def toast(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press (Telegram shows a spinner until we do)."""
    try:
        await query.answer(text)
    except TelegramError as exc:  # too old, or already answered: nothing to show anyway
        log.info("could not answer callback query: %s", exc)


def not_modified(exc: TelegramError) -> bool:
    """Telegram refused an edit that would change nothing: the message already shows it."""
    return "not modified" in str(exc).lower()


async def set_markup(query: CallbackQuery, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the buttons of the pressed message, best effort: the outcome is already
    stored, so a message that can no longer be edited must not cost the user anything."""
    try:
        await query.edit_message_reply_markup(reply_markup=markup)
    except BadRequest as exc:
        if not not_modified(exc):
            log.info("could not change the buttons of a message: %s", exc)
    except TelegramError as exc:
        log.warning("could not change the buttons of a message: %s", exc)


async def drop_stale_copy(query: CallbackQuery, chat_id: int | None, message_id: int | None) -> None:
    """A button pressed on a copy of a card that is not the tracked one (``chat_id``,
    ``message_id``): a first post that timed out but arrived, after the card was posted
    again. The press was acted on (authorised against the database, not the card); the
    copy loses its buttons, so that staff go on with the tracked card. Nothing while no
    card is tracked: the copy is then the only card staff have."""
    pressed = query.message
    if pressed is None or message_id is None or (pressed.chat.id, pressed.message_id) == (chat_id, message_id):
        return
    if getattr(pressed, "reply_markup", None) is None:
        return  # gone already (a client that shows the old buttons still)
    await set_markup(query, None)
