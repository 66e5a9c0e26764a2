"""What a person's next message in a chat is for, when it is not the usual thing.

A private text is normally a question (or part of an ad draft or a support case), and a
staff-chat reply normally goes to a ticket. After ``/feedback`` the user's next text is
their feedback; after "Answer" on a feedback card the staff member's next message is the
answer. Those expectations are rows of ``pending_inputs`` (one per person and chat), so
a restart in between loses nothing; each has a lifetime after which it no longer applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.models import PendingInput


async def expect(
    session: AsyncSession,
    *,
    chat_id: int,
    user_id: int,
    kind: str,
    now: datetime,
    ref_id: int | None = None,
    thread_id: int | None = None,
) -> None:
    """From now on, this person's next message in this chat is ``kind`` (replaces any other)."""
    row = await session.get(PendingInput, (chat_id, user_id))
    if row is None:
        session.add(PendingInput(chat_id=chat_id, user_id=user_id, kind=kind, ref_id=ref_id, thread_id=thread_id, since=now))
        return
    row.kind, row.ref_id, row.thread_id, row.since = kind, ref_id, thread_id, now


async def take(
    session: AsyncSession,
    *,
    chat_id: int,
    user_id: int,
    kinds: Iterable[str],
    now: datetime,
    lifetime: timedelta,
    thread_id: int | None = None,
) -> PendingInput | None:
    """Consume the expectation (atomically: of two messages at once, one gets it). An
    expectation bound to a forum topic applies only to messages in that topic; one older
    than ``lifetime`` is dropped and not returned."""
    stmt = (
        delete(PendingInput)
        .where(
            PendingInput.chat_id == chat_id,
            PendingInput.user_id == user_id,
            PendingInput.kind.in_(list(kinds)),
            or_(PendingInput.thread_id.is_(None), PendingInput.thread_id == thread_id),
        )
        .returning(PendingInput.kind, PendingInput.ref_id, PendingInput.thread_id, PendingInput.since)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None or now - row.since > lifetime:
        return None
    return PendingInput(chat_id=chat_id, user_id=user_id, kind=row.kind, ref_id=row.ref_id, thread_id=row.thread_id, since=row.since)


async def peek(
    session: AsyncSession,
    *,
    chat_id: int,
    user_id: int,
    kinds: Iterable[str],
    now: datetime,
    lifetime: timedelta,
    thread_id: int | None = None,
) -> PendingInput | None:
    """The expectation, if any, still alive and for this topic, without consuming it."""
    row = await session.get(PendingInput, (chat_id, user_id))
    if row is None or row.kind not in set(kinds) or now - row.since > lifetime:
        return None
    if row.thread_id is not None and row.thread_id != thread_id:
        return None
    return row


async def forget(session: AsyncSession, *, chat_id: int, user_id: int, kinds: Iterable[str]) -> bool:
    """Drop the expectation (the person moved on to something else)."""
    result = await session.execute(
        delete(PendingInput).where(PendingInput.chat_id == chat_id, PendingInput.user_id == user_id, PendingInput.kind.in_(list(kinds)))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def keys(session: AsyncSession, *, now: datetime, lifetimes: dict[str, timedelta]) -> set[tuple[int, int]]:
    """(chat, person) of every expectation, to index them in memory. Expectations older
    than their kind's lifetime are deleted first (nobody wrote after them)."""
    for kind, lifetime in lifetimes.items():
        await session.execute(delete(PendingInput).where(PendingInput.kind == kind, PendingInput.since < now - lifetime))
    return {(row.chat_id, row.user_id) for row in (await session.execute(select(PendingInput.chat_id, PendingInput.user_id))).all()}


async def move_chat(session: AsyncSession, *, old_chat_id: int, new_chat_id: int) -> int:
    """The chat got a new id (a group upgraded to a supergroup): its expectations follow.
    The old chat's forum topics do not exist in the new one, so each applies anywhere in
    it. One already waiting in the new chat for the same person wins; the old one stays
    (unused) rather than being dropped. Returns how many moved."""
    other = aliased(PendingInput)
    result = await session.execute(
        update(PendingInput)
        .where(
            PendingInput.chat_id == old_chat_id,
            ~exists().where(other.chat_id == new_chat_id, other.user_id == PendingInput.user_id),
        )
        .values(chat_id=new_chat_id, thread_id=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]
