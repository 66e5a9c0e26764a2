"""The user-notice outbox: what the bot must tell a user because of a decision.

A notice (an ad decision, a penalty, a ticket's "solved" and its survey, the answer
to a feedback...) is written as a row of ``notices`` in the same transaction as the
decision that causes it, already rendered in the user's language (handlers render;
this module never imports telegram: buttons are stored as the Bot API's JSON). Then:

- right after the commit, the handler claims it (pending -> sending, atomically: one
  sender) and sends it, and records the outcome: ``sent`` with the message id;
  ``failed`` with the reason (a user who blocked the bot: the flow goes on);
  ``maybe`` when the request timed out (it may have arrived: never sent again);
- the periodic sweep sends pending notices older than the repair grace (the bot
  stopped between the commit and the send), and marks notices claimed longer than
  ``telegram.stuck_send_minutes`` ago as ``maybe`` (the bot stopped mid-send) without
  sending them again.

So a crash at any point loses no notice and sends none twice. A notice to staff that is
no longer true when its turn comes (an SLA alert about a ticket claimed or solved since it
was queued: :func:`escalation.service.stale_alert`) is recorded ``dropped`` with the
reason, not sent.

Notices go to users' private chats (``audience`` *user*: the chat id is the user's
Telegram id, always positive), to the moderators (*moderators*: e.g. the pattern
alert, the line about a moderation card that could not be confirmed; the staff chat and
its Moderation topic are looked up when it is sent, so a chat that moved meanwhile is
followed), to the staff chat's Feedback topic (*feedback*, looked up the same way: the
line about a feedback card that could not be confirmed), or to staff about a ticket
(*ticket*: the ticket's topic, or a reply to its card, e.g. the line about a relay
interrupted mid-send; *ticket_general*: in a forum the chat's General topic, where
everybody looks; e.g. the SLA sweep's alerts. ``ref`` names the ticket, whose place is
looked up when the notice is sent: a chat that moved, or a topic made since, is
followed; ``chat_id`` is its staff chat when queued, for the per-chat order).
Nothing is ever queued for, or sent to, an anonymous id (negative: the row an erased
person's history moved to, see :mod:`bot.privacy`): :func:`queue` returns None for it,
and a stored one is recorded failed, never sent.

Erasure (:func:`erase_user`, :func:`erase_named`): a person's own notices go, and so do
the notices to staff about them or their tickets, and those whose text names them
(``person_id``: e.g. the assignee in a reminder, the staff member in "Thandi from
support is on your case").

Order: a chat's notices go out in the order they were queued. One refused for Telegram's
flood limit goes back to *pending* with ``retry_at`` (now + Telegram's retry_after);
until then neither it nor any later notice to the same chat is due (:func:`due`), while
other chats' notices are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from bot.db import Base, SafeString, SafeText

log = logging.getLogger(__name__)


class NoticeState(StrEnum):
    PENDING = "pending"  # stored with its decision, not sent yet
    SENDING = "sending"  # claimed by one sender; the outcome is not recorded yet
    SENT = "sent"
    FAILED = "failed"  # surely not delivered (``error`` says why); not sent again
    MAYBE = "maybe"  # timed out, or the sender stopped mid-send: may have arrived; not sent again
    DROPPED = "dropped"  # not sent: no longer true when its turn came (an SLA alert about a ticket claimed since; ``error`` says why)


class Audience(StrEnum):
    USER = "user"  # the user's private chat (chat_id: their Telegram id)
    MODERATORS = "moderators"  # the moderators' place in the staff chat (chat_id: the staff chat when queued)
    TICKET = "ticket"  # the ticket (ref) in its staff chat: its topic, or a reply to its card (chat_id: that chat when queued)
    TICKET_GENERAL = "ticket_general"  # the ticket's staff chat where everybody looks: a forum's General topic
    FEEDBACK = "feedback"  # the staff chat's Feedback topic (chat_id: the staff chat when queued)


#: Audiences of notices about a ticket, sent where the ticket (``ref``) is in the staff chat.
TICKET_AUDIENCES = (Audience.TICKET, Audience.TICKET_GENERAL)


# The error recorded on a stored notice to an anonymous id (never sent).
ERASED_ERROR = "an erased user's anonymous id: nobody to tell"


def addressable(audience: str, chat_id: int) -> bool:
    """Can a notice go there? A user's private chat has their (positive) Telegram id; a
    negative id in a user notice is an erased person's anonymous row: nobody to tell."""
    return audience != Audience.USER or chat_id > 0


class Notice(Base):
    """A message to a user, queued in the transaction of the decision that causes it."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_state", "state"),
        Index("ix_notices_chat_id", "chat_id"),
        Index("ix_notices_ref", "ref"),  # erasure: the notices about a user (migration 0023)
        Index("ix_notices_person_id", "person_id"),  # erasure: the notices that name a person (migration 0024)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int]  # the user's private chat (their Telegram id); for staff audiences the staff chat when queued
    audience: Mapped[str] = mapped_column(SafeString(16), default=Audience.USER, server_default=Audience.USER.value)
    kind: Mapped[str] = mapped_column(SafeString(32))  # e.g. ad_approved, ticket_resolved, csat, penalty
    ref: Mapped[str | None] = mapped_column(SafeString(64))  # what it is about: "ticket:12", "ad:5", "feedback:3"
    text: Mapped[str] = mapped_column(SafeText)  # the rendered HTML, in the user's language
    reply_markup: Mapped[dict[str, Any] | None]  # the Bot API's JSON of the buttons
    state: Mapped[str] = mapped_column(SafeString(8), default=NoticeState.PENDING)
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[int | None]  # Telegram's id of the message sent
    error: Mapped[str | None] = mapped_column(SafeText)
    retry_at: Mapped[datetime | None]  # refused for the flood limit: not due before this
    person_id: Mapped[int | None]  # someone the text names besides its audience (an assignee): erased with them



# The error recorded on a notice whose sender stopped between claiming and recording the outcome.
STUCK_ERROR = "the bot stopped while sending it; it may have arrived"


@dataclass(frozen=True)
class Queued:
    """A notice to send after the commit (its id) and what it is about."""

    id: int
    chat_id: int
    kind: str
    ref: str | None


async def queue(
    session: AsyncSession, *, chat_id: int, kind: str, text: str, now: datetime, ref: str | None = None,
    reply_markup: dict[str, Any] | None = None, audience: Audience = Audience.USER, person_id: int | None = None,
) -> Queued | None:
    """Store a notice in the caller's transaction (sent after the commit, or by the sweep).
    None (nothing stored) for an erased person's anonymous id: there is nobody to tell.
    ``person_id``: someone the text names (erased with them, :func:`erase_named`)."""
    if not addressable(audience, chat_id):
        log.info("notice %s (%s) not queued: %s is an erased user's anonymous id", kind, ref, chat_id)
        return None
    notice = Notice(
        chat_id=chat_id, audience=audience, kind=kind, ref=ref, text=text, reply_markup=reply_markup, state=NoticeState.PENDING,
        created_at=now, person_id=person_id,
    )
    session.add(notice)
    await session.flush()
    return Queued(notice.id, chat_id, kind, ref)


async def claim(session: AsyncSession, *, notice_id: int, now: datetime) -> Notice | None:
    """pending -> sending, atomically: the notice for exactly one sender (None: another
    sender has it, or had it)."""
    claimed = await session.scalar(
        update(Notice)
        .where(Notice.id == notice_id, Notice.state == NoticeState.PENDING)
        .values(state=NoticeState.SENDING, claimed_at=now)
        .returning(Notice.id)
    )
    if claimed is None:
        return None
    return await session.get(Notice, notice_id, populate_existing=True)


async def record(
    session: AsyncSession, *, notice_id: int, state: NoticeState, now: datetime, message_id: int | None = None, error: str | None = None
) -> bool:
    """The outcome of a claimed notice: ``sent`` (with Telegram's message id), ``failed``
    or ``maybe`` (with the reason). A send that Telegram confirmed is recorded as sent
    even if a sweep gave it up as stuck meanwhile. False when it was not being sent
    (erased, or already recorded)."""
    states = [NoticeState.SENDING, NoticeState.MAYBE] if state == NoticeState.SENT else [NoticeState.SENDING]
    done = await session.scalar(
        update(Notice)
        .where(Notice.id == notice_id, Notice.state.in_(states))
        .values(state=state, sent_at=now if state == NoticeState.SENT else None, message_id=message_id, error=error[:1000] if error else None)
        .returning(Notice.id)
    )
    return done is not None


async def release(session: AsyncSession, *, notice_id: int, error: str, retry_at: datetime) -> None:
    """A claimed notice surely not sent (Telegram's flood limit after every retry): back
    to pending, due again at ``retry_at`` (Telegram's retry_after). Also when the sweep
    meanwhile took it for stuck (the rate limiter's waits can outlast the stuck grace):
    that *maybe* was a guess, and this answer says it did not arrive."""
    await session.execute(
        update(Notice)
        .where(
            Notice.id == notice_id,
            or_(Notice.state == NoticeState.SENDING, and_(Notice.state == NoticeState.MAYBE, Notice.error == STUCK_ERROR)),
        )
        .values(state=NoticeState.PENDING, claimed_at=None, error=error[:1000], retry_at=retry_at)
    )


async def due(session: AsyncSession, *, before: datetime, now: datetime, limit: int = 100) -> list[Queued]:
    """Notices to send now, oldest first: pending ones stored before ``before`` (the bot
    stopped between the commit and the send), each chat in order. A chat waits behind its
    oldest unfinished notice when that one is not due itself: refused for the flood limit
    until its ``retry_at``, being sent right now, or too fresh (its handler sends it)."""
    earlier = aliased(Notice)
    # One query, not a Python filter over the first rows: however many notices are held
    # (a long flood wait for one chat), the due ones behind them in id order are found.
    not_due = or_(earlier.state == NoticeState.SENDING, earlier.created_at > before, earlier.retry_at > now)
    holder = select(earlier.id).where(
        earlier.chat_id == Notice.chat_id, earlier.id < Notice.id, earlier.state.in_((NoticeState.PENDING, NoticeState.SENDING)), not_due
    )
    rows = (await session.execute(
        select(Notice.id, Notice.chat_id, Notice.kind, Notice.ref)
        .where(
            Notice.state == NoticeState.PENDING,
            Notice.created_at <= before,
            or_(Notice.retry_at.is_(None), Notice.retry_at <= now),
            ~holder.exists(),
        )
        .order_by(Notice.id)
        .limit(limit)
    )).all()
    return [Queued(row.id, row.chat_id, row.kind, row.ref) for row in rows]


async def give_up_stuck(session: AsyncSession, *, before: datetime) -> list[Notice]:
    """Notices claimed before ``before`` whose outcome was never recorded (the sender
    stopped mid-send): marked *maybe delivered*, never sent again. Atomic: of racing
    sweeps one marks each. Returns those marked."""
    claimed = func.coalesce(Notice.claimed_at, Notice.created_at)
    ids = (await session.scalars(
        update(Notice)
        .where(Notice.state == NoticeState.SENDING, claimed <= before)
        .values(state=NoticeState.MAYBE, error=STUCK_ERROR)
        .returning(Notice.id)
    )).all()
    if not ids:
        return []
    rows = await session.scalars(select(Notice).where(Notice.id.in_(ids)).order_by(Notice.id).execution_options(populate_existing=True))
    return list(rows.all())


async def get(session: AsyncSession, notice_id: int) -> Notice | None:
    return await session.get(Notice, notice_id)


async def for_user(session: AsyncSession, *, user_id: int) -> list[Notice]:
    """The user's notices, oldest first (for /mydata)."""
    mine = select(Notice).where(Notice.audience == Audience.USER, Notice.chat_id == user_id).order_by(Notice.id)
    return list((await session.scalars(mine)).all())


async def erase_user(session: AsyncSession, *, user_id: int, ticket_ids: Sequence[int] = ()) -> int:
    """/deleteme: the user's notices go (what was not sent yet never will be), and so do
    the moderators' notices about them (a pattern alert names them) and the notices to
    staff about their cases ``ticket_ids`` (an SLA alert about a case now closed as
    erased; what was not sent yet never will be)."""
    about = (Notice.audience == Audience.MODERATORS) & (Notice.ref == f"user:{user_id}")
    if ticket_ids:
        about = about | Notice.ref.in_([f"ticket:{i}" for i in ticket_ids])
    result = await session.execute(delete(Notice).where(((Notice.audience == Audience.USER) & (Notice.chat_id == user_id)) | about))
    return result.rowcount or 0  # type: ignore[attr-defined]


async def erase_named(session: AsyncSession, *, person_id: int) -> int:
    """/deleteme, /forget: the notices whose text names the person besides their audience
    (``person_id``: e.g. a staff member in the reminder to answer a case) go, sent or not."""
    result = await session.execute(delete(Notice).where(Notice.person_id == person_id))
    return result.rowcount or 0  # type: ignore[attr-defined]


async def move_chat(session: AsyncSession, *, old_chat_id: int, new_chat_id: int) -> int:
    """A staff chat Telegram moved: the notices to staff queued for the old id belong to
    the new one (each chat's notices keep their order, and a flood limit holds them all).
    Where each goes is looked up when it is sent anyway."""
    result = await session.execute(
        update(Notice).where(Notice.audience != Audience.USER, Notice.chat_id == old_chat_id).values(chat_id=new_chat_id)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Forget finished notices (sent, failed, maybe delivered, dropped) created before ``before``:
    their rendered texts are personal data with no use once the outcome is recorded on
    the case, ad or feedback. Pending and sending ones stay for the sweep."""
    finished = (NoticeState.SENT, NoticeState.FAILED, NoticeState.MAYBE, NoticeState.DROPPED)
    result = await session.execute(delete(Notice).where(Notice.state.in_(finished), Notice.created_at < before))
    return result.rowcount or 0  # type: ignore[attr-defined]
