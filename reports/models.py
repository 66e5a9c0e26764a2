"""What the scheduler has sent: one row per scheduled report (a month or a quarter).

The row is written (``status = sending``) in its own transaction before the document
goes out, and marked ``sent`` after: a restart or a second sweep finds the row and
sends nothing twice. A failed send is retried by later sweeps, up to a limit.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from ads.models import Ad, AdEvent
from bot.db import Base, SafeString, SafeText
from escalation.models import Rating, Ticket


class RunStatus(StrEnum):
    SENDING = "sending"  # claimed by a sweep; the document is on its way
    SENT = "sent"
    FAILED = "failed"  # Telegram refused or the report failed; retried later


class ReportRun(Base):
    __tablename__ = "report_runs"

    period: Mapped[str] = mapped_column(SafeString(8), primary_key=True)  # 2026-10 | 2026-Q4
    status: Mapped[str] = mapped_column(SafeString(10))
    chat_id: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(SafeText)


# Indexes the report's period queries need (a month out of a million tickets or ads is
# a range scan, not a full scan: benchmarks/scale.py). They belong to the feature
# tables; they are declared here, with the queries that use them (reports/metrics.py).
# The ones on tickets and ad_events hold every column those queries read (migration
# 0030), so a month's rows are counted in the index without reading the table.
REPORT_INDEXES = (
    # the events of a period by kind: counts by category, moderator, reason and day
    Index(
        "ix_ad_events_report", AdEvent.kind, AdEvent.at, AdEvent.category, AdEvent.actor_id, AdEvent.reason, AdEvent.user_id, AdEvent.ad_id
    ),
    # opened (by category, day and SLA breach; who), answered, resolved (by category, day
    # and assignee; how long after opening) and closed in a period; the backlog at its end
    Index(
        "ix_tickets_report_opened", Ticket.escalated_at, Ticket.category, Ticket.first_response_breached, Ticket.resolution_breached, Ticket.user_id
    ),
    Index("ix_tickets_report_first_response", Ticket.first_response_at, Ticket.escalated_at, Ticket.assignee_id),
    Index("ix_tickets_report_resolved", Ticket.resolved_at, Ticket.escalated_at, Ticket.closed_at, Ticket.category, Ticket.assignee_id),
    Index("ix_tickets_report_closed", Ticket.closed_at, Ticket.resolved_at, Ticket.escalated_at),
    Index("ix_ads_submitted_at", Ad.submitted_at),
    Index("ix_ads_decided_at", Ad.decided_at),
    Index("ix_ratings_sent_at", Rating.sent_at),
    Index("ix_ratings_rated_at", Rating.rated_at),
)
