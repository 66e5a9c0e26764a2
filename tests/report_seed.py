"""A month of known events (October 2026, Africa/Johannesburg = UTC+2) for the report
tests. Rows are written directly; every expected figure is worked out in
tests/test_reports_metrics.py next to the rows it comes from.

Boundaries: local October runs from 2026-09-30 22:00 UTC to 2026-10-31 22:00 UTC. Rows
at 23:30 UTC on 31 October belong to November; rows at 22:30 UTC on 30 September
belong to October.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ads.models import Ad, AdEvent, Strike, UserEvent
from bot.models import User
from escalation.models import Feedback, Rating, StaffMember, Ticket
from kb.models import Question

THANDI, MO, SIPHO = 900001, 900002, 900003
U1, U2, U3, U4, U5, U6, U7 = 1001, 1002, 1003, 1004, 1005, 1006, 1007
E1, E2, E3 = "post-an-ad", "posting-is-free", "ad-limit"


def z(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _user(uid: int, first: datetime, last: datetime | None = None, **kw: Any) -> User:
    return User(id=uid, first_name=f"U{uid}", first_seen=first, last_seen=last or first, **kw)


def _ad(ad_id: int, user: int, category: str, status: str, submitted: datetime | None, decided: datetime | None = None, by: int | None = None, reason: str | None = None, auto: bool = False, updated: datetime | None = None) -> Ad:
    created = (submitted or updated or z(10, 12)) - timedelta(minutes=10)
    return Ad(
        id=ad_id, user_id=user, category=category, status=status, title=f"Ad {ad_id}", created_at=created,
        updated_at=updated or decided or submitted or created, submitted_at=submitted, decided_at=decided, decided_by=by,
        decision_reason=reason, auto_approved=auto,
    )


def _ad_events(owners: dict[int, tuple[int, str | None]]) -> list[AdEvent]:
    """The event log of the ads below (what ads/service.py writes), in time order per ad."""
    events: list[AdEvent] = []
    # ad: (submitted, decision kind, decided, moderator, reason, closing kind, closed)
    ads = {
        1: (z(10, 2, 8), "approved", z(10, 2, 9), MO, None, None, None),
        2: (z(10, 3, 8), "approved", z(10, 3, 11), MO, None, "expired", z(10, 20)),
        3: (z(10, 4, 8), "approved", z(10, 4, 8, 30), THANDI, None, "sold", z(10, 6)),
        4: (z(10, 5, 8), "auto_approved", z(10, 5, 8), None, None, None, None),
        5: (z(10, 6, 8), "rejected", z(10, 6, 10), MO, "scam", None, None),
        6: (z(10, 7, 8), "rejected", z(10, 7, 9), MO, "photos", None, None),
        7: (z(10, 8, 8), "rejected", z(10, 8, 9), THANDI, "scam", None, None),
        8: (z(10, 9, 8), "changes_requested", z(10, 9, 9), MO, "price", None, None),
        9: (z(10, 30, 10), None, None, None, None, None, None),
        10: (z(10, 31, 20), None, None, None, None, None, None),
        11: (z(10, 31, 23, 30), None, None, None, None, None, None),
        12: (z(10, 29, 10), "approved", z(11, 2, 10), MO, None, None, None),
        # approved after 60 min, taken down five days later by the same moderator
        13: (z(10, 10, 8), "approved", z(10, 10, 9), MO, None, "taken_down", z(10, 15)),
        14: (z(10, 11), None, None, None, None, "deleted", z(10, 12)),
        16: (z(9, 10, 8), "approved", z(9, 10, 9), MO, None, None, None),
        17: (z(9, 11, 8), "rejected", z(9, 11, 9), MO, "scam", None, None),
        18: (z(9, 12, 8), "approved", z(9, 12, 9), MO, None, None, None),
        19: (z(9, 30, 21), "approved", z(9, 30, 23), THANDI, None, None, None),
    }
    for ad_id, (submitted, decision, decided, by, reason, closing, closed) in ads.items():
        user, category = owners[ad_id]

        def e(kind: str, at: datetime, by: int | None = None, reason: str | None = None) -> AdEvent:
            return AdEvent(ad_id=ad_id, user_id=user, category=category, kind=kind, at=at, actor_id=by, reason=reason)

        events.append(e("submitted", submitted))
        if decision:
            events.append(e(decision, decided, by, reason))
        if closing:
            events.append(e(closing, closed, MO if closing == "taken_down" else None))
    return events


def _q(qid: int, user: int, at: datetime, outcome: str, entry: str | None = None, vote: str | None = None, text: str = "a question", none: bool = False, source: str = "text") -> Question:
    return Question(
        id=qid, user_id=user, text=text, source=source, offered=[], top_score=0.5, outcome=outcome, answer_entry_id=entry,
        none_of_these=none, vote=vote, created_at=at,
    )


def _t(tid: int, user: int, category: str, status: str, escalated: datetime | None, first: datetime | None = None, resolved: datetime | None = None, closed: datetime | None = None, assignee: int | None = None, frb: bool = False, rb: bool = False, created: datetime | None = None) -> Ticket:
    return Ticket(
        id=tid, user_id=user, category=category, department="general", priority="normal", status=status,
        created_at=created or (escalated - timedelta(minutes=5) if escalated else z(10, 15)), escalated_at=escalated,
        first_response_at=first, resolved_at=resolved, closed_at=closed, assignee_id=assignee,
        first_response_breached=frb, resolution_breached=rb,
    )


def rows() -> list[list[Any]]:
    """Rows in insertion order (parents before children)."""
    users = [
        _user(U1, z(10, 5, 10), z(10, 20)),  # new in October
        _user(U2, z(9, 10)),
        _user(U3, z(10, 31, 23, 30)),  # 01:30 on 1 November locally: new in November
        _user(U4, z(9, 30, 22, 30)),  # 00:30 on 1 October locally: new in October
        _user(U5, z(8, 1), status="banned"),
        _user(U6, z(8, 1), status="blocked", blocked_until=z(11, 5)),  # still blocked at the end
        _user(U7, z(8, 1), status="blocked", blocked_until=z(10, 20)),  # block over before the end
    ]
    staff = [
        StaffMember(id=THANDI, first_name="Thandi", last_seen=z(10, 1)),
        StaffMember(id=MO, first_name="Mo", last_seen=z(10, 1)),
        StaffMember(id=SIPHO, first_name="Sipho", last_seen=z(10, 1)),
    ]
    strikes = [
        Strike(user_id=U6, reason="scam", created_at=z(10, 10), expires_at=z(12, 30)),
        Strike(user_id=U7, reason="spam", created_at=z(10, 12), expires_at=z(12, 30)),
        Strike(user_id=U7, reason="spam", created_at=z(10, 13), expires_at=z(12, 30)),
        Strike(user_id=U5, reason="old", created_at=z(9, 1), expires_at=z(12, 30)),
    ]
    user_events = [
        UserEvent(user_id=U5, kind="banned", at=z(9, 1)),  # September
        UserEvent(user_id=U6, kind="blocked", until=z(11, 5), at=z(10, 10)),  # still blocked at the end
        UserEvent(user_id=U7, kind="warned", at=z(10, 12)),
        UserEvent(user_id=U7, kind="blocked", until=z(10, 20), at=z(10, 13)),  # block over before the end: still a block of October
        UserEvent(user_id=U4, kind="banned", actor_id=THANDI, at=z(10, 25)),
        UserEvent(user_id=U4, kind="lifted", actor_id=THANDI, at=z(10, 26)),
        UserEvent(user_id=U2, kind="banned", at=z(10, 31, 23, 30)),  # November locally
    ]
    ads = [
        _ad(1, U1, "vehicles", "approved", z(10, 2, 8), z(10, 2, 9), MO),  # 60 min
        _ad(2, U1, "vehicles", "expired", z(10, 3, 8), z(10, 3, 11), MO),  # 180 min
        _ad(3, U1, "electronics", "sold", z(10, 4, 8), z(10, 4, 8, 30), THANDI),  # 30 min
        _ad(4, U1, "electronics", "approved", z(10, 5, 8), z(10, 5, 8), None, auto=True),
        _ad(5, U1, "pets", "rejected", z(10, 6, 8), z(10, 6, 10), MO, "scam"),
        _ad(6, U1, "pets", "rejected", z(10, 7, 8), z(10, 7, 9), MO, "photos"),
        _ad(7, U1, "home", "rejected", z(10, 8, 8), z(10, 8, 9), THANDI, "scam"),
        _ad(8, U1, "home", "changes_requested", z(10, 9, 8), z(10, 9, 9), MO, "price"),
        _ad(9, U1, "vehicles", "submitted", z(10, 30, 10)),  # pending 36 h at the end
        _ad(10, U1, "jobs", "submitted", z(10, 31, 20)),  # 22:00 local on the 31st: October, pending 2 h
        _ad(11, U1, "jobs", "submitted", z(10, 31, 23, 30)),  # November
        _ad(12, U1, "services", "approved", z(10, 29, 10), z(11, 2, 10), MO),  # pending 60 h at the end
        _ad(13, U1, "property", "taken_down", z(10, 10, 8), z(10, 15), MO),
        _ad(14, U6, "home", "deleted", z(10, 11), None, updated=z(10, 12)),  # withdrawn while waiting
        _ad(15, U1, "home", "draft", None, updated=z(10, 12)),
        # September (the previous period)
        _ad(16, U2, "vehicles", "approved", z(9, 10, 8), z(9, 10, 9), MO),
        _ad(17, U2, "vehicles", "rejected", z(9, 11, 8), z(9, 11, 9), MO, "scam"),
        _ad(18, U2, "vehicles", "approved", z(9, 12, 8), z(9, 12, 9), MO),
        _ad(19, U2, "vehicles", "approved", z(9, 30, 21), z(9, 30, 23), THANDI),  # submitted Sept, decided Oct (01:00 local), 120 min
    ]
    questions = [
        _q(1, U1, z(10, 3, 10), "answered", E1, "helpful"),  # ticket 24.5 h later: deflected
        _q(2, U1, z(10, 4, 10, 30), "suggested", E2, "not_helpful"),  # ticket 30 min later: not deflected
        _q(3, U2, z(10, 5, 9), "answered", E1, "helpful"),  # deflected
        _q(4, U2, z(10, 6, 9), "no_match", text="how do I change the phone number on my account"),
        _q(5, U2, z(10, 6, 9, 5), "no_match", text="How can I change my phone number?"),
        _q(6, U1, z(10, 7, 9), "suggested", none=True, text="refund for a featured listing"),
        _q(7, U1, z(10, 8, 9), "answered", E3, source="followup"),  # a button, not a question
        _q(8, U2, z(10, 31, 23, 30), "answered", E1),  # November
        _q(9, U2, z(9, 30, 22, 30), "answered", E3, "not_helpful"),  # October (00:30 local), deflected
    ]
    tickets = [
        _t(1, U1, "payments", "resolved", z(10, 4, 11), z(10, 4, 11, 30), z(10, 4, 15), assignee=THANDI),  # 30 / 240 min
        _t(2, U2, "ads", "resolved", z(10, 10, 8), z(10, 10, 10), z(10, 12, 8), assignee=SIPHO, frb=True),  # 120 / 2880
        _t(3, U2, "ads", "waiting", z(10, 20, 8), z(10, 20, 8, 10), assignee=THANDI),  # 10
        _t(4, U1, "safety", "new", z(10, 31, 21), frb=True, rb=True),  # 23:00 local: October
        _t(5, U4, "other", "resolved", z(9, 28, 10), z(10, 1, 10), z(11, 1, 10), assignee=SIPHO),  # first response 4320 min in Oct
        _t(6, U4, "account", "closed", z(9, 20), z(9, 20, 1), z(9, 21), z(9, 28), assignee=THANDI),
        _t(7, U2, "ads", "draft", None, created=z(10, 15)),
        _t(8, U1, "technical", "closed", z(10, 15, 10), closed=z(10, 15, 11)),  # spam
        _t(9, U2, "payments", "new", z(10, 31, 23, 30)),  # November
    ]
    ratings = [
        Rating(ticket_id=1, user_id=U1, sent_at=z(10, 4, 15), stars=5, rated_at=z(10, 4, 16)),
        Rating(ticket_id=2, user_id=U2, sent_at=z(10, 12, 8), stars=2, rated_at=z(10, 12, 9), comment="too slow <b>really</b> & late"),
        Rating(ticket_id=6, user_id=U4, sent_at=z(9, 21), stars=4, rated_at=z(10, 1, 10)),
        Rating(ticket_id=3, user_id=U2, sent_at=z(10, 25)),  # no answer
        Rating(ticket_id=9, user_id=U2, sent_at=z(10, 31, 21), stars=3, rated_at=z(10, 31, 23, 30), comment="meh"),  # rated in November
    ]
    feedback = [
        Feedback(user_id=U7, text="Great bot", rating=4, created_at=z(10, 14), answer="Thanks!", answered_by=THANDI, answered_at=z(10, 15)),
        Feedback(user_id=U1, text="Add Afrikaans", rating=None, created_at=z(10, 20)),
        Feedback(user_id=U2, text="late", rating=1, created_at=z(10, 31, 23, 30)),  # November
    ]
    return [users + staff, strikes + user_events + ads + questions + tickets, _ad_events({a.id: (a.user_id, a.category) for a in ads}) + ratings + feedback]


async def seed(sessions: Any) -> None:
    for group in rows():
        async with sessions() as session, session.begin():
            session.add_all(group)
    # PostgreSQL: explicit ids leave the sequences behind; move them on
    async with sessions() as session, session.begin():
        if session.bind.dialect.name == "postgresql":
            from sqlalchemy import text

            for table in ("ads", "questions", "tickets"):
                await session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
