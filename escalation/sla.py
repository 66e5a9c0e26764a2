"""SLA time: due dates counted in wall-clock time or in business hours.

With business hours on, only the time inside ``workday_start``-``workday_end`` on
``workdays`` (in the desk's time zone) counts: a 4-hour target for a case that reaches
staff on Friday at 16:00 is due on Monday at 11:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import SlaSettings


@dataclass(frozen=True)
class Calendar:
    tz: ZoneInfo
    business_hours: bool = False
    start: time = time(8, 0)
    end: time = time(17, 0)
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})

    @classmethod
    def from_settings(cls, sla: SlaSettings, tz: ZoneInfo) -> Calendar:
        return cls(
            tz=tz,
            business_hours=sla.business_hours,
            start=time.fromisoformat(sla.workday_start),
            end=time.fromisoformat(sla.workday_end),
            workdays=frozenset(sla.workdays),
        )

    def _window(self, day: datetime) -> tuple[datetime, datetime] | None:
        """The working window of the local day containing ``day`` (None on days off)."""
        if day.isoweekday() not in self.workdays:
            return None
        d = day.date()
        return (
            datetime.combine(d, self.start, tzinfo=self.tz),
            datetime.combine(d, self.end, tzinfo=self.tz),
        )

    def add(self, start: datetime, minutes: float) -> datetime:
        """The moment ``minutes`` of counted time after ``start``."""
        if not self.business_hours:
            return start + timedelta(minutes=minutes)
        remaining = timedelta(minutes=minutes)
        cursor = start.astimezone(self.tz)
        for _ in range(4000):  # bounded: about 11 years of days
            window = self._window(cursor)
            if window is not None and cursor < window[1]:
                begin = max(cursor, window[0])
                available = window[1] - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(UTC)
                remaining -= available
            next_day = (cursor + timedelta(days=1)).date()
            cursor = datetime.combine(next_day, time(0, 0), tzinfo=self.tz)
        raise ValueError("no working time in the calendar")

    def minutes_between(self, a: datetime, b: datetime) -> float:
        """Counted minutes from ``a`` to ``b`` (0 when b <= a)."""
        if b <= a:
            return 0.0
        if not self.business_hours:
            return (b - a).total_seconds() / 60
        total = timedelta()
        cursor = a.astimezone(self.tz)
        end = b.astimezone(self.tz)
        for _ in range(4000):
            if cursor >= end:
                break
            window = self._window(cursor)
            if window is not None:
                lo, hi = max(cursor, window[0]), min(end, window[1])
                if hi > lo:
                    total += hi - lo
            cursor = datetime.combine((cursor + timedelta(days=1)).date(), time(0, 0), tzinfo=self.tz)
        return total.total_seconds() / 60
