"""The report's figures: one function per section, each over a period [start, end).

Every function takes an ``AsyncSession`` and a :class:`~reports.periods.Period` (local
midnights of the configured time zone, as UTC instants) and returns plain values. The
queries are set-based (counts, GROUP BYs and percentiles in the database; only the
approval times, which the report draws as a histogram, come back one by one), and read
indexes that hold every column they need (reports/models.py). The exact definitions
are in README.md ("Reports") and in each docstring.

Where the data comes from, and its limits:

- ``ad_events`` is the append-only log of ad state changes (ads/service.py writes one
  row with each change): every submission and decision of every moderation round, with
  its moderator and reason. Rows before migration 0016 were backfilled from the ads
  table, which knew only each ad's latest submission and decision.
- ``questions`` is the question log (outcome, chosen entry, none-of-these, vote).
- ``tickets`` has the moments a case reached a person (``escalated_at``), got its first
  staff message (``first_response_at``), was resolved (``resolved_at``; a reopened case
  counts at its latest resolution) and the SLA breach flags.
- ``ratings``: one satisfaction survey per resolved ticket (``sent_at``), its stars and
  comment (``rated_at``). ``feedback``: /feedback items. ``strikes``: warnings.
- ``user_events``: penalty changes (blocked, banned, lifted), written with the status
  change (ads/strikes.py) since migration 0016; earlier blocks and bans had no date.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import Float, and_, case, distinct, exists, func, literal, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from ads.models import DECISION_KINDS, SUBMISSION_KINDS, Ad, AdEvent, AdEventKind, AdStatus, Strike, UserEvent, UserEventKind
from bot.db import UTCDateTime
from bot.models import User
from escalation.models import Feedback, Rating, StaffMember, Ticket
from escalation.service import OPEN_QUEUE
from kb.models import KbEntry, Outcome, Question, Vote
from kb.textnorm import normalize
from reports.periods import Period
from reports.stats import change_pct, median, pct, percentile

LOW_RATING = 3  # ratings of 3 or less are "low" (the bot asks those users for a comment)
TOP = 10  # rows in each "top" list
GAP_SIMILARITY = 70  # rapidfuzz token_set_ratio at or above which two questions cluster
GAP_MAX_QUESTIONS = 2000  # the most recent unanswered questions clustered (bounded time)
DEFLECTION_HOURS = 24
BACKLOG_OLD_HOURS = 24


# ------------------------------------------------------------------ SQL helpers


class _PlusDay(FunctionElement[datetime]):
    """``column + 24 hours`` on PostgreSQL and SQLite (which stores naive UTC text)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "plus_day"


@compiles(_PlusDay)
def _plus_day_default(element: _PlusDay, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + interval '{DEFLECTION_HOURS} hours')"


@compiles(_PlusDay, "sqlite")
def _plus_day_sqlite(element: _PlusDay, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(element.clauses, **kw)}, '+{DEFLECTION_HOURS} hours')"


class _Minutes(FunctionElement[float]):
    """``later - earlier`` in minutes, as a float, computed by the database (fetching
    two timestamps per row costs far more than one number)."""

    type = Float()
    inherit_cache = True
    name = "minutes_between"


@compiles(_Minutes)
def _minutes_default(element: _Minutes, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    # EXTRACT gives numeric (decoded as Decimal, slowly): cast to a float
    return f"CAST(EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})) / 60.0 AS DOUBLE PRECISION)"


@compiles(_Minutes, "sqlite")
def _minutes_sqlite(element: _Minutes, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"((julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})) * 1440.0)"


def _within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _day_index(column: Any, period: Period) -> Any:
    """The local day (0-based) of the period a timestamp falls on, as a SQL CASE over
    the day boundaries in UTC (right across daylight-saving changes). The CASEs nest as
    a binary search: five comparisons per row for a month, not up to thirty."""
    edges = period.day_starts()[1:-1]  # edges[i]: where day i ends and day i + 1 starts

    def among(first: int, last: int) -> Any:  # the day, known to be one of first..last
        if first == last:
            return literal(first)
        middle = (first + last) // 2
        return case((column < edges[middle], among(first, middle)), else_=among(middle + 1, last))

    return among(0, len(edges))


def _minutes(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 60


def _rounded(values: Any) -> list[float]:
    """Minutes to 1/10,000 (6 ms): SQLite's julianday arithmetic is not exact."""
    return [round(float(v), 4) for v in values]


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"median": median(values), "p90": percentile(values, 90), "count": len(values)}


def _rank(p: int, n: Any) -> Any:
    """The nearest rank of the p-th percentile of n values, ceil(p * n / 100) (see
    reports.stats), in integers: in SQL as in Python."""
    return (p * n + 99) // 100


async def _spread_in_sql(
    session: AsyncSession, minutes: Any, where: list[Any], *, by: Any = None
) -> tuple[dict[str, float | None], dict[int, tuple[int, float]]]:
    """:func:`_spread` of ``minutes`` over the rows ``where``, and with ``by`` (a column)
    the count and median of each of its values other than NULL, worked out by the
    database (window functions): a few rows come back, not one per value. The values
    are those of :func:`_rounded` (rounding keeps their order, so the value at a rank
    is the same)."""
    values = select(minutes.label("m"), *([] if by is None else [by.label("who")])).where(*where).subquery()
    rn, n = func.row_number().over(order_by=values.c.m), func.count().over()
    columns = [values.c.m, rn.label("rn"), n.label("n")]
    if by is not None:
        own_rn = func.row_number().over(partition_by=values.c.who, order_by=values.c.m)
        columns += [values.c.who, own_rn.label("own_rn"), func.count().over(partition_by=values.c.who).label("own_n")]
    ranked = select(*columns).subquery()
    wanted = or_(ranked.c.rn == _rank(50, ranked.c.n), ranked.c.rn == _rank(90, ranked.c.n))
    if by is not None:
        wanted = or_(wanted, and_(ranked.c.who.is_not(None), ranked.c.own_rn == _rank(50, ranked.c.own_n)))
    spread: dict[str, float | None] = {"median": None, "p90": None, "count": 0}
    medians: dict[int, tuple[int, float]] = {}
    for row in (await session.execute(select(ranked).where(wanted))).mappings():
        m, count = round(float(row["m"]), 4), int(row["n"])
        spread["count"] = count
        if row["rn"] == _rank(50, count):
            spread["median"] = m
        if row["rn"] == _rank(90, count):
            spread["p90"] = m
        if by is not None and row["who"] is not None and row["own_rn"] == _rank(50, int(row["own_n"])):
            medians[int(row["who"])] = (int(row["own_n"]), m)
    return spread, medians


async def _names(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (await session.execute(select(StaffMember.id, StaffMember.first_name, StaffMember.username).where(StaffMember.id.in_(ids)))).all()
    return {i: (first or (f"@{username}" if username else str(i))) for i, first, username in rows}


# ------------------------------------------------------------------ ads

SUBMISSIONS = tuple(str(k) for k in SUBMISSION_KINDS)
# decision events by the report's outcome (auto-approvals are approvals)
OUTCOME = {
    AdEventKind.APPROVED: "approved",
    AdEventKind.AUTO_APPROVED: "approved",
    AdEventKind.REJECTED: "rejected",
    AdEventKind.CHANGES_REQUESTED: "changes",
}
# what can follow a submission: a decision, or the owner's withdrawal
FOLLOW_SUBMISSION = tuple(str(k) for k in DECISION_KINDS) + (str(AdEventKind.DELETED),)
COUNTED = SUBMISSIONS + tuple(str(k) for k in DECISION_KINDS) + (str(AdEventKind.TAKEN_DOWN),)


def _answered_submission(decision: Any) -> Any:
    """The submission a decision event answers: the latest submission event of the same
    ad at or before it (a correlated subquery, answered from ``ix_ad_events_ad_at_kind``)."""
    s = aliased(AdEvent)
    return (
        select(func.max(s.at))
        .where(s.ad_id == decision.ad_id, s.kind.in_(SUBMISSIONS), s.at <= decision.at)
        .scalar_subquery()
    )


async def ads_metrics(session: AsyncSession, period: Period) -> dict[str, Any]:
    """Ads of the period, from the event log ``ad_events`` (one row per state change).

    A *moderation round* is one submission: the first one, or a resubmission after the
    ad was reopened for editing (after a rejection or a change request, or edited while
    live). An ad rejected, fixed and resubmitted is two rounds.

    - submitted: submission events (rounds) in the period; resubmitted: those that were
      resubmissions;
    - approved / rejected / changes requested: decision events in the period, by
      outcome (auto-approvals are approvals); taken down: take-down events in the period
      (by a moderator, or an upheld user report);
    - change: each of those against the previous period of the same length, in %
      (None when the previous figure is 0);
    - pending at period end: ads whose last event before the end is a submission;
    - backlog at period end: those pending ads, how many had waited more than 24 h at
      the end (since that submission), and the longest wait (hours);
    - approval time: per round, the approval event minus the submission it answers (the
      ad's latest submission at or before it), in minutes, over approvals by a moderator
      in the period (auto-approvals excluded), median and 90th percentile (nearest rank);
    - by category: submitted, approved, rejected per top-level category (the ad's
      category when the event happened);
    - rejection reasons: every rejection event of the period by reason, most first;
    - per moderator: approvals, rejections, change requests and take-downs of the
      period by the moderator who made them (every round counts).
    """
    # submissions (by category and day), decisions and take-downs (by category,
    # moderator and reason) of the period: one grouped query over ix_ad_events_report,
    # which holds every column it reads
    submission_day = case((AdEvent.kind.in_(SUBMISSIONS), _day_index(AdEvent.at, period))).label("day")
    split = (AdEvent.kind, AdEvent.category, AdEvent.actor_id, AdEvent.reason, submission_day)
    rows = (
        await session.execute(
            select(*split, func.count()).where(_within(AdEvent.at, period), AdEvent.kind.in_(COUNTED)).group_by(*split)
        )
    ).all()
    # the previous period of the same length: the counts only
    earlier = (
        await session.execute(
            select(AdEvent.kind, func.count())
            .where(_within(AdEvent.at, period.previous()), AdEvent.kind.in_(COUNTED))
            .group_by(AdEvent.kind)
        )
    ).all()
    keys = {"approved": "approved", "rejected": "rejected", "changes": "changes_requested"}

    def counted_as(kind: str) -> str:
        if kind in SUBMISSIONS:
            return "submitted"
        return "taken_down" if kind == AdEventKind.TAKEN_DOWN else keys[OUTCOME[AdEventKind(kind)]]

    counts = {"submitted": 0, "approved": 0, "rejected": 0, "changes_requested": 0, "taken_down": 0}
    before = dict(counts)
    for kind, n in earlier:
        before[counted_as(kind)] += int(n)
    resubmitted = 0
    per_day = [0] * len(period.days())
    by_cat: dict[str, dict[str, int]] = {}
    reason_counts: Counter[str] = Counter()
    per_mod: dict[int, dict[str, int]] = {}

    def cat(name: str | None) -> dict[str, int]:
        return by_cat.setdefault(name or "-", {"submitted": 0, "approved": 0, "rejected": 0})

    def mod(actor: int) -> dict[str, int]:
        return per_mod.setdefault(int(actor), {"approved": 0, "rejected": 0, "changes": 0, "taken_down": 0})

    for kind, category, actor, reason, day_index, n in rows:
        n = int(n)
        counts[counted_as(kind)] += n
        if kind in SUBMISSIONS:
            resubmitted += n if kind == AdEventKind.RESUBMITTED else 0
            per_day[int(day_index)] += n
            cat(category)["submitted"] += n
            continue
        if kind == AdEventKind.TAKEN_DOWN:
            if actor is not None:
                mod(actor)["taken_down"] += n
            continue
        outcome = OUTCOME[AdEventKind(kind)]
        if outcome in ("approved", "rejected"):
            cat(category)[outcome] += n
        if outcome == "rejected":
            reason_counts[reason or "-"] += n
        if actor is not None and kind != AdEventKind.AUTO_APPROVED:
            mod(actor)[outcome] += n
    change = {k: change_pct(v, before[k]) for k, v in counts.items()}

    # pending at the end: ads whose last event before the end (by time, then id) is a
    # submission. Only ads waiting now, or decided or withdrawn at or after the end, can
    # qualify (an ad's status is SUBMITTED exactly when its last event is a submission,
    # and what follows a submission is a decision or a withdrawal): that set, and one
    # index probe (ix_ad_events_ad_at_kind) per candidate for its last event before the end,
    # spare the database reading every ad's history.
    candidates = union(
        select(Ad.id.label("ad_id")).where(Ad.status == AdStatus.SUBMITTED),
        select(AdEvent.ad_id).where(AdEvent.at >= period.end, AdEvent.kind.in_(FOLLOW_SUBMISSION)),
    ).subquery()
    prior = aliased(AdEvent)
    waiting_since = (
        select(case((prior.kind.in_(SUBMISSIONS), prior.at), else_=None))
        .where(prior.ad_id == candidates.c.ad_id, prior.at < period.end)
        .order_by(prior.at.desc(), prior.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("since")
    )
    lasts = select(waiting_since).select_from(candidates).subquery()
    pending_rows = (await session.execute(select(lasts.c.since).where(lasts.c.since.is_not(None)))).scalars().all()
    waits = [_minutes(period.end, s) / 60 for s in pending_rows]
    backlog = {
        "pending": len(waits),
        "older_than_24h": sum(1 for w in waits if w > BACKLOG_OLD_HOURS),
        "oldest_hours": round(max(waits), 1) if waits else None,
    }

    approval_minutes = _rounded(
        m
        for m in (
            await session.execute(
                select(_Minutes(AdEvent.at, _answered_submission(AdEvent))).where(
                    _within(AdEvent.at, period), AdEvent.kind == AdEventKind.APPROVED, AdEvent.actor_id.is_not(None)
                )
            )
        ).scalars().all()
        if m is not None
    )

    categories = sorted(
        ({"category": c, **v} for c, v in by_cat.items()), key=lambda r: (-r["submitted"], -r["approved"], r["category"])
    )
    reasons = sorted(({"reason": r, "count": n} for r, n in reason_counts.items()), key=lambda r: (-r["count"], r["reason"]))
    names = await _names(session, list(per_mod))
    moderators = sorted(
        ({"id": m, "name": names.get(m, str(m)), **v, "total": sum(v.values())} for m, v in per_mod.items()),
        key=lambda r: (-r["total"], r["name"]),
    )
    return {
        **counts,
        "resubmitted": resubmitted,
        "previous": before,
        "change_pct": change,
        "pending_at_end": backlog["pending"],
        "backlog": backlog,
        "approval_minutes": _spread(approval_minutes),
        "approval_minutes_values": sorted(approval_minutes),
        "by_category": categories,
        "rejection_reasons": reasons,
        "per_moderator": moderators,
        "per_day": per_day,
    }


# ------------------------------------------------------------------ questions


async def question_metrics(session: AsyncSession, period: Period) -> dict[str, Any]:
    """Questions typed by users in the period (follow-up buttons are not questions).

    - asked: questions logged in the period;
    - answered by the KB: those that got an entry's answer (directly, or by choosing a
      suggestion);
    - deflection rate: answered questions after which the same user opened no ticket
      (a case that reached a person) within 24 hours, divided by questions asked, in %;
    - helpful-vote rate: helpful votes divided by all votes on the period's questions, in %;
    - top entries: entries given as answers most often;
    - entries never matched: entries of the knowledge base never given as an answer
      in the period;
    - most voted not helpful: entries with the most "not helpful" votes.
    """
    base = and_(_within(Question.created_at, period), Question.source == "text")
    asked = int(await session.scalar(select(func.count()).select_from(Question).where(base)) or 0)
    answered = int(
        await session.scalar(select(func.count()).select_from(Question).where(base, Question.answer_entry_id.is_not(None))) or 0
    )
    ticket_after = exists().where(
        Ticket.user_id == Question.user_id,
        Ticket.escalated_at >= Question.created_at,
        Ticket.escalated_at <= _PlusDay(Question.created_at),
    )
    deflected = int(
        await session.scalar(
            select(func.count()).select_from(Question).where(base, Question.answer_entry_id.is_not(None), ~ticket_after)
        )
        or 0
    )
    votes = dict(
        (await session.execute(select(Question.vote, func.count()).where(base, Question.vote.is_not(None)).group_by(Question.vote))).all()
    )
    helpful, not_helpful = int(votes.get(Vote.HELPFUL, 0)), int(votes.get(Vote.NOT_HELPFUL, 0))
    titles = dict((await session.execute(select(KbEntry.id, KbEntry.title))).all())
    top = (
        await session.execute(
            select(Question.answer_entry_id, func.count().label("n"))
            .where(base, Question.answer_entry_id.is_not(None))
            .group_by(Question.answer_entry_id)
            .order_by(func.count().desc(), Question.answer_entry_id)
            .limit(TOP)
        )
    ).all()
    matched = set(
        (await session.execute(select(Question.answer_entry_id).where(base, Question.answer_entry_id.is_not(None)).distinct())).scalars()
    )
    bad = (
        await session.execute(
            select(Question.answer_entry_id, func.count())
            .where(base, Question.vote == Vote.NOT_HELPFUL, Question.answer_entry_id.is_not(None))
            .group_by(Question.answer_entry_id)
            .order_by(func.count().desc(), Question.answer_entry_id)
            .limit(TOP)
        )
    ).all()
    return {
        "asked": asked,
        "answered": answered,
        "deflected": deflected,
        "deflection_rate": pct(deflected, asked),
        "votes": helpful + not_helpful,
        "helpful_votes": helpful,
        "not_helpful_votes": not_helpful,
        "helpful_rate": pct(helpful, helpful + not_helpful),
        "top_entries": [{"entry_id": e, "title": titles.get(e, e), "count": int(n)} for e, n in top],
        "never_matched": sorted(({"entry_id": e, "title": t} for e, t in titles.items() if e not in matched), key=lambda r: r["entry_id"]),
        "most_not_helpful": [{"entry_id": e, "title": titles.get(e, e), "count": int(n)} for e, n in bad],
    }


async def kb_gaps(session: AsyncSession, period: Period) -> dict[str, Any]:
    """Questions of the period (the latest 2,000) the knowledge base could not answer: the bot said it
    does not know (outcome no_match), or the user pressed "None of these". Grouped by
    similarity: a question joins the first (largest) cluster whose first question is at
    least 70% similar (rapidfuzz token_set_ratio of the normalised texts), else starts
    its own. Largest clusters first, each with an example question and its count."""
    rows = (
        await session.execute(
            select(Question.text)
            .where(
                _within(Question.created_at, period),
                Question.source == "text",
                or_(Question.outcome == Outcome.NO_MATCH, Question.none_of_these.is_(True)),
            )
            .order_by(Question.created_at.desc(), Question.id.desc())
            .limit(GAP_MAX_QUESTIONS)
        )
    ).scalars().all()
    # an erased user's questions still count, but have no text to show or group
    return {"questions": len(rows), "clusters": cluster_questions([t for t in rows if t.strip()])}


def cluster_questions(texts: list[str], threshold: int = GAP_SIMILARITY) -> list[dict[str, Any]]:
    """Greedy leader clustering: identical normalised texts first collapse, the most
    frequent texts lead; ties keep the given order."""
    keyed = Counter()
    example: dict[str, str] = {}
    for text in texts:
        key = normalize(text) or text.strip().lower()
        keyed[key] += 1
        example.setdefault(key, text)
    order = sorted(keyed, key=lambda k: -keyed[k])  # stable: ties keep first-seen order
    leaders: list[str] = []
    members: list[list[str]] = []
    for key in order:
        best = process.extractOne(key, leaders, scorer=fuzz.token_set_ratio, score_cutoff=threshold) if leaders else None
        if best is None:
            leaders.append(key)
            members.append([key])
        else:
            members[best[2]].append(key)
    clusters = [
        {"example": example[group[0]], "count": sum(keyed[k] for k in group), "variants": len(group)} for group in members
    ]
    clusters.sort(key=lambda c: -c["count"])
    return clusters


# ------------------------------------------------------------------ tickets


def _backlog_at(end: datetime) -> Any:
    """How many tickets had reached a person before ``end`` and were neither resolved
    nor closed before it, as the sum of three disjoint counts, each read from the index
    that holds its few rows (SQLite is told which: without statistics it would pick the
    one on ``escalated_at``, i.e. nearly every ticket ever): resolved at or after the end;
    closed at or after it, never resolved; neither, i.e. open (the partial index of the
    open tickets, its condition word for word: escalation.service.OPEN_QUEUE)."""

    def count(index: str, *where: Any) -> Any:
        query = select(func.count()).select_from(Ticket).where(Ticket.escalated_at < end, *where)
        return query.with_hint(Ticket, f"INDEXED BY {index}", "sqlite").scalar_subquery()

    return (
        count("ix_tickets_report_resolved", Ticket.resolved_at >= end, or_(Ticket.closed_at.is_(None), Ticket.closed_at >= end))
        + count("ix_tickets_report_closed", Ticket.closed_at >= end, Ticket.resolved_at.is_(None))
        + count("ix_tickets_open_queue", OPEN_QUEUE, Ticket.resolved_at.is_(None), Ticket.closed_at.is_(None))
    )


async def ticket_metrics(session: AsyncSession, period: Period) -> dict[str, Any]:
    """Support cases of the period. "Opened" means reached a person (a draft the user
    never finished is not a ticket).

    - opened: tickets whose ``escalated_at`` falls in the period;
    - resolved: tickets whose (latest) resolution falls in the period;
    - backlog at period end: tickets that had reached a person before the end and were
      neither resolved nor closed before it;
    - first response time: the first staff message to the user minus the moment the
      case reached a person (the bot's own messages do not count), in minutes, over
      tickets whose first response falls in the period; median and 90th percentile;
    - resolution time: resolution minus the moment the case reached a person, over
      tickets resolved in the period; median and 90th percentile;
    - SLA breaches: tickets opened in the period that missed the first-response target,
      and those that missed the resolution target;
    - by category: opened, resolved and breaches per category;
    - per staff member (the assignee): tickets resolved, first responses and their
      median time.
    """
    # opened: by category, local day and breach flags, in one grouped query; resolved likewise
    o_day = _day_index(Ticket.escalated_at, period).label("day")
    opened_rows = (
        await session.execute(
            select(Ticket.category, o_day, Ticket.first_response_breached, Ticket.resolution_breached, func.count())
            .where(_within(Ticket.escalated_at, period))
            .group_by(Ticket.category, o_day, Ticket.first_response_breached, Ticket.resolution_breached)
        )
    ).all()
    r_day = _day_index(Ticket.resolved_at, period).label("day")
    resolved_rows = (
        await session.execute(
            select(Ticket.category, r_day, func.count()).where(_within(Ticket.resolved_at, period)).group_by(Ticket.category, r_day)
        )
    ).all()
    backlog = int(await session.scalar(select(_backlog_at(period.end))) or 0)
    # the spreads of the times, and each assignee's first responses and their median,
    # worked out by the database; each assignee's resolutions counted there
    answered = [_within(Ticket.first_response_at, period), Ticket.escalated_at.is_not(None)]
    first_spread, first_by_staff = await _spread_in_sql(
        session, _Minutes(Ticket.first_response_at, Ticket.escalated_at), answered, by=Ticket.assignee_id
    )
    closed = [_within(Ticket.resolved_at, period), Ticket.escalated_at.is_not(None)]
    resolution_spread, _ = await _spread_in_sql(session, _Minutes(Ticket.resolved_at, Ticket.escalated_at), closed)
    resolved_by_staff = (
        await session.execute(
            select(Ticket.assignee_id, func.count()).where(*closed, Ticket.assignee_id.is_not(None)).group_by(Ticket.assignee_id)
        )
    ).all()
    cats: dict[str, dict[str, int]] = {}

    def cat(name: str) -> dict[str, int]:
        return cats.setdefault(name, {"opened": 0, "resolved": 0, "breaches": 0})

    opened = resolved = first_breaches = resolution_breaches = 0
    opened_per_day, resolved_per_day = [0] * len(period.days()), [0] * len(period.days())
    for category, day_index, first_breached, resolution_breached, n in opened_rows:
        n = int(n)
        opened += n
        opened_per_day[int(day_index)] += n
        first_breaches += n if first_breached else 0
        resolution_breaches += n if resolution_breached else 0
        cat(category)["opened"] += n
        cat(category)["breaches"] += n if (first_breached or resolution_breached) else 0
    for category, day_index, n in resolved_rows:
        resolved += int(n)
        resolved_per_day[int(day_index)] += int(n)
        cat(category)["resolved"] += int(n)
    categories = sorted(({"category": c, **v} for c, v in cats.items()), key=lambda r: (-r["opened"], -r["resolved"], r["category"]))

    resolved_by = {int(i): int(n) for i, n in resolved_by_staff}
    people = set(resolved_by) | set(first_by_staff)
    names = await _names(session, list(people))
    staff = sorted(
        (
            {
                "id": i,
                "name": names.get(i, str(i) if i > 0 else "(erased)"),
                "resolved": resolved_by.get(i, 0),
                "first_responses": first_by_staff.get(i, (0, None))[0],
                "first_response_median": first_by_staff.get(i, (0, None))[1],
            }
            for i in people
        ),
        key=lambda r: (-r["resolved"], -r["first_responses"], r["name"]),
    )
    return {
        "opened": opened,
        "resolved": resolved,
        "backlog_at_end": backlog,
        "first_response_minutes": first_spread,
        "resolution_minutes": resolution_spread,
        "first_response_breaches": first_breaches,
        "resolution_breaches": resolution_breaches,
        "by_category": categories,
        "per_staff": staff,
        "opened_per_day": opened_per_day,
        "resolved_per_day": resolved_per_day,
    }


# ------------------------------------------------------------------ satisfaction


async def satisfaction_metrics(session: AsyncSession, period: Period) -> dict[str, Any]:
    """Satisfaction surveys (one per resolved ticket).

    - surveys sent: surveys whose ``sent_at`` falls in the period;
    - ratings: ratings given in the period (``rated_at``);
    - CSAT: ratings of 4 or 5 divided by all ratings, in %;
    - mean rating (two decimals); response rate: ratings divided by surveys sent, in %;
    - distribution: how many ratings of each 1-5;
    - low-rating comments: the comments left with ratings of 3 or less, newest first.
    """
    sent = int(await session.scalar(select(func.count()).select_from(Rating).where(_within(Rating.sent_at, period))) or 0)
    rated = and_(_within(Rating.rated_at, period), Rating.stars.is_not(None))
    dist = {int(s): int(n) for s, n in (await session.execute(select(Rating.stars, func.count()).where(rated).group_by(Rating.stars))).all()}
    distribution = {s: dist.get(s, 0) for s in range(1, 6)}
    ratings = sum(distribution.values())
    happy = distribution[4] + distribution[5]
    total = sum(s * n for s, n in distribution.items())
    comments = (
        await session.execute(
            select(Rating.ticket_id, Rating.stars, Rating.comment)
            .where(rated, Rating.stars <= LOW_RATING, Rating.comment.is_not(None), Rating.comment != "")
            .order_by(Rating.rated_at.desc(), Rating.id.desc())
        )
    ).all()
    return {
        "surveys_sent": sent,
        "ratings": ratings,
        "csat": pct(happy, ratings),
        "mean": round(total / ratings, 2) if ratings else None,
        "response_rate": pct(ratings, sent),
        "distribution": distribution,
        "low_comments": [{"ticket": t, "stars": s, "comment": c} for t, s, c in comments],
    }


# ------------------------------------------------------------------ users


async def user_metrics(session: AsyncSession, period: Period) -> dict[str, Any]:
    """People.

    - new: users first seen in the period;
    - active: distinct users who did anything recorded in the period: first or last
      seen, asked a question, opened a ticket (reached a person), submitted an ad,
      rated a ticket or sent feedback;
    - warned: distinct users who received a strike (a warning) in the period;
    - blocked: distinct users whose posting was blocked in the period (a "blocked"
      event: a strike reaching a block step, or a further block while blocked);
    - banned: distinct users banned in the period (by strikes or by a moderator);
    - feedback: items received in the period, how many with a rating, their mean
      rating, how many answered, and the items themselves (newest first).
    """
    # An erased banned or blocked user leaves a tombstone (their own id, kept so the ban
    # holds) beside the anonymous row (a negative id) that carries their figures: count
    # the anonymous row only.
    person = or_(User.deleted_at.is_(None), User.id < 0)
    new = int(await session.scalar(select(func.count()).select_from(User).where(_within(User.first_seen, period), person)) or 0)
    ids = union(
        select(User.id.label("uid")).where(or_(_within(User.first_seen, period), _within(User.last_seen, period)), person),
        select(Question.user_id).where(_within(Question.created_at, period)),
        select(Ticket.user_id).where(_within(Ticket.escalated_at, period)),
        select(AdEvent.user_id).where(_within(AdEvent.at, period), AdEvent.kind.in_(SUBMISSIONS)),
        select(Rating.user_id).where(_within(Rating.rated_at, period)),
        select(Feedback.user_id).where(_within(Feedback.created_at, period)),
    ).subquery()
    active = int(await session.scalar(select(func.count()).select_from(ids)) or 0)
    warned = int(await session.scalar(select(func.count(distinct(Strike.user_id))).where(_within(Strike.created_at, period))) or 0)
    penalties = dict(
        (
            await session.execute(
                select(UserEvent.kind, func.count(distinct(UserEvent.user_id)))
                .where(_within(UserEvent.at, period), UserEvent.kind.in_((UserEventKind.BLOCKED, UserEventKind.BANNED)))
                .group_by(UserEvent.kind)
            )
        ).all()
    )
    blocked, banned = int(penalties.get(UserEventKind.BLOCKED, 0)), int(penalties.get(UserEventKind.BANNED, 0))
    items = (
        await session.execute(
            # answered_at, not the answer's text: erasure blanks the text, not the fact
            select(Feedback.id, Feedback.rating, Feedback.text, Feedback.answered_at.is_not(None))
            .where(_within(Feedback.created_at, period))
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        )
    ).all()
    rated = [r for _, r, _, _ in items if r is not None]
    return {
        "new": new,
        "active": active,
        "warned": warned,
        "blocked": blocked,
        "banned": banned,
        "feedback": {
            "received": len(items),
            "rated": len(rated),
            "mean_rating": round(sum(rated) / len(rated), 2) if rated else None,
            "answered": sum(1 for *_, a in items if a),
            "entries": [{"id": i, "rating": r, "text": t, "answered": bool(a)} for i, r, t, a in items],
        },
    }


@dataclass
class Figures:
    """Every section of the report for one period."""

    period: Period
    ads: dict[str, Any] = field(default_factory=dict)
    questions: dict[str, Any] = field(default_factory=dict)
    gaps: dict[str, Any] = field(default_factory=dict)
    tickets: dict[str, Any] = field(default_factory=dict)
    satisfaction: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing at all happened in the period."""
        return not any(
            (
                self.ads.get("submitted"), self.ads.get("approved"), self.ads.get("rejected"), self.ads.get("changes_requested"),
                self.ads.get("taken_down"), self.users.get("blocked"), self.users.get("banned"),
                self.questions.get("asked"), self.tickets.get("opened"), self.tickets.get("resolved"),
                self.satisfaction.get("surveys_sent"), self.satisfaction.get("ratings"),
                self.users.get("new"), self.users.get("active"), self.users.get("warned"),
                (self.users.get("feedback") or {}).get("received"),
            )
        )


SECTIONS = (
    ("ads", ads_metrics),
    ("questions", question_metrics),
    ("gaps", kb_gaps),
    ("tickets", ticket_metrics),
    ("satisfaction", satisfaction_metrics),
    ("users", user_metrics),
)
