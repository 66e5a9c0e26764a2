"""The scheduled reports: which are due, and the record of what was sent.

One JobQueue sweep (``handlers/reports.py``) asks :func:`claim_due` for the periods due
now and not yet sent, sends each, then :func:`mark_sent` or :func:`mark_failed`. The
claim is its own committed transaction before anything goes out: a second sweep or a
restarted bot finds the row and does not send again. A failed send is retried by later
sweeps up to :data:`MAX_ATTEMPTS`; a claim left ``sending`` by a crash is taken over
after :data:`STALE_CLAIM`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reports.models import ReportRun, RunStatus
from reports.periods import Period, due_periods

MAX_ATTEMPTS = 3
STALE_CLAIM = timedelta(hours=1)


async def claim_due(
    session: AsyncSession, *, now: datetime, tz: ZoneInfo, hour: int, quarterly: bool, chat_id: int | None
) -> list[Period]:
    """The due periods this caller may send now (each claimed: ``sending``)."""
    claimed: list[Period] = []
    for period in due_periods(now, tz, hour=hour, quarterly=quarterly):
        run = await session.get(ReportRun, period.label, with_for_update=True)
        if run is None:
            session.add(ReportRun(period=period.label, status=RunStatus.SENDING, chat_id=chat_id, attempts=1, claimed_at=now))
            await session.flush()  # the primary key: of two claims at once, one fails
            claimed.append(period)
            continue
        retry = run.status == RunStatus.FAILED and run.attempts < MAX_ATTEMPTS
        stale = run.status == RunStatus.SENDING and run.claimed_at <= now - STALE_CLAIM and run.attempts < MAX_ATTEMPTS
        if retry or stale:
            won = await session.scalar(
                update(ReportRun)
                .where(
                    ReportRun.period == period.label,
                    or_(ReportRun.status == RunStatus.FAILED, ReportRun.claimed_at <= now - STALE_CLAIM),
                    ReportRun.status != RunStatus.SENT,
                )
                .values(status=RunStatus.SENDING, attempts=ReportRun.attempts + 1, claimed_at=now, chat_id=chat_id, error=None)
                .returning(ReportRun.period)
            )
            if won is not None:
                claimed.append(period)
    return claimed


async def mark_sent(session: AsyncSession, *, period: str, message_id: int | None, now: datetime) -> None:
    await session.execute(
        update(ReportRun).where(ReportRun.period == period).values(status=RunStatus.SENT, sent_at=now, message_id=message_id, error=None)
    )


async def mark_failed(session: AsyncSession, *, period: str, error: str) -> None:
    await session.execute(update(ReportRun).where(ReportRun.period == period).values(status=RunStatus.FAILED, error=error[:500]))


async def runs(session: AsyncSession) -> list[ReportRun]:
    return list((await session.scalars(select(ReportRun).order_by(ReportRun.claimed_at, ReportRun.period))).all())
