"""Telegram side of the user-notice outbox (:mod:`bot.outbox`).

A handler renders a notice and queues it (:func:`queue`) inside the unit of work of the
decision that causes it; after the commit it sends what it queued (:func:`send_all`).
Each send is claimed first (one sender), and its outcome recorded:

- sent: the message id (for a ticket's notice also a message of the case, so that a
  reply to it reaches the case; for the survey its message id);
- 403, the user blocked the bot: ``failed``; for a ticket, recorded on the ticket and
  staff told once, as before; the flow goes on;
- a timeout: ``maybe`` (it may have arrived): never sent again;
- Telegram's flood limit after every retry: surely not sent, so back to ``pending``
  for the next sweep; any other refusal: ``failed`` with Telegram's reason.

Notices to the moderators (the pattern alert: :func:`queue_for_moderators`) go the same
way to the staff chat's Moderation topic, looked up when sent (a chat that moved is
followed). A notice to an erased person's anonymous id is never queued nor sent
(:func:`bot.outbox.addressable`), whichever handler asks.

:func:`repair` (from the periodic sweep) sends notices a crash left pending and marks
those a crash left ``sending`` as maybe delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from telegram import InlineKeyboardMarkup, Message
from telegram.error import TelegramError

from bot import outbox
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.outbox import Audience, NoticeState, Queued
from handlers import delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one notice: the message sent, or why not."""

    notice_id: int
    message: Message | None = None
    failure: delivery.Failure | None = None


async def queue(
    context: HelpdeskContext, session, *, chat_id: int, kind: str, text: str, ref: str | None = None,  # type: ignore[no-untyped-def]
    markup: InlineKeyboardMarkup | None = None,
) -> Queued | None:
    """Store a rendered notice to a user in the current unit of work (``session``); send
    it with :func:`send_all` after the commit. None for an erased person's anonymous id
    (nothing stored: there is nobody to tell)."""
    return await outbox.queue(
        session, chat_id=chat_id, kind=kind, ref=ref, text=text, reply_markup=markup.to_dict() if markup else None, now=context.now()
    )


async def queue_for_moderators(context: HelpdeskContext, session, *, kind: str, text: str, ref: str) -> Queued | None:  # type: ignore[no-untyped-def]
    """Store a rendered notice to the moderators (the staff chat's Moderation topic,
    looked up when it is sent). ``ref`` names whom it is about (``user:<id>``: erased
    with them)."""
    return await outbox.queue(
        session, chat_id=context.desk.settings.staff.chat_id, kind=kind, ref=ref, text=text, now=context.now(),  # type: ignore[arg-type]
        audience=Audience.MODERATORS,
    )


async def send_all(context: HelpdeskContext, queued: Iterable[Queued | None]) -> list[Outcome]:
    """Send what a committed unit of work queued, in order. After a notice refused for
    Telegram's flood limit (back in the outbox) the rest stay pending too: sent by the
    sweep after it, in order (the survey never before its "solved")."""
    outcomes = []
    for item in queued:
        if item is not None:
            outcome = await send(context, item.id)
            if outcome is not None:
                outcomes.append(outcome)
                if outcome.failure is not None and outcome.failure.flood:
                    break
    return outcomes


async def send(context: HelpdeskContext, notice_id: int) -> Outcome | None:
    """Claim the notice and send it; the outcome is recorded. None when another sender
    has it (or had it)."""
    desk = context.desk
    async with unit_of_work(desk.sessions, effect=False) as session:
        notice = await outbox.claim(session, notice_id=notice_id, now=context.now())
    if notice is None:
        log.info("notice %s is sent by another sender (or was): not sent again", notice_id)
        return None
    if not outbox.addressable(notice.audience, notice.chat_id):  # stored before the outbox refused these
        log.warning("notice %s (%s, %s) is addressed to an erased user's anonymous id: not sent", notice_id, notice.kind, notice.ref)
        outcome = Outcome(notice_id, failure=delivery.Failure(outbox.ERASED_ERROR))
        await _record(context, notice, outcome)
        return outcome
    markup = InlineKeyboardMarkup.de_json(notice.reply_markup, context.bot) if notice.reply_markup else None
    try:
        if notice.audience == Audience.MODERATORS:
            sent = await _to_moderators(context, notice.text, markup)
        else:
            sent = await context.bot.send_message(notice.chat_id, notice.text, reply_markup=markup)
    except TelegramError as exc:
        fail = delivery.failure(exc)
        outcome = Outcome(notice_id, failure=fail)
        if fail.maybe:
            log.warning("notice %s (%s, %s) timed out; it may have arrived, not sent again", notice_id, notice.kind, notice.ref)
        else:
            log.warning("notice %s (%s, %s) was not delivered: %s", notice_id, notice.kind, notice.ref, fail.reason)
    else:
        outcome = Outcome(notice_id, message=sent)
    await _record(context, notice, outcome)
    return outcome


async def _to_moderators(context: HelpdeskContext, text: str, markup: InlineKeyboardMarkup | None) -> Message:
    """The staff chat's Moderation topic as it is now (a chat Telegram moved is followed)."""
    from handlers.ads import moderation_place  # handlers.ads imports this module

    chat_id, topic = await moderation_place(context)
    return await delivery.to_staff_chat(
        context, chat_id, lambda to: context.bot.send_message(to, text, message_thread_id=topic if to == chat_id else None, reply_markup=markup)
    )


async def _record(context: HelpdeskContext, notice: outbox.Notice, outcome: Outcome) -> None:
    from escalation import service as tickets

    fail, sent = outcome.failure, outcome.message
    ticket_id = int(notice.ref.split(":", 1)[1]) if notice.ref and notice.ref.startswith("ticket:") else None
    first_block = False
    async with unit_of_work(context.desk.sessions, effect=False) as session:
        if sent is not None:
            recorded = await outbox.record(session, notice_id=notice.id, state=NoticeState.SENT, message_id=sent.message_id, now=context.now())
            if not recorded:
                log.warning("notice %s was sent, but its row is gone (erased meanwhile)", notice.id)
            elif ticket_id is not None:  # a reply to the notice targets the case
                await tickets.record_bot_message(session, ticket_id=ticket_id, text=sent.text or "", user_message_id=sent.message_id, now=context.now())
                if notice.kind == "csat":
                    await tickets.set_survey_message(session, ticket_id=ticket_id, message_id=sent.message_id)
        elif fail is not None and fail.flood:  # surely not sent: the next sweep tries again
            await outbox.release(session, notice_id=notice.id, error=fail.reason)
        elif fail is not None:
            state = NoticeState.MAYBE if fail.maybe else NoticeState.FAILED
            await outbox.record(session, notice_id=notice.id, state=state, error=fail.reason, now=context.now())
            if fail.blocked and ticket_id is not None:
                first_block = await tickets.user_blocked_bot(session, ticket_id=ticket_id, error=fail.reason, now=context.now())
    if first_block and fail is not None:  # staff hear it once per ticket; the case goes on
        from handlers import casework

        async with unit_of_work(context.desk.sessions, read_only=True) as session:
            ticket = await tickets.get_ticket(session, ticket_id)  # type: ignore[arg-type]
        html = casework.srender(context, "staff/not_delivered.html", **delivery.describe({"number": ticket_id, "text": None}, fail))
        await casework.tell_staff(context, ticket, html)


async def repair(context: HelpdeskContext) -> tuple[int, int]:
    """From the periodic sweep: send the notices a crash left pending (stored longer
    than the repair grace ago, so that the handler sending one right now goes first),
    oldest first, each claimed (a repeated or racing sweep sends none twice); then mark
    the notices claimed longer than ``telegram.stuck_send_minutes`` ago, whose sender
    stopped mid-send, as maybe delivered, without sending them again.
    Returns (notices sent, notices given up as maybe delivered)."""
    from handlers.casework import repair_grace, stuck_grace

    desk = context.desk
    async with unit_of_work(desk.sessions, read_only=True) as session:
        ids = await outbox.pending(session, before=context.now() - repair_grace(context))
    sent = 0
    for notice_id in ids:
        log.warning("notice %s was stored but never sent (the bot stopped): sending it now", notice_id)
        outcome = await send(context, notice_id)
        if outcome is not None and outcome.message is not None:
            sent += 1
        elif outcome is not None and outcome.failure is not None and outcome.failure.flood:
            break  # the rest wait for the next sweep, in order (and the sweep for the SLA work)
    async with unit_of_work(desk.sessions) as session:
        stuck = await outbox.give_up_stuck(session, before=context.now() - stuck_grace(context))
    for notice in stuck:
        log.error(
            "notice %s (%s, %s) to %s was being sent when the bot stopped; it may have arrived: marked maybe delivered, not sent again",
            notice.id, notice.kind, notice.ref, notice.chat_id,
        )
    return sent, len(stuck)


#: Finished notices are kept this long (what a user was told, for staff questions about
#: it), then forgotten by :func:`prune`.
KEEP = timedelta(days=30)
PRUNE_SECONDS = 3600


async def prune(context: HelpdeskContext) -> None:
    """JobQueue, hourly: forget finished notices older than :data:`KEEP`."""
    async with unit_of_work(context.desk.sessions) as session:
        removed = await outbox.prune(session, before=context.now() - KEEP)
    if removed:
        log.info("forgot %d finished notices older than %s", removed, KEEP)
