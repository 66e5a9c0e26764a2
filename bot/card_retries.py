"""Staff-chat cards whose post timed out: posted again, a bounded number of times.

A card (a ticket's, a feedback's, an ad's moderation or take-down card, an ad report's)
is claimed before it is posted (``card_claimed_at``). A card Telegram refused releases
the claim (the sweep posts it again); a timeout means Telegram gave no answer, so the
card may or may not have arrived, and the bot does not know its message id. An answer
the bot cannot read (200 from a broken proxy or Bot API server with a result PTB fails
to parse: ``handlers.delivery.Unreadable``) means the same. Such a timeout keeps the
claim and is counted (``card_timeouts``). Once the repair grace has
passed since that try, the sweep claims the card again (``card_claimed_at`` moves to
now, atomically: of racing sweeps one wins) and posts it again, with a line saying so;
from then on the new message is the tracked card. After :data:`ATTEMPTS` posts in all
timed out, the sweep stops and staff are told once: ``card_timeouts`` becomes
:data:`TOLD` and the line is queued in the outbox (:mod:`bot.outbox`) in the same
transaction, so a crash before it is sent loses nothing; the outbox sends it after the
commit, again after Telegram's flood limit or with the Bot API back, never twice, and
records a line Telegram refuses for good (400, 403: e.g. the bot was removed from the
staff chat) as failed, logged once, never tried again every minute.

Staff can also post a card again by hand (``/repost``: :func:`claim_repost`), whatever
became of its earlier posts: a card cut off by a crash in the middle of its send (claimed,
never recorded, so never posted again by the sweep), one given up after its timeouts, or
one that is simply far up in the chat. From then on the new message is the tracked card.

The functions here are shared by the four kinds of card: each kind names its table,
the columns of the card's chat and message id and what "still needs its card" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, TextClause, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

#: posts of one card in all (the first and the sweep's) before staff are told instead
ATTEMPTS = 3
#: ``card_timeouts`` once staff were told that the card could not be confirmed (the line
#: queued in the outbox). Earlier versions stored ``ATTEMPTS + 2`` for a line Telegram
#: refused; no query picks either value again.
TOLD = ATTEMPTS + 1


@dataclass(frozen=True)
class CardKind:
    """Where a kind of card lives: ``model`` has ``id``, ``card_claimed_at`` and
    ``card_timeouts``; ``message_id`` is the card's message id column (NULL: no card
    known) and ``chat_id`` the column of its chat; ``waiting`` is true for the rows that
    still need their card."""

    model: Any
    message_id: Any
    waiting: ColumnElement[bool] | TextClause
    chat_id: Any
    #: e.g. "INDEXED BY ix_ads_needing_card": the index SQLite must use to find the
    #: waiting rows of a big table (see :func:`bot.db._sqlite_index_hints`)
    sqlite_hint: str | None = None

    def select_ids(self) -> Select[tuple[int]]:
        query = select(self.model.id)
        return query.with_hint(self.model, self.sqlite_hint, "sqlite") if self.sqlite_hint else query

    def no_card(self, item_id: int) -> list[ColumnElement[bool]]:
        """The row ``item_id``, while no card of it is known."""
        return [self.model.id == item_id, self.message_id.is_(None)]


async def timed_out(session: AsyncSession, kind: CardKind, item_id: int) -> int | None:
    """A post of the card timed out (it may have arrived): counted, the claim kept.
    Returns the count so far; None when a card is known meanwhile. The count stops at
    :data:`ATTEMPTS` (or stays :data:`TOLD`): a post of its own by the relay after the
    last try must not turn "staff still to be told" into "told"."""
    model = kind.model
    counted = case((model.card_timeouts >= ATTEMPTS, model.card_timeouts), else_=model.card_timeouts + 1)
    return await session.scalar(
        update(model).where(*kind.no_card(item_id)).values(card_timeouts=counted).returning(model.card_timeouts)
    )


def _due(kind: CardKind, before: datetime) -> list[ColumnElement[bool]]:
    model = kind.model
    return [
        kind.waiting,
        kind.message_id.is_(None),
        model.card_timeouts >= 1,
        model.card_timeouts < ATTEMPTS,
        model.card_claimed_at <= before,
    ]


async def due_again(session: AsyncSession, kind: CardKind, *, before: datetime, limit: int = 20) -> list[int]:
    """Cards whose last post timed out before ``before`` and that may be tried again."""
    model = kind.model
    rows = await session.scalars(kind.select_ids().where(*_due(kind, before)).order_by(model.id).limit(limit))
    return list(rows.all())


async def claim_again(session: AsyncSession, kind: CardKind, item_id: int, *, now: datetime, before: datetime) -> int | None:
    """Claim posting the card again: for exactly one of racing sweeps (the claim's time
    moves to ``now``, past ``before``). Returns how many posts timed out so far (None:
    not claimed: posted, tried again by another, or no longer needed)."""
    model = kind.model
    return await session.scalar(
        update(model).where(model.id == item_id, *_due(kind, before)).values(card_claimed_at=now).returning(model.card_timeouts)
    )


async def given_up(session: AsyncSession, kind: CardKind, *, limit: int = 20) -> list[int]:
    """Cards of which every post timed out, still needed, staff not told yet."""
    model = kind.model
    rows = await session.scalars(
        kind.select_ids()
        .where(kind.waiting, kind.message_id.is_(None), model.card_timeouts == ATTEMPTS)
        .order_by(model.id)
        .limit(limit)
    )
    return list(rows.all())


async def claim_telling(session: AsyncSession, kind: CardKind, item_id: int) -> bool:
    """Claim telling staff about a card that could not be confirmed: once, of racing
    sweeps. The caller queues the line in the same transaction."""
    model = kind.model
    told = await session.scalar(
        update(model)
        .where(*kind.no_card(item_id), model.card_timeouts == ATTEMPTS)
        .values(card_timeouts=TOLD)
        .returning(model.id)
    )
    return told is not None


@dataclass(frozen=True)
class Reposting:
    """A card claimed for posting again by hand (/repost): the card known before (its
    chat and message id; None: no card known) and how many earlier posts timed out."""

    chat_id: int | None
    message_id: int | None
    timeouts: int


async def claim_repost(
    session: AsyncSession, kind: CardKind, item_id: int, *, now: datetime, needed: ColumnElement[bool] | None = None
) -> Reposting | None:
    """Staff ask for the card of ``item_id`` again (/repost): claimed whatever the state of
    its earlier posts (known, claimed and cut off, timed out, given up), while the item
    needs a card (``needed``, by default the kind's ``waiting``). The claim's time moves
    to now, so that no sweep posts it again meanwhile. None: no such item, or it needs
    no card (any more)."""
    model = kind.model
    row = (await session.execute(
        update(model)
        .where(model.id == item_id, kind.waiting if needed is None else needed)
        .values(card_claimed_at=now)
        .returning(kind.chat_id, kind.message_id, model.card_timeouts)
    )).first()
    return Reposting(row[0], row[1], row[2]) if row is not None else None
