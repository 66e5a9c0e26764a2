"""Telegram side of the owed redraws (:mod:`bot.redraws`): an erasure's edits in the staff
chat, and the deletion of the erased person's ad photos there (:func:`_ad_photo`).

The handler that committed an erasure does its redraws right away (:func:`run`); the
sweep (:func:`repair`) does what a crash, Telegram's flood limit or a timeout left. Each
redraw is claimed first and drawn from the database as it is now, so doing one again
(the sweep after a sender that stopped mid-way) edits to the same text. Its outcome is
recorded: done; due again later (flood limit, Bot API out of reach: not counted; a
timeout: counted); refused for good (a message staff deleted: "message to edit not
found"), done with the reason and never tried again. After :data:`bot.redraws.ATTEMPTS`
tries it is given up, loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from telegram.error import TelegramError

from bot import redraws
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.redraws import Redraw, RedrawKind
from escalation import feedback as feedback_service
from escalation import service
from escalation.models import TicketStatus
from handlers import ads, casework, delivery, feedback
from handlers.ui import guarded, not_modified

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ drawing each kind


async def _ticket_card(context: HelpdeskContext, job: Redraw) -> None:
    await casework.draw_card(context, job.ref)


async def _card_copy(context: HelpdeskContext, job: Redraw) -> None:
    await casework.redraw_copy(context, job.ref, job.chat_id, job.message_id)  # type: ignore[arg-type]


async def _ticket(context: HelpdeskContext, ticket_id: int):  # type: ignore[no-untyped-def]
    try:
        async with unit_of_work(context.desk.sessions, read_only=True) as session:
            return await service.get_ticket(session, ticket_id)
    except service.TicketError:
        return None


async def _topic_name(context: HelpdeskContext, job: Redraw) -> None:
    """The topic's name as a case of an erased user (it named them)."""
    ticket = await _ticket(context, job.ref)
    if ticket is None or ticket.topic_id is None or ticket.staff_chat_id is None:
        return
    name = context.desk.templates.render_plain(
        "staff/topic_name.j2", casework.staff_locale(context), number=ticket.id,
        name=casework.slabel(context, "erased_user"), category=casework.category_label(context, ticket.category),
    )
    await context.bot.edit_forum_topic(ticket.staff_chat_id, ticket.topic_id, name=name[:128])


async def _topic_close(context: HelpdeskContext, job: Redraw) -> None:
    """The topic of a case the erasure closed, closed (after the line to staff in it)."""
    ticket = await _ticket(context, job.ref)
    if ticket is None or ticket.topic_id is None or ticket.staff_chat_id is None or ticket.status != TicketStatus.CLOSED:
        return  # reopened meanwhile: it stays open
    await context.bot.close_forum_topic(ticket.staff_chat_id, ticket.topic_id)


async def _ad_card(context: HelpdeskContext, job: Redraw) -> None:
    text = casework.srender(context, "privacy/staff_ad_withdrawn.html", number=job.ref, withdrawn=job.kind == RedrawKind.AD_WITHDRAWN)
    await context.bot.edit_message_text(text, chat_id=job.chat_id, message_id=job.message_id, reply_markup=None)  # type: ignore[arg-type]


#: Recorded on the redraw of a photo Telegram would not delete (its caption says erased).
PHOTO_KEPT = "Telegram refused to delete it (bots may delete only messages younger than 48 hours): its caption says erased"


async def _ad_photo(context: HelpdeskContext, job: Redraw) -> str | None:
    """A photo of an erased person's ad in the staff chat (each photo of each album):
    deleted, as a privacy-minded desk expects: the photos are their data (a face, a home,
    a number plate), and staff need them no more once the ad is withdrawn. A photo
    Telegram no longer has (deleted by hand) is done.

    Telegram lets a bot delete its messages only within 48 hours of sending them, and a
    moderated ad's photos are usually older. Such a photo the bot can only mark: its
    caption says it was erased (bots may edit their own messages at any time) and asks
    an admin to delete it by hand (admins can); the redraw is done with
    :data:`PHOTO_KEPT` recorded, and a warning is logged. One message at a time
    (``deleteMessage``, not ``deleteMessages``): the batch call answers for all of them
    at once, and the bot must know which photos stay."""
    try:
        await context.bot.delete_message(job.chat_id, job.message_id)  # type: ignore[arg-type]
        return None
    except TelegramError as exc:
        if ads.already_deleted(exc):
            return None
        if not ads.too_old_to_delete(exc):
            raise
    caption = casework.srender(context, "privacy/staff_photo_erased.html", number=job.ref)
    try:
        await context.bot.edit_message_caption(chat_id=job.chat_id, message_id=job.message_id, caption=caption)  # type: ignore[arg-type]
    except TelegramError as exc:
        if not _unchanged(exc):  # marked by an earlier try: it still stays
            raise
    log.warning(
        "erasure: photo %s/%s of ad #%s could not be deleted (older than Telegram's 48 hours for bots): "
        "its caption now says erased; an admin of the staff chat can delete it", job.chat_id, job.message_id, job.ref,
    )
    return PHOTO_KEPT


async def _ad_decided(context: HelpdeskContext, job: Redraw) -> None:
    await ads.redraw_decided_card(context, job.ref)


async def _report_card(context: HelpdeskContext, job: Redraw) -> None:
    await ads.redraw_report_card(context, job.ref)


async def _feedback_card(context: HelpdeskContext, job: Redraw) -> None:
    async with unit_of_work(context.desk.sessions, read_only=True) as session:
        item = await feedback_service.view(session, job.ref)
    if item is not None:
        await feedback.draw_card(context, item)


#: How each kind is done; what one returns is recorded on the redraw done (why it was
#: done only in part), None when it was done in full.
DRAW: dict[str, Callable[[HelpdeskContext, Redraw], Awaitable[str | None]]] = {
    RedrawKind.TICKET_CARD: _ticket_card,
    RedrawKind.CARD_COPY: _card_copy,
    RedrawKind.TOPIC_NAME: _topic_name,
    RedrawKind.TOPIC_CLOSE: _topic_close,
    RedrawKind.AD_WITHDRAWN: _ad_card,
    RedrawKind.AD_ERASED: _ad_card,
    RedrawKind.AD_DECIDED: _ad_decided,
    RedrawKind.AD_PHOTO: _ad_photo,
    RedrawKind.REPORT_CARD: _report_card,
    RedrawKind.FEEDBACK_CARD: _feedback_card,
}

WHAT = {
    RedrawKind.TICKET_CARD: "the card of ticket #{ref}",
    RedrawKind.CARD_COPY: "the earlier copy {chat_id}/{message_id} of the card of ticket #{ref}",
    RedrawKind.TOPIC_NAME: "the topic name of ticket #{ref}",
    RedrawKind.TOPIC_CLOSE: "closing the topic of ticket #{ref}",
    RedrawKind.AD_WITHDRAWN: "the moderation card of ad #{ref}",
    RedrawKind.AD_ERASED: "the moderation card of ad #{ref}",
    RedrawKind.AD_DECIDED: "the decided moderation card of ad #{ref}",
    RedrawKind.AD_PHOTO: "the photo {chat_id}/{message_id} of ad #{ref}",
    RedrawKind.REPORT_CARD: "the card of report {ref}",
    RedrawKind.FEEDBACK_CARD: "the card of feedback #{ref}",
}


def describe(job: Redraw) -> str:
    return WHAT.get(job.kind, job.kind + " {ref}").format(ref=job.ref, chat_id=job.chat_id, message_id=job.message_id)


# ------------------------------------------------------------------ doing them


@dataclass(frozen=True)
class Tried:
    """One redraw's outcome: ``wait_until`` set when Telegram's flood limit (or the Bot API
    out of reach) refused it: the later ones wait too."""

    done: bool
    wait_until: datetime | None = None


def _unchanged(exc: TelegramError) -> bool:
    """Telegram refused an edit that changes nothing ("message is not modified",
    TOPIC_NOT_MODIFIED for a topic named or closed already): it shows what it must."""
    return not_modified(exc) or "not_modified" in str(exc).lower()


async def _one(context: HelpdeskContext, redraw_id: int, stale_before: datetime | None) -> Tried | None:
    desk = context.desk
    async with unit_of_work(desk.sessions, effect=False) as session:
        job = await redraws.claim(session, redraw_id=redraw_id, now=context.now(), stale_before=stale_before)
    if job is None:
        return None  # done, being done, not due, or waiting for its line to staff
    what = describe(job)
    try:
        note = await DRAW[job.kind](context, job)
    except TelegramError as exc:
        if _unchanged(exc):
            async with unit_of_work(desk.sessions, effect=False) as session:
                await redraws.finish(session, redraw_id=job.id, now=context.now())
            return Tried(done=True)
        fail = delivery.failure(exc)
        now = context.now()
        if fail.again:  # surely not done: again after retry_after, not counted as a try
            retry_at = now + timedelta(seconds=max(fail.retry_after, 1.0))
            async with unit_of_work(desk.sessions, effect=False) as session:
                await redraws.again(session, redraw_id=job.id, retry_at=retry_at, error=fail.reason, counted=False)
            log.warning("erasure: %s is due again after %.0f s: %s", what, fail.retry_after, fail.reason)
            return Tried(done=False, wait_until=retry_at)
        if fail.maybe:  # a timeout, network trouble: the edit is tried again (it is harmless twice)
            async with unit_of_work(desk.sessions, effect=False) as session:
                await redraws.again(session, redraw_id=job.id, retry_at=now + casework.repair_grace(context), error=fail.reason)
            log.warning("erasure: %s failed (try %d of %d), the sweep tries again: %s", what, job.attempts, redraws.ATTEMPTS, fail.reason)
            return Tried(done=False)
        # Telegram's "no" (a message staff deleted, the bot removed from the chat): the
        # same edit would be refused every time
        async with unit_of_work(desk.sessions, effect=False) as session:
            await redraws.finish(session, redraw_id=job.id, now=now, error=fail.reason)
        log.warning("erasure: could not redraw %s, not tried again: %s", what, fail.reason)
        return Tried(done=True)
    async with unit_of_work(desk.sessions, effect=False) as session:
        await redraws.finish(session, redraw_id=job.id, now=context.now(), error=note)
    return Tried(done=True)


async def run(context: HelpdeskContext, ids: Sequence[int], *, stale_before: datetime | None = None) -> int:
    """Claim and do the redraws ``ids`` in order (those another sender has, or that are not
    due, are left). After one refused for Telegram's flood limit the rest wait with it
    (due again at its retry time). ``stale_before``: claims older than this belong to a
    sender that stopped (the sweep). Returns how many were done."""
    done = 0
    for position, redraw_id in enumerate(ids):
        tried = await guarded(f"redraw {redraw_id}", _one(context, redraw_id, stale_before))
        if tried is None:
            continue  # failed oddly: the claim stays, the sweep tries again after the stuck grace
        done += tried.done
        if tried.wait_until is not None:
            rest = list(ids[position + 1:])
            async with unit_of_work(context.desk.sessions, effect=False) as session:
                await redraws.postpone(session, ids=rest, retry_at=tried.wait_until)
            if rest:
                log.warning("erasure: %d more redraws wait for Telegram's flood limit with it", len(rest))
            break
    return done


#: Redraws done per sweep: each edit counts against Telegram's 20 per minute in a group.
PER_SWEEP = 20
#: Finished redraws are kept this long (what was refused or given up, for questions about it).
KEEP = timedelta(days=30)


async def repair(context: HelpdeskContext) -> int:
    """From the periodic sweep: give up the redraws tried :data:`bot.redraws.ATTEMPTS`
    times (logged), then do those a crash left (stored longer than the repair grace ago:
    the handler doing one right now goes first), those due again after a refusal for now,
    and those whose sender stopped mid-way (claimed longer than the stuck grace ago).
    Returns how many were done."""
    desk = context.desk
    now = context.now()
    stale = now - casework.stuck_grace(context)
    async with unit_of_work(desk.sessions) as session:
        given_up = await redraws.give_up(session, now=now, stale_before=stale)
        ids = await redraws.due(session, before=now - casework.repair_grace(context), stale_before=stale, now=now, limit=PER_SWEEP)
        await redraws.prune(session, before=now - KEEP)
    for job in given_up:
        log.error("erasure: %s was %s; it may still show the erased person", describe(job), job.error)
    if ids:
        log.warning("erasure: %d redraws in the staff chat were not done yet (the bot stopped, or Telegram refused for now): doing them now", len(ids))
    return await run(context, ids, stale_before=stale)
