"""Strikes and stepped penalties: by active strikes, e.g. 1 warning, 2 posting blocked
for 7 days, 3 banned (``ads.penalties`` in config). A strike expires after
``ads.strike_days`` or when a moderator pardons it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ads.models import AdEvent, AdEventKind, Strike, UserEvent, UserEventKind
from ads.service import Rules, count_active_strikes
from bot.config import Penalty as PenaltyStep
from bot.models import User, UserStatus
from bot.users import find_user

PATTERN_WINDOW = timedelta(days=7)
PATTERN_COUNT = 3


@dataclass(frozen=True)
class Penalty:
    strikes: int  # active strikes after the change
    action: str | None  # warn | block | ban | None (nothing, or lifted)
    until: datetime | None = None
    strike_id: int | None = None


_EVENT_OF = {
    UserStatus.WARNED: UserEventKind.WARNED,
    UserStatus.BLOCKED: UserEventKind.BLOCKED,
    UserStatus.BANNED: UserEventKind.BANNED,
    UserStatus.ACTIVE: UserEventKind.LIFTED,
}


def _record(session: AsyncSession, user: User, before: tuple[str, datetime | None], *, now: datetime, actor_id: int | None = None) -> None:
    """One ``user_events`` row when the user's penalty changed: a new status, or a new
    posting block (a further strike while blocked sets a new end)."""
    after = (user.status, user.blocked_until)
    if after == before or user.status not in _EVENT_OF:
        return
    session.add(UserEvent(user_id=user.id, kind=_EVENT_OF[UserStatus(user.status)], actor_id=actor_id, until=user.blocked_until, at=now))


async def all_strikes(session: AsyncSession, *, user_id: int) -> list[Strike]:
    return list((await session.scalars(select(Strike).where(Strike.user_id == user_id).order_by(Strike.id))).all())


async def add_strike(
    session: AsyncSession, rules: Rules, *, user_id: int, reason: str, ad_id: int | None, moderator_id: int | None, now: datetime
) -> Penalty:
    strike = Strike(
        user_id=user_id, reason=reason, ad_id=ad_id, moderator_id=moderator_id, created_at=now,
        expires_at=now + timedelta(days=rules.settings.strike_days),
    )
    session.add(strike)
    await session.flush()
    penalty = await apply_penalty(session, rules, user_id=user_id, reason=reason, now=now)
    return Penalty(penalty.strikes, penalty.action, penalty.until, strike.id)


async def apply_penalty(session: AsyncSession, rules: Rules, *, user_id: int, reason: str | None, now: datetime) -> Penalty:
    """Set the user's status to the step their active strikes reach (never lifting a ban
    given by hand)."""
    count = await count_active_strikes(session, user_id=user_id, now=now)
    steps = [p for p in rules.settings.penalties if p.strikes <= count]
    step = max(steps, key=lambda p: p.strikes) if steps else None
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        return Penalty(count, None)
    before = (user.status, user.blocked_until)
    penalty = _step_penalty(user, step, count, reason, now)
    _record(session, user, before, now=now)
    return penalty


def _step_penalty(user: User, step: PenaltyStep | None, count: int, reason: str | None, now: datetime) -> Penalty:
    if step is None:
        if user.status in (UserStatus.WARNED, UserStatus.BLOCKED):
            user.status, user.blocked_until, user.status_reason = UserStatus.ACTIVE, None, None
        return Penalty(count, None)
    if user.status == UserStatus.BANNED and step.action != "ban":
        return Penalty(count, "ban")
    if step.action == "warn":
        user.status, user.blocked_until = UserStatus.WARNED, None
    elif step.action == "block":
        user.status, user.blocked_until = UserStatus.BLOCKED, now + timedelta(days=step.days or 7)
    else:
        user.status, user.blocked_until = UserStatus.BANNED, None
    if reason:
        user.status_reason = reason
    return Penalty(count, step.action, user.blocked_until)


async def ban(session: AsyncSession, *, user_id: int, reason: str, now: datetime, moderator_id: int | None = None) -> User | None:
    user = await session.get(User, user_id, with_for_update=True)
    if user is not None:
        before = (user.status, user.blocked_until)
        user.status, user.blocked_until, user.status_reason = UserStatus.BANNED, None, reason
        _record(session, user, before, now=now, actor_id=moderator_id)
    return user


async def unban(session: AsyncSession, *, user_id: int, now: datetime, moderator_id: int | None = None) -> User | None:
    """Lift a ban or block; ``now`` (the desk's clock) dates the "lifted" event."""
    user = await session.get(User, user_id, with_for_update=True)
    if user is not None:
        before = (user.status, user.blocked_until)
        user.status, user.blocked_until, user.status_reason = UserStatus.ACTIVE, None, None
        _record(session, user, before, now=now, actor_id=moderator_id)
    return user


async def warn(session: AsyncSession, rules: Rules, *, user_id: int, reason: str, moderator_id: int, now: datetime) -> Penalty:
    """/warn: a strike given by hand (it counts towards the next steps)."""
    return await add_strike(session, rules, user_id=user_id, reason=reason, ad_id=None, moderator_id=moderator_id, now=now)


async def pardon(session: AsyncSession, rules: Rules, *, strike_id: int, now: datetime) -> tuple[Strike, Penalty] | None:
    strike = await session.get(Strike, strike_id, with_for_update=True)
    if strike is None or strike.pardoned:
        return None
    strike.pardoned = True
    await session.flush()
    user = await session.get(User, strike.user_id)
    if user is not None and user.status == UserStatus.BANNED:
        # a ban from strikes is lifted when the strikes no longer reach it
        before = (user.status, user.blocked_until)
        user.status = UserStatus.ACTIVE
        _record(session, user, before, now=now)
    return strike, await apply_penalty(session, rules, user_id=strike.user_id, reason=None, now=now)


async def rejections_for_reason(session: AsyncSession, *, user_id: int, reason: str, now: datetime) -> int:
    """How often this user's ads were rejected for ``reason`` in the last week (pattern alert).

    Counted from ``ad_events`` (one row per rejection): the ads table keeps only each
    ad's latest decision, so an ad rejected, fixed and rejected again for the same
    reason would count once there (and not at all once it is resubmitted)."""
    return int(
        await session.scalar(
            select(func.count()).select_from(AdEvent).where(
                AdEvent.user_id == user_id,
                AdEvent.kind == AdEventKind.REJECTED,
                AdEvent.reason == reason,
                AdEvent.at >= now - PATTERN_WINDOW,
            )
        )
        or 0
    )
