"""Telegram side of a ticket: the staff card and topic, relays both ways, notices.

Shared by the user handlers, the staff handlers and the SLA job. Database work goes
through :mod:`escalation.service` in short units of work; sending happens outside them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import regex
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, ReplyParameters
from telegram.error import BadRequest, ChatMigrated, TelegramError, TimedOut

from bot import card_retries
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.models import User
from bot.telegram_html import utf16_length
from escalation import service
from escalation.models import OPEN_STATUSES, Direction, Ticket, TicketMessage, TicketStatus
from handlers import delivery, notices
from handlers.ui import drop_stale_copy, guarded, not_modified, short

log = logging.getLogger(__name__)
S = TicketStatus


def staff_locale(context: HelpdeskContext) -> str:
    return context.desk.templates.default


def srender(context: HelpdeskContext, name: str, /, **values: Any) -> str:
    return context.desk.templates.render(name, staff_locale(context), **values)


def slabel(context: HelpdeskContext, key: str, /, **values: Any) -> str:
    return context.desk.templates.label(staff_locale(context), key, **values)


def erased_name(context: HelpdeskContext, user: User | None) -> str | None:
    """"(erased user)" for the anonymous row an erased person's history moved to, else
    None. Staff never see that row's id: it is internal, names nobody and no command
    takes it (``/forget`` confirms with the person's Telegram id, as they knew it)."""
    return slabel(context, "erased_user") if user is not None and user.deleted_at is not None else None


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


_GRAPHEME = regex.compile(r"\X")


def _fit(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units (Telegram's
    unit) without cutting a grapheme (an emoji with its skin tone or ZWJ sequence, a
    flag, a letter and its accents)."""
    used = end = 0
    for match in _GRAPHEME.finditer(text):
        size = utf16_length(match.group())
        if used + size > limit:
            break
        used, end = used + size, match.end()
    if end == 0 and text:  # a single grapheme longer than the limit: cut inside it
        while end < len(text) and utf16_length(text[: end + 1]) <= limit:
            end += 1
    return end


def clip(text: str, limit: int) -> str:
    """Plain text cut to ``limit`` UTF-16 units (before any escaping; line breaks kept)."""
    if utf16_length(text) <= limit:
        return text
    return text[: _fit(text, max(limit - 1, 1))].rstrip() + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Plain text in pieces of at most ``limit`` UTF-16 units, cut at line breaks or
    spaces where possible, never inside a grapheme. Split first, escape each piece
    after: never split HTML."""
    pieces: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        end = max(_fit(rest, limit), 1)
        cut = rest.rfind("\n", 0, end)
        if cut < end // 2:
            cut = rest.rfind(" ", 0, end)
        if cut < end // 2:
            cut = end
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
        erased_name=erased_name(context, info.user),
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


async def post_alert(
    context: HelpdeskContext, ticket_id: int, *, moved: bool = False, force: bool = False, again: bool = False, raise_unsent: bool = False
) -> Ticket | None:
    """Put a new (or transferred) ticket in front of staff: a topic and a card.

    Posting is claimed first (``tickets.card_claimed_at``), so that of this handler and
    the sweep (:func:`repair`) only one posts a ticket's first card; ``force``: a fresh
    card although one was claimed before (the lazy repost when a relay finds no card);
    ``again``: the sweep posts a card whose last post timed out (:mod:`bot.card_retries`).
    A card posted after a timeout says so (:func:`posted_again`). None when the card was
    not posted (claimed by another, Telegram refused it, or it timed out); with
    ``raise_unsent``, a failure that means surely not posted and worth posting again (the
    Bot API out of reach, Telegram's flood limit: the claim is released) is raised
    instead, for a relay that waits for its card."""
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        if again:
            claimed = await claim_card_again(context, session, service.TICKET_CARDS, ticket_id)
        else:
            claimed = await service.claim_card(session, ticket_id=ticket_id, now=context.now(), force=force or moved)
        if not claimed:
            log.info("the card of ticket #%s is posted by another sender (or was): not posted again", ticket_id)
            return None
        ticket = await service.get_ticket(session, ticket_id)
        info = await service.card_info(session, ticket)
    chat_id = context.department_chat(ticket.department)
    try:
        topic_id = await _ticket_topic(context, ticket, info, chat_id)
        async with unit_of_work(desk.sessions) as session:
            await service.attach_card(session, ticket_id=ticket.id, chat_id=chat_id, topic_id=topic_id, card_message_id=None)
        text, ticket = await card_text(context, ticket.id)
        text = posted_again(context, text, ticket.card_timeouts)
        markup = card_keyboard(context, ticket)
        card = await delivery.readable(context.bot.send_message(chat_id, text, message_thread_id=topic_id, reply_markup=markup))
    except ChatMigrated as exc:
        if moved:
            log.error("the staff chat of ticket #%s moved twice in a row; the alert is not posted", ticket.id)
            return None
        await delivery.chat_moved(context, chat_id, exc.new_chat_id)
        return await post_alert(context, ticket_id, moved=True, raise_unsent=raise_unsent)  # the settings now name the new chat
    except TimedOut as exc:  # or unreadable (delivery.Unreadable); it may have arrived: the sweep posts it again after the grace
        await card_timed_out(context, service.TICKET_CARDS, ticket.id, f"ticket #{ticket.id}", exc)
        return None
    except TelegramError as exc:
        log.error("could not post the alert of ticket #%s to %s: %s", ticket.id, chat_id, exc)
        async with unit_of_work(desk.sessions) as session:  # surely not there: the sweep tries again
            await service.release_card_claim(session, ticket_id=ticket.id)
        if raise_unsent and delivery.failure(exc).again:
            raise
        return None
    context.desk.cards_shown[(chat_id, card.message_id)] = (text, markup.to_json() if markup else "")
    async with unit_of_work(desk.sessions) as session:
        await service.attach_card(session, ticket_id=ticket.id, chat_id=chat_id, topic_id=topic_id, card_message_id=card.message_id)
    return ticket


async def _ticket_topic(context: HelpdeskContext, ticket: Ticket, info: service.CardInfo, chat_id: int) -> int | None:
    """The ticket's topic in ``chat_id`` when that chat is a forum: the one it has there
    (e.g. from a failed try), else a new one. None without topics (or when Telegram
    refused the topic: the card goes to the chat). ChatMigrated is raised."""
    topic_id = ticket.topic_id if ticket.staff_chat_id == chat_id else None
    if not context.desk.staff_chats.get(chat_id) or topic_id is not None:
        return topic_id
    name = context.desk.templates.render_plain(
        "staff/topic_name.j2", staff_locale(context),
        number=ticket.id, name=erased_name(context, info.user) or info.user.display_name, category=category_label(context, ticket.category),
    )
    try:
        topic = await delivery.readable(context.bot.create_forum_topic(chat_id, short(name, 128)))
    except ChatMigrated:
        raise
    except TelegramError as exc:
        log.warning("could not create a topic for ticket #%s: %s", ticket.id, exc)
        return None
    return topic.message_thread_id


# ------------------------------------------------------------------ /repost: a card posted again by hand


class Reposted(StrEnum):
    POSTED = "posted"
    NOT_FOUND = "not_found"  # no such item (or one staff never see: a draft)
    FINISHED = "finished"  # the item needs no card (any more): ``status`` says why
    REFUSED = "refused"  # Telegram refused the card: surely not there
    TIMED_OUT = "timed_out"  # no answer: it may have arrived


@dataclass(frozen=True)
class Repost:
    """What became of a card staff asked for again (staff/repost.html words it)."""

    outcome: Reposted
    status: str | None = None  # the item's status (finished: why it has no card; ads: which card)
    message: Message | None = None  # the new card
    error: str | None = None  # Telegram's refusal


async def repost(
    context: HelpdeskContext,
    kind: card_retries.CardKind,
    item_id: int,
    claimed: card_retries.Reposting,
    place: tuple[int, int | None],
    text: str,
    markup: InlineKeyboardMarkup | None,
    *,
    attach: Callable[[AsyncSession, Message], Awaitable[Any]],
    release: Callable[[AsyncSession], Awaitable[Any]],
    send: Callable[[], Awaitable[Message]] | None = None,
) -> Repost:
    """Post a card that staff asked for again (claimed with
    :func:`bot.card_retries.claim_repost`) at ``place`` (chat, topic) (``send``: how, when
    it is more than the text and buttons: an ad's card with its photos,
    :func:`handlers.ads.send_mod_card`), and record it as the tracked card (``attach``): later edits
    and matched replies go to it; the card known before loses its buttons (a press on it
    would still act once, authorised against the database). Telegram's refusal releases a
    claim that no known card stands for (``release``: the sweep posts it); a timeout is
    counted like the sweep's (:func:`bot.card_retries.timed_out`: while no card is known,
    the sweep posts it again); a staff chat that moved is followed (its cards are posted
    again there: :func:`handlers.delivery.chat_moved`)."""
    desk = context.desk
    chat_id, topic = place
    what = f"{kind.model.__tablename__} {item_id}"
    try:
        if send is not None:
            card = await send()
        else:
            card = await delivery.readable(context.bot.send_message(chat_id, text, message_thread_id=topic, reply_markup=markup))
    except ChatMigrated as exc:
        async with unit_of_work(desk.sessions) as session:
            await release(session)
        await delivery.chat_moved(context, chat_id, exc.new_chat_id)
        return Repost(Reposted.REFUSED, error=exc.message)
    except TimedOut as exc:  # or an answer the bot cannot read (delivery.Unreadable)
        async with unit_of_work(desk.sessions) as session:
            await card_retries.timed_out(session, kind, item_id)
        log.warning("Telegram did not confirm the card of %s posted again (/repost); it may have arrived: %s", what, exc)
        return Repost(Reposted.TIMED_OUT)
    except TelegramError as exc:
        log.warning("Telegram refused the card of %s posted again (/repost): %s", what, exc)
        async with unit_of_work(desk.sessions) as session:
            await release(session)
        return Repost(Reposted.REFUSED, error=exc.message)
    async with unit_of_work(desk.sessions) as session:
        await attach(session, card)
    log.info("the card of %s was posted again by hand (/repost): message %s in %s", what, card.message_id, chat_id)
    if claimed.chat_id is not None and claimed.message_id is not None and (claimed.chat_id, claimed.message_id) != (chat_id, card.message_id):
        try:
            await context.bot.edit_message_reply_markup(claimed.chat_id, claimed.message_id, reply_markup=None)
        except TelegramError as exc:  # gone, too old, or without buttons already
            log.info("could not take the buttons off the earlier card of %s: %s", what, exc)
    return Repost(Reposted.POSTED, message=card)


async def post_album(
    context: HelpdeskContext, chat_id: int, topic: int | None, photos: Sequence[str], what: str, *, under: int | None = None
) -> list[Message]:
    """Photos before a card (an ad's; ``under``: after it, as a reply to that message),
    best effort: a refused album does not keep the card back. ChatMigrated is raised."""
    reply = ReplyParameters(under, allow_sending_without_reply=True) if under is not None else None
    try:
        if len(photos) == 1:
            return [await delivery.readable(context.bot.send_photo(chat_id, photos[0], message_thread_id=topic, reply_parameters=reply))]
        if photos:
            media = [InputMediaPhoto(p) for p in photos]
            return list(await delivery.readable(context.bot.send_media_group(chat_id, media, message_thread_id=topic, reply_parameters=reply)))
    except ChatMigrated:
        raise
    except TelegramError as exc:  # a timeout or an answer the bot cannot read too: not confirmed
        log.warning("could not post the photos of %s (the card follows): %s", what, exc)
    return []


async def drop_album(context: HelpdeskContext, album: Sequence[Message], what: str) -> None:
    """The photos of a card Telegram refused: else every retry would leave one more album."""
    for photo in album:
        try:
            await context.bot.delete_message(photo.chat_id, photo.message_id)
        except TelegramError as gone:
            log.warning("could not take down photo %s of %s (its card was refused): %s", photo.message_id, what, gone)


async def repost_card(context: HelpdeskContext, ticket_id: int) -> Repost:
    """/repost ticket N: the ticket's card posted again in its place (its topic in a
    forum; a topic is made when it has none), tracked from now on."""
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        claimed = await card_retries.claim_repost(session, service.TICKET_CARDS, ticket_id, now=context.now(), needed=service.REPOSTABLE)
        try:
            ticket = await service.get_ticket(session, ticket_id)
        except service.TicketError:
            return Repost(Reposted.NOT_FOUND)
        if claimed is None:
            return Repost(Reposted.FINISHED, status=ticket.status)
        info = await service.card_info(session, ticket)
    chat_id = context.department_chat(ticket.department)
    try:
        topic_id = await _ticket_topic(context, ticket, info, chat_id)
    except ChatMigrated:
        topic_id = None  # the card's own send follows the move
    known = ticket.card_message_id if ticket.staff_chat_id == chat_id else None
    if (ticket.staff_chat_id, ticket.topic_id) != (chat_id, topic_id):
        async with unit_of_work(desk.sessions) as session:  # a topic made now is kept, whatever becomes of the card
            await service.attach_card(session, ticket_id=ticket_id, chat_id=chat_id, topic_id=topic_id, card_message_id=known)
    text, ticket = await card_text(context, ticket_id)
    text = posted_again(context, text, ticket.card_timeouts)
    markup = card_keyboard(context, ticket)

    async def attach(session: AsyncSession, card: Message) -> None:
        await service.attach_card(session, ticket_id=ticket_id, chat_id=chat_id, topic_id=topic_id, card_message_id=card.message_id)

    async def release(session: AsyncSession) -> None:
        await service.release_card_claim(session, ticket_id=ticket_id)

    done = await repost(context, service.TICKET_CARDS, ticket_id, claimed, (chat_id, topic_id), text, markup, attach=attach, release=release)
    done = Repost(done.outcome, ticket.status, done.message, done.error)
    if done.message is not None:
        desk.cards_shown[(chat_id, done.message.message_id)] = (text, markup.to_json() if markup else "")
    return done


#: the buttons of a ticket's card (``t:<action>:<ticket>``; not e.g. the learning offer's)
CARD_ACTIONS = frozenset({"claim", "release", "resolve", "spam", "reopen"})


def card_number(context: HelpdeskContext, message: Any) -> int | None:
    """The ticket whose card ``message`` is, by the buttons the bot put on it
    (``t:<action>:<ticket>``): a copy of a card whose id the bot may not know (its first
    post timed out but arrived). Only the bot's own messages; None for anything else
    (another message, a card whose buttons are gone)."""
    sender = getattr(message, "from_user", None)
    markup = getattr(message, "reply_markup", None)
    if sender is None or sender.id != context.bot.id or markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            parts = button.callback_data.split(":") if isinstance(button.callback_data, str) else []
            if len(parts) == 3 and parts[0] == "t" and parts[1] in CARD_ACTIONS and parts[2].isascii() and parts[2].isdigit():
                return int(parts[2])
    return None


async def drop_stale_card(context: HelpdeskContext, query: Any, ticket: Ticket) -> None:
    """A button pressed on a copy of the ticket's card that is not the tracked one (a
    first post that timed out but arrived, or an old client still showing a card known
    before): the copy is kept as an earlier card of the case (a reply to it still reaches
    the case once its buttons are gone) and loses its buttons
    (:func:`handlers.ui.drop_stale_copy`)."""
    pressed = query.message
    if (
        pressed is not None and ticket.staff_chat_id is not None and ticket.card_message_id is not None
        and pressed.chat.id == ticket.staff_chat_id and pressed.message_id != ticket.card_message_id
        and card_number(context, pressed) == ticket.id
    ):
        async with unit_of_work(context.desk.sessions) as session:
            await service.keep_card_copy(session, ticket_id=ticket.id, chat_id=pressed.chat.id, message_id=pressed.message_id)
    await drop_stale_copy(query, ticket.staff_chat_id, ticket.card_message_id)


async def redraw_copy(context: HelpdeskContext, ticket_id: int, chat_id: int, message_id: int) -> None:
    """An earlier copy of a ticket's card (``chat_id``, ``message_id``) drawn again as the
    case is now, without buttons (after an erasure: it showed the user's name). Telegram's
    refusal is raised (not "not modified": the copy shows it already)."""
    try:
        text, _ = await card_text(context, ticket_id)
    except service.TicketError:
        return
    try:
        await context.bot.edit_message_text(text, chat_id=chat_id, message_id=message_id, reply_markup=None)
    except BadRequest as exc:
        if not not_modified(exc):
            raise


async def refresh_card(context: HelpdeskContext, ticket_id: int) -> None:
    """Edit the staff card in place to show the ticket's current state: the tracked card
    (``tickets.card_message_id``), whichever message a button was pressed on. Best
    effort: Telegram's refusal is logged (:func:`draw_card` raises it)."""
    try:
        await draw_card(context, ticket_id)
    except TelegramError as exc:
        log.warning("could not update the card of #%s: %s", ticket_id, exc)


async def draw_card(context: HelpdeskContext, ticket_id: int) -> None:
    """:func:`refresh_card`, raising Telegram's refusal (not "not modified": the card
    shows it already). A chat Telegram moved is recorded: the card stayed in the old
    chat, a fresh one comes when needed."""
    try:
        text, ticket = await card_text(context, ticket_id)
    except service.TicketError:
        return
    if ticket.staff_chat_id is None or ticket.card_message_id is None:
        return
    text = posted_again(context, text, ticket.card_timeouts)
    markup = card_keyboard(context, ticket)
    key = (ticket.staff_chat_id, ticket.card_message_id)
    shown = (text, markup.to_json() if markup else "")
    if context.desk.cards_shown.get(key) == shown:
        return  # Telegram would answer "message is not modified"
    try:
        await context.bot.edit_message_text(text, chat_id=ticket.staff_chat_id, message_id=ticket.card_message_id, reply_markup=markup)
        context.desk.cards_shown[key] = shown
    except ChatMigrated as exc:  # the card stayed in the old chat; a fresh one comes when needed
        await delivery.chat_moved(context, ticket.staff_chat_id, exc.new_chat_id)
    except BadRequest as exc:
        if not not_modified(exc):
            raise


def posted_again(context: HelpdeskContext, text: str, timeouts: int) -> str:
    """A card's text, with a line saying it was posted again when an earlier post of it
    timed out (``timeouts``): the first copy may be in the chat too, and this one is
    the card the bot keeps up to date. Kept on every redraw of the card."""
    return f"{text}\n\n{srender(context, 'staff/posted_again.html')}" if timeouts else text


async def tell_staff(context: HelpdeskContext, ticket: Ticket, html: str, *, general: bool = False) -> Message | None:
    """A line in the ticket's topic, or as a reply to its card. ``general``: in a forum,
    in the chat's General topic instead, where everybody looks (e.g. unclaimed alerts).
    None when the ticket has no place in a staff chat, or the line did not arrive."""
    if ticket.staff_chat_id is None:
        return None
    try:
        return await post_in_place(context, ticket, html, general=general)
    except TelegramError as exc:
        log.warning("could not post to the staff chat about #%s: %s", ticket.id, exc)
        return None


async def post_in_place(
    context: HelpdeskContext, ticket: Ticket, html: str, *, general: bool = False, markup: InlineKeyboardMarkup | None = None
) -> Message:
    """Post ``html`` where the ticket is now (as read by the caller): its topic, or as a
    reply to its card; ``general``: in a forum, the chat's General topic. A ticket that
    never reached a staff chat: its department's chat. A chat Telegram moved is followed
    (there, the old card and topic are gone: the chat itself). TelegramError is raised."""
    chat_id = ticket.staff_chat_id
    if chat_id is None:
        chat_id, thread, reply = context.department_chat(ticket.department), None, None
    else:
        thread = None if general else ticket.topic_id
        card = ticket.card_message_id if ticket.topic_id is None else None
        reply = ReplyParameters(card, allow_sending_without_reply=True) if card else None

    async def send(to: int) -> Message:
        moved = to != chat_id  # in a chat that just got a new id, the old card and topic are gone
        return await context.bot.send_message(
            to, html, message_thread_id=None if moved else thread, reply_parameters=None if moved else reply, reply_markup=markup
        )

    return await delivery.to_staff_chat(context, chat_id, send)


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


async def claim_relay(context: HelpdeskContext, message_id: int) -> bool:
    """Only one sender (the handler or a sweep) sends a stored relay."""
    async with unit_of_work(context.desk.sessions) as session:
        if await service.claim_relay(session, message_id=message_id, now=context.now()):
            return True
    log.info("message %s of a ticket is not sent now: another sender has it (or had it), or it waits behind an earlier one", message_id)
    return False


async def relay_to_staff(
    context: HelpdeskContext, relay: service.Relay, source: Message | None, user_name: str
) -> None:
    """Copy what the user sent into the ticket's place in the staff chat (long texts in
    several messages). A failure is recorded on the message and the user is told; a
    timeout is recorded as maybe delivered and not sent again; the Bot API out of reach
    or Telegram's flood limit with nothing sent (for the message, or for the card it
    needs first) leaves it queued for the sweep (:func:`_relay_unsent`); a staff chat that
    became a supergroup gets the message (and a fresh card) under its new id. The send is claimed first (pending ->
    sending), so it happens once; ``source`` None: copied from the user's chat by the
    stored message id (the sweep's repair). ``relay.changed``: the card is redrawn after,
    sent or not (one queued, or waiting behind a queued one, changed the case all the
    same)."""
    if await claim_relay(context, relay.message.id):
        await _send_to_staff(context, relay, source, user_name)
    if relay.changed:
        await refresh_card(context, relay.ticket.id)


async def _send_to_staff(context: HelpdeskContext, relay: service.Relay, source: Message | None, user_name: str, *, moved: bool = False) -> None:
    ticket = relay.ticket
    if ticket.staff_chat_id is None or ticket.card_message_id is None:
        try:
            posted = await post_alert(context, ticket.id, force=True, raise_unsent=True)
        except TelegramError as exc:  # the Bot API out of reach, the flood limit: neither the card nor the message is there
            await _relay_unsent(context, ticket, relay.message, delivery.failure(exc))
            return
        if posted is None:
            await _relay_failed(context, relay, delivery.Failure("the staff chat could not be reached"))
            return
        async with unit_of_work(context.desk.sessions) as session:  # the alert set the card and topic
            ticket = await service.get_ticket(session, ticket.id)
    if relay.reopened:
        await set_topic_open(context, ticket, True)
    reply = ReplyParameters(ticket.card_message_id, allow_sending_without_reply=True) if ticket.topic_id is None else None  # type: ignore[arg-type]
    text = relay.message.text
    first: Message | None = None
    timed_out: TimedOut | None = None
    try:
        if relay.message.kind == "text":
            render = lambda piece: srender(context, "staff/relay_in.html", name=user_name, number=ticket.id, text=piece)  # noqa: E731
            for piece in split_text(text, text_budget(render, TEXT_LIMIT)):
                try:
                    sent = await context.bot.send_message(
                        ticket.staff_chat_id, render(piece), message_thread_id=ticket.topic_id, reply_parameters=reply  # type: ignore[arg-type]
                    )
                except TimedOut as exc:  # it may have arrived: never sent twice; the rest goes on
                    timed_out = exc
                    continue
                first = first or sent
        else:
            render = lambda piece: srender(context, "staff/relay_caption.html", name=user_name, number=ticket.id, text=piece)  # noqa: E731
            try:
                first = await context.bot.copy_message(  # type: ignore[assignment]
                    ticket.staff_chat_id,  # type: ignore[arg-type]
                    source.chat_id if source is not None else ticket.user_id,
                    source.message_id if source is not None else relay.message.user_message_id,  # type: ignore[arg-type]
                    caption=render(clip(text, text_budget(render, CAPTION_LIMIT))),
                    message_thread_id=ticket.topic_id,
                    reply_parameters=reply,
                )
            except TimedOut as exc:
                timed_out = exc
    except ChatMigrated as exc:
        if moved or first is not None:
            log.error("the staff chat of #%s moved while a message was half relayed", ticket.id)
            await _relay_failed(context, relay, delivery.failure(exc))
            return
        await delivery.chat_moved(context, ticket.staff_chat_id, exc.new_chat_id)  # type: ignore[arg-type]
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.get_ticket(session, ticket.id)
        await _send_to_staff(context, service.Relay(ticket, relay.message, relay.reopened, relay.changed), source, user_name, moved=True)
        return
    except TelegramError as exc:
        fail = delivery.failure(exc)
        if fail.again and first is None and timed_out is None:  # nothing of it went out: surely not there
            await _relay_unsent(context, ticket, relay.message, fail)
            return
        log.error("could not relay a message of #%s to staff: %s", ticket.id, exc)
        await _relay_failed(context, relay, fail)
        return
    if timed_out is not None:
        log.warning("relaying a message of #%s to staff timed out; it may have arrived, not sent again", ticket.id)
        async with unit_of_work(context.desk.sessions) as session:
            await service.delivery_failed(session, message_id=relay.message.id, error=delivery.failure(timed_out).reason, blocked=False, now=context.now(), maybe=True)
    if first is not None:
        async with unit_of_work(context.desk.sessions) as session:
            await service.set_staff_copy(session, message_id=relay.message.id, chat_id=ticket.staff_chat_id, staff_message_id=first.message_id)  # type: ignore[arg-type]


async def _relay_unsent(context: HelpdeskContext, ticket: Ticket, message: TicketMessage, fail: delivery.Failure) -> None:
    """Nothing of a relay was sent and Telegram surely did not take it (the Bot API out of
    reach, its flood limit after every retry: ``fail.again``): it goes back to the queue
    (pending) and the sweep sends it, claimed like any relay (never twice), once
    ``fail.retry_after`` is over and the repair grace has passed. Nobody is told it
    failed: the user is not asked to send it again, staff get no "not delivered"."""
    to = "staff" if message.direction == Direction.IN else "the user"
    log.warning("message %s of #%s was not sent to %s, it stays queued for the sweep: %s", message.id, ticket.id, to, fail.reason)
    async with unit_of_work(context.desk.sessions) as session:
        await service.release_relay(session, message_id=message.id, retry_at=context.now() + timedelta(seconds=fail.retry_after))


async def _relay_failed(context: HelpdeskContext, relay: service.Relay, fail: delivery.Failure) -> None:
    """A user's message did not reach staff: recorded, and the user asked to send it again.
    One that may have arrived (a 502, a connection cut mid-answer: ``fail.maybe``) is
    recorded maybe delivered, like a timeout, and the user is not asked to send it again."""
    async with unit_of_work(context.desk.sessions) as session:
        await service.delivery_failed(session, message_id=relay.message.id, error=fail.reason, blocked=False, now=context.now(), maybe=fail.maybe)
        queued = None if fail.maybe else await queue_notice(context, session, relay.ticket, "ticket/not_delivered.html")
    await notices.send_all(context, [queued])


async def relay_to_user(context: HelpdeskContext, post: service.StaffPost, source: Message | None, staff_name: str) -> bool:
    """Send a staff member's message to the user. Nothing is dropped silently: a message
    that did not arrive (blocked, refused, only its first part sent) is marked so in the
    ticket and staff are told; a timeout is marked *maybe delivered* and not sent again;
    one Telegram surely did not take (the Bot API out of reach, its flood limit after
    every retry) stays queued for the sweep (:func:`_relay_unsent`). Claimed first like
    :func:`relay_to_staff`; ``source`` None: copied from the staff chat by the stored
    message id. ``post.changed``: the card is redrawn after, sent or not (one that waits
    behind a queued reply changed the case all the same). True when it was sent."""
    sent = await claim_relay(context, post.message.id) and await _send_to_user(context, post, source, staff_name)
    if post.changed:  # the card is in the staff chat: redrawn whatever became of the reply
        await refresh_card(context, post.ticket.id)
    return sent


async def _send_to_user(context: HelpdeskContext, post: service.StaffPost, source: Message | None, staff_name: str) -> bool:
    ticket = post.ticket
    locale = await user_locale(context, ticket.user_id)
    templates = context.desk.templates
    first: Message | None = None
    timed_out: TimedOut | None = None
    try:
        if post.message.kind == "text":
            render = lambda piece: templates.render("ticket/staff_reply.html", locale, staff_name=staff_name, number=ticket.id, text=piece)  # noqa: E731
            for piece in split_text(post.message.text, text_budget(render, TEXT_LIMIT)):
                try:
                    sent = await context.bot.send_message(ticket.user_id, render(piece))
                except TimedOut as exc:  # it may have arrived: never sent twice; the rest goes on
                    timed_out = exc
                    continue
                first = first or sent
        else:
            render = lambda piece: templates.render("ticket/staff_caption.html", locale, staff_name=staff_name, number=ticket.id, text=piece)  # noqa: E731
            caption = render(clip(post.message.text, text_budget(render, CAPTION_LIMIT))) if post.message.kind != "other" else None
            try:
                first = await context.bot.copy_message(  # type: ignore[assignment]
                    ticket.user_id,
                    source.chat_id if source is not None else post.message.staff_chat_id,  # type: ignore[arg-type]
                    source.message_id if source is not None else post.message.staff_message_id,  # type: ignore[arg-type]
                    caption=caption,
                )
            except TimedOut as exc:
                timed_out = exc
    except TelegramError as exc:
        fail = delivery.failure(exc)
        if fail.again and first is None and timed_out is None:  # nothing of it went out: surely not there
            await _relay_unsent(context, ticket, post.message, fail)
            return False
        if first is not None:
            fail = delivery.Failure(f"only the first part arrived: {fail.reason}", blocked=fail.blocked, flood=fail.flood)
        log.warning("a staff reply of #%s was not delivered: %s", ticket.id, fail.reason)
        await _staff_reply_failed(context, post, fail)
        return False
    if first is not None:
        async with unit_of_work(context.desk.sessions) as session:
            await service.set_user_copy(session, message_id=post.message.id, user_message_id=first.message_id)
    if timed_out is not None:
        log.warning("a staff reply of #%s timed out; it may have arrived, not sent again", ticket.id)
        await _staff_reply_failed(context, post, delivery.failure(timed_out))
        return False
    return True


async def _staff_reply_failed(context: HelpdeskContext, post: service.StaffPost, fail: delivery.Failure) -> None:
    """A staff reply did not reach the user (or may not have): recorded, and the line
    that tells staff, with the text, queued in the outbox in the same transaction
    (:func:`handlers.notices.queue_for_ticket`: the ticket's topic, or under its card), so
    that a crash, Telegram's flood limit or an outage in the staff chat does not lose it."""
    values = delivery.describe({"number": post.ticket.id, "text": short(post.message.text or f"({post.message.kind})", 300)}, fail)
    html = srender(context, "staff/not_delivered.html", **values)
    async with unit_of_work(context.desk.sessions) as session:
        ticket = await service.delivery_failed(
            session, message_id=post.message.id, error=fail.reason, blocked=fail.blocked, now=context.now(), maybe=fail.maybe
        )
        line = await notices.queue_for_ticket(context, session, ticket or post.ticket, kind="not_delivered", text=html)
    await notices.send_all(context, [line])


async def user_locale(context: HelpdeskContext, user_id: int) -> str:
    cached = context.desk.accounts.get(user_id)
    if cached is None:
        return context.desk.templates.default
    return context.desk.templates.locale_of(cached[0].locale, cached[0].language_code)


async def queue_notice(
    context: HelpdeskContext, session, ticket: Ticket, template: str, markup: Any = None, *, kind: str | None = None,  # type: ignore[no-untyped-def]
    person_id: int | None = None, **values: Any,
) -> notices.Queued | None:
    """A notice about the case, rendered in the user's language and queued in the unit
    of work of the transition that causes it (``session``); sent after the commit
    (:func:`handlers.notices.send_all`: a reply to it targets the case; a user who blocked
    the bot is recorded on the ticket, staff are told once, the case goes on; a timeout
    is not sent again), or by the sweep after a crash. ``person_id``: a staff member its
    text names: the notice, and its copy in the case's history, are erased with them."""
    locale = await user_locale(context, ticket.user_id)
    text = context.desk.templates.render(template, locale, number=ticket.id, **values)
    kind = kind or "ticket_" + template.rsplit("/", 1)[-1].split(".", 1)[0]
    return await notices.queue(
        context, session, chat_id=ticket.user_id, kind=kind, ref=f"ticket:{ticket.id}", text=text, markup=markup, person_id=person_id
    )


async def queue_claimed(context: HelpdeskContext, session, ticket: Ticket, *, staff_id: int, staff_name: str) -> notices.Queued | None:  # type: ignore[no-untyped-def]
    """"<name> from support is on your case": it names the staff member, so it is erased
    with them (``/forget``), sent or not, and so is its copy in the case's history."""
    return await queue_notice(context, session, ticket, "ticket/claimed.html", staff_name=staff_name, person_id=staff_id)


async def queue_resolved(context: HelpdeskContext, session, result: service.Resolution, *, auto: bool = False) -> list[notices.Queued]:  # type: ignore[no-untyped-def]
    """The user hears that the case is solved, and gets the satisfaction survey: both
    queued in the resolution's unit of work; :func:`after_resolve` sends them."""
    ticket = result.ticket
    locale = await user_locale(context, ticket.user_id)
    labels = context.desk.templates
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(labels.label(locale, "btn_still_need_help"), callback_data=f"tk:reopen:{ticket.id}")]])
    queued = [
        await queue_notice(
            context, session, ticket, "ticket/resolved.html", markup, kind="ticket_resolved", auto=auto,
            reopen_days=context.desk.settings.support.reopen_days,
        )
    ]
    if result.survey:
        stars = [InlineKeyboardButton("⭐" * n if n <= 1 else f"{n}⭐", callback_data=f"r:{ticket.id}:{n}") for n in range(1, 6)]
        queued.append(await queue_notice(context, session, ticket, "ticket/csat.html", InlineKeyboardMarkup([stars]), kind="csat"))
    return queued


async def after_resolve(context: HelpdeskContext, result: service.Resolution, queued: list[notices.Queued]) -> None:
    """After the commit of a resolution: the notices :func:`queue_resolved` queued go to
    the user (the survey's message id is kept for the rating), the card and topic follow."""
    ticket = result.ticket
    await notices.send_all(context, queued)
    await refresh_card(context, ticket.id)
    await set_topic_open(context, ticket, False)


def repair_grace(context: HelpdeskContext) -> timedelta:
    """How old an unsent card or relay must be before the sweep sends it: two sweeps and
    at least a minute, so that the handler that is sending it right now goes first."""
    return timedelta(seconds=max(60, 2 * context.desk.settings.sla.sweep_seconds))


async def claim_card_again(context: HelpdeskContext, session: AsyncSession, kind: card_retries.CardKind, item_id: int) -> bool:
    """The sweep's claim to post again a card whose last post timed out at least the
    repair grace ago (:func:`bot.card_retries.claim_again`): True for exactly one sender."""
    now = context.now()
    return await card_retries.claim_again(session, kind, item_id, now=now, before=now - repair_grace(context)) is not None


async def card_timed_out(context: HelpdeskContext, kind: card_retries.CardKind, item_id: int, what: str, exc: TimedOut) -> None:
    """A card's post timed out, or Telegram's answer could not be read
    (:class:`handlers.delivery.Unreadable`): it may have arrived. Counted
    (:func:`bot.card_retries.timed_out`; the sweep posts it again after the repair grace,
    a bounded number of times) and logged. ``what``: e.g. "ticket #12"; "/repost <what>"
    posts it again by hand."""
    async with unit_of_work(context.desk.sessions) as session:
        count = await card_retries.timed_out(session, kind, item_id)
    log.error(
        "Telegram did not confirm the card of %s (%s of %s tries); it may have arrived (/repost %s posts it again): %s",
        what, count, card_retries.ATTEMPTS, what.replace("#", ""), exc,
        exc_info=exc if isinstance(exc, delivery.Unreadable) else None,  # what PTB could not read
    )


def stuck_grace(context: HelpdeskContext) -> timedelta:
    """How long a claimed relay may stay unfinished before it counts as interrupted
    (``telegram.stuck_send_minutes``; at least the repair grace)."""
    return max(timedelta(minutes=context.desk.settings.telegram.stuck_send_minutes), repair_grace(context))


async def repair(context: HelpdeskContext) -> tuple[int, int, int]:
    """Send what the bot stored but never sent because it stopped in between (a crash
    after a transaction committed, before its messages went out): the staff card of a
    ticket that never got one, then relays stored as pending (or put back: one that found
    the Bot API out of reach or Telegram's flood limit, once its retry_after is over),
    oldest first, each case's in order, with what the handler's relay does around the
    send: the card redrawn, and for a user's message the case's topic opened again first
    when it may be closed (:func:`_topic_may_be_closed`). Each send
    is claimed first, so a repeated or racing sweep sends nothing twice. A card whose
    post timed out is posted again (a bounded number of times, then staff are told:
    :mod:`bot.card_retries`). Then relays claimed but never finished (the bot stopped
    mid-send: :func:`report_interrupted`).
    Returns (cards posted, relays sent, interrupted relays reported)."""
    desk = context.desk
    before = context.now() - repair_grace(context)
    async with unit_of_work(desk.sessions) as session:
        ticket_ids = await service.tickets_without_card(session, before=before)
        timed_out = await card_retries.due_again(session, service.TICKET_CARDS, before=before)
    cards = 0
    for ticket_id in ticket_ids:
        log.warning("ticket #%s has no staff card (the bot stopped before posting it): posting it now", ticket_id)
        if await guarded(f"posting the card of ticket #{ticket_id}", post_alert(context, ticket_id)) is not None:
            cards += 1
    for ticket_id in timed_out:
        log.warning("posting the card of ticket #%s timed out, so it may be missing: posting it again", ticket_id)
        if await guarded(f"posting the card of ticket #{ticket_id} again", post_alert(context, ticket_id, again=True)) is not None:
            cards += 1
    await report_lost_cards(context, service.TICKET_CARDS, _lost_ticket_card)
    async with unit_of_work(desk.sessions) as session:
        pending = await service.pending_relays(session, before=before, now=context.now())
    relays = 0
    for item in pending:  # what the handler's relay did around the send is not stored: done again (see below)
        log.warning(
            "message %s of ticket #%s was stored but never sent (the bot stopped, the Bot API was out of reach, or Telegram's flood limit): "
            "sending it now", item.message.id, item.ticket.id,
        )
        if item.message.direction == Direction.IN:
            relay = service.Relay(item.ticket, item.message, reopened=_topic_may_be_closed(item.ticket), changed=True)
            send = relay_to_staff(context, relay, None, item.sender_name)
        else:
            post = service.StaffPost(item.ticket, item.message, is_note=False, changed=True)
            send = relay_to_user(context, post, None, item.sender_name)
        await guarded(f"sending message {item.message.id} of ticket #{item.ticket.id}", send)
        relays += 1
    return cards, relays, await report_interrupted(context)


def _topic_may_be_closed(ticket: Ticket) -> bool:
    """The topic of an open case the bot closed once (resolved or closed, then reopened:
    ``reopen_count``): the reopen's own call to open it again may have failed (the outage
    that kept the user's message back), and Telegram refuses a message in a closed topic.
    A relay the sweep sends opens it first (Telegram answers "not modified" when open)."""
    return ticket.topic_id is not None and ticket.status in OPEN_STATUSES and ticket.reopen_count > 0


async def report_interrupted(context: HelpdeskContext) -> int:
    """Relays claimed longer than :func:`stuck_grace` ago whose outcome was never
    recorded: the sender died between the claim and the result, so each may or may not
    have arrived. Sends are at most once: none is sent again; each is marked *maybe
    delivered* and, in the same transaction, a line to staff is queued in the outbox
    (:func:`handlers.notices.queue_for_ticket`: the ticket's topic, or under its card),
    with the text, so that nothing anyone wrote is dropped silently. Marked atomically: of
    racing sweeps one reports it. The line is sent after the commit; one a crash left,
    or refused for now (the flood limit, the Bot API out of reach), is sent by a later
    sweep; one that timed out is not sent again; one Telegram refused for good (400, 403)
    is recorded failed and logged once, not tried again (the relay stays recorded as maybe
    delivered, with its ticket event). Returns how many were reported."""
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        stuck = await service.stuck_relays(session, before=context.now() - stuck_grace(context))
    lines: list[notices.Queued | None] = []
    for item in stuck:
        async with unit_of_work(desk.sessions) as session:
            ticket = await service.give_up_stuck_relay(session, message_id=item.message.id, now=context.now())
            if ticket is None:
                continue  # finished meanwhile, or reported by another sweep
            to_user = item.message.direction != Direction.IN
            text = short(item.message.text or f"({item.message.kind})", 3000)
            html = srender(context, "staff/send_interrupted.html", to_user=to_user, number=ticket.id, name=item.sender_name, text=text)
            lines.append(await notices.queue_for_ticket(
                context, session, ticket, kind="send_interrupted", text=html, person_id=item.message.sender_id if to_user else None
            ))
        log.error(
            "message %s of ticket #%s was being sent when the bot stopped; it may have arrived: marked maybe delivered, staff told",
            item.message.id, ticket.id,
        )
    await notices.send_all(context, lines)
    return len(lines)


async def _lost_ticket_card(context: HelpdeskContext, session: AsyncSession, ticket_id: int) -> notices.Queued | None:
    ticket = await service.get_ticket(session, ticket_id)
    html = srender(context, "staff/card_lost.html", kind="ticket", number=ticket.id, attempts=card_retries.ATTEMPTS)
    # the General topic of a forum, where everybody looks
    return await notices.queue_for_ticket(context, session, ticket, kind="card_lost", text=html, general=True)


#: ``queue_line(context, session, id)``: renders the line about a lost card and queues it
#: in the outbox in ``session`` (:mod:`handlers.notices`), where staff see it.
LineQueuer = Callable[[HelpdeskContext, AsyncSession, int], Awaitable[notices.Queued | None]]


async def report_lost_cards(context: HelpdeskContext, kind: card_retries.CardKind, queue_line: LineQueuer) -> int:
    """Cards of which every post timed out (:data:`bot.card_retries.ATTEMPTS`), still
    needed: staff get one short line each. Claimed (``card_timeouts``: TOLD; of racing
    sweeps one tells) and the line queued in the outbox by ``queue_line`` in the same
    transaction, then sent after the commit: one a crash left, or refused for now (the
    flood limit, the Bot API out of reach), is sent by a later sweep; one that timed out
    is not sent again (one line, never two); one Telegram refused for good (400, 403: e.g.
    the bot was removed from the chat) is recorded failed and logged once, never tried
    again. Returns how many were queued."""
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        lost = await card_retries.given_up(session, kind)
    lines: list[notices.Queued | None] = []
    for item_id in lost:
        async with unit_of_work(desk.sessions) as session:
            if not await card_retries.claim_telling(session, kind, item_id):
                continue
            lines.append(await queue_line(context, session, item_id))
        log.error("every post of the card of %s %s timed out; it may be missing: staff are told (/repost posts it again)", kind.model.__tablename__, item_id)
    await notices.send_all(context, lines)
    return len(lines)
