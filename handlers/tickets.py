"""The user's side of support: asking for a person, the case conversation, ratings."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from escalation import service
from escalation.models import TicketStatus
from escalation.service import IntakeOutcome, RateStatus, TicketError
from handlers import casework, notices
from handlers.ui import set_markup, short, toast

S = TicketStatus


def talk_button(context: HelpdeskContext, question_id: int | None) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(context.label("btn_talk_to_person"), callback_data=f"tk:new:{question_id or 0}")]]
    )


async def support_command(update: Update, context: HelpdeskContext) -> None:
    """/support, the menu item: choose a category."""
    await ask_category(update.effective_chat.id, context, None)  # type: ignore[union-attr]


async def ask_category(chat_id: int, context: HelpdeskContext, question_id: int | None) -> None:
    rows = [
        [InlineKeyboardButton(c.label, callback_data=f"tk:cat:{question_id or 0}:{c.id}")]
        for c in context.desk.settings.support.categories
        if not c.hidden
    ]
    rows.append([InlineKeyboardButton(context.label("btn_cancel"), callback_data="tk:cancel:0")])
    await context.bot.send_message(chat_id, context.render("ticket/choose_category.html"), reply_markup=InlineKeyboardMarkup(rows))


async def on_talk(update: Update, context: HelpdeskContext) -> None:
    """``tk:new:<question id>``: "Talk to a person" under an answer or a don't-know."""
    query = update.callback_query
    question_id = int(query.data.split(":")[2]) or None  # type: ignore[union-attr]
    await toast(query)  # type: ignore[arg-type]
    await ask_category(update.effective_chat.id, context, question_id)  # type: ignore[union-attr]


async def on_category(update: Update, context: HelpdeskContext) -> None:
    """``tk:cat:<question id>:<category>``."""
    query = update.callback_query
    _, _, qid, category = query.data.split(":")  # type: ignore[union-attr]
    desk = context.desk
    try:
        async with unit_of_work(desk.sessions) as session:
            intake = await service.open_request(
                session, desk.policy, user_id=query.from_user.id, category=category, question_id=int(qid) or None, now=context.now()  # type: ignore[union-attr]
            )
            queued = await queue_intake(context, session, intake)
    except TicketError as exc:
        if exc.code != "too_many_open":
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            return
        await toast(query)  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        await context.bot.send_message(
            update.effective_chat.id, context.render("ticket/too_many_open.html", **exc.details)  # type: ignore[union-attr]
        )
        return
    await toast(query)  # type: ignore[arg-type]
    await set_markup(query, None)  # type: ignore[arg-type]
    await after_intake(update, context, intake, queued)


async def queue_intake(context: HelpdeskContext, session, intake: service.Intake) -> notices.Queued:  # type: ignore[no-untyped-def]
    """What the user hears about a new (or joined) case, queued in the unit of work that
    opened it (``session``); :func:`after_intake` sends it after the commit."""
    ticket = intake.ticket
    if intake.outcome == IntakeOutcome.NEED_DESCRIPTION:
        cancel = InlineKeyboardMarkup([[InlineKeyboardButton(context.label("btn_cancel"), callback_data=f"tk:cancel:{ticket.id}")]])
        return await casework.queue_notice(context, session, ticket, "ticket/describe.html", cancel)
    label = casework.category_label(context, ticket.category)
    if intake.outcome == IntakeOutcome.JOINED:
        return await casework.queue_notice(context, session, ticket, "ticket/joined.html", category=label)
    sla = context.desk.settings.sla
    return await casework.queue_notice(
        context, session, ticket, "ticket/created.html", category=label,
        response_time=casework.human_minutes(sla.minutes("first_response", ticket.priority)), business_hours=sla.business_hours,
    )


async def after_intake(update: Update, context: HelpdeskContext, intake: service.Intake, queued: notices.Queued) -> None:
    """After the commit: the notice :func:`queue_intake` queued, then the message that
    joined a case goes to staff, or a new case's card is posted."""
    ticket = intake.ticket
    await notices.send_all(context, [queued])
    if intake.outcome == IntakeOutcome.NEED_DESCRIPTION:
        return
    if intake.outcome == IntakeOutcome.JOINED:
        if intake.message is not None:
            relay = service.Relay(ticket, intake.message)
            await casework.relay_to_staff(context, relay, update.effective_message, update.effective_user.first_name)  # type: ignore[arg-type, union-attr]
        return
    await casework.post_alert(context, ticket.id)


async def on_cancel(update: Update, context: HelpdeskContext) -> None:
    """``tk:cancel:<draft>`` (0: the category question, before any draft exists)."""
    query = update.callback_query
    draft_id = int(query.data.split(":")[2])  # type: ignore[union-attr]
    if draft_id:
        async with unit_of_work(context.desk.sessions) as session:
            cancelled = await service.cancel_draft(session, user_id=query.from_user.id, now=context.now(), ticket_id=draft_id)  # type: ignore[union-attr]
        if not cancelled:  # described (or cancelled) already: the button is stale
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            await set_markup(query, None)  # type: ignore[arg-type]
            return
    await toast(query, context.label("toast_cancelled"))  # type: ignore[arg-type]
    await set_markup(query, None)  # type: ignore[arg-type]
    await context.bot.send_message(update.effective_chat.id, context.render("ticket/cancelled.html"))  # type: ignore[union-attr]


async def mytickets(update: Update, context: HelpdeskContext) -> None:
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        tickets = await service.user_tickets(session, user_id=user_id)
    items = [
        {
            "number": t.id,
            "category": casework.category_label(context, t.category),
            "status": context.label(f"status_{t.status}"),
            "opened": casework.local_time(context, t.escalated_at or t.created_at),
            "subject": short(t.subject, 80),
        }
        for t in tickets
    ]
    rows = [
        [InlineKeyboardButton(context.label("btn_close_ticket", number=t.id), callback_data=f"tk:close:{t.id}")]
        for t in tickets
        if t.status in (S.NEW, S.CLAIMED, S.WAITING)
    ]
    await update.effective_message.reply_html(  # type: ignore[union-attr]
        context.render("ticket/mytickets.html", tickets=items), reply_markup=InlineKeyboardMarkup(rows) if rows else None
    )


async def on_close(update: Update, context: HelpdeskContext) -> None:
    """``tk:close:<ticket>``: the user closes their own case."""
    query = update.callback_query
    ticket_id = int(query.data.split(":")[2])  # type: ignore[union-attr]
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.close_by_user(session, ticket_id=ticket_id, user_id=query.from_user.id, now=context.now())  # type: ignore[union-attr]
            queued = await casework.queue_notice(context, session, ticket, "ticket/closed_by_user.html")
    except TicketError as exc:
        await toast(query, context.label("toast_not_yours" if exc.code == "not_yours" else "toast_expired"))  # type: ignore[arg-type]
        return
    await toast(query, context.label("toast_done"))  # type: ignore[arg-type]
    await set_markup(query, None)  # type: ignore[arg-type]
    await notices.send_all(context, [queued])
    await casework.tell_staff(context, ticket, casework.srender(context, "staff/event.html", icon="🔒", number=ticket.id, text="closed by the user"))
    await casework.refresh_card(context, ticket.id)
    await casework.set_topic_open(context, ticket, False)


async def on_reopen(update: Update, context: HelpdeskContext) -> None:
    """``tk:reopen:<ticket>``: "I still need help" under the solved notice."""
    query = update.callback_query
    ticket_id = int(query.data.split(":")[2])  # type: ignore[union-attr]
    try:
        async with unit_of_work(context.desk.sessions) as session:
            ticket = await service.reopen_by_user(session, context.desk.policy, ticket_id=ticket_id, user_id=query.from_user.id, now=context.now())  # type: ignore[union-attr]
            queued = await casework.queue_notice(context, session, ticket, "ticket/reopened.html")
    except TicketError as exc:
        await toast(query, context.label("toast_not_yours" if exc.code == "not_yours" else "toast_expired"))  # type: ignore[arg-type]
        return
    await toast(query)  # type: ignore[arg-type]
    await set_markup(query, None)  # type: ignore[arg-type]
    await notices.send_all(context, [queued])
    await casework.set_topic_open(context, ticket, True)
    await casework.tell_staff(context, ticket, casework.srender(context, "staff/event.html", icon="🔁", number=ticket.id, text="reopened by the user"))
    await casework.refresh_card(context, ticket.id)


async def on_rate(update: Update, context: HelpdeskContext) -> None:
    """``r:<ticket>:<1-5>`` or ``r:<ticket>:skip``."""
    query = update.callback_query
    _, ticket_id, value = query.data.split(":")  # type: ignore[union-attr]
    user_id = query.from_user.id  # type: ignore[union-attr]
    if value == "skip":
        async with unit_of_work(context.desk.sessions) as session:
            await service.skip_comment(session, ticket_id=int(ticket_id), user_id=user_id)
        await toast(query, context.label("toast_done"))  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        return
    async with unit_of_work(context.desk.sessions) as session:
        result = await service.rate(session, ticket_id=int(ticket_id), user_id=user_id, stars=int(value), now=context.now())
        comment = None
        if result.status == RateStatus.OK and result.ask_comment:  # the optional comment: asked once the rating is shown
            skip = InlineKeyboardMarkup([[InlineKeyboardButton(context.label("btn_skip"), callback_data=f"r:{ticket_id}:skip")]])
            ticket = await service.get_ticket(session, int(ticket_id))
            comment = await casework.queue_notice(context, session, ticket, "ticket/csat_comment.html", skip)
    if result.status == RateStatus.ALREADY:
        await toast(query, context.label("toast_already_rated"))  # type: ignore[arg-type]
        return
    if result.status != RateStatus.OK:
        await toast(query, context.label("toast_not_yours" if result.status == RateStatus.NOT_YOURS else "toast_expired"))  # type: ignore[arg-type]
        return
    await toast(query, context.label("toast_rated"))  # type: ignore[arg-type]
    await query.edit_message_text(context.render("ticket/csat_rated.html", number=int(ticket_id), stars=int(value)))  # type: ignore[union-attr]
    await notices.send_all(context, [comment])


def message_kind(message: Message) -> tuple[str, str | None]:
    """(kind, file id) of what a user or staff member sent."""
    if message.text is not None:
        return "text", None
    for kind in ("photo", "document", "voice", "video", "audio", "video_note", "sticker", "animation"):
        media = getattr(message, kind, None)
        if media:
            file_id = media[-1].file_id if isinstance(media, tuple) else media.file_id
            return kind, file_id
    return "other", None


async def route_private(update: Update, context: HelpdeskContext) -> bool:
    """A private message while the user has a case: a rating comment, a description,
    or something for the team. Returns False when it is none of these (a question)."""
    message: Message = update.effective_message  # type: ignore[assignment]
    user = update.effective_user
    desk = context.desk
    kind, file_id = message_kind(message)
    text = message.text or message.caption or ""
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    relay = intake = rating_ticket = None
    queued: notices.Queued | None = None
    async with unit_of_work(desk.sessions) as session:
        case = await service.user_case(session, desk.policy, user_id=user.id, reply_to=reply_to, now=context.now())  # type: ignore[union-attr]
        if case.pending_rating is not None and kind == "text":
            await service.save_comment(session, rating=case.pending_rating, text=text)
            rating_ticket = await service.get_ticket(session, case.pending_rating.ticket_id)
            queued = await casework.queue_notice(context, session, rating_ticket, "ticket/csat_comment_thanks.html")
        elif case.draft is not None and kind == "text":
            intake = await service.describe(session, desk.policy, ticket=case.draft, user_id=user.id, text=text, now=context.now())  # type: ignore[union-attr]
            queued = await queue_intake(context, session, intake)
        elif case.active is not None:
            relay = await service.user_message(
                session, desk.policy, ticket=case.active, user_id=user.id, kind=kind, text=text,  # type: ignore[union-attr]
                file_id=file_id, user_message_id=message.message_id, now=context.now(),
            )
            if relay.reopened:  # a message within the reopen window reopened the case
                queued = await casework.queue_notice(context, session, relay.ticket, "ticket/reopened.html")
    if rating_ticket is not None:
        await notices.send_all(context, [queued])
    elif intake is not None:
        await after_intake(update, context, intake, queued)  # type: ignore[arg-type]
    elif relay is not None:
        await notices.send_all(context, [queued])
        await casework.relay_to_staff(context, relay, message, user.first_name)  # type: ignore[union-attr]
    else:
        return False
    return True
