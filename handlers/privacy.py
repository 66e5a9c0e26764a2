"""Personal data: /mydata and /deleteme for users, /userdata and /forget for admins.

The rules (what is exported, what an erasure keeps) live in :mod:`bot.privacy`; this
module only talks to Telegram. Erasure always needs a confirmation press, and every
press is checked again (the user's own data only; staff: an admin, in a staff chat).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import TelegramError

from bot import privacy, redraws
from bot.context import HelpdeskContext
from bot.db import offloaded, unit_of_work
from bot.redraws import RedrawKind
from escalation import service
from handlers import ads, casework, notices
from handlers import redraws as redraw_handlers
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
        owed = await owe(context, session, result) if result is not None else Owed()
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
    await finish_erasure(context, result, owed)
    try:
        await context.bot.send_message(user_id, context.render("privacy/goodbye.html"), reply_markup=main_menu(context))
    except TelegramError as exc:
        log.info("could not say goodbye to %s: %s", user_id, exc)


async def _edit(query: Any, text: str) -> None:
    try:
        await query.edit_message_text(text, reply_markup=None)
    except TelegramError as exc:
        log.info("could not edit the confirmation: %s", exc)


#: Photos deleted by the erasure's own update (an album); the sweep deletes the others,
#: :data:`handlers.redraws.PER_SWEEP` a minute: each call counts against Telegram's 20 a
#: minute in a group, and updates wait while the erasure's waits.
PHOTOS_AT_ONCE = 10


@dataclass(frozen=True)
class Owed:
    """The Telegram side of an erasure, recorded in its transaction (:func:`owe`): the
    redraws (:mod:`bot.redraws`: cards, card copies, topic names; the photos to delete),
    the lines to staff (the outbox) and the topics to close once their line is in."""

    redraws: list[int] = field(default_factory=list)
    photos: list[int] = field(default_factory=list)  # redraws deleting their ads' photos
    lines: list[notices.Queued | None] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)


async def owe(context: HelpdeskContext, session: AsyncSession, result: privacy.Erasure) -> Owed:
    """Record, in the erasure's transaction, everything it owes the staff chat: each card
    and topic that showed the person (redrawn without them; every earlier copy of a card
    too), the photos of their ads (deleted), the line to staff for each case it closed
    or released (the outbox: posted once, where the case is when it is sent), the topics
    of the closed cases. Done right after the commit (:func:`finish_erasure`; photos
    beyond :data:`PHOTOS_AT_ONCE` by the sweep); what a crash or a refusal leaves, the
    sweep does."""
    owed = Owed()
    now = context.now()

    async def redraw(kind: RedrawKind, ref: int, **where: int | None) -> None:
        owed.redraws.append(await redraws.add(session, kind, ref, now=now, **where))

    for ticket_id in result.tickets:  # cards and topic names showed the user's name
        ticket = await service.get_ticket(session, ticket_id)
        await redraw(RedrawKind.TICKET_CARD, ticket_id)
        if ticket.topic_id is not None:
            await redraw(RedrawKind.TOPIC_NAME, ticket_id)
        if ticket_id in result.closed_tickets:
            line = await notices.queue_for_ticket(
                context, session, ticket, kind="erasure_closed", text=casework.srender(context, "privacy/staff_ticket_closed.html", number=ticket_id),
            )
            owed.lines.append(line)
            if ticket.topic_id is not None:
                owed.closes.append(await redraws.add(
                    session, RedrawKind.TOPIC_CLOSE, ticket_id, now=now, after_notice_id=line.id if line is not None else None
                ))
    for ticket_id, chat_id, message_id in result.card_copies:  # earlier copies of their cards: the name too
        await redraw(RedrawKind.CARD_COPY, ticket_id, chat_id=chat_id, message_id=message_id)
    # cases the erased staff member held: redrawn (the open ones back in the queue). Each
    # edit counts against Telegram's 20 per minute in a group: the cases they released and
    # the latest finished ones only.
    # (the same cap as their answered feedback and decided ads and reports,
    # :data:`bot.privacy.LATEST_REDRAWN`)
    latest = privacy.LATEST_REDRAWN
    released = set(result.released_tickets)
    finished = sorted(set(result.assigned_cards) - released, reverse=True)
    if len(finished) > latest:
        log.info(
            "erasure of staff member %s: %d older finished cases keep their card as drawn (only the %d latest are redrawn)",
            result.user_id, len(finished) - latest, latest,
        )
    redrawn = [t for t in result.assigned_cards if t in released] + finished[:latest]
    for ticket_id in redrawn:
        await redraw(RedrawKind.TICKET_CARD, ticket_id)
        if ticket_id in released:
            ticket = await service.get_ticket(session, ticket_id)
            owed.lines.append(await notices.queue_for_ticket(
                context, session, ticket, kind="erasure_released", text=casework.srender(context, "privacy/staff_ticket_released.html", number=ticket_id),
            ))
    for ticket_id, chat_id, message_id in await service.card_copies(session, ticket_ids=redrawn):  # their earlier copies named them too
        await redraw(RedrawKind.CARD_COPY, ticket_id, chat_id=chat_id, message_id=message_id)
    for chat_id, message_id, ad_id, withdrawn in result.mod_cards:
        await redraw(RedrawKind.AD_WITHDRAWN if withdrawn else RedrawKind.AD_ERASED, ad_id, chat_id=chat_id, message_id=message_id)
    for ad_id, chat_id, message_id in result.ad_photos:  # deleted (or marked erased, when too old to delete)
        owed.photos.append(await redraws.add(session, RedrawKind.AD_PHOTO, ad_id, now=now, chat_id=chat_id, message_id=message_id))
    for ad_id in result.decided_ads:  # decided by the erased staff member: "Approved by <name>"
        await redraw(RedrawKind.AD_DECIDED, ad_id)
    for report_id in result.report_cards:
        await redraw(RedrawKind.REPORT_CARD, report_id)
    for feedback_id in result.feedback_cards:  # the cards showed their name and text (or the staff member's)
        await redraw(RedrawKind.FEEDBACK_CARD, feedback_id)
    return owed


async def finish_erasure(context: HelpdeskContext, result: privacy.Erasure, owed: Owed) -> None:
    """The Telegram side of an erasure, after its commit: the public channel first, then
    what :func:`owe` recorded (each marked done when it succeeded; what fails, or is cut
    short by a restart, the sweep does later: :func:`handlers.redraws.repair`, and the
    outbox's repair for the lines)."""
    desk = context.desk
    desk.accounts.pop(result.user_id, None)
    if desk.pending is not None:  # the index of pending_inputs: their rows are gone
        desk.pending = {key for key in desk.pending if key[1] != result.user_id}
    # first the public channel (the post ids stay recorded until the post is gone: what
    # fails here, or is cut short by a restart, the sweep removes later)
    for ad_id in result.unpublished:
        await ads.unpublish(context, ad_id)
    await redraw_handlers.run(context, owed.redraws)
    await notices.send_all(context, owed.lines)
    await redraw_handlers.run(context, owed.closes)  # a topic closed only once its line is in
    await redraw_handlers.run(context, owed.photos[:PHOTOS_AT_ONCE])
    if len(owed.photos) > PHOTOS_AT_ONCE:
        log.info("erasure of %s: %d more photos in the staff chat are deleted by the sweep", result.user_id, len(owed.photos) - PHOTOS_AT_ONCE)
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
        owed = await owe(context, session, result) if result is not None else Owed()
    if result is None:  # erased already, or never known
        await toast(query, casework.slabel(context, "toast_expired"))  # type: ignore[arg-type]
        return
    log.info("admin %s erased the personal data of user %s", query.from_user.id, user_id)  # type: ignore[union-attr]
    await toast(query, casework.slabel(context, "toast_done"))  # type: ignore[arg-type]
    await _edit(query, casework.srender(
        context, "privacy/staff_forgotten.html", user_id=user_id, by=query.from_user.first_name,  # type: ignore[union-attr]
        tickets=len(result.closed_tickets), tombstone=result.tombstone,
    ))
    await finish_erasure(context, result, owed)
