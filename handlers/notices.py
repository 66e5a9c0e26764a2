"""Telegram side of the user-notice outbox (:mod:`bot.outbox`).

A handler renders a notice and queues it (:func:`queue`) inside the unit of work of the
decision that causes it; after the commit it sends what it queued (:func:`send_all`).
Each send is claimed first (one sender), and its outcome recorded:

- sent: the message id (for a ticket's notice also a message of the case, so that a
  reply to it reaches the case; for the survey its message id);
- 403, the user blocked the bot: ``failed``; for a ticket, recorded on the ticket and
  staff told once (that line queued here too, with the record); the flow goes on;
- a timeout, or other network trouble (a 502, a connection cut): ``maybe`` (it may
  have arrived): never sent again;
- Telegram's flood limit after every retry, or the Bot API out of reach (the connection
  refused): surely not sent, so back to ``pending``, due again after Telegram's
  retry_after or :data:`handlers.delivery.UNREACHABLE_RETRY_SECONDS` (``retry_at``); any
  other refusal: ``failed`` with Telegram's reason.

A flood refusal holds back only the later notices to the same chat (they keep their
order: the survey never before its "solved"); the other chats' notices go on. The
refused ones and those held behind them are sent again retry_after seconds later by a
one-off job of PTB's JobQueue (:func:`retry_later`; claimed like every send, so the sweep
and the job never both send one). Refused for a second chat in the same run, the limit
is the bot's own, not one chat's: the run stops there and the job sends the rest.

Notices to the moderators (the pattern alert, a lost moderation card's line:
:func:`queue_for_moderators`) go the same way to the staff chat's Moderation topic (or
its Feedback topic), looked up when sent (a chat that moved is followed); so do notices
to staff about a ticket (the SLA sweep's alerts, a lost card's line, a relay interrupted
mid-send: :func:`queue_for_ticket`), to the ticket's place in its staff chat as it is
when sent (its topic or a reply to its card; or the chat's General topic). A refusal there (the
bot was removed from the staff chat, 403; a 400) is recorded *failed* and logged as an
error, once; it is not "the user blocked the bot". A notice to an erased person's
anonymous id is never queued nor sent (:func:`bot.outbox.addressable`), whichever
handler asks.

:func:`repair` (from the periodic sweep) marks the notices a crash left ``sending`` as
maybe delivered, then sends those a crash (or a flood refusal whose retry_after is
over) left pending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from telegram import InlineKeyboardMarkup, Message
from telegram.error import TelegramError

from bot import outbox
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.outbox import Audience, NoticeState, Queued
from handlers import delivery
from handlers.ui import guarded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one notice: the message sent, or why not."""

    notice_id: int
    message: Message | None = None
    failure: delivery.Failure | None = None
    dropped: str | None = None  # not sent: no longer true (why)


async def queue(
    context: HelpdeskContext, session, *, chat_id: int, kind: str, text: str, ref: str | None = None,  # type: ignore[no-untyped-def]
    markup: InlineKeyboardMarkup | None = None, person_id: int | None = None,
) -> Queued | None:
    """Store a rendered notice to a user in the current unit of work (``session``); send
    it with :func:`send_all` after the commit. None for an erased person's anonymous id
    (nothing stored: there is nobody to tell). ``person_id``: someone else its text names
    (a staff member): erased with them."""
    return await outbox.queue(
        session, chat_id=chat_id, kind=kind, ref=ref, text=text, reply_markup=markup.to_dict() if markup else None, now=context.now(),
        person_id=person_id,
    )


async def queue_for_moderators(
    context: HelpdeskContext, session, *, kind: str, text: str, ref: str, person_id: int | None = None,  # type: ignore[no-untyped-def]
    audience: Audience = Audience.MODERATORS,
) -> Queued | None:
    """Store a rendered notice to the moderators (the staff chat's Moderation topic,
    looked up when it is sent; ``audience`` *feedback*: its Feedback topic). ``ref``
    names what it is about (``user:<id>``: erased with them); ``person_id``: someone the
    text names (an ad's owner by its title, a feedback's author): erased with them."""
    return await outbox.queue(
        session, chat_id=context.desk.settings.staff.chat_id, kind=kind, ref=ref, text=text, now=context.now(),  # type: ignore[arg-type]
        audience=audience, person_id=person_id,
    )


async def queue_for_ticket(
    context: HelpdeskContext, session, ticket, *, kind: str, text: str, general: bool = False, person_id: int | None = None,  # type: ignore[no-untyped-def]
) -> Queued | None:
    """Store a rendered line to staff about ``ticket`` (e.g. an SLA alert) in the unit of
    work of the step it announces; sent with :func:`send_all` after the commit, or by the
    sweep. It goes where the ticket is when it is sent: its topic, or a reply to its card;
    ``general``: in a forum, the chat's General topic, where everybody looks. ``person_id``:
    someone the text names (an assignee): the notice is erased with them."""
    chat_id = ticket.staff_chat_id or context.department_chat(ticket.department)
    return await outbox.queue(
        session, chat_id=chat_id, kind=kind, ref=f"ticket:{ticket.id}", text=text, now=context.now(),
        audience=Audience.TICKET_GENERAL if general else Audience.TICKET, person_id=person_id,
    )


#: A flood refusal for this many different chats in one run: the limit is the bot's own.
BOT_WIDE = 2
RETRY_JOB = "notice_retry"


async def send_all(context: HelpdeskContext, queued: Iterable[Queued | None]) -> list[Outcome]:
    """Send what a committed unit of work queued, each chat's in order. After a notice
    refused for Telegram's flood limit, the later ones to that chat wait with it (the
    survey never before its "solved"); other chats' go on. What waits is sent again
    after retry_after (:func:`retry_later`)."""
    return await _send_in_order(context, [item for item in queued if item is not None])


async def _send_in_order(context: HelpdeskContext, items: list[Queued]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    held: set[int] = set()  # chats with a notice refused for the flood limit in this run
    busy: set[int] = set()  # chats with a notice another sender has: its later ones are left to the sweep
    later: list[Queued] = []  # sent again after retry_after, in this order
    wait = 0.0
    for position, item in enumerate(items):
        if item.chat_id in held:
            later.append(item)
            continue
        if item.chat_id in busy:
            continue
        outcome = await guarded(f"sending notice {item.id} ({item.kind}, {item.ref})", send(context, item.id))
        if outcome is None:  # another sender may be sending it right now (or it failed oddly): the next one must not overtake it
            busy.add(item.chat_id)
            continue
        outcomes.append(outcome)
        if outcome.failure is not None and outcome.failure.again:
            held.add(item.chat_id)
            later.append(item)
            wait = max(wait, outcome.failure.retry_after)
            if len(held) >= BOT_WIDE:  # the bot's own limit: the rest wait too
                log.warning("Telegram's flood limit for %d chats in a row: the other %d notices wait %.0f s", len(held), len(items) - position - 1, wait)
                later.extend(items[position + 1:])
                break
    if later:
        retry_later(context, later, wait)
    return outcomes


def retry_later(context: HelpdeskContext, items: list[Queued], seconds: float) -> None:
    """A one-off job of PTB's JobQueue sends ``items`` (in order, each claimed) once
    Telegram's retry_after is over. Not persisted: after a restart the sweep sends them
    (their ``retry_at`` is stored)."""
    jobs = context.application.job_queue
    if jobs is None:
        return
    # One such job at a time: every flood refusal (a sweep each minute while the limit
    # lasts) used to add one more. The waiting one's notices join these (in id order:
    # each chat's stays in order), sent when the later of the two waits is over.
    when = datetime.now(timezone.utc) + timedelta(seconds=max(seconds, 1.0))
    merged = {item.id: item for item in items}
    for job in jobs.get_jobs_by_name(RETRY_JOB):
        merged.update({item.id: item for item in job.data})  # type: ignore[union-attr]
        if job.next_t is not None and job.next_t > when:
            when = job.next_t
        job.schedule_removal()
    data = sorted(merged.values(), key=lambda item: item.id)
    jobs.run_once(_retry, when=when, data=data, name=RETRY_JOB, job_kwargs={"misfire_grace_time": 60})


async def _retry(context: HelpdeskContext) -> None:
    items: list[Queued] = context.job.data  # type: ignore[union-attr, assignment]
    log.info("sending %d notices again after Telegram's flood limit", len(items))
    await _send_in_order(context, items)


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
        if notice.audience in (Audience.MODERATORS, Audience.FEEDBACK):
            sent = await _to_topic(context, notice, markup)
        elif notice.audience in outbox.TICKET_AUDIENCES:
            sent = await _to_ticket(context, notice, markup)
        else:
            sent = await context.bot.send_message(notice.chat_id, notice.text, reply_markup=markup)
    except TelegramError as exc:
        fail = delivery.failure(exc)
        outcome = Outcome(notice_id, failure=fail)
        if fail.maybe:
            log.warning("notice %s (%s, %s) timed out; it may have arrived, not sent again", notice_id, notice.kind, notice.ref)
        elif notice.audience != Audience.USER and not fail.again:  # staff miss it: loud, once (recorded failed, not tried again)
            log.error("notice %s (%s, %s) to staff was not delivered, recorded failed: %s", notice_id, notice.kind, notice.ref, fail.reason)
        else:
            log.warning("notice %s (%s, %s) was not delivered: %s", notice_id, notice.kind, notice.ref, fail.reason)
    except _NoTicket:
        log.error("notice %s (%s, %s) is about a ticket that does not exist: not sent", notice_id, notice.kind, notice.ref)
        outcome = Outcome(notice_id, failure=delivery.Failure("no such ticket"))
    except _Stale as stale:
        log.info("notice %s (%s, %s) is not sent: %s", notice_id, notice.kind, notice.ref, stale)
        outcome = Outcome(notice_id, dropped=str(stale))
    except Exception as exc:  # not Telegram's error: an answer the bot cannot read (a broken proxy or Bot API server)
        # It may have arrived: *maybe*, never sent again, as the stuck repair would mark it
        # later; recorded now, so that the chat's later notices (another ticket's SLA alert,
        # a user's next notice) need not wait behind it until then.
        log.exception("notice %s (%s, %s) failed oddly; it may have arrived: marked maybe delivered, not sent again", notice_id, notice.kind, notice.ref)
        outcome = Outcome(notice_id, failure=delivery.Failure(f"the send failed oddly ({type(exc).__name__}); it may have arrived", maybe=True))
    else:
        outcome = Outcome(notice_id, message=sent)
    await _record(context, notice, outcome)
    return outcome


class _NoTicket(Exception):
    """The ticket a notice to staff is about is not there."""


class _Stale(Exception):
    """A notice to staff about a ticket that is no longer true of it (an SLA alert about
    a ticket claimed or solved since): why."""


def _ticket_id(notice: outbox.Notice) -> int | None:
    ref = notice.ref or ""
    return int(ref.split(":", 1)[1]) if ref.startswith("ticket:") else None


async def _to_ticket(context: HelpdeskContext, notice: outbox.Notice, markup: InlineKeyboardMarkup | None) -> Message:
    """The ticket's place in the staff chat as it is now (its chat, topic and card: a chat
    Telegram moved, or a topic made since, is followed); the General topic for
    *ticket_general*. An SLA alert that no longer applies to the ticket as it is now
    (:func:`escalation.service.stale_alert`) raises :class:`_Stale`, unsent."""
    from escalation import service as tickets
    from handlers import casework

    ticket_id = _ticket_id(notice)
    if ticket_id is None:
        raise _NoTicket(notice.ref)
    try:
        async with unit_of_work(context.desk.sessions, read_only=True) as session:
            ticket = await tickets.get_ticket(session, ticket_id)
            stale = await tickets.stale_alert(session, ticket=ticket, kind=notice.kind, assignee_id=notice.person_id, now=context.now())
    except tickets.TicketError as exc:
        raise _NoTicket(notice.ref) from exc
    if stale is not None:
        raise _Stale(stale)
    return await casework.post_in_place(context, ticket, notice.text, general=notice.audience == Audience.TICKET_GENERAL, markup=markup)


async def _to_topic(context: HelpdeskContext, notice: outbox.Notice, markup: InlineKeyboardMarkup | None) -> Message:
    """The staff chat's Moderation (or Feedback) topic as it is now (a chat Telegram moved
    is followed)."""
    from handlers.ads import moderation_place  # handlers.ads and handlers.feedback import this module
    from handlers.feedback import feedback_place

    place = feedback_place if notice.audience == Audience.FEEDBACK else moderation_place
    chat_id, topic = await place(context)
    return await delivery.to_staff_chat(
        context, chat_id,
        lambda to: context.bot.send_message(to, notice.text, message_thread_id=topic if to == chat_id else None, reply_markup=markup),
    )


async def _record(context: HelpdeskContext, notice: outbox.Notice, outcome: Outcome) -> None:
    from escalation import service as tickets

    fail, sent = outcome.failure, outcome.message
    # a user's notice about a case: a message of the case, and a 403 means they blocked the bot
    ticket_id = _ticket_id(notice) if notice.audience == Audience.USER else None
    line: Queued | None = None
    async with unit_of_work(context.desk.sessions, effect=False) as session:
        if sent is not None:
            recorded = await outbox.record(session, notice_id=notice.id, state=NoticeState.SENT, message_id=sent.message_id, now=context.now())
            if not recorded:
                log.warning("notice %s was sent, but its row is gone (erased meanwhile)", notice.id)
            elif ticket_id is not None:  # a reply to the notice targets the case
                await tickets.record_bot_message(
                    session, ticket_id=ticket_id, text=sent.text or "", user_message_id=sent.message_id, now=context.now(), person_id=notice.person_id,
                )
                if notice.kind == "csat":
                    await tickets.set_survey_message(session, ticket_id=ticket_id, message_id=sent.message_id)
        elif outcome.dropped is not None:
            await outbox.record(session, notice_id=notice.id, state=NoticeState.DROPPED, error=outcome.dropped, now=context.now())
        elif fail is not None and fail.again:  # surely not sent (flood limit, Bot API out of reach): due again after retry_after
            retry_at = context.now() + timedelta(seconds=fail.retry_after)
            await outbox.release(session, notice_id=notice.id, error=fail.reason, retry_at=retry_at)
        elif fail is not None:
            state = NoticeState.MAYBE if fail.maybe else NoticeState.FAILED
            await outbox.record(session, notice_id=notice.id, state=state, error=fail.reason, now=context.now())
            if fail.blocked and ticket_id is not None and await tickets.user_blocked_bot(session, ticket_id=ticket_id, error=fail.reason, now=context.now()):
                # staff hear it once per ticket, queued with the record (the case goes on)
                from handlers import casework

                html = casework.srender(context, "staff/not_delivered.html", **delivery.describe({"number": ticket_id, "text": None}, fail))
                line = await queue_for_ticket(context, session, await tickets.get_ticket(session, ticket_id), kind="user_blocked", text=html)
    await send_all(context, [line])


async def repair(context: HelpdeskContext) -> tuple[int, int]:
    """From the periodic sweep: mark the notices claimed longer than
    ``telegram.stuck_send_minutes`` ago, whose sender stopped mid-send, as maybe
    delivered, without sending them again; then send the notices due (:func:`bot.outbox.due`:
    left pending by a crash, stored longer than the repair grace ago so that the handler
    sending one right now goes first; or refused for the flood limit, retry_after over),
    each chat's in order, each claimed (a repeated or racing sweep sends none twice).
    A flood refusal for one chat holds back only that chat's; for a second chat, the rest
    too (and the sweep goes on with its SLA work): :func:`_send_in_order`.
    Returns (notices sent, notices given up as maybe delivered)."""
    from handlers.casework import repair_grace, stuck_grace

    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        stuck = await outbox.give_up_stuck(session, before=context.now() - stuck_grace(context))
    for notice in stuck:
        log.error(
            "notice %s (%s, %s) to %s was being sent when the bot stopped; it may have arrived: marked maybe delivered, not sent again",
            notice.id, notice.kind, notice.ref, notice.chat_id,
        )
    async with unit_of_work(desk.sessions, read_only=True) as session:
        items = await outbox.due(session, before=context.now() - repair_grace(context), now=context.now())
    for item in items:
        log.warning("notice %s (%s, %s) was stored but not sent yet (the bot stopped, or Telegram's flood limit): sending it now", item.id, item.kind, item.ref)
    outcomes = await _send_in_order(context, items)
    return sum(1 for o in outcomes if o.message is not None), len(stuck)


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
