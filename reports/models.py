"""What the scheduler has sent: one row per scheduled report (a month or a quarter).

The row is written (``status = sending``) in its own transaction before the document
goes out, and marked ``sent`` after: a restart or a second sweep finds the row and
sends nothing twice. A failed send is retried by later sweeps, up to a limit.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, SafeString, SafeText


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
