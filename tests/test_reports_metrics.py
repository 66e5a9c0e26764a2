"""Every figure of the report, exactly, on a month of known events (tests/report_seed.py),
on SQLite and PostgreSQL, in Africa/Johannesburg (UTC+2) and at the month boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import literal, select

from bot.db import UTCDateTime
from escalation.models import StaffMember
from kb.models import KbEntry
from reports.build import collect
from reports.metrics import _day_index, cluster_questions
from reports.periods import Period, PeriodError, due_periods, last_month, parse_period
from reports.stats import median, percentile
from tests import report_seed as s
from tests.test_sqlite_upkeep import Plans

JHB = ZoneInfo("Africa/Johannesburg")


async def figures_for(desk, label: str, tz: ZoneInfo = JHB):
    async with desk.sessions() as session:
        return await collect(session, parse_period(label, tz))


def day(n: int, values: list[int]) -> int:
    """The count on the n-th (1-based) day of the month."""
    return values[n - 1]


async def test_ads_figures_october(desk):
    await s.seed(desk.sessions)
    ads = (await figures_for(desk, "2026-10")).ads
    # submitted: ads 1-10, 12, 13, 14 (11 is 1 November locally; 19 was 30 September locally)
    assert ads["submitted"] == 13
    # approved: 1, 2 (expired since), 3 (sold), 4 (auto), 13 (taken down since), 19 (decided 01:00 on 1 Oct)
    assert (ads["approved"], ads["rejected"], ads["changes_requested"], ads["taken_down"], ads["resubmitted"]) == (6, 3, 1, 1, 0)
    assert ads["previous"] == {"submitted": 4, "approved": 2, "rejected": 1, "changes_requested": 0, "taken_down": 0}
    assert ads["change_pct"] == {"submitted": 225.0, "approved": 200.0, "rejected": 200.0, "changes_requested": None, "taken_down": None}
    # pending at the end: 9 (36 h), 10 (2 h), 12 (decided in November, 60 h); 14 was withdrawn
    assert ads["pending_at_end"] == 3
    assert ads["backlog"] == {"pending": 3, "older_than_24h": 2, "oldest_hours": 60.0}
    # approval times of moderator approvals: 30 (3), 60 (1), 60 (13: its approval event
    # survives the take-down), 120 (19), 180 (2) min: nearest-rank median = 3rd, p90 = 5th
    assert ads["approval_minutes"] == {"median": 60.0, "p90": 180.0, "count": 5}
    assert ads["approval_minutes_values"] == [30.0, 60.0, 60.0, 120.0, 180.0]
    assert ads["by_category"] == [
        {"category": "vehicles", "submitted": 3, "approved": 3, "rejected": 0},
        {"category": "home", "submitted": 3, "approved": 0, "rejected": 1},
        {"category": "electronics", "submitted": 2, "approved": 2, "rejected": 0},
        {"category": "pets", "submitted": 2, "approved": 0, "rejected": 2},
        {"category": "property", "submitted": 1, "approved": 1, "rejected": 0},
        {"category": "jobs", "submitted": 1, "approved": 0, "rejected": 0},
        {"category": "services", "submitted": 1, "approved": 0, "rejected": 0},
    ]
    assert ads["rejection_reasons"] == [{"reason": "scam", "count": 2}, {"reason": "photos", "count": 1}]
    assert ads["per_moderator"] == [
        {"id": s.MO, "name": "Mo", "approved": 3, "rejected": 2, "changes": 1, "taken_down": 1, "total": 7},
        {"id": s.THANDI, "name": "Thandi", "approved": 2, "rejected": 1, "changes": 0, "taken_down": 0, "total": 3},
    ]
    per_day = ads["per_day"]
    assert len(per_day) == 31 and sum(per_day) == 13
    assert [day(n, per_day) for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 29, 30, 31)] == [1] * 13
    assert day(1, per_day) == 0 and day(12, per_day) == 0


async def test_question_and_gap_figures_october(desk):
    await s.seed(desk.sessions)
    f = await figures_for(desk, "2026-10")
    q = f.questions
    # asked: 1-6 and 9 (7 is a follow-up button, 8 is November)
    assert (q["asked"], q["answered"]) == (7, 4)
    # deflected: 1 (ticket 24.5 h later), 3, 9; not 2 (ticket 30 min later)
    assert (q["deflected"], q["deflection_rate"]) == (3, 42.9)
    assert (q["votes"], q["helpful_votes"], q["not_helpful_votes"], q["helpful_rate"]) == (4, 2, 2, 50.0)
    async with desk.sessions() as session:
        titles = dict((await session.execute(select(KbEntry.id, KbEntry.title))).all())
    assert q["top_entries"] == [
        {"entry_id": s.E1, "title": titles[s.E1], "count": 2},
        {"entry_id": s.E3, "title": titles[s.E3], "count": 1},
        {"entry_id": s.E2, "title": titles[s.E2], "count": 1},
    ]
    assert q["most_not_helpful"] == [
        {"entry_id": s.E3, "title": titles[s.E3], "count": 1},
        {"entry_id": s.E2, "title": titles[s.E2], "count": 1},
    ]
    assert [r["entry_id"] for r in q["never_matched"]] == sorted(set(titles) - {s.E1, s.E2, s.E3})
    # gaps: 4 and 5 (don't know, the same question twice), 6 (none of these)
    assert f.gaps == {
        "questions": 3,
        "clusters": [
            {"example": "How can I change my phone number?", "count": 2, "variants": 2},
            {"example": "refund for a featured listing", "count": 1, "variants": 1},
        ],
    }


async def test_ticket_figures_october(desk):
    await s.seed(desk.sessions)
    t = (await figures_for(desk, "2026-10")).tickets
    # opened: 1, 2, 3, 4 (23:00 local on the 31st), 8; not the draft 7, not 9 (November)
    assert (t["opened"], t["resolved"]) == (5, 2)
    # open at the end: 3 (waiting), 4 (new), 5 (resolved in November)
    assert t["backlog_at_end"] == 3
    # first responses in October: 10, 30, 120, 4320 min; resolutions: 240, 2880 min
    assert t["first_response_minutes"] == {"median": 30.0, "p90": 4320.0, "count": 4}
    assert t["resolution_minutes"] == {"median": 240.0, "p90": 2880.0, "count": 2}
    assert (t["first_response_breaches"], t["resolution_breaches"]) == (2, 1)
    assert t["by_category"] == [
        {"category": "ads", "opened": 2, "resolved": 1, "breaches": 1},
        {"category": "payments", "opened": 1, "resolved": 1, "breaches": 0},
        {"category": "safety", "opened": 1, "resolved": 0, "breaches": 1},
        {"category": "technical", "opened": 1, "resolved": 0, "breaches": 0},
    ]
    assert t["per_staff"] == [
        {"id": s.SIPHO, "name": "Sipho", "resolved": 1, "first_responses": 2, "first_response_median": 120.0},
        {"id": s.THANDI, "name": "Thandi", "resolved": 1, "first_responses": 2, "first_response_median": 10.0},
    ]
    assert {n: c for n, c in enumerate(t["opened_per_day"], 1) if c} == {4: 1, 10: 1, 15: 1, 20: 1, 31: 1}
    assert {n: c for n, c in enumerate(t["resolved_per_day"], 1) if c} == {4: 1, 12: 1}


async def test_satisfaction_and_user_figures_october(desk):
    await s.seed(desk.sessions)
    f = await figures_for(desk, "2026-10")
    assert f.satisfaction == {
        "surveys_sent": 4,  # tickets 1, 2, 3, 9 (ticket 6's survey went out in September)
        "ratings": 3,  # 5 and 2, and 4 for ticket 6; ticket 9's 3 came on 1 November locally
        "csat": 66.7,
        "mean": 3.67,
        "response_rate": 75.0,
        "distribution": {1: 0, 2: 1, 3: 0, 4: 1, 5: 1},
        "low_comments": [{"ticket": 2, "stars": 2, "comment": "too slow <b>really</b> & late"}],
    }
    u = f.users
    feedback = u.pop("feedback")
    # new: U1 and U4 (00:30 local on 1 October); active: U1, U2, U4, U6 (an ad), U7 (feedback)
    # warned: U6, U7 (strikes); blocked: U6 and U7 (whose block ended on the 20th);
    # banned: U4 (lifted the next day); not U5 (September) nor U2 (1 November locally)
    assert u == {"new": 2, "active": 5, "warned": 2, "blocked": 2, "banned": 1}
    assert {k: v for k, v in feedback.items() if k != "entries"} == {"received": 2, "rated": 1, "mean_rating": 4.0, "answered": 1}
    assert [(e["text"], e["rating"], e["answered"]) for e in feedback["entries"]] == [("Add Afrikaans", None, False), ("Great bot", 4, True)]
    assert not f.empty


async def test_the_boundary_rows_belong_to_november_in_johannesburg_and_to_october_in_utc(desk):
    await s.seed(desk.sessions)
    nov = await figures_for(desk, "2026-11")
    assert nov.users["new"] == 1  # U3, first seen 23:30 UTC on 31 October
    assert nov.ads["submitted"] == 1 and nov.ads["approved"] == 1  # ad 11; ad 12 decided 2 November
    assert nov.questions["asked"] == 1 and nov.tickets["opened"] == 1 and nov.tickets["resolved"] == 1
    assert nov.satisfaction["ratings"] == 1 and nov.users["feedback"]["received"] == 1
    utc = await figures_for(desk, "2026-10", ZoneInfo("UTC"))
    assert utc.users["new"] == 2  # U1 and U3 (U4's 22:30 UTC on 30 September is September in UTC)
    assert utc.ads["submitted"] == 14  # 1-14 minus none: ad 11 joins; ad 19 (21:00 UTC 30 Sept) stays out
    assert utc.questions["asked"] == 7  # 8 joins, 9 leaves


async def test_an_empty_period_has_zeros_and_no_averages(desk):
    await s.seed(desk.sessions)
    f = await figures_for(desk, "2025-03")
    assert f.empty
    assert (f.ads["submitted"], f.ads["approved"], f.ads["pending_at_end"], f.ads["change_pct"]["submitted"]) == (0, 0, 0, None)
    assert f.ads["approval_minutes"] == {"median": None, "p90": None, "count": 0} and f.ads["per_day"] == [0] * 31
    assert (f.questions["asked"], f.questions["deflection_rate"], f.questions["helpful_rate"]) == (0, None, None)
    assert f.gaps == {"questions": 0, "clusters": []}
    assert (f.tickets["opened"], f.tickets["backlog_at_end"], f.tickets["first_response_minutes"]["median"]) == (0, 0, None)
    assert (f.satisfaction["csat"], f.satisfaction["mean"], f.satisfaction["response_rate"]) == (None, None, None)
    assert f.users["new"] == 0 and f.users["active"] == 0 and f.users["feedback"]["received"] == 0


async def test_a_quarter_rolls_up_its_three_months(desk):
    await s.seed(desk.sessions)
    q4 = await figures_for(desk, "2026-Q4")
    oct_, nov = await figures_for(desk, "2026-10"), await figures_for(desk, "2026-11")
    assert q4.ads["submitted"] == oct_.ads["submitted"] + nov.ads["submitted"] == 14
    assert q4.tickets["opened"] == 6 and len(q4.ads["per_day"]) == 92
    assert q4.ads["previous"]["submitted"] == 4  # Q3: the September ads


# ------------------------------------------------------------------ the queries behind the figures


async def add_tickets(desk, *tickets) -> None:
    async with desk.sessions() as session, session.begin():
        session.add_all([s._user(s.U1, s.z(9, 1))] + [StaffMember(id=i, first_name=n, last_seen=s.z(10, 1)) for i, n in ((s.THANDI, "Thandi"), (s.SIPHO, "Sipho"))])
    async with desk.sessions() as session, session.begin():
        session.add_all(tickets)


async def test_the_backlog_counts_each_case_open_at_the_end_once(desk):
    """The backlog at the end is counted in three parts (resolved after the end; closed
    after it, never resolved; still open): every case open at the end once, however it
    ended later, and none that had ended before."""
    await add_tickets(
        desk,
        s._t(1, s.U1, "ads", "closed", s.z(10, 2), resolved=s.z(11, 3), closed=s.z(11, 10)),  # resolved and closed in November
        s._t(2, s.U1, "ads", "closed", s.z(10, 3), closed=s.z(11, 2)),  # closed as spam in November, never resolved
        s._t(3, s.U1, "ads", "new", s.z(10, 5)),  # still open
        s._t(4, s.U1, "ads", "resolved", s.z(9, 5), resolved=s.z(11, 1)),  # opened in September, resolved in November
        s._t(5, s.U1, "ads", "claimed", s.z(10, 4), resolved=s.z(10, 6)),  # resolved in October, reopened since
        s._t(6, s.U1, "ads", "closed", s.z(10, 6), closed=s.z(10, 7)),  # closed in October
        s._t(7, s.U1, "ads", "resolved", s.z(10, 7), resolved=s.z(10, 31, 21, 59)),  # resolved 23:59 local on the 31st
        s._t(8, s.U1, "ads", "new", s.z(10, 31, 22)),  # reached a person at midnight: November
        s._t(9, s.U1, "ads", "draft", None),  # never reached a person
    )
    assert (await figures_for(desk, "2026-10")).tickets["backlog_at_end"] == 4  # 1, 2, 3, 4


async def test_time_percentiles_and_each_assignees_median_are_at_their_nearest_ranks(desk):
    """Eleven first responses in October (1-11 minutes, in no order): the median is the
    6th (ceil(0.5 * 11)), the 90th percentile the 10th; Thandi's six: the 3rd, Sipho's
    four: the 2nd; one answered by nobody assigned. Six resolutions: the 3rd and the 6th
    (ceil(5.4), where rounding would give the 5th)."""
    owner = {1: s.THANDI, 2: s.THANDI, 3: s.THANDI, 4: s.THANDI, 5: s.THANDI, 6: s.THANDI, 7: s.SIPHO, 8: s.SIPHO, 9: s.SIPHO, 10: s.SIPHO, 11: None}
    resolved_after = {2: 500, 7: 100, 4: 300, 9: 200, 1: 400, 11: 600}  # minutes after opening
    tickets = []
    for tid, minutes in enumerate([7, 2, 11, 5, 9, 1, 10, 3, 6, 8, 4], 1):
        opened = s.z(10, tid, 9)
        resolved = opened + timedelta(minutes=resolved_after[minutes]) if minutes in resolved_after else None
        status = "resolved" if resolved else "waiting"
        tickets.append(s._t(tid, s.U1, "ads", status, opened, opened + timedelta(minutes=minutes), resolved, assignee=owner[minutes]))
    await add_tickets(desk, *tickets)
    t = (await figures_for(desk, "2026-10")).tickets
    assert t["first_response_minutes"] == {"median": 6.0, "p90": 10.0, "count": 11}
    assert t["resolution_minutes"] == {"median": 300.0, "p90": 600.0, "count": 6}
    assert t["per_staff"] == [
        {"id": s.THANDI, "name": "Thandi", "resolved": 3, "first_responses": 6, "first_response_median": 3.0},
        {"id": s.SIPHO, "name": "Sipho", "resolved": 2, "first_responses": 4, "first_response_median": 8.0},
    ]


@pytest.mark.parametrize(("zone", "label"), [("Europe/Berlin", "2026-03"), ("Europe/Berlin", "2026-10"), ("Asia/Kathmandu", "2026-Q1")])
async def test_each_moment_is_counted_on_its_local_day(desk, zone, label):
    """The day of a moment, worked out by the database (a binary search over the day
    boundaries): right on each boundary, just before it, and across a change of the
    clocks (Berlin's 23- and 25-hour days; Kathmandu is 5:45 ahead of UTC)."""
    period = parse_period(label, ZoneInfo(zone))
    starts = period.day_starts()
    moments = [(starts[0], 0), (starts[-1] - timedelta(microseconds=1), len(starts) - 2)]
    for day, start in enumerate(starts[1:-1], 1):
        moments += [(start - timedelta(microseconds=1), day - 1), (start, day), (start + timedelta(hours=12), day)]
    async with desk.sessions() as session:
        found = [(await session.scalar(select(_day_index(literal(at, UTCDateTime()), period))), day) for at, day in moments]
    assert [f for f, _ in found] == [day for _, day in found]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_reports_period_queries_read_their_indexes_alone_on_sqlite(desk):
    """At a million tickets and ads, reading a month's rows from the table behind a
    one-column index took most of the report's time (benchmarks/scale.py): its queries
    on tickets and ad_events read indexes that hold every column they need (migration
    0029), and the backlog's three counts the index SQLite is told to use. Exceptions:
    the open tickets (a few), a user's tickets after a question (the deflection)."""
    await s.seed(desk.sessions)
    with Plans(desk, "tickets") as tickets, Plans(desk, "ad_events") as events, Plans(desk, "ad_events_1") as earlier:
        await figures_for(desk, "2026-10")
    steps = [step for plans in (tickets, events, earlier) for _, found in plans for step in found]
    assert steps and all(
        "USING COVERING INDEX ix_" in step or "USING INDEX ix_tickets_open_queue " in step or "USING INDEX ix_tickets_user_id_id " in step
        for step in steps
    ), steps
    assert {step.split(" INDEX ")[1].split()[0] for step in steps} == {
        "ix_ad_events_report", "ix_ad_events_ad_at_kind", "ix_tickets_report_opened", "ix_tickets_report_first_response",
        "ix_tickets_report_resolved", "ix_tickets_report_closed", "ix_tickets_open_queue", "ix_tickets_user_id_id",
    }


# ------------------------------------------------------------------ pure helpers


def test_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    assert median([5]) == 5 and percentile([5], 90) == 5
    assert median([4, 1, 3, 2]) == 2  # even count: the lower middle value
    assert percentile(list(range(1, 11)), 90) == 9 and percentile(list(range(1, 11)), 91) == 10
    assert percentile([10, 20, 30], 100) == 30 and percentile([10, 20, 30], 1) == 10


def test_periods_parse_and_bound_in_the_time_zone():
    oct_ = parse_period("2026-10", JHB)
    assert (oct_.start, oct_.end) == (datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 22, tzinfo=UTC))
    assert parse_period("2026-q4", JHB).label == "2026-Q4" and parse_period("2026-Q1", JHB).previous().label == "2025-Q4"
    assert parse_period("2026-1", JHB).label == "2026-01" and parse_period("2026-01", JHB).previous().label == "2025-12"
    for bad in ("2026-13", "2026-Q5", "26-10", "october", "", "2026-10-01"):
        with pytest.raises(PeriodError):
            parse_period(bad, JHB)
    # a daylight-saving zone: March 2026 in Berlin has a 23-hour day; days stay local
    berlin = parse_period("2026-03", ZoneInfo("Europe/Berlin"))
    edges = berlin.day_starts()
    assert len(edges) == 32 and (edges[29] - edges[28]).total_seconds() == 23 * 3600
    assert last_month(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), JHB).label == "2026-10"  # already 1 Nov locally
    assert last_month(datetime(2026, 10, 31, 21, 30, tzinfo=UTC), JHB).label == "2026-09"


def test_due_periods_follow_the_local_hour_for_a_week():
    def due(*args, quarterly=True):
        return [p.label for p in due_periods(datetime(*args, tzinfo=UTC), JHB, hour=8, quarterly=quarterly)]

    # 1 October 07:59 local = 05:59 UTC: nothing yet; 08:00 local: September and Q3
    assert due(2026, 10, 1, 5, 59) == []
    assert due(2026, 10, 1, 6, 0) == ["2026-09", "2026-Q3"]
    assert due(2026, 10, 1, 6, 0, quarterly=False) == ["2026-09"]
    assert due(2026, 10, 8, 5, 59) == ["2026-09", "2026-Q3"]  # still catching up a week later
    assert due(2026, 10, 8, 6, 0) == []
    assert due(2026, 11, 1, 6, 0) == ["2026-10"]  # not a quarter's start
    assert due(2026, 10, 31, 22, 30) == []  # 00:30 on 1 November locally: before 08:00


def test_clusters_group_similar_questions_largest_first():
    clusters = cluster_questions(["where is my refund", "reset password", "Where is my refund?", "how to reset my password", "reset password"])
    assert [(c["example"], c["count"]) for c in clusters] == [("reset password", 3), ("where is my refund", 2)]
    assert cluster_questions([]) == []


def test_period_of_a_quarter_spans_three_months():
    q = Period("quarter", 2026, 4, JHB)
    assert (q.first_day.isoformat(), q.end_day.isoformat(), len(q.days())) == ("2026-10-01", "2027-01-01", 92)
