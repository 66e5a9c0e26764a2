"""Redraws owed in the staff chat: edits recorded in the transaction that makes them due.

An erasure (:mod:`bot.privacy`) commits in the database, and only then can the bot edit
what Telegram still shows of the person: the cards of their cases (and the earlier
copies of those cards), the names of the cases' topics, moderation, report and feedback
cards, the cards of the cases an erased staff member held. If the bot stopped (or
Telegram refused) in between, nothing would record that the name is still in the staff
chat. So each edit is a row of ``redraws``, written in the erasure's transaction (the
lines to staff, "case closed" / "case released", go through the outbox,
:mod:`bot.outbox`, in the same transaction). This module never imports telegram: a row
says what to redraw (``kind`` and ``ref``; for a message whose id is not kept elsewhere,
``chat_id`` and ``message_id``), and the handlers draw it from the current state of the
database (:mod:`handlers.redraws`). The photos of the person's ads in the staff chat are
rows too (``ad_photo``): deleted rather than redrawn (see :func:`handlers.redraws._ad_photo`
for the photos Telegram no longer lets the bot delete). Then:

- right after the commit the handler claims each (:func:`claim`: one sender) and does
  it; an edit that succeeded, or that Telegram says changes nothing, is done (``done_at``;
  ``error`` set when it was done only in part: a photo too old to delete, marked erased);
- refused for Telegram's flood limit, or the Bot API out of reach: surely not done,
  back to pending, due again after retry_after (:func:`again`, not counted as a try);
- a timeout or other network trouble: due again after the repair grace (counted);
- refused for good (400, 403: "message to edit not found" for a card staff deleted,
  the bot no longer in the chat): done, with the reason (:func:`finish`), never tried
  again: the same edit would be refused every time;
- the periodic sweep (:func:`due`) does what a crash left (stored longer than the repair
  grace ago, never claimed), what is due again, and what a sender claimed but never
  finished (claimed longer than the stuck grace ago). A redraw is an edit to the current
  state, so doing one twice is harmless: at least once, not exactly once;
- after :data:`ATTEMPTS` tries a redraw is given up (:func:`give_up`: done, with the
  reason; logged loudly), so that one Telegram keeps failing is not tried every minute.

A topic is closed (``topic_close``) only after the line to staff in it (its notice,
``after_notice_id``) is sent or given up: Telegram refuses new messages in a closed topic.
Finished rows are forgotten after a while (:func:`prune`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, Index, and_, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, SafeString, SafeText
from bot.outbox import Notice, NoticeState


class RedrawKind(StrEnum):
    TICKET_CARD = "ticket_card"  # ref: the ticket; its tracked card
    CARD_COPY = "card_copy"  # ref: the ticket; chat_id / message_id: an earlier copy of its card (no buttons)
    TOPIC_NAME = "topic_name"  # ref: the ticket; its forum topic's name (it named the user)
    TOPIC_CLOSE = "topic_close"  # ref: the ticket; its topic closed, after the notice after_notice_id
    AD_WITHDRAWN = "ad_withdrawn"  # ref: the ad; chat_id / message_id: its moderation card ("withdrawn")
    AD_ERASED = "ad_erased"  # ref: the ad; chat_id / message_id: its moderation card (finished before)
    AD_DECIDED = "ad_decided"  # ref: the ad; its tracked moderation card, decided by a staff member since erased
    AD_PHOTO = "ad_photo"  # ref: the ad; chat_id / message_id: one of its photos (deleted, else its caption says erased)
    REPORT_CARD = "report_card"  # ref: the ad report; its card
    FEEDBACK_CARD = "feedback_card"  # ref: the feedback; its card


#: tries of one redraw in all (the handler's and the sweep's) before it is given up
ATTEMPTS = 5
#: the error recorded on a redraw given up (followed by the last failure)
GIVEN_UP = "given up after {attempts} tries"


class Redraw(Base):
    """An edit in the staff chat owed since the transaction that stored it (an erasure)."""

    __tablename__ = "redraws"
    __table_args__ = (Index("ix_redraws_done_at", "done_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(SafeString(16))
    ref: Mapped[int]  # the ticket, ad, report or feedback whose message is redrawn
    chat_id: Mapped[int | None]  # the message, when its id is not kept with ``ref``
    message_id: Mapped[int | None]
    after_notice_id: Mapped[int | None]  # not before this notice is sent (or given up)
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]  # being done since (a sender that stopped: the sweep does it after the stuck grace)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # tries so far (flood refusals not counted)
    retry_at: Mapped[datetime | None]  # refused for now: not due before this
    done_at: Mapped[datetime | None]  # done (or refused for good, or given up: ``error`` says why)
    error: Mapped[str | None] = mapped_column(SafeText)  # the last failure (on a done one: why it was done only in part)


async def add(
    session: AsyncSession, kind: RedrawKind, ref: int, *, now: datetime, chat_id: int | None = None,
    message_id: int | None = None, after_notice_id: int | None = None,
) -> int:
    """Store an owed redraw in the caller's transaction; returns its id (done with
    :func:`claim` after the commit, or by the sweep)."""
    row = Redraw(
        kind=kind, ref=ref, chat_id=chat_id, message_id=message_id, after_notice_id=after_notice_id, created_at=now, attempts=0,
    )
    session.add(row)
    await session.flush()
    return row.id


def _not_held() -> ColumnElement[bool]:
    """Not waiting for its notice (sent, failed, maybe delivered, or gone)."""
    unfinished = select(Notice.id).where(
        Notice.id == Redraw.after_notice_id, Notice.state.in_((NoticeState.PENDING, NoticeState.SENDING))
    )
    return or_(Redraw.after_notice_id.is_(None), ~unfinished.exists())


def _claimable(now: datetime, stale_before: datetime | None) -> list[ColumnElement[bool]]:
    free = Redraw.claimed_at.is_(None)
    if stale_before is not None:
        free = or_(free, Redraw.claimed_at <= stale_before)
    return [
        Redraw.done_at.is_(None),
        free,
        or_(Redraw.retry_at.is_(None), Redraw.retry_at <= now),
        Redraw.attempts < ATTEMPTS,
        _not_held(),
    ]


async def claim(session: AsyncSession, *, redraw_id: int, now: datetime, stale_before: datetime | None = None) -> Redraw | None:
    """Claim the redraw for one sender, counting the try: not done, not being done (or
    claimed before ``stale_before``: that sender stopped), due, tries left, its notice
    finished. None otherwise."""
    claimed = await session.scalar(
        update(Redraw)
        .where(Redraw.id == redraw_id, *_claimable(now, stale_before))
        .values(claimed_at=now, attempts=Redraw.attempts + 1)
        .returning(Redraw.id)
    )
    if claimed is None:
        return None
    return await session.get(Redraw, redraw_id, populate_existing=True)


async def finish(session: AsyncSession, *, redraw_id: int, now: datetime, error: str | None = None) -> None:
    """Done: redrawn (``error`` None), done in part or refused for good (``error`` says
    why; never tried again)."""
    await session.execute(
        update(Redraw).where(Redraw.id == redraw_id, Redraw.done_at.is_(None))
        .values(done_at=now, claimed_at=None, error=error[:1000] if error else None)
    )


async def again(session: AsyncSession, *, redraw_id: int, retry_at: datetime, error: str, counted: bool = True) -> None:
    """Refused for now: back to pending, due again at ``retry_at``. ``counted=False``
    (Telegram's flood limit, the Bot API out of reach: surely not done) gives the try back."""
    await session.execute(
        update(Redraw).where(Redraw.id == redraw_id, Redraw.done_at.is_(None))
        .values(
            claimed_at=None, retry_at=retry_at, error=error[:1000],
            attempts=Redraw.attempts if counted else case((Redraw.attempts > 0, Redraw.attempts - 1), else_=0),
        )
    )


async def postpone(session: AsyncSession, *, ids: Sequence[int], retry_at: datetime) -> None:
    """The redraws ``ids`` not started yet wait until ``retry_at`` (they would meet the
    flood limit another one just met)."""
    if ids:
        await session.execute(
            update(Redraw)
            .where(Redraw.id.in_(list(ids)), Redraw.done_at.is_(None), Redraw.claimed_at.is_(None))
            .values(retry_at=retry_at)
        )


async def due(session: AsyncSession, *, before: datetime, stale_before: datetime, now: datetime, limit: int = 20) -> list[int]:
    """Redraws for the sweep, oldest first: stored before ``before`` (the handler that
    stored one does it first), not done, due (see :func:`claim`)."""
    rows = await session.scalars(
        select(Redraw.id)
        .where(Redraw.created_at <= before, *_claimable(now, stale_before))
        .order_by(Redraw.id)
        .limit(limit)
    )
    return list(rows.all())


async def give_up(session: AsyncSession, *, now: datetime, stale_before: datetime) -> list[Redraw]:
    """Redraws tried :data:`ATTEMPTS` times and not done (and not being tried right
    now): done, with the reason. Returns them (to log)."""
    stuck = and_(
        Redraw.done_at.is_(None),
        Redraw.attempts >= ATTEMPTS,
        or_(Redraw.claimed_at.is_(None), Redraw.claimed_at <= stale_before),
    )
    rows = list((await session.scalars(select(Redraw).where(stuck).order_by(Redraw.id).with_for_update())).all())
    for row in rows:
        reason = GIVEN_UP.format(attempts=row.attempts)
        row.error = f"{reason}: {row.error}"[:1000] if row.error else reason
        row.done_at, row.claimed_at = now, None
    return rows


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Forget the redraws done before ``before``."""
    result = await session.execute(delete(Redraw).where(Redraw.done_at < before))
    return result.rowcount or 0  # type: ignore[attr-defined]
