"""Feedback about the service: the user writes it (optionally rates 1-5), staff answer it.

Plain async functions over an ``AsyncSession``; they never commit and never touch
Telegram. Where the bot is waiting for a feedback text or a staff answer is kept in
``pending_inputs`` (:mod:`bot.pending`), so a restart in between loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import pending
from bot.card_retries import CardKind
from bot.models import User
from escalation.models import Feedback, StaffMember

# What the next message is, while the bot waits for it (kinds in pending_inputs).
WAIT_TEXT = "feedback_text"
WAIT_ANSWER = "feedback_answer"
# How long the bot keeps waiting: an older "please type" no longer applies.
TEXT_WAIT = timedelta(minutes=30)
ANSWER_WAIT = timedelta(hours=2)
# Longest feedback and answer kept (characters); longer ones are refused, not cut.
TEXT_MAX = 2000
ANSWER_MAX = 3000


class Status(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    ALREADY = "already"  # rated / answered before
    ERASED = "erased"  # the author's personal data was erased: there is nobody to answer


@dataclass(frozen=True)
class FeedbackView:
    """A feedback item with what the card and the answer need about its author."""

    id: int
    user_id: int
    text: str
    rating: int | None
    created_at: datetime
    staff_chat_id: int | None
    staff_message_id: int | None
    answer: str | None
    answered_by: int | None
    answered_at: datetime | None
    answered_by_name: str | None
    user_name: str
    username: str | None
    user_locale: str | None
    user_language_code: str | None
    erased: bool = False  # the author's personal data was erased: no name, no text, no answer possible
    card_timeouts: int = 0  # posts of the card that timed out (bot.card_retries): a card posted after one says so


@dataclass(frozen=True)
class Outcome:
    status: Status
    feedback: FeedbackView | None = None


async def view(session: AsyncSession, feedback_id: int) -> FeedbackView | None:
    stmt = (
        select(Feedback, User, StaffMember.first_name)
        .join(User, User.id == Feedback.user_id)
        .outerjoin(StaffMember, StaffMember.id == Feedback.answered_by)
        .where(Feedback.id == feedback_id)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return None
    fb, user, staff_name = row
    return FeedbackView(
        id=fb.id,
        user_id=fb.user_id,
        text=fb.text,
        rating=fb.rating,
        created_at=fb.created_at,
        staff_chat_id=fb.staff_chat_id,
        staff_message_id=fb.staff_message_id,
        answer=fb.answer,
        answered_by=fb.answered_by,
        answered_at=fb.answered_at,
        # None for a staff member whose personal data was erased (a negative, anonymous id)
        answered_by_name=staff_name or (str(fb.answered_by) if fb.answered_by and fb.answered_by > 0 else None),
        user_name=user.display_name,
        username=user.username,
        user_locale=user.locale,
        user_language_code=user.language_code,
        erased=user.deleted_at is not None,
        card_timeouts=fb.card_timeouts,
    )


async def waits(session: AsyncSession, *, now: datetime) -> set[tuple[int, int]]:
    """(chat, person) of every feedback wait still alive (the expired ones are dropped)."""
    return await pending.keys(session, now=now, lifetimes={WAIT_TEXT: TEXT_WAIT, WAIT_ANSWER: ANSWER_WAIT})


async def ask_for_text(session: AsyncSession, *, user_id: int, now: datetime) -> None:
    """``/feedback``: the user's next private text is their feedback."""
    await pending.expect(session, chat_id=user_id, user_id=user_id, kind=WAIT_TEXT, now=now)


async def waiting_for_text(session: AsyncSession, *, user_id: int, now: datetime) -> bool:
    return await pending.peek(session, chat_id=user_id, user_id=user_id, kinds=[WAIT_TEXT], now=now, lifetime=TEXT_WAIT) is not None


async def stop_waiting(session: AsyncSession, *, user_id: int) -> bool:
    """The user did something else (a command, a menu item): their next text is not feedback."""
    return await pending.forget(session, chat_id=user_id, user_id=user_id, kinds=[WAIT_TEXT])


async def take_text(session: AsyncSession, *, user_id: int, text: str, now: datetime) -> FeedbackView | None:
    """Store the text as feedback if the bot was waiting for it; None if it was not.
    Raises :class:`TooLong` (and keeps waiting) for a text over :data:`TEXT_MAX`."""
    if len(text) > TEXT_MAX:
        if await waiting_for_text(session, user_id=user_id, now=now):
            raise TooLong(len(text), TEXT_MAX)
        return None
    taken = await pending.take(session, chat_id=user_id, user_id=user_id, kinds=[WAIT_TEXT], now=now, lifetime=TEXT_WAIT)
    if taken is None:
        return None
    fb = Feedback(user_id=user_id, text=text.strip(), rating=None, created_at=now)
    session.add(fb)
    await session.flush()
    return await view(session, fb.id)


class TooLong(ValueError):
    def __init__(self, length: int, limit: int):
        super().__init__(f"{length} characters, at most {limit}")
        self.length = length
        self.limit = limit


async def rate(session: AsyncSession, *, feedback_id: int, user_id: int, rating: int) -> Outcome:
    """The 1-5 rating of one's own feedback, once."""
    if not 1 <= rating <= 5:
        return Outcome(Status.NOT_FOUND)
    fb = await session.get(Feedback, feedback_id)
    if fb is None:
        return Outcome(Status.NOT_FOUND)
    if fb.user_id != user_id:
        return Outcome(Status.NOT_YOURS)
    done = await session.scalar(
        update(Feedback).where(Feedback.id == feedback_id, Feedback.rating.is_(None)).values(rating=rating).returning(Feedback.id)
    )
    return Outcome(Status.OK if done is not None else Status.ALREADY, await view(session, feedback_id))


async def owner_of(session: AsyncSession, feedback_id: int) -> int | None:
    return await session.scalar(select(Feedback.user_id).where(Feedback.id == feedback_id))


async def place_card(session: AsyncSession, *, feedback_id: int, chat_id: int, message_id: int) -> None:
    """Where the staff card of the feedback is (a reply to it answers the feedback)."""
    await session.execute(update(Feedback).where(Feedback.id == feedback_id).values(staff_chat_id=chat_id, staff_message_id=message_id))


async def claim_card(session: AsyncSession, *, feedback_id: int, now: datetime, force: bool = False) -> bool:
    """Claim posting the feedback's staff card: True for exactly one of the handler and
    the sweeps. ``force``: a fresh card although one was claimed before (the staff chat
    moved, so the old card cannot be reached)."""
    query = update(Feedback).where(Feedback.id == feedback_id, Feedback.staff_message_id.is_(None))
    if not force:
        query = query.where(Feedback.card_claimed_at.is_(None))
    return await session.scalar(query.values(card_claimed_at=now).returning(Feedback.id)) is not None


async def release_card_claim(session: AsyncSession, *, feedback_id: int) -> None:
    """The card surely did not arrive (Telegram refused it): the next sweep tries again."""
    await session.execute(
        update(Feedback).where(Feedback.id == feedback_id, Feedback.staff_message_id.is_(None)).values(card_claimed_at=None)
    )


# A feedback's card whose post timed out is posted again by the sweep (bot.card_retries)
# while the feedback is unanswered.
FEEDBACK_CARDS = CardKind(Feedback, Feedback.staff_message_id, Feedback.answer.is_(None), Feedback.staff_chat_id)


async def without_card(session: AsyncSession, *, before: datetime, limit: int = 20) -> list[int]:
    """Unanswered feedback stored before ``before`` whose card was never claimed: the bot
    stopped between storing it and posting its card (or Telegram refused the card)."""
    rows = await session.scalars(
        select(Feedback.id)
        .where(
            Feedback.answer.is_(None),
            Feedback.staff_message_id.is_(None),
            Feedback.card_claimed_at.is_(None),
            Feedback.created_at <= before,
        )
        .order_by(Feedback.id)
        .limit(limit)
    )
    return list(rows.all())


async def move_cards(session: AsyncSession, *, old_chat_id: int) -> int:
    """The staff chat moved to a new id: the cards of unanswered feedback stayed in the
    old chat, out of reach. Their place is cleared (and the claim), so the repair sweep
    posts each card again in the new chat. Answered feedback keeps its history. Returns
    how many cards are due again."""
    result = await session.execute(
        update(Feedback)
        .where(Feedback.staff_chat_id == old_chat_id, Feedback.answer.is_(None))
        .values(staff_chat_id=None, staff_message_id=None, card_claimed_at=None, card_timeouts=0)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


async def at_card(session: AsyncSession, *, chat_id: int, message_id: int) -> int | None:
    """The feedback whose staff card is this message."""
    return await session.scalar(select(Feedback.id).where(Feedback.staff_chat_id == chat_id, Feedback.staff_message_id == message_id))


async def ask_for_answer(session: AsyncSession, *, feedback_id: int, chat_id: int, staff_id: int, thread_id: int | None, now: datetime) -> Outcome:
    """"Answer" on a card: this staff member's next message in this chat (topic) is the answer."""
    fb = await view(session, feedback_id)
    if fb is None:
        return Outcome(Status.NOT_FOUND)
    if fb.answer is not None:
        return Outcome(Status.ALREADY, fb)
    if fb.erased:
        return Outcome(Status.ERASED, fb)
    await pending.expect(session, chat_id=chat_id, user_id=staff_id, kind=WAIT_ANSWER, ref_id=feedback_id, thread_id=thread_id, now=now)
    return Outcome(Status.OK, fb)


async def answering(session: AsyncSession, *, chat_id: int, staff_id: int, thread_id: int | None, now: datetime) -> int | None:
    """The feedback this staff member's next message here answers, after "Answer"."""
    row = await pending.peek(session, chat_id=chat_id, user_id=staff_id, kinds=[WAIT_ANSWER], now=now, lifetime=ANSWER_WAIT, thread_id=thread_id)
    return row.ref_id if row is not None else None


async def answer(session: AsyncSession, *, feedback_id: int, chat_id: int, staff_id: int, text: str, now: datetime) -> Outcome:
    """Store the staff answer, once: of two answers at once exactly one is kept. The
    staff member's "Answer" (if any) in this chat is done with."""
    await pending.forget(session, chat_id=chat_id, user_id=staff_id, kinds=[WAIT_ANSWER])
    erased = await session.scalar(
        select(User.deleted_at.is_not(None)).join(Feedback, Feedback.user_id == User.id).where(Feedback.id == feedback_id)
    )
    if erased:
        return Outcome(Status.ERASED, await view(session, feedback_id))
    done = await session.scalar(
        update(Feedback)
        .where(Feedback.id == feedback_id, Feedback.answer.is_(None))
        .values(answer=text.strip(), answered_by=staff_id, answered_at=now)
        .returning(Feedback.id)
    )
    fb = await view(session, feedback_id)
    if fb is None:
        return Outcome(Status.NOT_FOUND)
    return Outcome(Status.OK if done is not None else Status.ALREADY, fb)
