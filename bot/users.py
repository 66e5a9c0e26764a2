"""The people who talk to the bot: recorded on every update (insert or refresh)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import BigInteger, Select, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import User, UserStatus


@dataclass(frozen=True)
class Account:
    """What handlers need to know about the user behind an update."""

    id: int
    first_name: str
    language_code: str | None
    locale: str | None  # chosen explicitly (/language); None: follow language_code
    status: str = UserStatus.ACTIVE


async def touch_user(
    session: AsyncSession,
    *,
    user_id: int,
    first_name: str,
    last_name: str | None,
    username: str | None,
    language_code: str | None,
    now: datetime,
) -> Account:
    """Insert the user or refresh their names, language and last-seen time, in one statement."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    values = {
        "first_name": (first_name or "")[:256],
        "last_name": (last_name or None) and last_name[:256],
        "username": username,
        "language_code": language_code,
        "last_seen": now,
    }
    stmt = (
        insert(User)
        .values(id=user_id, first_seen=now, status=UserStatus.ACTIVE, **values)
        .on_conflict_do_update(index_elements=[User.id], set_=values)
        .returning(User.locale, User.status)
    )
    row = (await session.execute(stmt)).one()
    return Account(
        id=user_id,
        first_name=values["first_name"],
        language_code=language_code,
        locale=row.locale,
        status=row.status,
    )


class InProgress(NamedTuple):
    """What a user's next private message may belong to besides a question."""

    draft: bool  # an ad draft (handlers.ads.route_draft)
    case: bool  # a support case or a rating comment (handlers.tickets.route_private)


async def in_progress(session: AsyncSession, *, user_id: int) -> InProgress:
    """Whether the user is in the middle of something, in one query. Nothing (the common
    case) means their text is a question, and no feature needs to look further."""
    row = (await session.execute(_in_progress_query(), {"user_id": user_id})).one()
    return InProgress(bool(row[0]), bool(row[1]))


@cache
def _in_progress_query() -> Select[tuple[bool, bool]]:
    """Built once (asked on every private message): constructing the expression costs
    more than running it."""
    from ads.service import draft_in_progress
    from escalation.service import case_in_progress

    user_id = bindparam("user_id", type_=BigInteger())
    return select(draft_in_progress(user_id), case_in_progress(user_id))  # type: ignore[arg-type]


async def get_state(session: AsyncSession, key: str) -> str | None:
    from bot.models import AppState

    row = await session.get(AppState, key)
    return row.value if row is not None else None


async def set_state(session: AsyncSession, key: str, value: str) -> None:
    from bot.models import AppState

    row = await session.get(AppState, key)
    if row is None:
        session.add(AppState(key=key, value=value))
    else:
        row.value = value


async def first_visit(session: AsyncSession, *, user_id: int, now: datetime) -> bool:
    """True exactly once per user: the first time they are welcomed (onboarding).
    Decided by the database (users.onboarded_at), atomically."""
    done = await session.scalar(
        update(User).where(User.id == user_id, User.onboarded_at.is_(None)).values(onboarded_at=now).returning(User.id)
    )
    return done is not None


async def set_locale(session: AsyncSession, *, user_id: int, locale: str | None) -> None:
    """The language the user chose (/language); None follows their Telegram language."""
    await session.execute(update(User).where(User.id == user_id).values(locale=locale))


#: Telegram ids and the anonymous ids of erased people (negative) are signed 64-bit.
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


async def find_user(session: AsyncSession, ref: str) -> User | None:
    """A user by Telegram id (an erased person's anonymous id too) or @username (the
    most recently seen one with that name); None if there is none or ``ref`` cannot be
    either (a number outside 64 bits, an empty or over-long name)."""
    ref = ref.strip()
    digits = ref[1:] if ref.startswith("-") else ref
    if digits.isascii() and digits.isdigit():
        value = int(ref)
        return await session.get(User, value) if _ID_MIN <= value <= _ID_MAX else None
    name = ref.lstrip("@").lower()
    if not name or len(name) > 64:
        return None
    return await session.scalar(select(User).where(func.lower(User.username) == name).order_by(User.last_seen.desc()).limit(1))
