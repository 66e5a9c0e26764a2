"""Report periods: a calendar month (``2026-10``) or quarter (``2026-Q4``) in a time zone.

A period is the half-open interval [start, end) of local midnights: October 2026 in
Africa/Johannesburg runs from 2026-10-01 00:00 +02:00 (= 2026-09-30 22:00 UTC) up to,
not including, 2026-11-01 00:00 +02:00. An event at 23:30 UTC on 31 October is
01:30 on 1 November there, so it belongs to November.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")


class PeriodError(ValueError):
    """Not a period: expected YYYY-MM or YYYY-Qn."""


@dataclass(frozen=True)
class Period:
    kind: str  # month | quarter
    year: int
    number: int  # month 1-12 or quarter 1-4
    tz: ZoneInfo

    @property
    def label(self) -> str:
        return f"{self.year}-{self.number:02d}" if self.kind == "month" else f"{self.year}-Q{self.number}"

    @property
    def first_day(self) -> date:
        month = self.number if self.kind == "month" else 3 * (self.number - 1) + 1
        return date(self.year, month, 1)

    @property
    def end_day(self) -> date:
        """The first day after the period."""
        months = 1 if self.kind == "month" else 3
        first = self.first_day
        index = first.year * 12 + first.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)

    @property
    def start(self) -> datetime:
        """Local midnight of the first day, in UTC."""
        return datetime.combine(self.first_day, time(0), tzinfo=self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.end_day, time(0), tzinfo=self.tz).astimezone(UTC)

    def days(self) -> list[date]:
        """Every local day of the period."""
        n = (self.end_day - self.first_day).days
        return [self.first_day + timedelta(days=i) for i in range(n)]

    def day_starts(self) -> list[datetime]:
        """Local midnights of every day plus the end, in UTC (bucket edges for daily charts)."""
        return [datetime.combine(d, time(0), tzinfo=self.tz).astimezone(UTC) for d in self.days()] + [self.end]

    def previous(self) -> Period:
        if self.kind == "month":
            return Period("month", self.year - (self.number == 1), 12 if self.number == 1 else self.number - 1, self.tz)
        return Period("quarter", self.year - (self.number == 1), 4 if self.number == 1 else self.number - 1, self.tz)

    def title(self) -> str:
        if self.kind == "month":
            return self.first_day.strftime("%B %Y")
        return f"Q{self.number} {self.year} ({self.first_day.strftime('%B')}-{(self.end_day - timedelta(days=1)).strftime('%B')})"


def parse_period(text: str, tz: ZoneInfo) -> Period:
    """``2026-10`` or ``2026-Q4`` (case-insensitive); :class:`PeriodError` otherwise."""
    text = (text or "").strip()
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12 and 2000 <= year <= 2999:
            return Period("month", year, month, tz)
    if m := _QUARTER.match(text):
        year = int(m.group(1))
        if 2000 <= year <= 2999:
            return Period("quarter", year, int(m.group(2)), tz)
    raise PeriodError(text)


def month_of(moment: datetime, tz: ZoneInfo) -> Period:
    local = moment.astimezone(tz)
    return Period("month", local.year, local.month, tz)


def last_month(now: datetime, tz: ZoneInfo) -> Period:
    """The last complete month before ``now`` (local)."""
    return month_of(now, tz).previous()


# A report not sent by then (the bot was down, or was deployed later) is skipped:
# a bot started mid-month does not send last month's report out of the blue.
CATCH_UP = timedelta(days=7)


def due_periods(now: datetime, tz: ZoneInfo, *, hour: int, quarterly: bool) -> list[Period]:
    """What the scheduler should send at ``now``: last month once the 1st at ``hour``
    (local) has passed, and with ``quarterly`` last quarter once its first day at
    ``hour`` has passed; each for :data:`CATCH_UP` after that moment."""
    local = now.astimezone(tz)
    current_month = Period("month", local.year, local.month, tz)
    candidates = [current_month]
    if quarterly:
        candidates.append(Period("quarter", local.year, (local.month - 1) // 3 + 1, tz))
    due = []
    for current in candidates:
        due_at = datetime.combine(current.first_day, time(hour), tzinfo=tz)
        if due_at <= local < due_at + CATCH_UP:
            due.append(current.previous())
    return due
