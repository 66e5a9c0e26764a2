"""Telegram side of a ticket: the staff card and topic, relays both ways, notices.

Shared by the user handlers, the staff handlers and the SLA job. Database work goes
through :mod:`escalation.service` in short units of work; sending happens outside them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from escalation import service
from escalation.models import Ticket, TicketStatus
from handlers.ui import short

log = logging.getLogger(__name__)
S = TicketStatus


def staff_locale(context: HelpdeskContext) -> str:
    return context.desk.templates.default


def srender(context: HelpdeskContext, name: str, /, **values: Any) -> str:
    return context.desk.templates.render(name, staff_locale(context), **values)


def slabel(context: HelpdeskContext, key: str, /, **values: Any) -> str:
    return context.desk.templates.label(staff_locale(context), key, **values)


def category_label(context: HelpdeskContext, category: str) -> str:
    cat = context.desk.settings.support.category(category)
    return cat.label if cat else category


def local_time(context: HelpdeskContext, moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(context.desk.settings.tz).strftime("%d %b %H:%M")


def human_minutes(minutes: float) -> str:
    """15 min, 1 hour, 4 hours, 2 days."""
    minutes = abs(minutes)
    if minutes < 60:
        return f"{int(round(minutes))} min"
    if minutes < 48 * 60:
        hours = round(minutes / 60)
        return "1 hour" if hours == 1 else f"{hours} hours"
    return f"{round(minutes / 1440)} days"


TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


def clip(text: str, limit: int) -> str:
    """Plain text cut to ``limit`` characters (before any escaping; line breaks kept)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Plain text in pieces of at most ``limit`` characters, cut at line breaks or spaces
    where possible. Split first, escape each piece after: never split HTML."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [p for p in pieces if p] or [""]


def text_budget(render: Any, limit: int) -> int:
    """How much plain text fits beside a template's own words."""
    from bot.telegram_html import visible_length

    return max(limit - visible_length(render("")) - 8, 100)


def card_keyboard(context: HelpdeskContext, ticket: Ticket) -> InlineKeyboardMarkup | None:
    n = ticket.id
    rows: list[list[InlineKeyboardButton]] = []
    if ticket.status == S.NEW:
        rows.append([InlineKeyboardButton(slabel(context, "btn_claim"), callback_data=f"t:claim:{n}")])
    if ticket.status in (S.CLAIMED, S.WAITING):
        rows.append([InlineKeyboardButton(slabel(context, "btn_release"), callback_data=f"t:release:{n}")])
    if ticket.status in (S.NEW, S.CLAIMED, S.WAITING):
        rows.append(
            [
                InlineKeyboardButton(slabel(context, "btn_resolve"), callback_data=f"t:resolve:{n}"),
                InlineKeyboardButton(slabel(context, "btn_spam"), callback_data=f"t:spam:{n}"),
            ]
        )
    if ticket.status in (S.RESOLVED, S.CLOSED):
        rows.append([InlineKeyboardButton(slabel(context, "btn_reopen"), callback_data=f"t:reopen:{n}")])
    return InlineKeyboardMarkup(rows) if rows else None


async def card_text(context: HelpdeskContext, ticket_id: int) -> tuple[str, Ticket]:
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        ticket = await service.get_ticket(session, ticket_id)
        info = await service.card_info(session, ticket)
    offered = []
    for item in info.offered:
        entry = desk.kb.get(item.get("entry_id"))
        if entry is not None:
            offered.append(f"{entry.title} ({float(item.get('score', 0)):.2f})")
    events = []
    for e in info.events:
        events.append(f"{local_time(context, e.at)} {e.note}")
    text = srender(
        context,
        "staff/card.html",
        t=ticket,
        user=info.user,
        earlier=info.earlier_tickets,
        ads=info.ads,
        strikes=info.active_strikes,
        category=category_label(context, ticket.category),
        status=slabel(context, f"staff_status_{ticket.status}"),
        offered=offered,
        escalated=local_time(context, ticket.escalated_at),
        first_due=local_time(context, ticket.first_due_at) if ticket.first_due_at else None,
        assignee=info.assignee_name,
        events=events,
        forum=ticket.topic_id is not None,
    )
    return text, ticket


async def post_alert(context: HelpdeskContext, ticket_id: int) -> Ticket | None:
    """Put a new (or transferred) ticket in front of staff: a topic and a card."""
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        ticket = await service.get_ticket(session, ticket_id)
        info = await service.card_info(session, ticket)
    chat_id = context.department_chat(ticket.department)
    topic_id = ticket.topic_id if ticket.staff_chat_id == chat_id else None  # a topic from a failed try
    if desk.staff_chats.get(chat_id) and topic_id is None:
        name = desk.templates.render_plain(
            "staff/topic_name.j2", staff_locale(context),
            number=ticket.id, name=info.user.display_name, category=category_label(context, ticket.category),
        )
        try:
            topic = await context.bot.create_forum_topic(chat_id, short(name, 128))
            topic_id = topic.message_thread_id
        except TelegramError as exc:
            log.warning("could not create a topic for ticket #%s: %s", ticket.id, exc)
    async with unit_of_work(desk.sessions) as session:
        await service.attach_card(session, ticket_id=ticket.id, chat_id=chat_id, topic_id=topic_id, card_message_id=None)
    text, ticket = await card_text(context, ticket.id)
    markup = card_keyboard(context, ticket)
    try:
        card = await context.bot.send_message(chat_id, text, message_thread_id=topic_id, reply_markup=markup)
    except TelegramError as exc:
        log.error("could not post the alert of ticket #%s to %s: %s", ticket.id, chat_id, exc)
        return None
    context.desk.cards_shown[(chat_id, card.message_id)] = (text, markup.to_json() if markup else "")
    async with unit_of_work(desk.sessions) as session:
        await service.attach_card(session, ticket_id=ticket.id, chat_id=chat_id, topic_id=topic_id, card_message_id=card.message_id)
    return ticket


async def refresh_card(context: HelpdeskContext, ticket_id: int) -> None:
    """Edit the staff card in place to show the ticket's current state."""
    try:
        text, ticket = await card_text(context, ticket_id)
    except service.TicketError:
        return
    if ticket.staff_chat_id is None or ticket.card_message_id is None:
        return
    markup = card_keyboard(context, ticket)
    key = (ticket.staff_chat_id, ticket.card_message_id)
    shown = (text, markup.to_json() if markup else "")
    if context.desk.cards_shown.get(key) == shown:
        return  # Telegram would answer "message is not modified"
    try:
        await context.bot.edit_message_text(text, chat_id=ticket.staff_chat_id, message_id=ticket.card_message_id, reply_markup=markup)
        context.desk.cards_shown[key] = shown
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            log.warning("could not update the card of #%s: %s", ticket_id, exc)
    except TelegramError as exc:
        log.warning("could not update the card of #%s: %s", ticket_id, exc)


async def tell_staff(context: HelpdeskContext, ticket: Ticket, html: str, *, general: bool = False) -> Message | None:
    """A line in the ticket's topic, or as a reply to its card. ``general``: in a forum,
    in the chat's General topic instead, where everybody looks (e.g. unclaimed alerts)."""
    if ticket.staff_chat_id is None:
        return None
    reply = ReplyParameters(ticket.card_message_id, allow_sending_without_reply=True) if ticket.card_message_id and ticket.topic_id is None else None
    thread = None if general else ticket.topic_id
    try:
        return await context.bot.send_message(ticket.staff_chat_id, html, message_thread_id=thread, reply_parameters=reply)
    except TelegramError as exc:
        log.warning("could not post to the staff chat about #%s: %s", ticket.id, exc)
        return None


async def set_topic_open(context: HelpdeskContext, ticket: Ticket, is_open: bool) -> None:
    if ticket.staff_chat_id is None or ticket.topic_id is None:
        return
    try:
        if is_open:
            await context.bot.reopen_forum_topic(ticket.staff_chat_id, ticket.topic_id)
        else:
            await context.bot.close_forum_topic(ticket.staff_chat_id, ticket.topic_id)
    except TelegramError as exc:  # already in that state, or no rights: not worth failing
        log.info("topic of #%s not %s: %s", ticket.id, "reopened" if is_open else "closed", exc)


async def relay_to_staff(context: HelpdeskContext, relay: service.Relay, source: Message, user_name: str) -> None:
    """Copy what the user sent into the ticket's place in the staff chat (long texts in
    several messages); a failure is recorded on the message and the user is told."""
    ticket = relay.ticket
    if ticket.staff_chat_id is None or ticket.card_message_id is None:
        if await post_alert(context, ticket.id) is None:
            await _relay_failed(context, relay, "the staff chat could not be reached")
            return
        async with unit_of_work(context.desk.sessions) as session:  # the alert set the card and topic
            ticket = await service.get_ticket(session, ticket.id)
    if relay.reopened:
        await set_topic_open(context, ticket, True)
    reply = ReplyParameters(ticket.card_message_id, allow_sending_without_reply=True) if ticket.topic_id is None else None  # type: ignore[arg-type]
    text = relay.message.text
    try:
        if relay.message.kind == "text":
            render = lambda piece: srender(context, "staff/relay_in.html", name=user_name, number=ticket.id, text=piece)  # noqa: E731
            first = None
            for piece in split_text(text, text_budget(render, TEXT_LIMIT)):
                sent = await context.bot.send_message(
                    ticket.staff_chat_id, render(piece), message_thread_id=ticket.topic_id, reply_parameters=reply  # type: ignore[arg-type]
                )
                first = first or sent
            staff_message_id = first.message_id  # type: ignore[union-attr]
        else:
            render = lambda piece: srender(context, "staff/relay_caption.html", name=user_name, number=ticket.id, text=piece)  # noqa: E731
            copied = await context.bot.copy_message(
                ticket.staff_chat_id,  # type: ignore[arg-type]
                source.chat_id,
                source.message_id,
                caption=render(clip(text, text_budget(render, CAPTION_LIMIT))),
                message_thread_id=ticket.topic_id,
                reply_parameters=reply,
            )
            staff_message_id = copied.message_id
    except TelegramError as exc:
        log.error("could not relay a message of #%s to staff: %s", ticket.id, exc)
        await _relay_failed(context, relay, str(exc))
        return
    async with unit_of_work(context.desk.sessions) as session:
        await service.set_staff_copy(session, message_id=relay.message.id, chat_id=ticket.staff_chat_id, staff_message_id=staff_message_id)  # type: ignore[arg-type]
    if relay.changed:
        await refresh_card(context, ticket.id)


async def _relay_failed(context: HelpdeskContext, relay: service.Relay, error: str) -> None:
    async with unit_of_work(context.desk.sessions) as session:
        await service.delivery_failed(session, message_id=relay.message.id, error=error, blocked=False, now=context.now())
    await notify_user(context, relay.ticket, "ticket/not_delivered.html")


async def relay_to_user(context: HelpdeskContext, post: service.StaffPost, source: Message, staff_name: str) -> bool:
    """Send a staff member's message to the user; record a failure on the ticket."""
    ticket = post.ticket
    locale = await user_locale(context, ticket.user_id)
    templates = context.desk.templates
    try:
        if post.message.kind == "text":
            render = lambda piece: templates.render("ticket/staff_reply.html", locale, staff_name=staff_name, number=ticket.id, text=piece)  # noqa: E731
            first = None
            for piece in split_text(post.message.text, text_budget(render, TEXT_LIMIT)):
                sent = await context.bot.send_message(ticket.user_id, render(piece))
                first = first or sent
            user_message_id = first.message_id  # type: ignore[union-attr]
        else:
            render = lambda piece: templates.render("ticket/staff_caption.html", locale, staff_name=staff_name, number=ticket.id, text=piece)  # noqa: E731
            caption = render(clip(post.message.text, text_budget(render, CAPTION_LIMIT))) if post.message.kind != "other" else None
            copied = await context.bot.copy_message(ticket.user_id, source.chat_id, source.message_id, caption=caption)
            user_message_id = copied.message_id
    except TelegramError as exc:
        blocked = isinstance(exc, Forbidden)
        async with unit_of_work(context.desk.sessions) as session:
            await service.delivery_failed(session, message_id=post.message.id, error=str(exc), blocked=blocked, now=context.now())
        await tell_staff(context, ticket, srender(context, "staff/not_delivered.html", number=ticket.id, blocked=blocked, error=str(exc)))
        return False
    async with unit_of_work(context.desk.sessions) as session:
        await service.set_user_copy(session, message_id=post.message.id, user_message_id=user_message_id)
    return True


async def user_locale(context: HelpdeskContext, user_id: int) -> str:
    cached = context.desk.accounts.get(user_id)
    if cached is None:
        return context.desk.templates.default
    return context.desk.templates.locale_of(cached[0].locale, cached[0].language_code)


async def notify_user(context: HelpdeskContext, ticket: Ticket, template: str, markup: Any = None, **values: Any) -> Message | None:
    """A notice about the case to the user; a user who blocked the bot is recorded."""
    locale = await user_locale(context, ticket.user_id)
    try:
        sent = await context.bot.send_message(
            ticket.user_id, context.desk.templates.render(template, locale, number=ticket.id, **values), reply_markup=markup
        )
    except Forbidden as exc:
        log.info("user of #%s has blocked the bot: %s", ticket.id, exc)
        await tell_staff(context, ticket, srender(context, "staff/not_delivered.html", number=ticket.id, blocked=True, error=str(exc)))
    except TelegramError as exc:
        log.warning("could not tell the user of #%s: %s", ticket.id, exc)
    else:
        async with unit_of_work(context.desk.sessions) as session:
            await service.record_bot_message(session, ticket_id=ticket.id, text=sent.text or "", user_message_id=sent.message_id, now=context.now())
        return sent
    return None


async def after_resolve(context: HelpdeskContext, result: service.Resolution, *, auto: bool = False) -> None:
    """The user hears that the case is solved, and gets the satisfaction survey."""
    ticket = result.ticket
    locale = await user_locale(context, ticket.user_id)
    labels = context.desk.templates
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(labels.label(locale, "btn_still_need_help"), callback_data=f"tk:reopen:{ticket.id}")]])
    await notify_user(context, ticket, "ticket/resolved.html", markup, auto=auto, reopen_days=context.desk.settings.support.reopen_days)
    if result.survey:
        stars = [InlineKeyboardButton("⭐" * n if n <= 1 else f"{n}⭐", callback_data=f"r:{ticket.id}:{n}") for n in range(1, 6)]
        survey = await notify_user(context, ticket, "ticket/csat.html", InlineKeyboardMarkup([stars]))
        if survey is not None:
            async with unit_of_work(context.desk.sessions) as session:
                await service.set_survey_message(session, ticket_id=ticket.id, message_id=survey.message_id)
    await refresh_card(context, ticket.id)
    await set_topic_open(context, ticket, False)
