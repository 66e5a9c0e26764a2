"""Personal data: /mydata and /deleteme for users, /userdata and /forget for admins.

The rules (what is exported, what an erasure keeps) live in :mod:`bot.privacy`; this
module only talks to Telegram. Erasure always needs a confirmation press, and every
press is checked again (the user's own data only; staff: an admin, in a staff chat).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import TelegramError

from bot import privacy
from bot.context import HelpdeskContext
from bot.db import offloaded, unit_of_work
from escalation import feedback as feedback_service
from escalation import service
from handlers import ads, casework, feedback
from handlers.jobs import refresh_kb
from handlers.staffauth import is_desk_admin
from handlers.ui import main_menu, set_markup, toast

log = logging.getLogger(__name__)


def _document(doc: dict[str, Any], user_id: int, day: str) -> InputFile:
    body = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False).encode("utf-8")
    return InputFile(body, filename=f"saypro-helpdesk-data-{user_id}-{day}.json")


# ------------------------------------------------------------------ the user's side


async def cmd_mydata(update: Update, context: HelpdeskContext) -> None:
    """/mydata: everything stored about the user, as a JSON file."""
    user_id = update.effective_user.id  # type: ignore[union-attr]
    with offloaded():  # a long history reads in SQLite's thread, without the write lock
        async with unit_of_work(context.desk.sessions, read_only=True) as session:
            doc = await privacy.export_user(session, user_id=user_id, now=context.now())
    message = update.effective_message
    if doc is None:  # the account could not be recorded (track_user apologised)
        await message.reply_html(context.render("privacy/nothing_stored.html"))  # type: ignore[union-attr]
        return
    await context.bot.send_document(
        update.effective_chat.id,  # type: ignore[union-attr]
        _document(doc, user_id, context.now().date().isoformat()),
        caption=context.render(
            "privacy/mydata.html",
            tickets=len(doc["tickets"]), ads=len(doc["ads"]), questions=len(doc["questions"]),
            reports=len(doc["reports_made"]), strikes=len(doc["strikes"]), feedback=len(doc["feedback"]), staff=doc["staff"],
        ),
    )


async def cmd_deleteme(update: Update, context: HelpdeskContext) -> None:
    """/deleteme: asks for a confirmation first."""
    buttons = InlineKeyboardMarkup([
        [InlineKeyboardButton(context.label("btn_erase_my_data"), callback_data="pv:erase")],
        [InlineKeyboardButton(context.label("btn_keep_my_data"), callback_data="pv:keep")],
    ])
    await update.effective_message.reply_html(context.render("privacy/deleteme_confirm.html"), reply_markup=buttons)  # type: ignore[union-attr]


async def on_user_button(update: Update, context: HelpdeskContext) -> None:
    """``pv:erase`` / ``pv:keep``: always about the person pressing (no id in the data)."""
    query = update.callback_query
    user_id = query.from_user.id  # type: ignore[union-attr]
    if query.data == "pv:keep":  # type: ignore[union-attr]
        await toast(query)  # type: ignore[arg-type]
        await _edit(query, context.render("privacy/kept.html"))
        return
    async with unit_of_work(context.desk.sessions) as session:
        result = await privacy.erase_user(session, user_id=user_id, now=context.now(), policy=context.desk.policy)
    await toast(query)  # type: ignore[arg-type]
    if result is None:
        await _edit(query, context.render("privacy/nothing_stored.html"))
        return
    log.info("personal data of user %s erased at their request", user_id)
    text = context.render(
        "privacy/deleted.html", tombstone=result.tombstone, tickets=len(result.closed_tickets), staff=result.staff,
        released=len(result.released_tickets),
    )
    await _edit(query, text)
    await finish_erasure(context, result)
    try:
        await context.bot.send_message(user_id, context.render("privacy/goodbye.html"), reply_markup=main_menu(context))
    except TelegramError as exc:
        log.info("could not say goodbye to %s: %s", user_id, exc)


async def _edit(query: Any, text: str) -> None:
    try:
        await query.edit_message_text(text, reply_markup=None)
    except TelegramError as exc:
        log.info("could not edit the confirmation: %s", exc)


#: Finished cases of an erased staff member whose cards are redrawn (the latest ones).
MAX_FINISHED_REDRAWS = 20


async def finish_erasure(context: HelpdeskContext, result: privacy.Erasure) -> None:
    """The Telegram side of an erasure: closed cases' cards and topics, withdrawn ads."""
    desk = context.desk
    desk.accounts.pop(result.user_id, None)
    if desk.pending is not None:  # the index of pending_inputs: their rows are gone
        desk.pending = {key for key in desk.pending if key[1] != result.user_id}
    # first the public channel (the post ids stay recorded until the post is gone: what
    # fails here, or is cut short by a restart, the sweep removes later)
    for ad_id in result.unpublished:
        await ads.unpublish(context, ad_id)
    for ticket_id in result.tickets:  # cards and topic names showed the user's name
        await casework.refresh_card(context, ticket_id)
        async with unit_of_work(desk.sessions) as session:
            ticket = await service.get_ticket(session, ticket_id)
        if ticket.topic_id is not None and ticket.staff_chat_id is not None:
            name = desk.templates.render_plain(
                "staff/topic_name.j2", casework.staff_locale(context), number=ticket.id,
                name=casework.slabel(context, "erased_user"), category=casework.category_label(context, ticket.category),
            )
            try:
                await context.bot.edit_forum_topic(ticket.staff_chat_id, ticket.topic_id, name=name[:128])
            except TelegramError as exc:
                log.info("could not rename the topic of #%s: %s", ticket.id, exc)
        if ticket_id in result.closed_tickets:
            await casework.tell_staff(context, ticket, casework.srender(context, "privacy/staff_ticket_closed.html", number=ticket_id))
            await casework.set_topic_open(context, ticket, False)
    for ticket_id in sorted({t for t, _, _ in result.card_copies}):  # earlier copies of their cards: the name too
        await casework.redraw_copies(context, ticket_id, [(chat, message) for t, chat, message in result.card_copies if t == ticket_id])
    # cases the erased staff member held: redrawn (the open ones back in the queue). Each
    # edit counts against Telegram's 20 per minute in a group, and the update is confirmed
    # only when this is done: the cases they released and the latest finished ones only.
    released = set(result.released_tickets)
    finished = sorted(set(result.assigned_cards) - released, reverse=True)
    if len(finished) > MAX_FINISHED_REDRAWS:
        log.info(
            "erasure of staff member %s: %d older finished cases keep their card as drawn (only the %d latest are redrawn)",
            result.user_id, len(finished) - MAX_FINISHED_REDRAWS, MAX_FINISHED_REDRAWS,
        )
    for ticket_id in [t for t in result.assigned_cards if t in released] + finished[:MAX_FINISHED_REDRAWS]:
        await casework.refresh_card(context, ticket_id)
        if ticket_id in result.released_tickets:
            async with unit_of_work(desk.sessions) as session:
                ticket = await service.get_ticket(session, ticket_id)
            await casework.tell_staff(context, ticket, casework.srender(context, "privacy/staff_ticket_released.html", number=ticket_id))
    for chat_id, message_id, ad_id, withdrawn in result.mod_cards:
        try:
            await context.bot.edit_message_text(
                casework.srender(context, "privacy/staff_ad_withdrawn.html", number=ad_id, withdrawn=withdrawn),
                chat_id=chat_id, message_id=message_id, reply_markup=None,
            )
        except TelegramError as exc:
            log.info("could not update moderation card %s/%s: %s", chat_id, message_id, exc)
    for report_id in result.report_cards:
        await ads.redraw_report_card(context, report_id)
    for feedback_id in result.feedback_cards:  # the cards showed their name and text (or the staff member's)
        async with unit_of_work(desk.sessions) as session:
            item = await feedback_service.view(session, feedback_id)
        if item is not None:
            await feedback.refresh_card(context, item)  # logs (and survives) a card Telegram no longer has
    if result.kb_changed:
        await refresh_kb(context)


# ------------------------------------------------------------------ staff: on a user's request


async def _admin_or_refuse(update: Update, context: HelpdeskContext) -> bool:
    user, chat = update.effective_user, update.effective_chat
    if user is not None and chat is not None and await is_desk_admin(context, user.id, chat.id):
        return True
    log.warning("refused a personal-data action by %s in %s", user.id if user else None, chat.id if chat else None)
    refusal = casework.slabel(context, "toast_not_admin")
    if update.callback_query is not None:
        await toast(update.callback_query, refusal)
    elif update.effective_message is not None:
        await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message=refusal))
    return False


async def _target(update: Update, context: HelpdeskContext, command: str) -> Any:
    args = list(context.args or [])
    message = update.effective_message
    if len(args) != 1:
        await message.reply_html(casework.srender(context, "privacy/staff_usage.html", command=command))  # type: ignore[union-attr]
        return None
    async with unit_of_work(context.desk.sessions) as session:
        user = await privacy.find_person(session, args[0])
    if user is None or user.id < 0:
        await message.reply_html(casework.srender(context, "privacy/staff_unknown_user.html", ref=args[0][:64]))  # type: ignore[union-attr]
        return None
    return user


def _thread(update: Update) -> int | None:
    message = update.effective_message
    return message.message_thread_id if message is not None and message.is_topic_message else None


async def cmd_userdata(update: Update, context: HelpdeskContext) -> None:
    """/userdata <id|@username> (admins): the user's data file, into this chat."""
    if not await _admin_or_refuse(update, context):
        return
    user = await _target(update, context, "userdata")
    if user is None:
        return
    with offloaded():
        async with unit_of_work(context.desk.sessions, read_only=True) as session:
            doc = await privacy.export_user(session, user_id=user.id, now=context.now())
    log.info("admin %s exported the personal data of user %s", update.effective_user.id, user.id)  # type: ignore[union-attr]
    await context.bot.send_document(
        update.effective_chat.id,  # type: ignore[union-attr]
        _document(doc, user.id, context.now().date().isoformat()),  # type: ignore[arg-type]
        caption=casework.srender(context, "privacy/staff_userdata.html", name=user.display_name, user_id=user.id),
        message_thread_id=_thread(update),
    )


async def cmd_forget(update: Update, context: HelpdeskContext) -> None:
    """/forget <id|@username> (admins): erase a user's data, after a confirmation."""
    if not await _admin_or_refuse(update, context):
        return
    user = await _target(update, context, "forget")
    if user is None:
        return
    buttons = InlineKeyboardMarkup([[
        InlineKeyboardButton(casework.slabel(context, "btn_forget_user"), callback_data=f"pv:forget:{user.id}"),
        InlineKeyboardButton(casework.slabel(context, "btn_spare_user"), callback_data=f"pv:spare:{user.id}"),
    ]])
    await update.effective_message.reply_html(  # type: ignore[union-attr]
        casework.srender(context, "privacy/staff_forget_confirm.html", name=user.display_name, user_id=user.id), reply_markup=buttons
    )


async def on_staff_button(update: Update, context: HelpdeskContext) -> None:
    """``pv:forget:<user>`` / ``pv:spare:<user>``: checked again on the press."""
    query = update.callback_query
    if not await _admin_or_refuse(update, context):
        return
    _, action, number = query.data.split(":")  # type: ignore[union-attr]
    user_id = int(number)
    if action == "spare":
        await toast(query)  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        return
    async with unit_of_work(context.desk.sessions) as session:
        result = await privacy.erase_user(  # type: ignore[union-attr]
            session, user_id=user_id, now=context.now(), by=query.from_user.id, policy=context.desk.policy  # type: ignore[union-attr]
        )
    if result is None:  # erased already, or never known
        await toast(query, casework.slabel(context, "toast_expired"))  # type: ignore[arg-type]
        return
    log.info("admin %s erased the personal data of user %s", query.from_user.id, user_id)  # type: ignore[union-attr]
    await toast(query, casework.slabel(context, "toast_done"))  # type: ignore[arg-type]
    await _edit(query, casework.srender(
        context, "privacy/staff_forgotten.html", user_id=user_id, by=query.from_user.first_name,  # type: ignore[union-attr]
        tickets=len(result.closed_tickets), tombstone=result.tombstone,
    ))
    await finish_erasure(context, result)
