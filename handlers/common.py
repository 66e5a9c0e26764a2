"""Handlers every chat needs: user tracking, /start, /help, unknown input, errors."""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import Update
from telegram.constants import ChatType
from sqlalchemy.exc import SQLAlchemyError
from telegram.error import Conflict, NetworkError, TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.context import HelpdeskContext
from bot.db import DuplicateUpdate, unit_of_work
from bot.users import touch_user
from handlers.ui import main_menu, toast

log = logging.getLogger(__name__)

# The users row is refreshed at most this often per user (names, language, last_seen).
ACCOUNT_REFRESH = timedelta(minutes=5)
ACCOUNT_CACHE_MAX = 50_000


async def track_user(update: Update, context: HelpdeskContext) -> None:
    """Group -1, for every update: stop what no handler can serve, record private-chat
    users (names, language, last seen) and load their account for the handlers."""
    query = update.callback_query
    if query is not None and query.message is None:
        # a button on an inline message: we never send those, so it is not ours
        await toast(query, context.desk.templates.label(context.desk.templates.default, "toast_expired"))
        raise ApplicationHandlerStop
    user, chat = update.effective_user, update.effective_chat
    if chat is None or (chat.type == ChatType.PRIVATE and (user is None or user.is_bot)):
        raise ApplicationHandlerStop
    if chat.type != ChatType.PRIVATE or user is None:
        return  # groups (the staff chat) are not users of the help desk
    desk = context.desk
    now = context.now()
    cached = desk.accounts.get(user.id)
    if cached is not None:
        account, written = cached
        if (
            now - written < ACCOUNT_REFRESH
            and account.first_name == (user.first_name or "")
            and account.language_code == user.language_code
        ):
            context.account = account
            await _gate(update, context)
            return
    try:
        async with unit_of_work(desk.sessions, effect=False) as session:  # not the update's effect
            account = await touch_user(
                session,
                user_id=user.id,
                first_name=user.first_name,
                last_name=user.last_name,
                username=user.username,
                language_code=user.language_code,
                now=now,
            )
    except SQLAlchemyError:
        # no user row means no handler can work: apologise once and stop here
        log.exception("could not record user %s (update %s)", user.id, update.update_id)
        await _apologise(update, context)
        raise ApplicationHandlerStop from None
    if len(desk.accounts) >= ACCOUNT_CACHE_MAX:
        desk.accounts.clear()
    desk.accounts[user.id] = (account, now)
    context.account = account
    await _gate(update, context)


async def _gate(update: Update, context: HelpdeskContext) -> None:
    """Banned users reach only their appeal and support cases."""
    from handlers.ads import banned_gate

    if context.account is not None and context.account.status == "banned" and await banned_gate(update, context):
        raise ApplicationHandlerStop

async def start(update: Update, context: HelpdeskContext) -> None:
    args = list(context.args or [])
    if args and args[0].startswith("report-") and args[0][7:].isascii() and args[0][7:].isdigit() and len(args[0]) < 20:
        from handlers.ads import start_report

        await start_report(update, context, int(args[0][7:]))  # the "Report this ad" link of a channel post
        return
    from handlers.guides import greet

    await greet(update, context)  # the greeting, and the first time a short tour


async def help_command(update: Update, context: HelpdeskContext) -> None:
    await update.effective_message.reply_html(  # type: ignore[union-attr]
        context.render("help.html"), reply_markup=main_menu(context)
    )


async def unknown_command(update: Update, context: HelpdeskContext) -> None:
    text = update.effective_message.text or ""  # type: ignore[union-attr]
    command = text.split(maxsplit=1)[0][:40] if text else "/"
    await update.effective_message.reply_html(context.render("unknown_command.html", command=command))  # type: ignore[union-attr]


async def not_text(update: Update, context: HelpdeskContext) -> None:
    """Photos, documents, voice...: part of an open case, or not understood."""
    from handlers.ads import route_draft
    from handlers.feedback import route_nontext
    from handlers.tickets import route_private

    if await route_nontext(update, context) or await route_draft(update, context) or await route_private(update, context):
        return
    await update.effective_message.reply_html(context.render("nontext.html"))  # type: ignore[union-attr]


async def stale_button(update: Update, context: HelpdeskContext) -> None:
    """A button whose data we do not (or no longer) understand."""
    await toast(update.callback_query, context.label("toast_expired"))  # type: ignore[arg-type]


async def on_error(update: object, context: HelpdeskContext) -> None:
    """Log the failure with the update id, and never leave the user in silence."""
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(context.error, DuplicateUpdate):
        log.info("update %s was handled before (re-delivered by Telegram): its repeat was rolled back", update_id)
        return
    if update is None and context.job is None and isinstance(context.error, (Conflict, NetworkError)):
        _polling_trouble(context)  # getUpdates (not a job: PTB passes those with their job); PTB retries it by itself
        return
    log.error("error while handling update %s", update_id, exc_info=context.error)
    if isinstance(update, Update):
        await _apologise(update, context)


#: A polling problem that goes on is said again at most this often (each retry reports it).
POLLING_TROUBLE_REPEAT = timedelta(minutes=5)


def _polling_trouble(context: HelpdeskContext) -> None:
    """getUpdates failed (PTB tries again with a growing pause): one clear line, not a
    traceback per retry. A Conflict means another process polls with this token, or a
    webhook is set: Telegram gives each update to one of them only. A second ``helpdesk
    run`` on this database does not start (bot/instance.py), so it is one on another
    database or machine, a copy started by other means, or the old one still stopping."""
    error = context.error
    kind = "conflict" if isinstance(error, Conflict) else "network"
    now = context.now()
    said = context.bot_data.setdefault("polling_trouble_said", {})
    if kind in said and now - said[kind] < POLLING_TROUBLE_REPEAT:
        return
    said[kind] = now
    if kind == "conflict":
        log.error(
            "Telegram refuses to deliver updates here: another process is polling with this bot token, "
            "or a webhook is set (%s). Not a `helpdesk run` on this database (a second one does not start): "
            "look for one on another database or machine; run one `helpdesk run` per token. Retrying meanwhile", error,
        )
    else:
        log.warning("could not fetch updates from the Bot API (%s); retrying", error)


async def edited(update: Update, context: HelpdeskContext) -> None:
    """An edited message: we only read new ones, and say so."""
    await update.effective_message.reply_html(context.render("edited.html"))  # type: ignore[union-attr]


async def _apologise(update: Update, context: HelpdeskContext) -> None:
    update_id = update.update_id
    try:
        if update.callback_query is not None:
            await toast(update.callback_query, context.desk.templates.label(context.locale, "toast_error"))
        chat = update.effective_chat
        if chat is not None and chat.type == ChatType.PRIVATE:
            await context.bot.send_message(chat.id, context.desk.templates.render("error.html", context.locale))
        elif chat is not None and chat.id in context.desk.staff_chats and update.effective_message is not None:
            message = update.effective_message
            await context.bot.send_message(
                chat.id,
                context.desk.templates.render("error.html", context.desk.templates.default),
                message_thread_id=message.message_thread_id if message.is_topic_message else None,
            )
    except TelegramError as exc:
        log.warning("could not tell the user about the error in update %s: %s", update_id, exc)
    except Exception:  # the error handler itself must never raise
        log.exception("error handler failed for update %s", update_id)
