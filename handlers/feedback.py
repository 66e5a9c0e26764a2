"""Feedback: the user writes it (and may rate the desk 1-5), staff see a card and answer.

User side: ``/feedback`` or the menu item asks for a text; the user's next private text
is the feedback (not a question, not part of an ad or a case), then an optional rating.
Staff side: a card in the staff chat (in a forum, in its "Feedback" topic); a staff
member answers by replying to the card, or with "Answer" and then a typed message. Both
"waiting for" states live in ``pending_inputs`` and survive a restart.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, ChatMigrated, TelegramError, TimedOut

from bot import card_retries
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.outbox import Audience
from bot.users import get_state, set_state
from escalation import feedback as service
from escalation import service as tickets_service
from escalation.feedback import FeedbackView, Status
from handlers import delivery, notices
from handlers.casework import Repost, Reposted, card_number, card_timed_out, claim_card_again, clip, local_time, posted_again, repair_grace, report_lost_cards, repost, slabel, srender
from handlers.staffauth import is_staff, remember_staff
from handlers.ui import drop_stale_copy, guarded, not_modified, set_markup, short, toast

log = logging.getLogger(__name__)

# The user's feedback as quoted back to them with the answer, and the answer on the card.
QUOTE_MAX = 300
CARD_ANSWER_MAX = 1000


# ------------------------------------------------------------------ the index of waits


async def _maybe_waiting(context: HelpdeskContext, chat_id: int, person: int) -> bool:
    """False when ``pending_inputs`` surely has no row for this person in this chat
    (the in-memory index of the table, loaded on first use after a start), so that
    ordinary questions and staff messages cost no extra database round trip."""
    desk = context.desk
    if desk.pending is None:
        async with unit_of_work(desk.sessions, effect=False) as session:  # an index load, not the update's effect
            desk.pending = await service.waits(session, now=context.now())
    return (chat_id, person) in desk.pending


def _indexed(context: HelpdeskContext, chat_id: int, person: int, present: bool) -> None:
    index = context.desk.pending
    if index is None:
        return  # loaded from the table on first use
    if present:
        index.add((chat_id, person))
    else:
        index.discard((chat_id, person))


# ------------------------------------------------------------------ the user's side


async def feedback_command(update: Update, context: HelpdeskContext) -> None:
    """/feedback and the menu item: the next text is the feedback."""
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        await service.ask_for_text(session, user_id=user_id, now=context.now())
    _indexed(context, user_id, user_id, True)
    cancel = InlineKeyboardMarkup([[InlineKeyboardButton(context.label("btn_cancel"), callback_data="fb:x")]])
    await context.bot.send_message(
        update.effective_chat.id,  # type: ignore[union-attr]
        context.render("feedback/ask.html", limit=service.TEXT_MAX, minutes=int(service.TEXT_WAIT.total_seconds() // 60)),
        reply_markup=cancel,
    )


async def forget_on_command(update: Update, context: HelpdeskContext) -> None:
    """Any command in a private chat means the user moved on: a /feedback prompt no
    longer applies (``/feedback`` itself asks again right after)."""
    user = update.effective_user
    if user is None or not await _maybe_waiting(context, user.id, user.id):
        return
    # bookkeeping, not the update's effect: the command's own handler records the update
    async with unit_of_work(context.desk.sessions, effect=False) as session:
        await service.stop_waiting(session, user_id=user.id)
    _indexed(context, user.id, user.id, False)


async def forget_on_button(update: Update, context: HelpdeskContext) -> None:
    """Any private button other than the feedback prompt's own (``fb:*``): the user
    moved on (e.g. "Talk to a person"), so their next text is not feedback."""
    chat = update.effective_chat
    if chat is not None and chat.type == ChatType.PRIVATE:
        await forget_on_command(update, context)


async def stop_waiting(update: Update, context: HelpdeskContext) -> None:
    """A main-menu item: the user moved on, the next text is not feedback."""
    await forget_on_command(update, context)


async def route_text(update: Update, context: HelpdeskContext) -> bool:
    """A private text: the feedback, if the bot is waiting for one. False otherwise."""
    message: Message = update.effective_message  # type: ignore[assignment]
    user_id = update.effective_user.id  # type: ignore[union-attr]
    text = (message.text or "").strip()
    if not await _maybe_waiting(context, user_id, user_id):
        return False
    try:
        async with unit_of_work(context.desk.sessions) as session:
            item = await service.take_text(session, user_id=user_id, text=text, now=context.now())
            still = await service.waiting_for_text(session, user_id=user_id, now=context.now())
            # "thanks #N" with the rating buttons: the user's only way to rate, so it is
            # queued with the feedback (sent below, or by the sweep after a crash)
            thanks = await _queue_thanks(context, session, item) if item is not None else None
    except service.TooLong as exc:
        await message.reply_html(context.render("feedback/too_long.html", length=exc.length, limit=exc.limit))
        return True
    _indexed(context, user_id, user_id, still)
    if item is None:
        return False
    await notices.send_all(context, [thanks])
    await post_card(context, item)
    return True


async def _queue_thanks(context: HelpdeskContext, session, item: FeedbackView) -> notices.Queued | None:  # type: ignore[no-untyped-def]
    """The thank-you with the rating buttons, in the user's language, queued in the unit
    of work that stores the feedback (``session``)."""
    text = context.render("feedback/thanks.html", number=item.id)
    return await notices.queue(
        context, session, chat_id=item.user_id, kind="feedback_thanks", ref=f"feedback:{item.id}", text=text,
        markup=rating_keyboard(context, item.id),
    )


async def route_nontext(update: Update, context: HelpdeskContext) -> bool:
    """A photo, sticker... while the bot waits for a feedback text: ask for text."""
    user_id = update.effective_user.id  # type: ignore[union-attr]
    if not await _maybe_waiting(context, user_id, user_id):
        return False
    async with unit_of_work(context.desk.sessions) as session:
        waiting = await service.waiting_for_text(session, user_id=user_id, now=context.now())
    if waiting:
        await update.effective_message.reply_html(context.render("feedback/text_only.html"))  # type: ignore[union-attr]
    return waiting


def rating_keyboard(context: HelpdeskContext, feedback_id: int) -> InlineKeyboardMarkup:
    stars = [InlineKeyboardButton(f"{n}⭐", callback_data=f"fb:r:{feedback_id}:{n}") for n in range(1, 6)]
    return InlineKeyboardMarkup([stars, [InlineKeyboardButton(context.label("btn_skip"), callback_data=f"fb:r:{feedback_id}:s")]])


async def on_rate(update: Update, context: HelpdeskContext) -> None:
    """``fb:r:<feedback>:<1-5>`` or ``fb:r:<feedback>:s`` (skip) under the thank-you."""
    query = update.callback_query
    _, _, number, value = query.data.split(":")  # type: ignore[union-attr]
    user_id = query.from_user.id  # type: ignore[union-attr]
    feedback_id = int(number)
    if value == "s":
        async with unit_of_work(context.desk.sessions) as session:
            owner = await service.owner_of(session, feedback_id)
        if owner != user_id:
            await toast(query, context.label("toast_not_yours" if owner else "toast_expired"))  # type: ignore[arg-type]
            return
        await toast(query)  # type: ignore[arg-type]
        await _edit(query, context.render("feedback/rated.html", number=feedback_id, stars=None))
        return
    async with unit_of_work(context.desk.sessions) as session:
        outcome = await service.rate(session, feedback_id=feedback_id, user_id=user_id, rating=int(value))
    if outcome.status == Status.ALREADY:
        await toast(query, context.label("toast_feedback_already_rated"))  # type: ignore[arg-type]
        return
    if outcome.status != Status.OK:
        await toast(query, context.label("toast_not_yours" if outcome.status == Status.NOT_YOURS else "toast_expired"))  # type: ignore[arg-type]
        return
    await toast(query, context.label("toast_rated"))  # type: ignore[arg-type]
    await _edit(query, context.render("feedback/rated.html", number=feedback_id, stars=int(value)))
    await refresh_card(context, outcome.feedback)  # type: ignore[arg-type]


async def on_cancel(update: Update, context: HelpdeskContext) -> None:
    """``fb:x``: "Cancel" under the /feedback prompt."""
    query = update.callback_query
    async with unit_of_work(context.desk.sessions) as session:
        dropped = await service.stop_waiting(session, user_id=query.from_user.id)  # type: ignore[union-attr]
    _indexed(context, query.from_user.id, query.from_user.id, False)  # type: ignore[union-attr]
    await toast(query, context.label("toast_cancelled" if dropped else "toast_expired"))  # type: ignore[arg-type]
    if dropped:
        await _edit(query, context.render("feedback/cancelled.html"))
    else:
        await set_markup(query, None)  # type: ignore[arg-type]


async def _edit(query, html: str) -> None:  # type: ignore[no-untyped-def]
    try:
        await query.edit_message_text(html)
    except BadRequest as exc:
        if not not_modified(exc):
            log.info("could not edit a feedback message: %s", exc)
    except TelegramError as exc:
        log.warning("could not edit a feedback message: %s", exc)


# ------------------------------------------------------------------ the staff card


async def feedback_place(context: HelpdeskContext) -> tuple[int, int | None]:
    """The staff chat, and its "Feedback" topic when it is a forum (created once)."""
    chat_id: int = context.desk.settings.staff.chat_id  # type: ignore[assignment]
    if not context.desk.staff_chats.get(chat_id):
        return chat_id, None
    key = f"feedback_topic:{chat_id}"
    async with unit_of_work(context.desk.sessions) as session:
        stored = await get_state(session, key)
    if stored is not None:
        return chat_id, int(stored)
    try:
        topic = await context.bot.create_forum_topic(chat_id, slabel(context, "topic_feedback"))
    except TelegramError as exc:
        log.warning("could not create the Feedback topic: %s", exc)
        return chat_id, None
    async with unit_of_work(context.desk.sessions) as session:
        await set_state(session, key, str(topic.message_thread_id))
    return chat_id, topic.message_thread_id


def card(context: HelpdeskContext, item: FeedbackView) -> tuple[str, InlineKeyboardMarkup | None]:
    text = srender(
        context,
        "feedback/card.html",
        number=item.id,
        created=local_time(context, item.created_at),
        name=item.user_name,
        username=item.username,
        user_id=item.user_id,
        rating=item.rating,
        text=item.text,
        answer=clip(item.answer, CARD_ANSWER_MAX) if item.answer else None,
        answered_by=item.answered_by_name or slabel(context, "erased_staff"),
        answered_at=local_time(context, item.answered_at),
        erased=item.erased,
        erased_name=slabel(context, "erased_user"),
    )
    text = posted_again(context, text, item.card_timeouts)
    if item.answer is not None or item.erased:
        return text, None
    return text, InlineKeyboardMarkup([[InlineKeyboardButton(slabel(context, "btn_answer"), callback_data=f"fb:a:{item.id}")]])


async def post_card(context: HelpdeskContext, item: FeedbackView, *, moved: bool = False, again: bool = False) -> bool:
    """The feedback's card in the staff chat. Posting is claimed first
    (``feedback.card_claimed_at``), so that of this handler and the sweep
    (:func:`repair_cards`) only one posts it. A card Telegram surely refused is left for
    the sweep; one that timed out may have arrived: the sweep posts it again after the
    repair grace (``again``), a bounded number of times (:mod:`bot.card_retries`); a
    staff chat that became a supergroup gets it under its new id. True when it was posted."""
    async with unit_of_work(context.desk.sessions) as session:
        if again:
            claimed = await claim_card_again(context, session, service.FEEDBACK_CARDS, item.id)
        else:
            claimed = await service.claim_card(session, feedback_id=item.id, now=context.now(), force=moved)
        if not claimed:
            log.info("the card of feedback #%s is posted by another sender (or was): not posted again", item.id)
            return False
    chat_id, topic = await feedback_place(context)
    text, markup = card(context, item)
    try:
        sent = await delivery.readable(context.bot.send_message(chat_id, text, message_thread_id=topic, reply_markup=markup))
    except ChatMigrated as exc:
        if moved:
            log.error("the staff chat moved twice in a row; feedback #%s is left for the sweep", item.id)
            await _release(context, item.id)
            return False
        await delivery.chat_moved(context, chat_id, exc.new_chat_id)
        return await post_card(context, item, moved=True)  # the settings now name the new chat
    except TimedOut as exc:  # or unreadable (delivery.Unreadable); it may have arrived: the sweep posts it again after the grace
        await card_timed_out(context, service.FEEDBACK_CARDS, item.id, f"feedback #{item.id}", exc)
        return False
    except TelegramError as exc:
        log.error("could not post feedback #%s to the staff chat (the sweep tries again): %s", item.id, exc)
        await _release(context, item.id)
        return False
    async with unit_of_work(context.desk.sessions) as session:
        await service.place_card(session, feedback_id=item.id, chat_id=chat_id, message_id=sent.message_id)
    return True


async def repost_card(context: HelpdeskContext, feedback_id: int) -> Repost:
    """/repost feedback N: the card of unanswered feedback posted again in the Feedback
    place, tracked from now on (a reply to it answers): :func:`handlers.casework.repost`."""
    async with unit_of_work(context.desk.sessions) as session:
        claimed = await card_retries.claim_repost(session, service.FEEDBACK_CARDS, feedback_id, now=context.now())
        item = await service.view(session, feedback_id)
    if item is None:
        return Repost(Reposted.NOT_FOUND)
    if claimed is None:
        return Repost(Reposted.FINISHED, status="answered")
    place = await feedback_place(context)
    text, markup = card(context, item)

    async def attach(session, sent: Message) -> None:  # type: ignore[no-untyped-def]
        await service.place_card(session, feedback_id=feedback_id, chat_id=sent.chat_id, message_id=sent.message_id)

    async def release(session) -> None:  # type: ignore[no-untyped-def]
        await service.release_card_claim(session, feedback_id=feedback_id)

    return await repost(context, service.FEEDBACK_CARDS, feedback_id, claimed, place, text, markup, attach=attach, release=release)


async def _release(context: HelpdeskContext, feedback_id: int) -> None:
    async with unit_of_work(context.desk.sessions) as session:
        await service.release_card_claim(session, feedback_id=feedback_id)


async def repair_cards(context: HelpdeskContext) -> int:
    """The sweep: post the card of unanswered feedback that never got one (the bot
    stopped between storing the feedback and posting its card, Telegram refused it, or
    the staff chat moved), and again the card whose post timed out (a bounded number of
    times, then staff are told once: :mod:`bot.card_retries`). Claimed first, so nothing
    is posted twice by racing senders. Returns how many cards were posted."""
    desk = context.desk
    before = context.now() - repair_grace(context)
    async with unit_of_work(desk.sessions) as session:
        ids = await service.without_card(session, before=before)
        timed_out = await card_retries.due_again(session, service.FEEDBACK_CARDS, before=before)
    posted = 0
    for feedback_id in ids + timed_out:
        async with unit_of_work(desk.sessions) as session:
            item = await service.view(session, feedback_id)
        if item is None:
            continue
        again = feedback_id in timed_out
        if again:
            log.warning("posting the card of feedback #%s timed out, so it may be missing: posting it again", feedback_id)
        else:
            log.warning("feedback #%s has no staff card (the bot stopped before posting it, or it was refused): posting it now", feedback_id)
        if await guarded(f"posting the card of feedback #{feedback_id}", post_card(context, item, again=again)):
            posted += 1
    await report_lost_cards(context, service.FEEDBACK_CARDS, _lost_card)
    return posted


async def _lost_card(context: HelpdeskContext, session: AsyncSession, feedback_id: int) -> notices.Queued | None:
    """The line about a lost feedback card, queued for the Feedback topic (looked up when
    sent); it names the author: erased with them."""
    item = await service.view(session, feedback_id)
    erased = item is None or item.erased
    name = slabel(context, "erased_user") if erased else item.user_name  # type: ignore[union-attr]
    html = srender(context, "staff/card_lost.html", kind="feedback", number=feedback_id, name=name, attempts=card_retries.ATTEMPTS)
    return await notices.queue_for_moderators(
        context, session, kind="card_lost", ref=f"feedback:{feedback_id}", text=html, audience=Audience.FEEDBACK,
        person_id=None if erased else item.user_id,  # type: ignore[union-attr]
    )


async def refresh_card(context: HelpdeskContext, item: FeedbackView) -> None:
    """Edit the card in place (a rating came in, or it was answered). Best effort:
    Telegram's refusal is logged (:func:`draw_card` raises it)."""
    try:
        await draw_card(context, item)
    except TelegramError as exc:
        log.warning("could not update the card of feedback #%s: %s", item.id, exc)


async def draw_card(context: HelpdeskContext, item: FeedbackView) -> None:
    """:func:`refresh_card`, raising Telegram's refusal (not "not modified": the card
    shows it already)."""
    if item.staff_chat_id is None or item.staff_message_id is None:
        return
    text, markup = card(context, item)
    try:
        await context.bot.edit_message_text(text, chat_id=item.staff_chat_id, message_id=item.staff_message_id, reply_markup=markup)
    except BadRequest as exc:
        if not not_modified(exc):
            raise


# ------------------------------------------------------------------ the staff answer


async def _staff(update: Update, context: HelpdeskContext) -> bool:
    """Staff now, in a staff chat; others are refused (and logged)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return False
    if chat.id in context.desk.staff_chats and await is_staff(context, user.id, chat.id):
        await remember_staff(context, user)
        return True
    log.warning("refused a feedback answer by non-staff user %s in chat %s", user.id, chat.id)
    if update.callback_query is not None:
        await toast(update.callback_query, slabel(context, "toast_not_staff"))
    elif update.effective_message is not None:
        await _say(update.effective_message, srender(context, "staff/error.html", message=slabel(context, "toast_not_staff")))
    return False


async def on_answer_button(update: Update, context: HelpdeskContext) -> None:
    """``fb:a:<feedback>``: the presser's next message in this chat (topic) is the answer."""
    query = update.callback_query
    if not await _staff(update, context):
        return
    feedback_id = int(query.data.split(":")[2])  # type: ignore[union-attr]
    message = query.message  # type: ignore[union-attr]
    thread = message.message_thread_id if message.is_topic_message else None  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        outcome = await service.ask_for_answer(
            session, feedback_id=feedback_id, chat_id=message.chat.id, staff_id=query.from_user.id, thread_id=thread, now=context.now()  # type: ignore[union-attr]
        )
    if outcome.status == Status.NOT_FOUND:
        await toast(query, slabel(context, "toast_expired"))  # type: ignore[arg-type]
        return
    # pressed on the first copy of a card that was posted again: staff go on with the tracked one
    await drop_stale_copy(query, outcome.feedback.staff_chat_id, outcome.feedback.staff_message_id)  # type: ignore[arg-type, union-attr]
    if outcome.status == Status.OK:
        _indexed(context, message.chat.id, query.from_user.id, True)  # type: ignore[union-attr]
    if outcome.status == Status.ALREADY:
        await toast(query, slabel(context, "toast_feedback_answered", name=outcome.feedback.answered_by_name))  # type: ignore[arg-type, union-attr]
        await refresh_card(context, outcome.feedback)  # type: ignore[arg-type]
        return
    if outcome.status == Status.ERASED:
        await toast(query, slabel(context, "toast_feedback_erased"))  # type: ignore[arg-type]
        await refresh_card(context, outcome.feedback)  # type: ignore[arg-type]
        return
    await toast(query)  # type: ignore[arg-type]
    await context.bot.send_message(
        message.chat.id,  # type: ignore[union-attr]
        srender(context, "feedback/type_answer.html", staff=query.from_user.first_name, number=feedback_id, name=outcome.feedback.user_name),  # type: ignore[union-attr]
        message_thread_id=thread,
    )


async def take_staff_answer(update: Update, context: HelpdeskContext) -> bool:
    """A staff-chat message that answers a feedback: a reply to its card, or the next
    message after "Answer". True when it was one (then it is not a ticket reply)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return False
    thread = message.message_thread_id if message.is_topic_message else None
    reply_to = message.reply_to_message
    if reply_to is not None and (reply_to.message_id == thread or reply_to.from_user is None or reply_to.from_user.id != context.bot.id):
        reply_to_card = None  # only the bot's messages can be feedback cards (not a topic's root)
    else:
        reply_to_card = reply_to
    waiting = await _maybe_waiting(context, message.chat_id, user.id)
    if reply_to_card is None and not waiting:
        return False
    async with unit_of_work(context.desk.sessions) as session:
        feedback_id = None
        if reply_to_card is not None:
            feedback_id = await service.at_card(session, chat_id=message.chat_id, message_id=reply_to_card.message_id)
        if feedback_id is None and waiting:
            feedback_id = await service.answering(session, chat_id=message.chat_id, staff_id=user.id, thread_id=thread, now=context.now())
            # after "Answer", a message that belongs to a ticket (its topic, a reply to its
            # card or messages) still goes to the ticket
            if feedback_id is not None and await tickets_service.ticket_at(
                session, chat_id=message.chat_id, thread_id=thread, reply_to=reply_to.message_id if reply_to else None,
                card_of=card_number(context, reply_to),
            ):
                feedback_id = None
    if feedback_id is None:
        return False
    if not await _staff(update, context):
        return True
    if message.text is None:
        await _say(message, srender(context, "feedback/answer_problem.html", number=feedback_id, problem="not_text"))
        return True
    text = message.text.strip()
    if len(text) > service.ANSWER_MAX:
        await _say(message, srender(context, "feedback/answer_problem.html", number=feedback_id, problem="too_long", length=len(text), limit=service.ANSWER_MAX))
        return True
    async with unit_of_work(context.desk.sessions) as session:
        outcome = await service.answer(session, feedback_id=feedback_id, chat_id=message.chat_id, staff_id=user.id, text=text, now=context.now())
        # the user hears the answer: queued with it (sent below, or by the sweep after a crash)
        queued = await _queue_answer(context, session, outcome.feedback) if outcome.status == Status.OK else None
    _indexed(context, message.chat_id, user.id, False)
    if outcome.status == Status.NOT_FOUND:
        return False
    item: FeedbackView = outcome.feedback  # type: ignore[assignment]
    if outcome.status == Status.ALREADY:
        await _say(message, srender(context, "feedback/answer_problem.html", number=feedback_id, problem="already", by=item.answered_by_name))
        return True
    if outcome.status == Status.ERASED:
        await _say(message, srender(context, "feedback/answer_problem.html", number=feedback_id, problem="erased"))
        return True
    delivered, error = await _deliver(context, queued)  # type: ignore[arg-type]
    await refresh_card(context, item)
    await _say(message, srender(context, "feedback/answer_sent.html", number=item.id, name=item.user_name, delivered=delivered, error=error))
    return True


async def _queue_answer(context: HelpdeskContext, session, item: FeedbackView) -> notices.Queued:  # type: ignore[no-untyped-def]
    """The answer to the user, in their language, queued in the answer's unit of work."""
    templates = context.desk.templates
    locale = templates.locale_of(item.user_locale, item.user_language_code)
    html = templates.render("feedback/answer.html", locale, number=item.id, text=clip(item.text, QUOTE_MAX), answer=item.answer)
    return await notices.queue(context, session, chat_id=item.user_id, kind="feedback_answer", ref=f"feedback:{item.id}", text=html)


async def _deliver(context: HelpdeskContext, queued: notices.Queued) -> tuple[bool, str | None]:
    """Send the queued answer. (delivered, why not)."""
    outcome = await notices.send(context, queued.id)
    if outcome is None or outcome.failure is None:
        return True, None
    if outcome.failure.blocked:
        return False, "blocked"
    return False, short(outcome.failure.reason, 200)


async def _say(message: Message, html: str) -> None:
    """A short line in the staff chat, as a reply to the staff member's message."""
    try:
        await message.get_bot().send_message(
            message.chat_id,
            html,
            message_thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
        )
    except TelegramError as exc:
        log.warning("could not answer in the staff chat: %s", exc)
