"""Ticket services. Every function takes an ``AsyncSession``, never commits, and returns
plain results; every change of a ticket writes a ``TicketEvent`` in the same transaction.

State machine (see ``TRANSITIONS``)::

    draft -> new -> claimed -> waiting <-> claimed -> resolved -> closed
    resolved -> new/claimed (reopen) ; any open state -> closed (spam, the user closes)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.card_retries import CardKind
from bot.config import Settings
from bot.models import User
from escalation.models import (
    OPEN_STATUSES,
    CannedReply,
    Direction,
    Rating,
    SendState,
    StaffMember,
    Ticket,
    TicketCardCopy,
    TicketEvent,
    TicketMessage,
    TicketStatus,
)
from escalation.sla import Calendar
from kb.models import Question

S = TicketStatus

# action -> (statuses it may start from, status it leads to; None: decided by the action)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "escalate": (frozenset({S.DRAFT}), S.NEW),
    "claim": (frozenset({S.NEW}), S.CLAIMED),
    "release": (frozenset({S.CLAIMED, S.WAITING}), S.NEW),
    "assign": (frozenset({S.NEW, S.CLAIMED, S.WAITING}), S.CLAIMED),
    "staff_reply": (frozenset({S.NEW, S.CLAIMED, S.WAITING}), S.WAITING),
    "user_reply": (frozenset({S.WAITING}), S.CLAIMED),
    "resolve": (frozenset({S.NEW, S.CLAIMED, S.WAITING}), S.RESOLVED),
    "reopen": (frozenset({S.RESOLVED, S.CLOSED}), None),
    "spam": (frozenset({S.NEW, S.CLAIMED, S.WAITING, S.RESOLVED}), S.CLOSED),
    "user_close": (frozenset({S.DRAFT, S.NEW, S.CLAIMED, S.WAITING}), S.CLOSED),
    "expire": (frozenset({S.RESOLVED}), S.CLOSED),
    "transfer": (frozenset({S.NEW, S.CLAIMED, S.WAITING}), None),
}


class TicketError(Exception):
    """A refused action, worded for the person who tried it."""

    def __init__(self, code: str, ticket: Ticket | None = None, **details: Any):
        super().__init__(code)
        self.code = code
        # plain values: the transaction is rolled back before anyone reads them
        self.number: int | None = ticket.id if ticket is not None else details.pop("number", None)
        self.status: str | None = ticket.status if ticket is not None else None
        self.details = details


@dataclass(frozen=True)
class Policy:
    """The settings the services need, with the SLA calendar ready."""

    settings: Settings
    calendar: Calendar

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings, Calendar.from_settings(settings.sla, settings.tz))


# ------------------------------------------------------------------ helpers


def _event(session: AsyncSession, ticket: Ticket, actor_id: int | None, kind: str, old: str | None, note: str, now: datetime) -> None:
    session.add(
        TicketEvent(
            ticket_id=ticket.id, actor_id=actor_id, actor_kind=kind, from_status=old, to_status=ticket.status, note=note, at=now
        )
    )


def _check(ticket: Ticket, action: str) -> None:
    allowed, _ = TRANSITIONS[action]
    if ticket.status not in allowed:
        raise TicketError("bad_transition", ticket, action=action)


async def get_ticket(session: AsyncSession, ticket_id: int, *, lock: bool = False) -> Ticket:
    ticket = await session.get(Ticket, ticket_id, with_for_update=lock, populate_existing=lock)
    if ticket is None or ticket.status == S.DRAFT:
        raise TicketError("not_found", None, number=ticket_id)
    return ticket


# A draft (the user picked a category and owes a description) catches their next text
# only this long; after that it is dropped, and their messages are questions again.
DRAFT_WINDOW = timedelta(minutes=30)
# A low rating's comment is the user's next text only this soon after the rating.
COMMENT_WINDOW = timedelta(minutes=30)


def _set_due_times(ticket: Ticket, policy: Policy, start: datetime) -> None:
    sla = policy.settings.sla
    ticket.first_due_at = policy.calendar.add(start, sla.minutes("first_response", ticket.priority))
    ticket.resolve_due_at = policy.calendar.add(start, sla.minutes("resolution", ticket.priority))
    ticket.reply_due_at = ticket.first_due_at
    ticket.sla_level = 0


def _needs_reply(ticket: Ticket, policy: Policy, now: datetime) -> None:
    """Staff owe a reply again (released, transferred, the user wrote): the sweep watches it."""
    ticket.reply_due_at = policy.calendar.add(now, policy.settings.sla.minutes("first_response", ticket.priority))
    ticket.sla_level = 0


def _resume_clock(ticket: Ticket, policy: Policy, now: datetime) -> None:
    """Leaving 'waiting on the user' (by any transition): push the resolution due time
    by the pause."""
    if ticket.paused_at is not None and ticket.resolve_due_at is not None:
        paused = policy.calendar.minutes_between(ticket.paused_at, now)
        ticket.resolve_due_at = policy.calendar.add(ticket.resolve_due_at, paused)
    ticket.paused_at = None
    ticket.waiting_since = None


# ------------------------------------------------------------------ intake (user side)


class IntakeOutcome(StrEnum):
    ESCALATED = "escalated"  # a new ticket reached staff
    JOINED = "joined"  # the user already had an open ticket in that category
    NEED_DESCRIPTION = "need_description"  # a draft waits for the user's description


@dataclass(frozen=True)
class Intake:
    outcome: IntakeOutcome
    ticket: Ticket
    message: TicketMessage | None = None  # the user's words, to relay to staff


async def open_request(
    session: AsyncSession,
    policy: Policy,
    *,
    user_id: int,
    category: str,
    question_id: int | None,
    now: datetime,
    subject: str | None = None,
) -> Intake:
    """The user asked for a person and picked a category. ``subject``: what the bot
    already knows when it opens the case itself (e.g. a dispute about an ad)."""
    cat = policy.settings.support.category(category)
    if cat is None:
        raise TicketError("unknown_category")
    # one request at a time per user (a double tap must not open two tickets)
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    question = await session.get(Question, question_id) if question_id else None
    if question is not None and question.user_id != user_id:
        question = None
    existing = await session.scalar(
        select(Ticket)
        .where(Ticket.user_id == user_id, Ticket.category == category, Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.id.desc())
        .limit(1)
    )
    if existing is not None:
        message = None
        if question is not None and question.id != existing.question_id:
            message = _add_message(session, existing, Direction.IN, user_id, "text", question.text, None, None, now, relay=True)
        _event(session, existing, user_id, "user", existing.status, "asked again: joined the open ticket", now)
        return Intake(IntakeOutcome.JOINED, existing, message)
    cap = policy.settings.limits.open_tickets_per_user
    if cap and not cat.hidden:  # appeals and disputes are opened by the bot, never capped
        count = await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.user_id == user_id, Ticket.status.in_(OPEN_STATUSES))
        )
        if (count or 0) >= cap:
            raise TicketError("too_many_open", open=count, limit=cap)
    # a draft left from an earlier attempt is reused, not duplicated
    ticket = await session.scalar(select(Ticket).where(Ticket.user_id == user_id, Ticket.status == S.DRAFT).limit(1))
    if ticket is None:
        ticket = Ticket(user_id=user_id, status=S.DRAFT, created_at=now, category=category, department=cat.department, priority=cat.priority)
        session.add(ticket)
    ticket.category, ticket.department, ticket.priority = category, cat.department, cat.priority
    ticket.created_at = now
    if question is not None:
        ticket.question_id = question.id
        ticket.offered = list(question.offered)
        ticket.subject = question.text
    elif subject:
        ticket.subject = subject
    await session.flush()
    if not ticket.subject:
        return Intake(IntakeOutcome.NEED_DESCRIPTION, ticket)
    return await _escalate(session, policy, ticket, user_id, now)


async def describe(session: AsyncSession, policy: Policy, *, ticket: Ticket, user_id: int, text: str, now: datetime) -> Intake:
    """The user's description of a draft ticket: the ticket reaches staff."""
    ticket.subject = text
    return await _escalate(session, policy, ticket, user_id, now)


async def _escalate(session: AsyncSession, policy: Policy, ticket: Ticket, user_id: int, now: datetime) -> Intake:
    _check(ticket, "escalate")
    old = ticket.status
    ticket.status = S.NEW
    ticket.escalated_at = now
    _set_due_times(ticket, policy, now)
    await session.flush()
    message = _add_message(session, ticket, Direction.IN, user_id, "text", ticket.subject, None, None, now)
    _event(session, ticket, user_id, "user", old, f"category {ticket.category}, priority {ticket.priority}", now)
    return Intake(IntakeOutcome.ESCALATED, ticket, message)


async def cancel_draft(session: AsyncSession, *, user_id: int, now: datetime, ticket_id: int | None = None) -> bool:
    """Drop the user's draft (only ``ticket_id`` when given, e.g. from its own Cancel button)."""
    query = select(Ticket).where(Ticket.user_id == user_id, Ticket.status == S.DRAFT)
    if ticket_id is not None:
        query = query.where(Ticket.id == ticket_id)
    ticket = await session.scalar(query.limit(1))
    if ticket is None:
        return False
    ticket.status = S.CLOSED
    ticket.closed_at = now
    ticket.close_reason = "user"
    _event(session, ticket, user_id, "user", S.DRAFT, "gave up before describing", now)
    return True


def _add_message(
    session: AsyncSession,
    ticket: Ticket,
    direction: Direction,
    sender_id: int | None,
    kind: str,
    text: str,
    file_id: str | None,
    user_message_id: int | None,
    now: datetime,
    *,
    relay: bool = False,
) -> TicketMessage:
    """``relay``: the message is to be sent to the other side (stored as pending)."""
    message = TicketMessage(
        ticket_id=ticket.id,
        direction=direction,
        sender_id=sender_id,
        kind=kind,
        text=text,
        file_id=file_id,
        user_message_id=user_message_id,
        at=now,
        send_state=SendState.PENDING if relay else None,
    )
    session.add(message)
    return message


# ------------------------------------------------------------------ what a private message means


@dataclass(frozen=True)
class UserCase:
    """The support state of a user when they write to the bot."""

    pending_rating: Rating | None = None
    draft: Ticket | None = None
    active: Ticket | None = None  # the ticket their messages go to


def case_in_progress(user_id: int) -> ColumnElement[bool]:
    """True when ``user_case`` could route the user's next message somewhere: a ticket
    being described, open or recently solved, or a rating waiting for its comment. A
    condition to combine with others in one query (see ``bot.users.in_progress``)."""
    return or_(
        exists().where(Ticket.user_id == user_id, Ticket.status.in_((S.DRAFT, *OPEN_STATUSES, S.RESOLVED))),
        exists().where(Rating.user_id == user_id, Rating.comment_pending.is_(True)),
    )


async def user_case(session: AsyncSession, policy: Policy, *, user_id: int, reply_to: int | None, now: datetime) -> UserCase:
    """Where the user's next message belongs. A reply to a message of a case wins; then
    a fresh low-rating comment, a fresh draft, and the open case (the one waiting on the
    user's answer first)."""
    tickets = (
        await session.scalars(
            select(Ticket)
            .where(Ticket.user_id == user_id, Ticket.status.in_((S.DRAFT, *OPEN_STATUSES, S.RESOLVED)))
            .order_by(Ticket.id.desc())
        )
    ).all()
    if reply_to is not None:
        target = await session.scalar(
            select(TicketMessage.ticket_id).where(
                TicketMessage.user_message_id == reply_to, TicketMessage.ticket_id.in_([t.id for t in tickets] or [0])
            )
        )
        replied = next((t for t in tickets if t.id == target), None)
        if replied is not None and (replied.status != S.RESOLVED or _reopenable(replied, policy, now)):
            return UserCase(active=replied)
    rating = await session.scalar(
        select(Rating).where(Rating.user_id == user_id, Rating.comment_pending.is_(True)).order_by(Rating.id.desc()).limit(1)
    )
    if rating is not None and (rating.rated_at is None or now - rating.rated_at > COMMENT_WINDOW):
        rating.comment_pending = False
        rating = None
    draft = next((t for t in tickets if t.status == S.DRAFT and now - t.created_at <= DRAFT_WINDOW), None)
    waiting = sorted((t for t in tickets if t.status == S.WAITING), key=lambda t: t.waiting_since or t.created_at, reverse=True)
    active = waiting[0] if waiting else next((t for t in tickets if t.status in OPEN_STATUSES), None)
    return UserCase(rating, draft, active)


def _reopened_status(ticket: Ticket) -> str:
    """A reopened case goes back to its assignee, or to the queue. An anonymous (negative)
    assignee is a staff member whose personal data was erased (:func:`unassign_erased`
    keeps it on finished cases for the figures): nobody would answer, so the queue."""
    if ticket.assignee_id is not None and ticket.assignee_id < 0:
        ticket.assignee_id = None
    return S.CLAIMED if ticket.assignee_id else S.NEW


def _reopenable(ticket: Ticket, policy: Policy, now: datetime) -> bool:
    return ticket.resolved_at is not None and now - ticket.resolved_at <= timedelta(days=policy.settings.support.reopen_days)


@dataclass(frozen=True)
class Relay:
    ticket: Ticket
    message: TicketMessage
    reopened: bool = False
    changed: bool = False  # the ticket's status changed (the staff card needs an update)


async def user_message(
    session: AsyncSession,
    policy: Policy,
    *,
    ticket: Ticket,
    user_id: int,
    kind: str,
    text: str,
    file_id: str | None,
    user_message_id: int,
    now: datetime,
) -> Relay | None:
    """Something the user sent into their case: stored, and the clock resumes. The
    ticket is locked and read again first: staff may have just resolved or closed it."""
    ticket = await session.get(Ticket, ticket.id, with_for_update=True, populate_existing=True)  # type: ignore[assignment]
    if ticket is None or ticket.status in (S.CLOSED, S.DRAFT):
        return None
    reopened = False
    old = ticket.status
    ticket.user_blocked_bot = False  # they write to the bot: not blocked (any more)
    if ticket.status == S.RESOLVED:
        ticket.status = _reopened_status(ticket)
        ticket.resolved_at = None
        ticket.reopen_count += 1
        ticket.sla_level = 0
        _set_due_times(ticket, policy, now)
        reopened = True
        _event(session, ticket, user_id, "user", old, "reopened by the user's reply", now)
    elif ticket.status == S.WAITING:
        ticket.status = S.CLAIMED
        _resume_clock(ticket, policy, now)
        _needs_reply(ticket, policy, now)
        _event(session, ticket, user_id, "user", old, "the user replied", now)
    message = _add_message(session, ticket, Direction.IN, user_id, kind, text, file_id, user_message_id, now, relay=True)
    await session.flush()
    return Relay(ticket, message, reopened, changed=old != ticket.status)


async def close_by_user(session: AsyncSession, *, ticket_id: int, user_id: int, now: datetime) -> Ticket:
    ticket = await get_ticket(session, ticket_id, lock=True)
    if ticket.user_id != user_id:
        raise TicketError("not_yours", ticket)
    _check(ticket, "user_close")
    old = ticket.status
    ticket.status = S.CLOSED
    ticket.closed_at = now
    ticket.close_reason = "user"
    ticket.paused_at = ticket.reply_due_at = ticket.waiting_since = None
    _event(session, ticket, user_id, "user", old, "closed by the user", now)
    return ticket


async def reopen_by_user(session: AsyncSession, policy: Policy, *, ticket_id: int, user_id: int, now: datetime) -> Ticket:
    ticket = await get_ticket(session, ticket_id, lock=True)
    if ticket.user_id != user_id:
        raise TicketError("not_yours", ticket)
    if ticket.status != S.RESOLVED or not _reopenable(ticket, policy, now):
        raise TicketError("not_reopenable", ticket)
    return await _reopen(session, policy, ticket, user_id, "user", now)


async def _reopen(session: AsyncSession, policy: Policy, ticket: Ticket, actor: int, kind: str, now: datetime) -> Ticket:
    _check(ticket, "reopen")
    old = ticket.status
    ticket.status = _reopened_status(ticket)
    ticket.resolved_at = ticket.closed_at = None
    ticket.close_reason = None
    ticket.reopen_count += 1
    ticket.sla_level = 0
    _set_due_times(ticket, policy, now)
    _event(session, ticket, actor, kind, old, "reopened", now)
    return ticket


async def has_case(session: AsyncSession, *, user_id: int) -> bool:
    """Does the user have a support case in progress (a draft or an open ticket)?"""
    found = await session.scalar(
        select(Ticket.id).where(Ticket.user_id == user_id, Ticket.status.in_((S.DRAFT, *OPEN_STATUSES))).limit(1)
    )
    return found is not None


async def open_ticket_number(session: AsyncSession, *, user_id: int) -> int | None:
    return await session.scalar(
        select(Ticket.id).where(Ticket.user_id == user_id, Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id.desc()).limit(1)
    )


async def user_tickets(session: AsyncSession, *, user_id: int, limit: int = 10) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket).where(Ticket.user_id == user_id, Ticket.status != S.DRAFT).order_by(Ticket.id.desc()).limit(limit)
    )
    return list(rows.all())


# ------------------------------------------------------------------ staff side


async def touch_staff(session: AsyncSession, *, user_id: int, first_name: str, username: str | None, now: datetime) -> None:
    member = await session.get(StaffMember, user_id)
    if member is None:
        session.add(StaffMember(id=user_id, first_name=first_name or "", username=username, last_seen=now))
    else:
        member.first_name, member.username, member.last_seen = first_name or "", username, now


async def staff_names(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(StaffMember.id, StaffMember.first_name).where(StaffMember.id.in_(ids)))
    return {i: n for i, n in rows.all()}


async def attach_card(
    session: AsyncSession, *, ticket_id: int, chat_id: int, topic_id: int | None, card_message_id: int | None
) -> None:
    """The ticket's place in the staff chat and its tracked card. A card that replaces
    another one in the same chat (posted again by hand) keeps the one before as an
    earlier copy (:func:`keep_card_copy`: replies to it still reach the case)."""
    if card_message_id is not None:
        before = (await session.execute(select(Ticket.staff_chat_id, Ticket.card_message_id).where(Ticket.id == ticket_id))).first()
        if before is not None and before[0] == chat_id and before[1] is not None and before[1] != card_message_id:
            await keep_card_copy(session, ticket_id=ticket_id, chat_id=chat_id, message_id=before[1])
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(staff_chat_id=chat_id, topic_id=topic_id, card_message_id=card_message_id)
    )


async def keep_card_copy(session: AsyncSession, *, ticket_id: int, chat_id: int, message_id: int) -> None:
    """Remember a copy of the ticket's card that is not (or no longer) the tracked one
    (:class:`escalation.models.TicketCardCopy`); a copy known already stays as it is."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(TicketCardCopy).values(chat_id=chat_id, message_id=message_id, ticket_id=ticket_id).on_conflict_do_nothing()
    )


async def card_copies(session: AsyncSession, *, ticket_ids: list[int]) -> list[tuple[int, int, int]]:
    """The earlier copies of these tickets' cards: (ticket, chat, message), oldest first."""
    if not ticket_ids:
        return []
    rows = await session.execute(
        select(TicketCardCopy.ticket_id, TicketCardCopy.chat_id, TicketCardCopy.message_id)
        .where(TicketCardCopy.ticket_id.in_(ticket_ids))
        .order_by(TicketCardCopy.ticket_id, TicketCardCopy.chat_id, TicketCardCopy.message_id)
    )
    return [(t, c, m) for t, c, m in rows.all()]


async def claim_card(session: AsyncSession, *, ticket_id: int, now: datetime, force: bool = False) -> bool:
    """Claim posting the ticket's staff card: True for exactly one of the handler and
    the sweeps racing for a ticket that never had one. ``force``: a fresh card is needed
    although one was posted before (the staff chat moved, or the first try failed)."""
    query = update(Ticket).where(Ticket.id == ticket_id, Ticket.card_message_id.is_(None))
    if not force:
        query = query.where(Ticket.card_claimed_at.is_(None))
    return await session.scalar(query.values(card_claimed_at=now).returning(Ticket.id)) is not None


async def release_card_claim(session: AsyncSession, *, ticket_id: int) -> None:
    """The card surely did not arrive (Telegram refused it): the next sweep tries again."""
    await session.execute(
        update(Ticket).where(Ticket.id == ticket_id, Ticket.card_message_id.is_(None)).values(card_claimed_at=None)
    )


# A ticket's card whose post timed out is posted again by the sweep (bot.card_retries)
# while the ticket is open.
TICKET_CARDS = CardKind(Ticket, Ticket.card_message_id, Ticket.status.in_(OPEN_STATUSES), Ticket.staff_chat_id)
# The tickets whose card staff may ask for again (/repost): open or solved (its card has
# Reopen); not closed (finished), nor a draft (staff never saw it).
REPOSTABLE = Ticket.status.in_((*OPEN_STATUSES, S.RESOLVED))


async def tickets_without_card(session: AsyncSession, *, before: datetime, limit: int = 20) -> list[int]:
    """Open tickets that reached a person before ``before`` and whose card was never
    claimed: the bot stopped between creating the ticket and posting its card."""
    rows = await session.scalars(
        select(Ticket.id)
        .where(
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.card_message_id.is_(None),
            Ticket.card_claimed_at.is_(None),
            Ticket.escalated_at <= before,
        )
        .order_by(Ticket.id)
        .limit(limit)
    )
    return list(rows.all())


def _waits_behind(not_due: tuple[datetime, datetime] | None = None) -> ColumnElement[bool]:
    """An earlier relay of the same case the same way (user -> staff, staff -> user) is
    still queued: this one goes after it, so that the other side reads the case in order.
    ``not_due`` (before, now): only an earlier one that is not due itself (stored after
    ``before``, or due again after ``now``: :func:`pending_relays`)."""
    earlier = aliased(TicketMessage)
    query = select(earlier.id).where(
        earlier.ticket_id == TicketMessage.ticket_id,
        earlier.direction == TicketMessage.direction,
        earlier.id < TicketMessage.id,
        earlier.send_state == SendState.PENDING,
    )
    if not_due is not None:
        before, now = not_due
        query = query.where(or_(earlier.at > before, earlier.retry_at > now))
    return query.exists()


async def claim_relay(session: AsyncSession, *, message_id: int, now: datetime | None = None) -> bool:
    """Claim sending a pending relay: True for exactly one sender (the handler or a sweep).
    False too while an earlier relay of the case the same way is queued (the flood limit,
    the Bot API out of reach, a crash): this one stays pending and the sweep sends both,
    in order. ``now`` is kept as the claim's time (see :func:`stuck_relays`)."""
    claimed = await session.scalar(
        update(TicketMessage)
        .where(TicketMessage.id == message_id, TicketMessage.send_state == SendState.PENDING, ~_waits_behind())
        .values(send_state=SendState.SENDING, claimed_at=now)
        .returning(TicketMessage.id)
    )
    return claimed is not None


async def release_relay(session: AsyncSession, *, message_id: int, retry_at: datetime) -> None:
    """A claimed relay surely not sent (Telegram's flood limit after every retry, the Bot
    API out of reach): pending again, so that the sweep sends it (:func:`pending_relays`)
    once ``retry_at`` (Telegram's retry_after) is past. Only while it is claimed: an
    outcome recorded meanwhile (or the sweep's "maybe delivered" after a very long wait)
    stays."""
    await session.execute(
        update(TicketMessage)
        .where(TicketMessage.id == message_id, TicketMessage.send_state == SendState.SENDING)
        .values(send_state=SendState.PENDING, claimed_at=None, retry_at=retry_at)
    )


# The error recorded on a relay whose sender died between claiming and recording the outcome.
STUCK_ERROR = "the bot stopped while sending it; it may have arrived"


async def stuck_relays(session: AsyncSession, *, before: datetime, limit: int = 50) -> list[PendingRelay]:
    """Relays claimed for sending before ``before`` whose outcome was never recorded: the
    process died mid-send, so each may or may not have arrived. Oldest first."""
    claimed = func.coalesce(TicketMessage.claimed_at, TicketMessage.at)
    return await _relays_with_names(
        session,
        select(TicketMessage, Ticket)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(TicketMessage.send_state == SendState.SENDING, claimed <= before)
        .order_by(TicketMessage.id)
        .limit(limit),
    )


async def give_up_stuck_relay(session: AsyncSession, *, message_id: int, now: datetime) -> Ticket | None:
    """A stuck relay is recorded as *maybe delivered* (never sent again: it may have
    arrived) with a ticket event; atomically, so that one sweep reports it. None when
    it is not stuck any more (its sender recorded the outcome, or another sweep did).
    The caller queues the line that tells staff in the same transaction. The event is
    recorded once: a relay that earlier versions put back (its error still says so) has
    it already."""
    before = await session.scalar(select(TicketMessage.error).where(TicketMessage.id == message_id))
    done = await session.scalar(
        update(TicketMessage)
        .where(TicketMessage.id == message_id, TicketMessage.send_state == SendState.SENDING)
        .values(send_state=SendState.SENT, delivered=None, error=STUCK_ERROR)
        .returning(TicketMessage.id)
    )
    if done is None:
        return None
    message = await session.get(TicketMessage, message_id)
    ticket = await session.get(Ticket, message.ticket_id)  # type: ignore[union-attr]
    if ticket is not None and before != STUCK_ERROR:
        to = "the user" if message.direction in (Direction.OUT, Direction.BOT) else "staff"  # type: ignore[union-attr]
        _event(session, ticket, None, "system", ticket.status, f"maybe not delivered to {to}: {STUCK_ERROR}", now)
    return ticket


@dataclass(frozen=True)
class PendingRelay:
    """A relay stored but never sent, with what sending it needs."""

    message: TicketMessage
    ticket: Ticket
    sender_name: str


async def pending_relays(session: AsyncSession, *, before: datetime, now: datetime, limit: int = 50) -> list[PendingRelay]:
    """Relays to send now, oldest first: stored before ``before`` and never sent (the bot
    stopped between storing and sending), or put back (surely not sent) with their
    ``retry_at`` past. Not one that waits behind an earlier relay of the case the same way
    that is not due itself (:func:`claim_relay` keeps the order)."""
    return await _relays_with_names(
        session,
        select(TicketMessage, Ticket)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(
            TicketMessage.send_state == SendState.PENDING,
            TicketMessage.at <= before,
            or_(TicketMessage.retry_at.is_(None), TicketMessage.retry_at <= now),
            ~_waits_behind(not_due=(before, now)),
        )
        .order_by(TicketMessage.id)
        .limit(limit),
    )


async def _relays_with_names(session: AsyncSession, query: Any) -> list[PendingRelay]:
    """(message, ticket) rows of ``query`` with the sender's name (user or staff)."""
    rows = (await session.execute(query)).all()
    users = {u.id: u.first_name for u in (await session.scalars(select(User).where(User.id.in_({t.user_id for _, t in rows} or {0})))).all()}
    staff = await staff_names(session, [m.sender_id for m, _ in rows if m.direction == Direction.OUT and m.sender_id])
    return [
        PendingRelay(m, t, (staff.get(m.sender_id or 0) if m.direction == Direction.OUT else users.get(t.user_id)) or "")
        for m, t in rows
    ]


_SENT = case((TicketMessage.send_state.is_(None), None), else_=SendState.SENT)


async def set_staff_copy(session: AsyncSession, *, message_id: int, chat_id: int, staff_message_id: int) -> None:
    await session.execute(
        update(TicketMessage)
        .where(TicketMessage.id == message_id)
        .values(staff_chat_id=chat_id, staff_message_id=staff_message_id, send_state=_SENT)
    )


async def record_bot_message(
    session: AsyncSession, *, ticket_id: int, text: str, user_message_id: int, now: datetime, person_id: int | None = None
) -> None:
    """What the bot told the user about the case (a reply to it targets the case).
    ``person_id``: a staff member the text names (redacted when they are erased)."""
    session.add(TicketMessage(
        ticket_id=ticket_id, direction=Direction.BOT, sender_id=None, kind="text", text=text, user_message_id=user_message_id, at=now,
        person_id=person_id,
    ))


async def set_user_copy(session: AsyncSession, *, message_id: int, user_message_id: int) -> None:
    await session.execute(
        update(TicketMessage).where(TicketMessage.id == message_id).values(user_message_id=user_message_id, send_state=_SENT)
    )


async def ticket_at(
    session: AsyncSession, *, chat_id: int, thread_id: int | None, reply_to: int | None, card_of: int | None = None
) -> Ticket | None:
    """The ticket a staff message belongs to: its forum topic, or the message it replies
    to: the ticket's card, an earlier copy of it in the ticket's chat, one of the case's
    messages, or a copy of the card the bot never learnt the id of (its first post timed
    out but arrived): ``card_of``, the ticket its buttons name (read by the caller from
    the bot's own message), while that ticket lives in this chat."""
    if thread_id is not None:
        ticket = await session.scalar(
            select(Ticket).where(Ticket.staff_chat_id == chat_id, Ticket.topic_id == thread_id).order_by(Ticket.id.desc()).limit(1)
        )
        if ticket is not None:
            return ticket
    if reply_to is not None:
        ticket = await session.scalar(select(Ticket).where(Ticket.staff_chat_id == chat_id, Ticket.card_message_id == reply_to))
        if ticket is not None:
            return ticket
        ticket = await session.scalar(
            select(Ticket)
            .join(TicketCardCopy, TicketCardCopy.ticket_id == Ticket.id)
            .where(TicketCardCopy.chat_id == chat_id, TicketCardCopy.message_id == reply_to, Ticket.staff_chat_id == chat_id)
        )
        if ticket is not None:
            return ticket
        ticket_id = await session.scalar(
            select(TicketMessage.ticket_id).where(TicketMessage.staff_chat_id == chat_id, TicketMessage.staff_message_id == reply_to)
        )
        if ticket_id is not None:
            return await session.get(Ticket, ticket_id)
        if card_of is not None:
            ticket = await session.get(Ticket, card_of)
            if ticket is not None and ticket.staff_chat_id == chat_id:
                return ticket
    return None


@dataclass(frozen=True)
class StaffPost:
    ticket: Ticket
    message: TicketMessage
    is_note: bool
    claimed: bool = False  # the reply claimed an unassigned ticket
    changed: bool = False  # the ticket's status changed (the staff card needs an update)


async def staff_message(
    session: AsyncSession,
    policy: Policy,
    *,
    ticket: Ticket,
    staff_id: int,
    kind: str,
    text: str,
    file_id: str | None,
    chat_id: int,
    staff_message_id: int,
    note: bool,
    now: datetime,
) -> StaffPost:
    """A staff member wrote in a ticket's topic or replied to it."""
    if note:
        message = _add_message(session, ticket, Direction.NOTE, staff_id, kind, text, file_id, None, now)
        message.staff_chat_id, message.staff_message_id = chat_id, staff_message_id
        await session.flush()
        return StaffPost(ticket, message, is_note=True)
    if ticket.status not in TRANSITIONS["staff_reply"][0]:
        raise TicketError("bad_transition", ticket, action="staff_reply")
    claimed = False
    old = ticket.status
    if ticket.assignee_id is None:
        ticket.assignee_id = staff_id
        claimed = True
    if ticket.first_response_at is None:
        ticket.first_response_at = now
        if ticket.first_due_at is not None and now > ticket.first_due_at:
            ticket.first_response_breached = True
    ticket.status = S.WAITING
    ticket.reply_due_at = None
    ticket.waiting_since = now  # every staff message restarts the wait for the user
    if ticket.paused_at is None:
        ticket.paused_at = now
    message = _add_message(session, ticket, Direction.OUT, staff_id, kind, text, file_id, None, now, relay=True)
    message.staff_chat_id, message.staff_message_id = chat_id, staff_message_id
    if old != S.WAITING:
        _event(session, ticket, staff_id, "staff", old, "replied" + (" (claimed by replying)" if claimed else ""), now)
    await session.flush()
    return StaffPost(ticket, message, is_note=False, claimed=claimed, changed=old != ticket.status or claimed)


async def delivery_failed(
    session: AsyncSession, *, message_id: int, error: str, blocked: bool, now: datetime, maybe: bool = False
) -> Ticket | None:
    """A message of the case did not arrive (``maybe``: the send timed out, so it may
    have arrived; it is not sent again). The ticket goes on as it was."""
    message = await session.get(TicketMessage, message_id)
    if message is None:
        return None
    message.delivered = None if maybe else False
    message.error = error[:500]
    if message.send_state is not None:
        message.send_state = SendState.SENT
    ticket = await session.get(Ticket, message.ticket_id)
    if ticket is not None:
        if blocked:
            ticket.user_blocked_bot = True
        to = "the user" if message.direction in (Direction.OUT, Direction.BOT) else "staff"
        what = "maybe not delivered" if maybe else "not delivered"
        _event(session, ticket, None, "system", ticket.status, f"{what} to {to}: {error[:200]}", now)
    return ticket


async def user_blocked_bot(session: AsyncSession, *, ticket_id: int, error: str, now: datetime) -> bool:
    """A notice to the user bounced with 403: they blocked the bot. The case goes on.
    Returns False when it was known already."""
    ticket = await session.get(Ticket, ticket_id, with_for_update=True)
    if ticket is None or ticket.user_blocked_bot:
        return False
    ticket.user_blocked_bot = True
    _event(session, ticket, None, "system", ticket.status, f"the user has blocked the bot: {error[:200]}", now)
    return True


async def move_staff_chat(session: AsyncSession, *, old_chat_id: int, new_chat_id: int) -> int:
    """Telegram moved a staff chat to a new id: its tickets follow. Cards and topics of
    the old chat cannot be reached any more: an open ticket's card claim is cleared, so
    the repair sweep posts a fresh card in the new chat (unless a message of the case
    needs one first); a finished ticket gets one when it is next needed (a reopen).
    Returns how many tickets moved."""
    # the old chat's messages are out of reach, and the new chat numbers its own afresh
    await session.execute(delete(TicketCardCopy).where(TicketCardCopy.chat_id == old_chat_id))
    result = await session.execute(
        update(Ticket)
        .where(Ticket.staff_chat_id == old_chat_id)
        .values(
            staff_chat_id=new_chat_id,
            card_message_id=None,
            topic_id=None,
            card_claimed_at=case((Ticket.status.in_(OPEN_STATUSES), None), else_=Ticket.card_claimed_at),
            card_timeouts=0,  # a fresh card in the new chat: no copy of it can be there yet
        )
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ClaimResult:
    ticket: Ticket
    won: bool


async def claim(session: AsyncSession, *, ticket_id: int, staff_id: int, now: datetime) -> ClaimResult:
    """Atomic: of two staff pressing Claim at once exactly one wins."""
    won = await session.scalar(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == S.NEW, Ticket.assignee_id.is_(None))
        .values(status=S.CLAIMED, assignee_id=staff_id)
        .returning(Ticket.id)
    )
    ticket = await get_ticket(session, ticket_id, lock=True)
    if won is None:
        if ticket.assignee_id is None:
            raise TicketError("bad_transition", ticket, action="claim")
        return ClaimResult(ticket, won=False)
    session.add(TicketEvent(ticket_id=ticket.id, actor_id=staff_id, actor_kind="staff", from_status=S.NEW, to_status=S.CLAIMED, note="claimed", at=now))
    return ClaimResult(ticket, won=True)


async def release(session: AsyncSession, policy: Policy, *, ticket_id: int, staff_id: int, is_admin: bool, now: datetime) -> Ticket:
    ticket = await get_ticket(session, ticket_id, lock=True)
    _check(ticket, "release")
    if ticket.assignee_id != staff_id and not is_admin:
        raise TicketError("not_assignee", ticket)
    old = ticket.status
    _resume_clock(ticket, policy, now)
    _needs_reply(ticket, policy, now)
    ticket.status, ticket.assignee_id = S.NEW, None
    _event(session, ticket, staff_id, "staff", old, "released", now)
    return ticket


async def unassign_erased(session: AsyncSession, policy: Policy, *, staff_id: int, anonymous_id: int, now: datetime) -> list[Ticket]:
    """A staff member's personal data is erased: their open cases go back to the queue
    (released, as ``/release`` does: a ghost assignee would hold them and nobody would
    be pinged); finished ones keep the anonymous id as assignee, so the per-staff
    figures of past periods stay (without a name). The tickets changed, for their cards."""
    tickets = (await session.scalars(select(Ticket).where(Ticket.assignee_id == staff_id).order_by(Ticket.id).with_for_update())).all()
    for ticket in tickets:
        if ticket.status in TRANSITIONS["release"][0]:
            old = ticket.status
            _resume_clock(ticket, policy, now)
            _needs_reply(ticket, policy, now)
            ticket.status, ticket.assignee_id = S.NEW, None
            _event(session, ticket, None, "system", old, "released: the assignee's personal data was erased", now)
        else:
            ticket.assignee_id = anonymous_id
    return list(tickets)


async def assign(
    session: AsyncSession, policy: Policy, *, ticket_id: int, username: str, staff_id: int, now: datetime
) -> tuple[Ticket, StaffMember]:
    """Hand the case to a staff member (``username``). Handed to someone new while staff
    owe the user a reply, the reply clock starts again for them, as after a release and
    a claim: the reminder meant for the one before no longer applies (:func:`stale_alert`),
    and the new assignee gets theirs one reply target from now if it is still unanswered.
    The user's own targets (first response, resolution) do not move. A case waiting on
    the user owes no reply: its clock starts when the user writes."""
    ticket = await get_ticket(session, ticket_id, lock=True)
    _check(ticket, "assign")
    name = username.lstrip("@")
    member = await session.scalar(select(StaffMember).where(func.lower(StaffMember.username) == name.lower()))
    if member is None:
        raise TicketError("unknown_staff", ticket, username=username)
    old = ticket.status
    handed_over = ticket.assignee_id != member.id
    ticket.assignee_id = member.id
    if ticket.status == S.NEW:
        ticket.status = S.CLAIMED
    if handed_over and ticket.status == S.CLAIMED:
        _needs_reply(ticket, policy, now)
    _event(session, ticket, staff_id, "staff", old, f"assigned to {member.first_name}", now)
    return ticket, member


@dataclass(frozen=True)
class Resolution:
    ticket: Ticket
    survey: bool  # send the satisfaction survey
    learned: str | None = None  # the entry that got a new pending phrasing


async def resolve(
    session: AsyncSession,
    policy: Policy,
    *,
    ticket_id: int,
    staff_id: int | None,
    now: datetime,
    entry_id: str | None = None,
    note: str = "resolved",
) -> Resolution:
    ticket = await get_ticket(session, ticket_id, lock=True)
    _check(ticket, "resolve")
    old = ticket.status
    ticket.status = S.RESOLVED
    ticket.resolved_at = now
    _resume_clock(ticket, policy, now)
    ticket.reply_due_at = None
    if ticket.resolve_due_at is not None and now > ticket.resolve_due_at:
        ticket.resolution_breached = True
    if ticket.assignee_id is None and staff_id is not None:
        ticket.assignee_id = staff_id
    _event(session, ticket, staff_id, "staff" if staff_id else "system", old, note, now)
    learned = None
    if entry_id:
        learned = await learn(session, ticket=ticket, entry_id=entry_id, staff_id=staff_id, now=now)
    survey = policy.settings.support.csat and not await session.scalar(select(Rating.id).where(Rating.ticket_id == ticket.id))
    if survey:
        session.add(Rating(ticket_id=ticket.id, user_id=ticket.user_id, sent_at=now))
    return Resolution(ticket, survey, learned)


async def learn(session: AsyncSession, *, ticket: Ticket, entry_id: str, staff_id: int | None, now: datetime) -> str:
    """Link a ticket to an FAQ entry: its question becomes a pending learned phrasing."""
    from kb.service import add_learned_phrasing

    question = await session.get(Question, ticket.question_id) if ticket.question_id else None
    text = question.text if question is not None else ticket.subject
    if not await add_learned_phrasing(session, entry_id=entry_id, text=text, now=now):
        raise TicketError("unknown_entry", ticket, entry_id=entry_id)
    ticket.learned_entry_id = entry_id
    _event(session, ticket, staff_id, "staff", ticket.status, f"linked to FAQ entry {entry_id}", now)
    return entry_id


async def close_as_spam(session: AsyncSession, *, ticket_id: int, staff_id: int, now: datetime) -> Ticket:
    ticket = await get_ticket(session, ticket_id, lock=True)
    _check(ticket, "spam")
    old = ticket.status
    ticket.status, ticket.closed_at, ticket.close_reason, ticket.paused_at = S.CLOSED, now, "spam", None
    ticket.reply_due_at = ticket.waiting_since = None
    _event(session, ticket, staff_id, "staff", old, "closed as spam", now)
    return ticket


async def reopen_by_staff(session: AsyncSession, policy: Policy, *, ticket_id: int, staff_id: int, now: datetime) -> Ticket:
    ticket = await get_ticket(session, ticket_id, lock=True)
    return await _reopen(session, policy, ticket, staff_id, "staff", now)


@dataclass(frozen=True)
class Transfer:
    ticket: Ticket
    old_chat: int | None
    old_topic: int | None
    old_card: int | None


async def transfer(session: AsyncSession, *, ticket_id: int, department: str, staff_id: int, policy: Policy, now: datetime) -> Transfer:
    """Hand a ticket to another department (its card and topic move with it)."""
    if department not in policy.settings.support.departments:
        raise TicketError("unknown_department", None, department=department)
    ticket = await get_ticket(session, ticket_id, lock=True)
    _check(ticket, "transfer")
    if ticket.department == department:
        raise TicketError("same_department", ticket, department=department)
    moved = Transfer(ticket, ticket.staff_chat_id, ticket.topic_id, ticket.card_message_id)
    if ticket.staff_chat_id is not None and ticket.card_message_id is not None:  # left behind: erasure redraws it
        await keep_card_copy(session, ticket_id=ticket.id, chat_id=ticket.staff_chat_id, message_id=ticket.card_message_id)
    old_dep = ticket.department
    ticket.department = department
    ticket.staff_chat_id = ticket.topic_id = ticket.card_message_id = None
    ticket.card_claimed_at = None  # a card in the new department is due
    ticket.card_timeouts = 0
    ticket.assignee_id = None
    old = ticket.status
    _resume_clock(ticket, policy, now)
    _needs_reply(ticket, policy, now)
    ticket.status = S.NEW
    _event(session, ticket, staff_id, "staff", old, f"transferred from {old_dep} to {department}", now)
    return moved


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class CardInfo:
    """Everything the staff card shows about a ticket."""

    ticket: Ticket
    user: User
    earlier_tickets: int
    ads: int
    active_strikes: int
    assignee_name: str | None
    offered: list[dict[str, Any]]
    events: list[TicketEvent] = field(default_factory=list)


async def card_info(session: AsyncSession, ticket: Ticket) -> CardInfo:
    user = await session.get(User, ticket.user_id)
    earlier = await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.user_id == ticket.user_id, Ticket.id < ticket.id, Ticket.status != S.DRAFT)
    )
    from ads.models import Ad, AdStatus  # the ads feature's tables: read-only here
    from ads.service import count_active_strikes

    ads = await session.scalar(select(func.count()).select_from(Ad).where(Ad.user_id == ticket.user_id, Ad.status != AdStatus.DRAFT))
    strikes = await count_active_strikes(session, user_id=ticket.user_id, now=ticket.created_at)
    names = await staff_names(session, [ticket.assignee_id] if ticket.assignee_id else [])
    events = (
        await session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id.desc()).limit(3))
    ).all()
    return CardInfo(
        ticket, user, int(earlier or 0), int(ads or 0), int(strikes or 0), names.get(ticket.assignee_id or 0),  # type: ignore[arg-type]
        list(ticket.offered), list(reversed(events)),
    )


@dataclass(frozen=True)
class QueueItem:
    ticket: Ticket
    user_name: str
    assignee_name: str | None
    due_in_minutes: float | None  # negative: breached that long ago


# Word for word the condition of the partial index ix_tickets_open_queue (migration 0015),
# with constants: SQLite uses a partial index only for a query that repeats its condition
# (bot.db._sqlite_index_hints), and PostgreSQL's generic plans only for constants.
OPEN_QUEUE = text("tickets.status IN ('new', 'claimed', 'waiting')")


async def queue(session: AsyncSession, *, now: datetime, departments: list[str] | None = None, limit: int = 30) -> list[QueueItem]:
    """Open tickets, oldest first (only those of ``departments`` when given)."""
    query = (
        select(Ticket, User.first_name)
        .with_hint(Ticket, "INDEXED BY ix_tickets_open_queue", "sqlite")  # see OPEN_QUEUE
        .join(User, User.id == Ticket.user_id)
        .where(OPEN_QUEUE)
        .order_by(Ticket.escalated_at, Ticket.id)
        .limit(limit)
    )
    if departments is not None:
        query = query.where(Ticket.department.in_(departments))
    rows = (await session.execute(query)).all()
    names = await staff_names(session, [t.assignee_id for t, _ in rows if t.assignee_id])
    items = []
    for ticket, user_name in rows:
        due = ticket.reply_due_at or ticket.resolve_due_at
        minutes = None if due is None or ticket.status == S.WAITING else (due - now).total_seconds() / 60
        items.append(QueueItem(ticket, user_name, names.get(ticket.assignee_id or 0), minutes))
    return items


async def history(session: AsyncSession, *, ticket_id: int, limit: int = 20) -> list[TicketMessage]:
    rows = await session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id.desc()).limit(limit)
    )
    return list(reversed(rows.all()))


# ------------------------------------------------------------------ satisfaction


class RateStatus(StrEnum):
    OK = "ok"
    ALREADY = "already"
    NOT_YOURS = "not_yours"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RateResult:
    status: RateStatus
    rating: Rating | None = None
    ask_comment: bool = False


async def set_survey_message(session: AsyncSession, *, ticket_id: int, message_id: int) -> None:
    await session.execute(update(Rating).where(Rating.ticket_id == ticket_id).values(survey_message_id=message_id))


async def rate(session: AsyncSession, *, ticket_id: int, user_id: int, stars: int, now: datetime) -> RateResult:
    rating = await session.scalar(select(Rating).where(Rating.ticket_id == ticket_id).with_for_update())
    if rating is None or not 1 <= stars <= 5:
        return RateResult(RateStatus.EXPIRED)
    if rating.user_id != user_id:
        return RateResult(RateStatus.NOT_YOURS)
    if rating.stars is not None:
        return RateResult(RateStatus.ALREADY, rating)
    rating.stars, rating.rated_at = stars, now
    rating.comment_pending = stars <= 3
    return RateResult(RateStatus.OK, rating, ask_comment=stars <= 3)


async def skip_comment(session: AsyncSession, *, ticket_id: int, user_id: int) -> bool:
    rating = await session.scalar(select(Rating).where(Rating.ticket_id == ticket_id, Rating.user_id == user_id))
    if rating is None or not rating.comment_pending:
        return False
    rating.comment_pending = False
    return True


async def save_comment(session: AsyncSession, *, rating: Rating, text: str) -> None:
    rating.comment = text[:2000]
    rating.comment_pending = False


# ------------------------------------------------------------------ saved replies


async def canned_list(session: AsyncSession) -> list[CannedReply]:
    return list((await session.scalars(select(CannedReply).order_by(CannedReply.name))).all())


async def canned_add(session: AsyncSession, *, name: str, text: str, staff_id: int, now: datetime) -> CannedReply:
    reply = await session.scalar(select(CannedReply).where(CannedReply.name == name))
    if reply is None:
        reply = CannedReply(name=name, text=text, created_by=staff_id, created_at=now)
        session.add(reply)
    else:
        reply.text, reply.created_by, reply.created_at = text, staff_id, now
    await session.flush()
    return reply


async def canned_get(session: AsyncSession, *, name: str) -> CannedReply | None:
    return await session.scalar(select(CannedReply).where(CannedReply.name == name))


# ------------------------------------------------------------------ the SLA sweep


class SlaAction(StrEnum):
    REANNOUNCE = "reannounce"  # unclaimed past its reply target
    PING = "ping"  # claimed, no staff reply past its target
    RESOLUTION = "resolution"  # past the resolution target (told once)
    AUTO_RESOLVE = "auto_resolve"  # waiting on the user too long
    CLOSE = "close"  # resolved and past the reopen window (silent)


#: The SLA steps that alert staff, and the kind of each one's notice in the outbox.
SLA_ALERTS: dict[SlaAction, str] = {
    SlaAction.REANNOUNCE: "sla_reannounce", SlaAction.PING: "sla_ping", SlaAction.RESOLUTION: "sla_resolution",
}


#: step -> (the statuses its alert is about, the due time the ticket is past)
_ALERTED = {
    SlaAction.REANNOUNCE: ((S.NEW,), Ticket.reply_due_at),  # unclaimed past the reply target
    SlaAction.PING: ((S.CLAIMED,), Ticket.reply_due_at),  # claimed, no staff reply past it
    SlaAction.RESOLUTION: ((S.NEW, S.CLAIMED), Ticket.resolve_due_at),  # in staff's hands past the resolution target
}


def _alert_applies(action: SlaAction, now: datetime) -> ColumnElement[bool]:
    """The tickets an SLA step's alert is true of at ``now``: the sweep's condition for
    the step (besides "not announced yet"), and the check of a queued alert when it is
    sent (:func:`stale_alert`)."""
    statuses, due = _ALERTED[action]
    return and_(Ticket.status.in_(statuses), due <= now)


async def stale_alert(session: AsyncSession, *, ticket: Ticket, kind: str, assignee_id: int | None, now: datetime) -> str | None:
    """Why an SLA alert queued earlier (``kind``, see :data:`SLA_ALERTS`) no longer
    applies to ``ticket`` as it is at ``now``, when its turn to be sent comes (late: left
    by a crash, held by Telegram's flood limit or an outage): claimed, answered, resolved
    or closed meanwhile; its target moved (released, the user wrote, reopened); or, for the
    assignee's reminder, the case is with someone else than ``assignee_id``. None: it
    still applies (or ``kind`` is not an SLA alert)."""
    action = next((step for step, name in SLA_ALERTS.items() if name == kind), None)
    if action is None:
        return None
    if ticket.status not in _ALERTED[action][0]:
        return f"no longer applies: #{ticket.id} is {ticket.status} now"
    if action == SlaAction.PING and assignee_id is not None and ticket.assignee_id != assignee_id:
        return f"no longer applies: #{ticket.id} is with someone else now"  # (whose reply clock started again: :func:`assign`)
    if await session.scalar(select(Ticket.id).where(Ticket.id == ticket.id, _alert_applies(action, now))) is None:
        return f"no longer applies: #{ticket.id} has a new target now"
    return None


@dataclass(frozen=True)
class SweepItem:
    action: SlaAction
    ticket: Ticket
    survey: bool = False


async def sweep(session: AsyncSession, policy: Policy, *, now: datetime) -> list[SweepItem]:
    """Everything due now, marked done in this transaction (a repeated sweep does nothing)."""
    items: list[SweepItem] = []
    due_reply = (
        await session.scalars(
            select(Ticket)
            .where(
                or_(
                    and_(_alert_applies(SlaAction.REANNOUNCE, now), Ticket.sla_level < 1),
                    and_(_alert_applies(SlaAction.PING, now), Ticket.sla_level < 2),
                ),
            )
            .order_by(Ticket.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for ticket in due_reply:
        if ticket.first_response_at is None:
            ticket.first_response_breached = True
        if ticket.status == S.NEW:
            ticket.sla_level = 1
            _event(session, ticket, None, "system", ticket.status, "reply target missed: re-announced", now)
            items.append(SweepItem(SlaAction.REANNOUNCE, ticket))
        else:
            ticket.sla_level = 2
            _event(session, ticket, None, "system", ticket.status, "reply target missed: assignee reminded", now)
            items.append(SweepItem(SlaAction.PING, ticket))
    overdue = (
        await session.scalars(
            select(Ticket)
            .where(_alert_applies(SlaAction.RESOLUTION, now), Ticket.resolution_breached.is_(False))
            .order_by(Ticket.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for ticket in overdue:
        ticket.resolution_breached = True
        _event(session, ticket, None, "system", ticket.status, "resolution target missed", now)
        items.append(SweepItem(SlaAction.RESOLUTION, ticket))
    waiting_limit = now - timedelta(days=policy.settings.support.waiting_days)
    stale = (
        await session.scalars(
            select(Ticket).where(Ticket.status == S.WAITING, Ticket.waiting_since <= waiting_limit).with_for_update(skip_locked=True)
        )
    ).all()
    for ticket in stale:
        result = await resolve(session, policy, ticket_id=ticket.id, staff_id=None, now=now, note="resolved: no reply from the user")
        items.append(SweepItem(SlaAction.AUTO_RESOLVE, result.ticket, survey=result.survey))
    reopen_limit = now - timedelta(days=policy.settings.support.reopen_days)
    expired = (
        await session.scalars(
            select(Ticket).where(Ticket.status == S.RESOLVED, Ticket.resolved_at <= reopen_limit).with_for_update(skip_locked=True)
        )
    ).all()
    for ticket in expired:
        ticket.status, ticket.closed_at, ticket.close_reason = S.CLOSED, now, "resolved"
        _event(session, ticket, None, "system", S.RESOLVED, "closed after the reopen window", now)
        items.append(SweepItem(SlaAction.CLOSE, ticket))
    # drafts never described are dropped after a day
    old_drafts = (
        await session.scalars(select(Ticket).where(Ticket.status == S.DRAFT, Ticket.created_at <= now - timedelta(days=1)))
    ).all()
    for ticket in old_drafts:
        ticket.status, ticket.closed_at, ticket.close_reason = S.CLOSED, now, "expired"
        _event(session, ticket, None, "system", S.DRAFT, "never described", now)
    return items
