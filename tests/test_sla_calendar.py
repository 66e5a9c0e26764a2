"""Business-hours arithmetic for SLA due times."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from escalation.sla import Calendar

JHB = ZoneInfo("Africa/Johannesburg")  # UTC+2, no daylight saving
BUSINESS = Calendar(tz=JHB, business_hours=True)
WALL = Calendar(tz=JHB)


def local(*args):
    return datetime(*args, tzinfo=JHB)


def test_wall_clock():
    start = datetime(2026, 11, 6, 14, 0, tzinfo=UTC)
    assert WALL.add(start, 240) == datetime(2026, 11, 6, 18, 0, tzinfo=UTC)
    assert WALL.minutes_between(start, datetime(2026, 11, 6, 15, 30, tzinfo=UTC)) == 90


def test_friday_afternoon_rolls_over_the_weekend():
    # 2026-11-06 is a Friday: 1 hour left that day, 3 more on Monday from 08:00
    due = BUSINESS.add(local(2026, 11, 6, 16, 0), 240)
    assert due == local(2026, 11, 9, 11, 0)
    assert BUSINESS.minutes_between(local(2026, 11, 6, 16, 0), due) == 240


def test_before_opening_and_on_a_sunday():
    assert BUSINESS.add(local(2026, 11, 4, 6, 30), 30) == local(2026, 11, 4, 8, 30)
    assert BUSINESS.add(local(2026, 11, 8, 12, 0), 60) == local(2026, 11, 9, 9, 0)  # Sunday
    assert BUSINESS.minutes_between(local(2026, 11, 7, 9, 0), local(2026, 11, 8, 18, 0)) == 0  # weekend


def test_exact_end_of_day_and_multi_day():
    assert BUSINESS.add(local(2026, 11, 4, 8, 0), 540) == local(2026, 11, 4, 17, 0)
    assert BUSINESS.add(local(2026, 11, 4, 8, 0), 3 * 540) == local(2026, 11, 6, 17, 0)
    assert BUSINESS.add(local(2026, 11, 4, 17, 0), 1) == local(2026, 11, 5, 8, 1)
