"""The staff chat: ticket cards and their buttons, relays to users, staff commands.

Every action checks, on every press or command, that it comes from a staff chat and
from a staff member (:mod:`handlers.staffauth`); anyone else is refused and logged.
"""

from __future__ import annotations

import logging

from markupsafe import Markup

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, TelegramError

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from escalation import service
from escalation.models import Direction, SendState, TicketStatus
from escalation.service import SlaAction, TicketError
from handlers import ads, casework, delivery, feedback, notices, redraws
from handlers.casework import slabel, srender
from handlers.jobs import refresh_kb
from handlers.staffauth import is_admin, is_staff, remember_staff
from handlers.tickets import message_kind
from handlers.ui import guarded, not_modified, set_markup, short, toast
from bot.telegram_html import visible_length
from kb import service as kb_service

log = logging.getLogger(__name__)
S = TicketStatus

ERRORS = {
    "not_found": "There is no ticket #{number}.",
    "bad_transition": "Ticket #{number} is {status}: that is not possible now.",
    "not_assignee": "Only the assignee (or an admin) can release ticket #{number}.",
    "unknown_staff": "I don't know {username} yet: they must write in this chat once first.",
    "unknown_department": "There is no department {department!r}. Known: {known}.",
    "same_department": "Ticket #{number} is already with {department}.",
    "unknown_entry": "There is no FAQ entry {entry_id!r}.",
}


def _error_text(context: HelpdeskContext, exc: TicketError) -> str:
    template = ERRORS.get(exc.code, "That did not work ({code}).")
    values = {
        "number": exc.number if exc.number is not None else "?",
        "status": slabel(context, f"staff_status_{exc.status}") if exc.status else "?",
        "code": exc.code,
        "known": ", ".join(context.desk.settings.support.departments),
        **exc.details,
    }
    return srender(context, "staff/error.html", message=template.format(**values))


async def _staff_or_refuse(update: Update, context: HelpdeskContext) -> bool:
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None:
        return False
    if await is_staff(context, user.id, chat.id):
        await remember_staff(context, user)
        return True
    log.warning("refused a staff action by non-staff user %s in chat %s", user.id, chat.id)
    if update.callback_query is not None:
        await toast(update.callback_query, slabel(context, "toast_not_staff"))
    elif update.effective_message is not None:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message=slabel(context, "toast_not_staff")))
    return False


staff_or_refuse = _staff_or_refuse  # for the other staff-chat modules (handlers/kbedit.py)


async def _in_this_chat(update: Update, context: HelpdeskContext, ticket_id: int) -> bool:
    """A ticket is worked on from its department's chat only (admins: anywhere)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return False
    if user.id in context.desk.settings.staff.admin_ids:
        return True
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.get_ticket(session, ticket_id)
    except TicketError:
        return True  # "no such ticket" is for the action itself to say
    home = ticket.staff_chat_id or context.department_chat(ticket.department)
    if home == chat.id:
        return True
    text = srender(context, "staff/error.html", message=f"Ticket #{ticket_id} belongs to another department's chat.")
    if update.callback_query is not None:
        await toast(update.callback_query, f"Ticket #{ticket_id} belongs to another department's chat.")
    elif update.effective_message is not None:
        await update.effective_message.reply_html(text)
    log.warning("refused: %s acted on ticket %s from chat %s", user.id, ticket_id, chat.id)
    return False


def departments_of(context: HelpdeskContext, chat_id: int) -> list[str]:
    return [name for name in context.desk.settings.support.departments if context.department_chat(name) == chat_id]


def _where(message: Message) -> tuple[int | None, int | None]:
    thread = message.message_thread_id if message.is_topic_message else None
    reply = message.reply_to_message.message_id if message.reply_to_message else None
    return thread, reply


async def _ticket_here(context: HelpdeskContext, message: Message):  # type: ignore[no-untyped-def]
    thread, reply = _where(message)
    async with unit_of_work(context.desk.sessions, read_only=True) as session:
        return await service.ticket_at(
            session, chat_id=message.chat_id, thread_id=thread, reply_to=reply, card_of=casework.card_number(context, message.reply_to_message)
        )


# ------------------------------------------------------------------ messages in the staff chat


async def on_staff_message(update: Update, context: HelpdeskContext) -> None:
    """A message in a ticket's topic (forum) or a reply to its card or messages."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or user.is_bot:
        return
    from handlers.ads import take_typed_reason
    from handlers.feedback import take_staff_answer
    from handlers.kbedit import route_draft

    ticket = await _ticket_here(context, message)
    if ticket is None:
        # not for a ticket: the answer to an open /kb draft (in its thread), to a
        # moderator's "Other…" or to a feedback card; else ordinary conversation
        for route in (route_draft, take_typed_reason, take_staff_answer):
            if await route(update, context):
                break
        return
    if not await _staff_or_refuse(update, context):
        return
    text = message.text or message.caption or ""
    note = text.startswith("!")
    await post_to_ticket(update, context, ticket.id, text[1:].strip() if note else text, note=note)


async def post_to_ticket(update: Update, context: HelpdeskContext, ticket_id: int, text: str, *, note: bool) -> None:
    message: Message = update.effective_message  # type: ignore[assignment]
    user = update.effective_user
    kind, file_id = message_kind(message)
    if kind == "text" and not text.strip():
        return  # nothing to say (e.g. a bare "!")
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.get_ticket(session, ticket_id, lock=True)
            post = await service.staff_message(
                session, context.desk.policy, ticket=ticket, staff_id=user.id, kind=kind, text=text,  # type: ignore[union-attr]
                file_id=file_id, chat_id=message.chat_id, staff_message_id=message.message_id, note=note, now=context.now(),
            )
            if post.claimed:  # the first reply claims the case: the user hears who has it
                claimed = await casework.queue_claimed(context, session, post.ticket, staff_id=user.id, staff_name=user.first_name)  # type: ignore[union-attr]
    except TicketError as exc:
        await message.reply_html(_error_text(context, exc))
        return
    if post.is_note:
        return
    if post.claimed:
        await notices.send_all(context, [claimed])
    await casework.relay_to_user(context, post, message, user.first_name)  # type: ignore[union-attr]  # and redraws the card


async def on_chat_migrated(update: Update, context: HelpdeskContext) -> None:
    """Telegram's service message when a group becomes a supergroup (in the old chat:
    ``migrate_to_chat_id``; in the new one: ``migrate_from_chat_id``). For a staff chat
    the bot switches to the new id at once, before any send bounces."""
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old, new = message.chat_id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old, new = message.migrate_from_chat_id, message.chat_id
    else:
        return
    if old in context.desk.staff_chats or delivery.config_keys(context.desk.settings, old):
        await delivery.chat_moved(context, old, new)


# ------------------------------------------------------------------ card buttons


async def on_ticket_button(update: Update, context: HelpdeskContext) -> None:
    """``t:<action>:<ticket>``: Claim / Release / Resolve / Close as spam / Reopen."""
    query = update.callback_query
    _, action, number = query.data.split(":")  # type: ignore[union-attr]
    if not await _staff_or_refuse(update, context):
        return
    staff = query.from_user  # type: ignore[union-attr]
    desk = context.desk
    ticket_id = int(number)
    if not await _in_this_chat(update, context, ticket_id):
        return
    try:
        async with unit_of_work(desk.sessions) as session:
            if action == "claim":
                result = await service.claim(session, ticket_id=ticket_id, staff_id=staff.id, now=context.now())
                holder = (await service.staff_names(session, [result.ticket.assignee_id]))  # type: ignore[list-item]
                ticket = result.ticket
                if result.won:
                    queued = [await casework.queue_claimed(context, session, ticket, staff_id=staff.id, staff_name=staff.first_name)]
            elif action == "release":
                admin = await is_admin(context, staff.id, update.effective_chat.id)  # type: ignore[union-attr]
                ticket = await service.release(session, desk.policy, ticket_id=ticket_id, staff_id=staff.id, is_admin=admin, now=context.now())
            elif action == "resolve":
                resolution = await service.resolve(session, desk.policy, ticket_id=ticket_id, staff_id=staff.id, now=context.now())
                ticket = resolution.ticket
                queued = await casework.queue_resolved(context, session, resolution)
            elif action == "spam":
                ticket = await service.close_as_spam(session, ticket_id=ticket_id, staff_id=staff.id, now=context.now())
            else:  # reopen
                ticket = await service.reopen_by_staff(session, desk.policy, ticket_id=ticket_id, staff_id=staff.id, now=context.now())
                queued = [await casework.queue_notice(context, session, ticket, "ticket/reopened.html")]
    except TicketError as exc:
        await toast(query, short(_error_text(context, exc).removeprefix("⚠️ "), 190))  # type: ignore[arg-type]
        await casework.refresh_card(context, ticket_id)
        try:
            async with unit_of_work(desk.sessions, read_only=True) as session:
                current = await service.get_ticket(session, ticket_id)
        except TicketError:
            return
        await casework.drop_stale_card(context, query, current)
        return
    if action == "claim" and not result.won:
        name = holder.get(ticket.assignee_id, "Someone")  # type: ignore[arg-type]
        await toast(query, slabel(context, "toast_claimed_by", name=name))  # type: ignore[arg-type]
        await casework.drop_stale_card(context, query, ticket)
        return
    await toast(query, slabel(context, "toast_claimed" if action == "claim" else "toast_done"))  # type: ignore[arg-type]
    if action == "claim":
        await notices.send_all(context, queued)
        await casework.refresh_card(context, ticket.id)
    elif action == "resolve":
        await offer_learning(context, ticket)  # before after_resolve closes the topic
        await casework.after_resolve(context, resolution, queued)
    elif action == "reopen":
        await notices.send_all(context, queued)
        await casework.set_topic_open(context, ticket, True)
        await casework.refresh_card(context, ticket.id)
    else:
        await casework.refresh_card(context, ticket.id)
        if action == "spam":
            await casework.set_topic_open(context, ticket, False)
    await casework.drop_stale_card(context, query, ticket)


async def offer_learning(context: HelpdeskContext, ticket) -> None:  # type: ignore[no-untyped-def]
    """After a resolve: which of the entries the bot offered answered it?"""
    entries = [context.desk.kb.get(o.get("entry_id")) for o in ticket.offered]
    rows = [
        [InlineKeyboardButton(short("📚 " + e.title), callback_data=f"t:learn:{ticket.id}:{i}")]
        for i, e in enumerate(entries)
        if e is not None and ticket.question_id is not None
    ]
    if not rows:
        return
    rows.append([InlineKeyboardButton(slabel(context, "btn_no_link"), callback_data=f"t:learn:{ticket.id}:n")])
    await context.bot.send_message(
        ticket.staff_chat_id, srender(context, "staff/learn_offer.html", number=ticket.id),
        message_thread_id=ticket.topic_id, reply_markup=InlineKeyboardMarkup(rows),
    )


async def on_learn_button(update: Update, context: HelpdeskContext) -> None:
    """``t:learn:<ticket>:<index>`` or ``t:learn:<ticket>:n``."""
    query = update.callback_query
    _, _, number, pick = query.data.split(":")  # type: ignore[union-attr]
    if not await _staff_or_refuse(update, context):
        return
    if not await _in_this_chat(update, context, int(number)):
        return
    if pick == "n":
        try:
            async with unit_of_work(context.desk.sessions) as session:
                await service.get_ticket(session, int(number))
        except TicketError as exc:
            await toast(query, short(_error_text(context, exc).removeprefix("⚠️ "), 190))  # type: ignore[arg-type]
            return
        await toast(query, slabel(context, "toast_done"))  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.get_ticket(session, int(number), lock=True)
            offered = ticket.offered
            index = int(pick)
            if not 0 <= index < len(offered):
                raise TicketError("unknown_entry", ticket, entry_id=pick)
            entry_id = await service.learn(session, ticket=ticket, entry_id=offered[index]["entry_id"], staff_id=query.from_user.id, now=context.now())  # type: ignore[union-attr]
    except TicketError as exc:
        await toast(query, short(_error_text(context, exc).removeprefix("⚠️ "), 190))  # type: ignore[arg-type]
        return
    await toast(query, slabel(context, "toast_done"))  # type: ignore[arg-type]
    entry = context.desk.kb.get(entry_id)
    await query.edit_message_text(  # type: ignore[union-attr]
        srender(context, "staff/event.html", icon="📚", number=int(number), text=f"linked to “{entry.title if entry else entry_id}”, waiting for /kb review")
    )


# ------------------------------------------------------------------ commands


def _args(context: HelpdeskContext) -> list[str]:
    return list(context.args or [])


def _number(text: str) -> int | None:
    text = text.lstrip("#")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None  # "²".isdigit() too


async def cmd_queue(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        items = await service.queue(session, now=context.now(), departments=departments_of(context, chat_id))
    rows = []
    for item in items:
        t = item.ticket
        if item.due_in_minutes is None:
            sla, icon = "clock paused", "⏸"
        elif item.due_in_minutes < 0:
            sla, icon = f"overdue {casework.human_minutes(item.due_in_minutes)}", "🔴"
        else:
            sla, icon = f"due in {casework.human_minutes(item.due_in_minutes)}", "🟡" if item.due_in_minutes < 60 else "🟢"
        rows.append({
            "icon": icon, "number": t.id, "category": casework.category_label(context, t.category), "user": item.user_name,
            "status": slabel(context, f"staff_status_{t.status}"), "assignee": item.assignee_name, "sla": sla,
        })
    await update.effective_message.reply_html(srender(context, "staff/queue.html", items=rows))  # type: ignore[union-attr]


async def cmd_ticket(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    args = _args(context)
    number = _number(args[0]) if args else None
    if number is None:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message="Usage: /ticket N"))  # type: ignore[union-attr]
        return
    if not await _in_this_chat(update, context, number):
        return
    try:
        text, ticket = await casework.card_text(context, number)
    except TicketError as exc:
        await update.effective_message.reply_html(_error_text(context, exc))  # type: ignore[union-attr]
        return
    async with unit_of_work(context.desk.sessions) as session:
        messages = await service.history(session, ticket_id=number)
    arrows = {Direction.IN: "👤", Direction.OUT: "💬", Direction.NOTE: "📝", Direction.BOT: "🤖"}
    lines = [
        {"arrow": arrows.get(m.direction, "·"), "at": casework.local_time(context, m.at),
         "text": short(m.text or f"({m.kind})", 200) + _delivery_mark(context, m.delivered, m.send_state, m.error)}
        for m in messages
    ]
    # the card is our own rendered (escaped) HTML; the messages are trimmed to fit one message
    while True:
        body = srender(context, "staff/ticket.html", card=Markup(text), messages=lines)  # noqa: S704
        if visible_length(body) <= 4000 or not lines:
            break
        lines = lines[1:]
    await update.effective_message.reply_html(body)  # type: ignore[union-attr]


def _delivery_mark(context: HelpdeskContext, delivered: bool | None, state: str | None, error: str | None = None) -> str:
    if state == SendState.PENDING:
        return " " + slabel(context, "mark_not_sent_yet")
    if state == SendState.SENDING or (delivered is None and error == service.STUCK_ERROR):
        return " " + slabel(context, "mark_interrupted")
    if delivered is None:
        return " " + slabel(context, "mark_maybe_delivered")
    return "" if delivered else " " + slabel(context, "mark_not_delivered")


async def cmd_assign(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    args = _args(context)
    number = _number(args[0]) if args else None
    if number is None or len(args) < 2:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message="Usage: /assign N @username"))  # type: ignore[union-attr]
        return
    if not await _in_this_chat(update, context, number):
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket, member = await service.assign(session, context.desk.policy, ticket_id=number, username=args[1], staff_id=update.effective_user.id, now=context.now())  # type: ignore[union-attr]
            queued = await casework.queue_claimed(context, session, ticket, staff_id=member.id, staff_name=member.first_name)
    except TicketError as exc:
        await update.effective_message.reply_html(_error_text(context, exc))  # type: ignore[union-attr]
        return
    await notices.send_all(context, [queued])
    await casework.refresh_card(context, ticket.id)
    await update.effective_message.reply_html(srender(context, "staff/event.html", icon="✋", number=ticket.id, text=f"assigned to {member.first_name}"))  # type: ignore[union-attr]


async def _target(update: Update, context: HelpdeskContext, args: list[str]) -> int | None:
    """The ticket a command means: its number as the first argument, or the topic / reply it is in."""
    if args and _number(args[0]) is not None:
        return _number(args.pop(0))
    ticket = await _ticket_here(context, update.effective_message)  # type: ignore[arg-type]
    return ticket.id if ticket is not None else None


async def cmd_resolve(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    args = _args(context)
    number = await _target(update, context, args)
    entry_id = next((a.removeprefix("faq:") for a in args if a.startswith("faq:")), None)
    if number is None:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message="Usage: /resolve N [faq:entry-id] (N may be left out in a ticket's topic)"))  # type: ignore[union-attr]
        return
    if not await _in_this_chat(update, context, number):
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            resolution = await service.resolve(session, context.desk.policy, ticket_id=number, staff_id=update.effective_user.id, now=context.now(), entry_id=entry_id)  # type: ignore[union-attr]
            queued = await casework.queue_resolved(context, session, resolution)
    except TicketError as exc:
        await update.effective_message.reply_html(_error_text(context, exc))  # type: ignore[union-attr]
        return
    note = f"resolved{', linked to ' + entry_id + ' (waiting for /kb review)' if resolution.learned else ''}"
    await update.effective_message.reply_html(srender(context, "staff/event.html", icon="✅", number=number, text=note))  # type: ignore[union-attr]
    if not resolution.learned:
        await offer_learning(context, resolution.ticket)
    await casework.after_resolve(context, resolution, queued)


async def cmd_reopen(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    args = _args(context)
    number = await _target(update, context, args)
    if number is None:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message="Usage: /reopen N"))  # type: ignore[union-attr]
        return
    if not await _in_this_chat(update, context, number):
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.reopen_by_staff(session, context.desk.policy, ticket_id=number, staff_id=update.effective_user.id, now=context.now())  # type: ignore[union-attr]
            queued = await casework.queue_notice(context, session, ticket, "ticket/reopened.html")
    except TicketError as exc:
        await update.effective_message.reply_html(_error_text(context, exc))  # type: ignore[union-attr]
        return
    await notices.send_all(context, [queued])
    await casework.set_topic_open(context, ticket, True)
    await casework.refresh_card(context, ticket.id)
    await update.effective_message.reply_html(srender(context, "staff/event.html", icon="🔁", number=number, text="reopened"))  # type: ignore[union-attr]


async def cmd_note(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    ticket = await _ticket_here(context, update.effective_message)  # type: ignore[arg-type]
    text = " ".join(_args(context))
    if ticket is None or not text:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message="Use /note text in a ticket's topic, or as a reply to it."))  # type: ignore[union-attr]
        return
    await post_to_ticket(update, context, ticket.id, text, note=True)


async def cmd_canned(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    args = _args(context)
    message: Message = update.effective_message  # type: ignore[assignment]
    if not args:
        async with unit_of_work(context.desk.sessions) as session:
            replies = await service.canned_list(session)
        await message.reply_html(srender(context, "staff/canned_list.html", replies=replies))
        return
    if args[0] == "add":
        text = (message.text or "").split(maxsplit=3)
        if len(text) < 4 or not text[2].isidentifier():
            await message.reply_html(srender(context, "staff/error.html", message="Usage: /canned add name The text of the reply"))
            return
        async with unit_of_work(context.desk.sessions) as session:
            await service.canned_add(session, name=text[2][:32], text=text[3], staff_id=update.effective_user.id, now=context.now())  # type: ignore[union-attr]
        await message.reply_html(srender(context, "staff/event.html", icon="💾", number="-", text=f"saved reply {text[2]!r} stored"))
        return
    async with unit_of_work(context.desk.sessions) as session:
        reply = await service.canned_get(session, name=args[0])
    ticket = await _ticket_here(context, message)
    if reply is None or ticket is None:
        problem = f"No saved reply {args[0]!r}." if reply is None else "Use /canned name in a ticket's topic, or as a reply to it."
        await message.reply_html(srender(context, "staff/error.html", message=problem))
        return
    await post_to_ticket(update, context, ticket.id, reply.text, note=False)


async def cmd_transfer(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    args = _args(context)
    number = await _target(update, context, args)
    if number is None or not args:
        await update.effective_message.reply_html(srender(context, "staff/error.html", message="Usage: /transfer N department"))  # type: ignore[union-attr]
        return
    if not await _in_this_chat(update, context, number):
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            moved = await service.transfer(session, ticket_id=number, department=args[0], staff_id=update.effective_user.id, policy=context.desk.policy, now=context.now())  # type: ignore[union-attr]
            label = context.desk.settings.support.departments[args[0]].label or args[0]
            queued = await casework.queue_notice(context, session, moved.ticket, "ticket/transferred.html", department=label)
    except TicketError as exc:
        await update.effective_message.reply_html(_error_text(context, exc))  # type: ignore[union-attr]
        return
    if moved.old_chat is not None:
        # the old place says where the ticket went, and stops taking actions
        try:
            await context.bot.send_message(
                moved.old_chat, srender(context, "staff/event.html", icon="➡️", number=number, text=f"transferred to {label}"),
                message_thread_id=moved.old_topic,
            )
            if moved.old_card is not None:
                await context.bot.edit_message_reply_markup(moved.old_chat, moved.old_card, reply_markup=None)
            if moved.old_topic is not None:
                await context.bot.close_forum_topic(moved.old_chat, moved.old_topic)
        except TelegramError as exc:
            log.info("could not tidy the old place of ticket %s: %s", number, exc)
    posted = await casework.post_alert(context, number)
    if posted is not None:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.get_ticket(session, number)
            messages = await service.history(session, ticket_id=number, limit=50)
        lines = "\n".join(
            f"{'👤' if m.direction == Direction.IN else '💬'} {m.text or '(' + m.kind + ')'}"
            for m in messages if m.direction in (Direction.IN, Direction.OUT)
        )
        if lines:
            render = lambda piece: srender(context, "staff/event.html", icon="📜", number=number, text="history:\n" + piece)  # noqa: E731
            for piece in casework.split_text(lines, casework.text_budget(render, casework.TEXT_LIMIT)):
                await casework.tell_staff(context, ticket, render(piece))
    await notices.send_all(context, [queued])


async def review_card(context: HelpdeskContext) -> tuple[str, InlineKeyboardMarkup | None]:
    async with unit_of_work(context.desk.sessions) as session:
        pending = await kb_service.pending_phrasings(session, limit=50)
    if not pending:
        return srender(context, "staff/kb_review_empty.html"), None
    phrasing, title = pending[0]
    markup = InlineKeyboardMarkup([[
        InlineKeyboardButton(slabel(context, "btn_approve"), callback_data=f"kb:ok:{phrasing.id}"),
        InlineKeyboardButton(slabel(context, "btn_drop"), callback_data=f"kb:drop:{phrasing.id}"),
    ]])
    return srender(context, "staff/kb_review.html", text=phrasing.text, title=title, remaining=len(pending)), markup


async def on_review_button(update: Update, context: HelpdeskContext) -> None:
    """``kb:ok:<phrasing>`` / ``kb:drop:<phrasing>``."""
    query = update.callback_query
    _, verdict, pid = query.data.split(":")  # type: ignore[union-attr]
    if not await _staff_or_refuse(update, context):
        return
    async with unit_of_work(context.desk.sessions) as session:
        done = await kb_service.review_phrasing(
            session, phrasing_id=int(pid), accept=verdict == "ok", now=context.now(), actor_id=query.from_user.id  # type: ignore[union-attr]
        )
    await toast(query, slabel(context, "toast_done" if done else "toast_expired"))  # type: ignore[arg-type]
    if not done:
        return  # reviewed meanwhile, or not a pending phrasing at all: /kb review shows what is left
    if verdict == "ok":
        await refresh_kb(context)
    text, markup = await review_card(context)
    try:
        await query.edit_message_text(text, reply_markup=markup)  # type: ignore[union-attr]
    except BadRequest as exc:  # a stale or forged press on a card that already shows this
        if not not_modified(exc):
            log.info("could not update the review card: %s", exc)


REPOST_KINDS = ("ticket", "ad", "report", "feedback")


async def cmd_repost(update: Update, context: HelpdeskContext) -> None:
    """/repost <kind> <number>: the item's current card posted again in the staff chat
    (in its topic in a forum), as the normal card would go, and tracked from then on:
    for a card that a crash cut off mid-send (never posted again by the sweep), one
    given up after its timeouts, or one far up in the chat. Tickets and feedback: staff;
    ads and reports: moderators. Unknown kinds, bad numbers, items that do not exist or
    are finished get a clear answer."""
    message: Message = update.effective_message  # type: ignore[assignment]
    args = _args(context)
    kind = args[0].lower() if args else ""
    allowed = ads.moderator_or_refuse if kind in ("ad", "report") else _staff_or_refuse
    if not await allowed(update, context):
        return
    number = _number(args[1]) if len(args) > 1 else None

    async def say(outcome: str, **values: object) -> None:
        values = {"kind": kind, "number": number, "status": None, "unknown": None, "error": None, "topic": False, **values}
        await message.reply_html(srender(context, "staff/repost.html", outcome=outcome, **values))

    if kind not in REPOST_KINDS or number is None:
        await say("usage", unknown=short(args[0], 40) if args and kind not in REPOST_KINDS else None)
        return
    if kind == "ticket":
        if not await _in_this_chat(update, context, number):
            return
        done = await casework.repost_card(context, number)
    elif update.effective_chat.id != context.desk.settings.staff.chat_id:  # type: ignore[union-attr]
        await say("elsewhere")  # feedback, ads and reports have their cards in the main staff chat
        return
    elif kind == "feedback":
        done = await feedback.repost_card(context, number)
    elif kind == "ad":
        done = await ads.repost_moderation_card(context, number)
    else:
        done = await ads.repost_report_card(context, number)
    here = message.message_thread_id if message.is_topic_message else None
    card = done.message
    await say(
        done.outcome, status=done.status, error=short(done.error, 300) if done.error else None,
        topic=card is not None and card.message_thread_id is not None and card.message_thread_id != here,
    )


async def cmd_help(update: Update, context: HelpdeskContext) -> None:
    if not await _staff_or_refuse(update, context):
        return
    await update.effective_message.reply_html(srender(context, "staff/help.html"))  # type: ignore[union-attr]


# ------------------------------------------------------------------ the SLA job


async def sla_sweep(context: HelpdeskContext) -> None:
    """JobQueue, every ``sla.sweep_seconds``: send what a crash left unsent (cards,
    relays: :func:`handlers.casework.repair`; feedback, moderation and report cards:
    :func:`handlers.feedback.repair_cards`, :func:`handlers.ads.repair_cards`; notices to
    users and to staff, the SLA alerts among them: :func:`handlers.notices.repair`; the
    ads channel: :func:`handlers.ads.repair_channel`; the staff chat's cards and topics
    an erasure must redraw: :func:`handlers.redraws.repair`), then act on what is due, marked in
    the database. The alerts to staff (re-announce, the assignee's reminder, the
    resolution breach) are queued in the outbox in the transaction that marks their step
    done, and sent after its commit: a crash in between, a timeout, Telegram's flood
    limit or refusal each end as the outbox says (sent by the next sweep, maybe
    delivered, due again after retry_after, failed), never lost silently nor sent twice."""
    desk = context.desk
    try:
        await casework.repair(context)
    except Exception:  # the SLA work below must not wait for a repair that keeps failing
        log.exception("repairing unsent cards and relays failed; the next sweep tries again")
    try:
        await feedback.repair_cards(context)
    except Exception:
        log.exception("repairing unposted feedback cards failed; the next sweep tries again")
    try:
        await ads.repair_cards(context)
    except Exception:
        log.exception("repairing unposted moderation and report cards failed; the next sweep tries again")
    try:
        await notices.repair(context)
    except Exception:
        log.exception("repairing unsent notices failed; the next sweep tries again")
    try:
        await ads.repair_channel(context)
    except Exception:
        log.exception("repairing the ads channel (unposted ads, posts to remove) failed; the next sweep tries again")
    try:  # after the notices: a case's topic is closed once the line to staff in it is in
        await redraws.repair(context)
    except Exception:
        log.exception("repairing the staff chat after erasures (cards, topics) failed; the next sweep tries again")
    async with unit_of_work(desk.sessions) as session:
        items = await service.sweep(session, desk.policy, now=context.now())
        names = await service.staff_names(session, [i.ticket.assignee_id for i in items if i.ticket.assignee_id])
        solved = {  # the user hears it: queued with the auto-resolution, sent below
            i.ticket.id: await casework.queue_resolved(context, session, service.Resolution(i.ticket, i.survey), auto=True)
            for i in items if i.action == SlaAction.AUTO_RESOLVE
        }
        alerts = [await _queue_alert(context, session, i, names) for i in items if i.action in ALERTS]
    await notices.send_all(context, alerts)  # each chat's in order; a flood refusal holds that chat only

    async def act(item: service.SweepItem) -> None:
        t = item.ticket
        if item.action == SlaAction.AUTO_RESOLVE:
            await casework.after_resolve(context, service.Resolution(t, item.survey), solved[t.id])
        elif item.action == SlaAction.CLOSE:
            await casework.refresh_card(context, t.id)

    for item in items:  # one ticket's odd failure must not cost the others theirs
        if item.action not in ALERTS:
            await guarded(f"the SLA action {item.action} of ticket #{item.ticket.id}", act(item))


#: The sweep's actions that alert staff, and the notice kind of each.
ALERTS = service.SLA_ALERTS


async def _queue_alert(context: HelpdeskContext, session, item: service.SweepItem, names: dict[int, str]) -> notices.Queued | None:  # type: ignore[no-untyped-def]
    """The staff alert of an SLA step, rendered and queued in the sweep's transaction:
    re-announce and resolution breach in the chat's General topic (in a forum), where
    everybody looks; the assignee's reminder in the ticket's topic (or under its card)."""
    t, sla = item.ticket, context.desk.settings.sla
    target = casework.human_minutes(sla.minutes("first_response", t.priority))
    if item.action == SlaAction.REANNOUNCE:
        waited = casework.human_minutes((context.now() - t.escalated_at).total_seconds() / 60) if t.escalated_at else "?"
        html = srender(context, "staff/reannounce.html", number=t.id, waited=waited, target=target, contacts=sla.escalation_contacts)
        return await notices.queue_for_ticket(context, session, t, kind=ALERTS[item.action], text=html, general=True)
    if item.action == SlaAction.RESOLUTION:
        goal = casework.human_minutes(sla.minutes("resolution", t.priority))
        assignee = names.get(t.assignee_id or 0)
        html = srender(context, "staff/resolution_breach.html", number=t.id, target=goal, assignee=assignee)
        return await notices.queue_for_ticket(
            context, session, t, kind=ALERTS[item.action], text=html, general=True, person_id=t.assignee_id if assignee else None
        )
    html = srender(context, "staff/ping.html", number=t.id, assignee_id=t.assignee_id, assignee=names.get(t.assignee_id, "agent"), target=target)  # type: ignore[arg-type]
    return await notices.queue_for_ticket(context, session, t, kind=ALERTS[item.action], text=html, person_id=t.assignee_id)
