"""Moderation rounds in the report: December 2026 in Africa/Johannesburg (UTC+2), ads
rejected, fixed, resubmitted and decided again by another moderator, a take-down, and
ads waiting at the end. Every ads figure is checked exactly, on SQLite and PostgreSQL.

Local December runs from 2026-11-30 22:00 UTC to 2026-12-31 22:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ads.models import Ad, AdEvent
from bot.models import User
from escalation.models import StaffMember
from reports.build import collect
from reports.periods import parse_period

JHB = ZoneInfo("Africa/Johannesburg")
MO, THANDI, LEE = 910001, 910002, 910003
OWNER = 2001


def z(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ad: (category, status now, [(kind, at, moderator, reason), ...] in time order)
ADS = {
    # rejected by Mo (round 1), fixed, resubmitted, approved by Lee 30 min later (round 2)
    "A": (1, "vehicles", "approved", [
        ("submitted", z(12, 1, 8), None, None), ("rejected", z(12, 1, 10), MO, "photos"),
        ("reopened", z(12, 2, 7), None, None), ("resubmitted", z(12, 2, 8), None, None), ("approved", z(12, 2, 8, 30), LEE, None)]),
    # changes requested by Thandi, resubmitted, then rejected by Mo
    "B": (2, "home", "rejected", [
        ("submitted", z(12, 3, 8), None, None), ("changes_requested", z(12, 3, 9), THANDI, "price"),
        ("reopened", z(12, 3, 10), None, None), ("resubmitted", z(12, 3, 11), None, None), ("rejected", z(12, 3, 12), MO, "photos")]),
    # approved by Thandi after 120 min, taken down by Mo
    "C": (3, "electronics", "taken_down", [
        ("submitted", z(12, 4, 8), None, None), ("approved", z(12, 4, 10), THANDI, None), ("taken_down", z(12, 10), MO, None)]),
    "D": (4, "vehicles", "approved", [("submitted", z(12, 5, 8), None, None), ("auto_approved", z(12, 5, 8), None, None)]),
    # rejected, then resubmitted at 22:00 local on the 31st: waiting 2 h at the end
    "E": (5, "home", "submitted", [
        ("submitted", z(12, 30, 20), None, None), ("rejected", z(12, 31, 8), MO, "photos"),
        ("reopened", z(12, 31, 9), None, None), ("resubmitted", z(12, 31, 20), None, None)]),
    # submitted 23:00 local on 30 November, approved by Mo 02:00 local on 1 December: 180 min
    "F": (6, "vehicles", "approved", [("submitted", z(11, 30, 21), None, None), ("approved", z(12, 1, 0), MO, None)]),
    "G": (7, "pets", "rejected", [("submitted", z(11, 20, 10), None, None), ("rejected", z(11, 20, 11), MO, "scam")]),
    "H": (8, "electronics", "submitted", [("submitted", z(12, 28, 10), None, None)]),  # waiting 84 h at the end
    "I": (9, "jobs", "approved", [("submitted", z(12, 29, 10), None, None), ("approved", z(1, 2, 10, year=2027), MO, None)]),  # 60 h
    # rejected and reopened: a draft again, not waiting
    "J": (10, "pets", "draft", [
        ("submitted", z(12, 6, 8), None, None), ("rejected", z(12, 6, 9), THANDI, "duplicate"), ("reopened", z(12, 7), None, None)]),
}


async def seed(sessions) -> None:
    async with sessions() as session, session.begin():
        session.add(User(id=OWNER, first_name="Owner", first_seen=z(11, 1), last_seen=z(11, 1)))
        session.add_all(StaffMember(id=i, first_name=n, last_seen=z(12, 1)) for i, n in ((MO, "Mo"), (THANDI, "Thandi"), (LEE, "Lee")))
    async with sessions() as session, session.begin():
        for ad_id, category, status, history in ADS.values():
            submitted = [at for kind, at, _, _ in history if kind in ("submitted", "resubmitted")][-1]
            session.add(Ad(
                id=ad_id, user_id=OWNER, category=category, status=status, title=f"Ad {ad_id}", created_at=history[0][1],
                updated_at=history[-1][1], submitted_at=submitted, resubmissions=sum(1 for k, *_ in history if k == "reopened"),
            ))
    async with sessions() as session, session.begin():
        for ad_id, category, _, history in ADS.values():
            for kind, at, by, reason in history:
                session.add(AdEvent(ad_id=ad_id, user_id=OWNER, category=category, kind=kind, at=at, actor_id=by, reason=reason))
            await session.flush()  # ids in time order within each ad


async def ads_for(desk, label: str):
    async with desk.sessions() as session:
        return (await collect(session, parse_period(label, JHB))).ads


async def test_every_ads_figure_of_a_month_with_resubmissions(desk):
    await seed(desk.sessions)
    ads = await ads_for(desk, "2026-12")
    # rounds: A ×2, B ×2, C, D, E ×2, H, I, J (F was submitted in November locally)
    assert (ads["submitted"], ads["resubmitted"]) == (11, 3)
    # approved: A (Lee), C (Thandi), D (auto), F (Mo); rejected: A's and E's first rounds,
    # B's second, J; changes: B's first round; taken down: C
    assert (ads["approved"], ads["rejected"], ads["changes_requested"], ads["taken_down"]) == (4, 4, 1, 1)
    assert ads["previous"] == {"submitted": 2, "approved": 0, "rejected": 1, "changes_requested": 0, "taken_down": 0}
    assert ads["change_pct"] == {"submitted": 450.0, "approved": None, "rejected": 300.0, "changes_requested": None, "taken_down": None}
    # waiting at the end (22:00 UTC on the 31st): E (resubmitted 2 h before), H (84 h), I (60 h)
    assert ads["pending_at_end"] == 3
    assert ads["backlog"] == {"pending": 3, "older_than_24h": 2, "oldest_hours": 84.0}
    # per round: A 30 min from its resubmission (not 24.5 h from the first), C 120, F 180
    assert ads["approval_minutes_values"] == [30.0, 120.0, 180.0]
    assert ads["approval_minutes"] == {"median": 120.0, "p90": 180.0, "count": 3}
    assert ads["by_category"] == [
        {"category": "home", "submitted": 4, "approved": 0, "rejected": 2},
        {"category": "vehicles", "submitted": 3, "approved": 3, "rejected": 1},
        {"category": "electronics", "submitted": 2, "approved": 1, "rejected": 0},
        {"category": "jobs", "submitted": 1, "approved": 0, "rejected": 0},
        {"category": "pets", "submitted": 1, "approved": 0, "rejected": 1},
    ]
    assert ads["rejection_reasons"] == [{"reason": "photos", "count": 3}, {"reason": "duplicate", "count": 1}]
    assert ads["per_moderator"] == [
        {"id": MO, "name": "Mo", "approved": 1, "rejected": 3, "changes": 0, "taken_down": 1, "total": 5},
        {"id": THANDI, "name": "Thandi", "approved": 1, "rejected": 1, "changes": 1, "taken_down": 0, "total": 3},
        {"id": LEE, "name": "Lee", "approved": 1, "rejected": 0, "changes": 0, "taken_down": 0, "total": 1},
    ]
    assert {n: c for n, c in enumerate(ads["per_day"], 1) if c} == {1: 1, 2: 1, 3: 2, 4: 1, 5: 1, 6: 1, 28: 1, 29: 1, 30: 1, 31: 1}


async def test_the_months_around_it(desk):
    await seed(desk.sessions)
    nov = await ads_for(desk, "2026-11")
    # F and G submitted; G rejected; at the end F waits 1 h (submitted 23:00 local on the 30th)
    assert (nov["submitted"], nov["approved"], nov["rejected"]) == (2, 0, 1)
    assert nov["backlog"] == {"pending": 1, "older_than_24h": 0, "oldest_hours": 1.0}
    jan = await ads_for(desk, "2027-01")
    # I approved on 2 January, 4 days after its submission; E and H still wait
    assert (jan["submitted"], jan["approved"], jan["approval_minutes_values"]) == (0, 1, [5760.0])
    assert (jan["pending_at_end"], jan["per_moderator"][0]["id"]) == (2, MO)
