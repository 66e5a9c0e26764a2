"""Personal data (POPIA / GDPR): everything stored about a user, and erasing it.

``export_user`` gathers every row about a person into one JSON-ready document
(``/mydata``, and ``/userdata`` for staff). ``erase_user`` (``/deleteme``, and
``/forget`` for admins) removes or anonymises their personal data while keeping the
anonymous figures the reports count. What happens to each table:

- ``users``: the row is deleted. A banned or posting-blocked user keeps a tombstone
  (Telegram id, status, block end, ``deleted_at``; names, username, language and the
  reason wiped), so that erasure is not a way around a ban.
- Their content moves to a fresh anonymous user row (random negative id, no names,
  ``deleted_at`` set): nothing links it back to the Telegram account.
- ``questions``: text blanked; outcome, offered entries, scores, vote and times stay.
  Learned knowledge-base phrasings taken from their questions are removed.
- ``tickets``: subject blanked, open ones closed (reason ``erased``); category,
  department, priority, times and SLA figures stay. ``ticket_messages``: every text
  (theirs, staff replies, notes) blanked and file ids removed; direction, kind, time
  and delivery stay. ``ticket_events``: the user's own events point to the anonymous
  id. ``ratings``: stars stay, the comment goes.
- ``ads``: drafts deleted; the others keep category, price, status and dates with
  title, description, location and phone blanked, photos and pre-check details
  removed; a live or waiting ad is withdrawn (``deleted``). ``ad_staff_messages`` (the
  photos and cards of their ads in the staff chat): taken over by the erasure's redraws
  (photos deleted, cards redrawn), then forgotten.
  ``ad_events`` of their ads move to the anonymous id (a withdrawal is recorded).
- ``ad_reports`` they made, ``strikes`` against them, ``user_events`` (penalties),
  ``feedback`` (text and answer blanked, rating kept): moved to the anonymous id. A staff
  member's pending "Answer" to their feedback is dropped; the feedback can no longer be
  answered.
- Copies of their questions: ``kb_changes`` keep the record of a learned phrasing's
  review (and later edits of the entry) with the text replaced by ``(erased)`` in the
  summary and left out of the entry snapshots; staff members' ``kb_drafts`` lose
  phrasings that are their questions.
- ``notices``: theirs are deleted (unsent ones never go out), and so are the notices to
  staff about them or their cases (a pattern alert, SLA alerts) and those whose text
  names them (``person_id``: a staff member in "Thandi from support is on your case", in
  a reminder or a breach alert); a copy of such a notice in a case's history
  (``ticket_messages.person_id``) reads ``(erased)``.
- ``pending_inputs`` of theirs are deleted; ``processed_updates`` of their private chat
  (dedupe markers: chat id = user id) lose the chat and message ids and keep only the
  update id, which still recognises a re-delivered update.

A staff member (a ``staff_members`` row) erased the same way also loses that row and
their ``kb_drafts``; what they did stays with the anonymous id as actor
(``kb_changes.actor_id``, ticket events and replies, feedback answers, strikes, ad and
user events, report decisions, saved replies). Cases they held that are still open go
back to the queue (released, as ``/release`` does); finished ones keep the anonymous id
as assignee, so past per-staff figures stay, without a name.

``Erasure`` lists the staff-chat cards that showed the person (cases with the earlier
copies of their cards the bot knows, feedback, moderation cards of every round, report
cards; for a staff member the cards of the cases they held, copies too, and of the
latest ads and reports they decided) and the photos
of their ads there: the handler records each redraw (or deletion) in the same
transaction (:mod:`bot.redraws`), does them after the commit, and the sweep finishes
what a crash or a refusal for now left. Redrawn cards name an erased user "(erased
user)", never by the anonymous id: that id is internal (no command takes it, and
``/forget`` confirms with the Telegram id staff knew).
Copies Telegram keeps (the user's own chat, messages relayed into the staff chat) are
not in the database; staff remove those in Telegram if asked.

Plain async functions taking an ``AsyncSession``; they never commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import delete, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ads.models import Ad, AdCheck, AdEvent, AdEventKind, AdPhoto, AdReport, AdStaffMessage, AdStatus, StaffMessageKind, Strike, UserEvent
from bot.models import PendingInput, ProcessedUpdate, User, UserStatus
from bot.users import find_user
from escalation import service as tickets_service
from escalation.feedback import WAIT_ANSWER
from escalation.models import (
    OPEN_STATUSES, CannedReply, Direction, Feedback, Rating, SendState, StaffMember, Ticket, TicketEvent, TicketMessage, TicketStatus,
)
from escalation.service import Policy
from kb.models import KbChange, KbDraft, KbPhrasing, PhrasingSource, PhrasingStatus, Question

EXPORT_FORMAT = "saypro-helpdesk-personal-data/1"
KEEP_TOMBSTONE = (UserStatus.BANNED, UserStatus.BLOCKED)
#: An erased staff member's latest finished cases, answered feedback, decided ads and
#: decided reports whose cards are redrawn without their name, of each (each edit counts
#: against Telegram's 20 per minute in a group; older cards keep the name as drawn)
LATEST_REDRAWN = 20
ERASED_TEXT = "(erased)"  # stands in for an erased text: a question quoted in a KB change summary, a bot message naming staff


def _plain(value: Any) -> Any:
    """A column value as JSON: times in ISO 8601 (UTC), decimals as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _row(obj: Any, *names: str) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in names}


@dataclass(frozen=True)
class Person:
    """Whom ``/userdata`` and ``/forget`` are about: a user, or a staff member who never
    wrote to the bot privately (a ``staff_members`` row only)."""

    id: int
    display_name: str


async def find_person(session: AsyncSession, ref: str) -> Person | None:
    """A user (see :func:`find_user`), else a staff member by id or @username."""
    user = await find_user(session, ref)
    if user is not None:
        return Person(user.id, user.display_name)
    ref = ref.strip()
    digits = ref.lstrip("-")
    if digits.isascii() and digits.isdigit():
        member = await session.get(StaffMember, int(ref)) if len(digits) <= 18 else None
    else:
        name = ref.lstrip("@").lower()
        if not name or len(name) > 64:
            return None
        member = await session.scalar(
            select(StaffMember).where(func.lower(StaffMember.username) == name).order_by(StaffMember.last_seen.desc()).limit(1)
        )
    if member is None:
        return None
    return Person(member.id, member.first_name or (f"@{member.username}" if member.username else str(member.id)))


async def export_user(session: AsyncSession, *, user_id: int, now: datetime) -> dict[str, Any] | None:
    """Everything stored about the user, as one JSON-ready document (None: unknown user).

    Staff members' identities and other users' data are left out: staff replies appear
    with their text but not who wrote them, reports about the user's ads without the
    reporter. Internal staff notes about a case are not part of the messages."""
    user = await session.get(User, user_id)
    member = await session.get(StaffMember, user_id)
    if user is None and member is None:
        return None
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generated_at": _plain(now),
        "user": _row(
            user, "id", "first_name", "last_name", "username", "language_code", "locale", "status", "status_reason",
            "blocked_until", "first_seen", "last_seen", "deleted_at",
        ) if user is not None else None,
    }
    questions = (await session.scalars(select(Question).where(Question.user_id == user_id).order_by(Question.id))).all()
    doc["questions"] = [
        _row(q, "id", "text", "source", "outcome", "offered", "top_score", "answer_entry_id", "none_of_these", "vote", "created_at", "chosen_at", "voted_at")
        for q in questions
    ]
    tickets = (await session.scalars(select(Ticket).where(Ticket.user_id == user_id).order_by(Ticket.id))).all()
    ticket_ids = [t.id for t in tickets]
    messages: dict[int, list[TicketMessage]] = {}
    if ticket_ids:
        rows = await session.scalars(
            select(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ticket_ids), TicketMessage.direction != Direction.NOTE)
            .order_by(TicketMessage.id)
        )
        for m in rows:
            messages.setdefault(m.ticket_id, []).append(m)
    ratings = {r.ticket_id: r for r in (await session.scalars(select(Rating).where(Rating.user_id == user_id))).all()}
    doc["tickets"] = []
    for t in tickets:
        item = _row(
            t, "id", "category", "department", "priority", "subject", "status", "created_at", "escalated_at", "first_response_at",
            "resolved_at", "closed_at", "close_reason", "reopen_count",
        )
        item["messages"] = [
            {"direction": {"in": "from_you", "out": "from_staff", "bot": "from_the_bot"}.get(m.direction, m.direction),
             **_row(m, "kind", "text", "file_id", "at", "delivered")}
            for m in messages.get(t.id, [])
        ]
        rating = ratings.get(t.id)
        item["rating"] = _row(rating, "stars", "comment", "sent_at", "rated_at") if rating else None
        doc["tickets"].append(item)
    ads = (await session.scalars(select(Ad).where(Ad.user_id == user_id).order_by(Ad.id))).all()
    doc["ads"] = [
        {
            **_row(
                a, "id", "status", "category", "subcategory", "title", "description", "price_kind", "price_amount", "currency",
                "location", "contact", "phone", "created_at", "updated_at", "submitted_at", "decided_at", "decision_reason",
                "decision_note", "expires_at",
            ),
            "photos": [p.file_id for p in a.photos],
            "checks": [_row(c, "code", "severity", "detail") for c in a.checks],
        }
        for a in ads
    ]
    made = (await session.scalars(select(AdReport).where(AdReport.reporter_id == user_id).order_by(AdReport.id))).all()
    doc["reports_made"] = [_row(r, "id", "ad_id", "reason", "status", "created_at", "decided_at") for r in made]
    ad_ids = [a.id for a in ads]
    about = (
        (await session.scalars(select(AdReport).where(AdReport.ad_id.in_(ad_ids)).order_by(AdReport.id))).all() if ad_ids else []
    )
    doc["reports_about_your_ads"] = [_row(r, "id", "ad_id", "reason", "status", "created_at", "decided_at") for r in about]
    strikes = (await session.scalars(select(Strike).where(Strike.user_id == user_id).order_by(Strike.id))).all()
    doc["strikes"] = [_row(s, "id", "reason", "ad_id", "created_at", "expires_at", "pardoned") for s in strikes]
    penalties = (await session.scalars(select(UserEvent).where(UserEvent.user_id == user_id).order_by(UserEvent.id))).all()
    doc["penalties"] = [_row(e, "kind", "until", "at") for e in penalties]
    feedback = (await session.scalars(select(Feedback).where(Feedback.user_id == user_id).order_by(Feedback.id))).all()
    doc["feedback"] = [_row(f, "id", "text", "rating", "created_at", "answer", "answered_at") for f in feedback]
    # copies of their questions elsewhere: phrasings the knowledge base learned from them,
    # and the KB change records that quote those
    texts = {_same(q.text) for q in questions if q.text} | {_same(t.subject) for t in tickets if t.subject}
    learned = (
        await session.scalars(
            select(KbPhrasing).where(KbPhrasing.source == PhrasingSource.LEARNED, KbPhrasing.text.in_(texts)).order_by(KbPhrasing.id)
        )
    ).all() if texts else []
    doc["learned_phrasings"] = [_row(p, "entry_id", "text", "status", "created_at") for p in learned]
    entry_ids = {t.learned_entry_id for t in tickets if t.learned_entry_id}
    quoting = []
    if texts:
        rows = await session.scalars(
            select(KbChange)
            .where(or_(KbChange.action.in_(("review", "phrase")), KbChange.entry_id.in_(entry_ids) if entry_ids else false()))
            .order_by(KbChange.id)
        )
        quoting = [c for c in rows.all() if _scrub_summary(c.summary, texts) != c.summary]
    doc["kb_changes_quoting_you"] = [_row(c, "id", "entry_id", "action", "at", "summary") for c in quoting]
    waiting = (await session.scalars(select(PendingInput).where(PendingInput.user_id == user_id).order_by(PendingInput.since))).all()
    doc["waiting_for"] = [_row(p, "chat_id", "kind", "since") for p in waiting]
    doc["staff"] = await _export_staff(session, member) if member is not None else None
    return doc


async def _export_staff(session: AsyncSession, member: StaffMember) -> dict[str, Any]:
    """What the desk keeps about a staff member as staff: their row, their KB drafts and
    changes, the cases assigned to them, the feedback they answered, saved replies they made.
    Ids only where the record is about someone else (a case, a feedback)."""
    staff_id = member.id
    drafts = (await session.scalars(select(KbDraft).where(KbDraft.staff_id == staff_id).order_by(KbDraft.chat_id))).all()
    changes = (await session.scalars(select(KbChange).where(KbChange.actor_id == staff_id).order_by(KbChange.id))).all()
    assigned = (await session.execute(select(Ticket.id, Ticket.status).where(Ticket.assignee_id == staff_id).order_by(Ticket.id))).all()
    answered = (await session.execute(
        select(Feedback.id, Feedback.answered_at).where(Feedback.answered_by == staff_id).order_by(Feedback.id)
    )).all()
    canned = (await session.scalars(select(CannedReply.name).where(CannedReply.created_by == staff_id).order_by(CannedReply.name))).all()
    return {
        "member": _row(member, "id", "first_name", "username", "last_seen"),
        "kb_drafts": [_row(d, "chat_id", "kind", "entry_id", "step", "data", "updated_at") for d in drafts],
        "kb_changes": [_row(c, "id", "entry_id", "action", "at", "summary") for c in changes],
        "tickets_assigned": [{"id": i, "status": _plain(st)} for i, st in assigned],
        "feedback_answered": [{"id": i, "answered_at": _plain(at)} for i, at in answered],
        "saved_replies": list(canned),
    }


@dataclass
class Erasure:
    """What ``erase_user`` did, for the handler to finish in Telegram (the database part
    is committed before any of it: a card that cannot be redrawn only gets logged)."""

    user_id: int
    anonymous_id: int
    closed_tickets: list[int] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)  # every case that reached staff (cards to redraw)
    card_copies: list[tuple[int, int, int]] = field(default_factory=list)  # earlier copies of their cards (ticket, chat, message): redrawn
    unpublished: list[int] = field(default_factory=list)  # ads whose channel post is to delete
    # moderation cards of their ads, the current ones and every earlier one the bot knows
    # (chat, message, ad, withdrawn by this erasure): redrawn without them
    mod_cards: list[tuple[int, int, int, bool]] = field(default_factory=list)
    ad_photos: list[tuple[int, int, int]] = field(default_factory=list)  # their ads' photos in the staff chat (ad, chat, message): deleted
    report_cards: list[int] = field(default_factory=list)  # ad reports whose card names them (reporter, owner, or who decided)
    decided_ads: list[int] = field(default_factory=list)  # ads whose moderation card names the staff member as who decided
    feedback_cards: list[int] = field(default_factory=list)  # feedback whose staff card shows them (redraw)
    released_tickets: list[int] = field(default_factory=list)  # open cases a staff member held, back in the queue
    assigned_cards: list[int] = field(default_factory=list)  # other people's cases whose card named the staff member
    tombstone: bool = False
    kb_changed: bool = False
    staff: bool = False  # they were a staff member (their staff-side traces were anonymised too)


def _same(text: str) -> str:
    return " ".join(text.split())[:500]


def _scrub_summary(summary: str, texts: set[str]) -> str:
    """A kb_changes summary without the user's texts. Summaries quote a phrasing as a
    Python repr, and only that quoted form is replaced: a bare search would cut a short
    question ("ad") out of the middle of other words."""
    for text in texts:
        quoted = repr(text)
        if quoted in summary:
            summary = summary.replace(quoted, repr(ERASED_TEXT))
    head, sep, tail = summary.partition(": ")
    if sep and len(tail) >= 16 and any(repr(t).startswith(tail) for t in texts):  # cut at the length limit
        summary = head + sep + repr(ERASED_TEXT)
    return summary


def _scrub_entry(data: dict[str, Any] | None, texts: set[str]) -> dict[str, Any] | None:
    """An entry snapshot (kb_changes.before / after, a draft) without phrasings that are the user's texts."""
    if not data or not isinstance(data.get("phrasings"), list):
        return data
    kept = [p for p in data["phrasings"] if not (isinstance(p, str) and _same(p) in texts)]
    return data if len(kept) == len(data["phrasings"]) else {**data, "phrasings": kept}


async def _scrub_kb_copies(session: AsyncSession, texts: set[str], entry_ids: set[str]) -> None:
    """The user's question texts copied into the knowledge base's audit trail (a learned
    phrasing reviewed or accepted: the summary quotes it, later snapshots list it) and
    into staff members' KB drafts. The change records stay, without the text."""
    if not texts:
        return
    query = select(KbChange).where(
        or_(KbChange.action.in_(("review", "phrase")), KbChange.entry_id.in_(entry_ids) if entry_ids else false())
    )
    for change in (await session.scalars(query.with_for_update())).all():
        summary = _scrub_summary(change.summary, texts)
        if summary != change.summary:
            change.summary = summary
        if change.entry_id in entry_ids:
            before, after = _scrub_entry(change.before, texts), _scrub_entry(change.after, texts)
            if before is not change.before:
                change.before = before
            if after is not change.after:
                change.after = after
    for draft in (await session.scalars(select(KbDraft).with_for_update())).all():
        data = _scrub_entry(draft.data, texts)
        if data is not draft.data:
            draft.data = data


async def _erase_staff_traces(session: AsyncSession, result: Erasure, *, staff_id: int, policy: Policy | None, now: datetime) -> None:
    """A staff member's traces: their own row and KB drafts go; every record of what they
    did (KB changes, case events and replies, answers to feedback, moderation) stays
    with the anonymous id as its actor; cases they held are released or anonymised."""
    anon_id = result.anonymous_id
    await session.execute(delete(KbDraft).where(KbDraft.staff_id == staff_id))
    member = await session.get(StaffMember, staff_id)
    if member is None:
        return  # never acted as staff (every staff action records the row): nothing else to look for
    result.staff = True
    if member.first_name:  # "assigned to <name>" notes of the cases they were given
        await session.execute(
            update(TicketEvent).where(TicketEvent.note == f"assigned to {member.first_name}").values(note="assigned to a staff member")
        )
    await session.delete(member)
    await session.execute(update(KbChange).where(KbChange.actor_id == staff_id).values(actor_id=anon_id))
    if policy is None:  # no SLA calendar to release with: the link is anonymised, the cases stay where they are
        await session.execute(update(Ticket).where(Ticket.assignee_id == staff_id).values(assignee_id=anon_id))
    else:
        for ticket in await tickets_service.unassign_erased(session, policy, staff_id=staff_id, anonymous_id=anon_id, now=now):
            if ticket.assignee_id is None:
                result.released_tickets.append(ticket.id)
            if ticket.staff_chat_id is not None and ticket.id not in result.tickets:
                result.assigned_cards.append(ticket.id)
    # the cards of feedback they answered named them: the latest ones are redrawn (each edit
    # counts against Telegram's 20 per minute in a group; older cards keep the name)
    answered = (
        await session.scalars(
            select(Feedback.id)
            .where(Feedback.answered_by == staff_id, Feedback.staff_message_id.is_not(None))
            .order_by(Feedback.id.desc())
            .limit(LATEST_REDRAWN)
        )
    ).all()
    result.feedback_cards.extend(i for i in answered if i not in result.feedback_cards)
    for column in (Feedback.answered_by, TicketEvent.actor_id, TicketMessage.sender_id, CannedReply.created_by):
        await session.execute(update(column.class_).where(column == staff_id).values({column.key: anon_id}))


async def _erase_moderation_traces(session: AsyncSession, result: Erasure, *, staff_id: int) -> None:
    """Their moderation decisions stay with the anonymous id; the cards of the latest ads
    and reports they decided ("✅ Approved by Mo") are redrawn without the name. Also for
    a moderator without a staff row (moderation recorded none before it recorded them)."""
    decided = await session.scalars(
        # an erased owner's card (their own too, anonymised just before) says erased already
        select(Ad.id).where(Ad.decided_by == staff_id, Ad.mod_message_id.is_not(None), Ad.user_id > 0)
        .order_by(Ad.decided_at.desc(), Ad.id.desc()).limit(LATEST_REDRAWN)
    )
    result.decided_ads.extend(decided.all())
    reports = await session.scalars(
        select(AdReport.id).where(AdReport.decided_by == staff_id, AdReport.card_message_id.is_not(None))
        .order_by(AdReport.decided_at.desc(), AdReport.id.desc()).limit(LATEST_REDRAWN)
    )
    result.report_cards.extend(i for i in reports.all() if i not in result.report_cards)
    for column in (Strike.moderator_id, AdEvent.actor_id, UserEvent.actor_id, AdReport.decided_by, Ad.decided_by):
        await session.execute(update(column.class_).where(column == staff_id).values({column.key: result.anonymous_id}))


async def erase_user(
    session: AsyncSession, *, user_id: int, now: datetime, by: int | None = None, policy: Policy | None = None
) -> Erasure | None:
    """Erase or anonymise everything about the user (see the module's docstring).
    ``by``: the admin who asked (None: the user). ``policy``: releases the open cases of
    a staff member being erased (the SLA clock needs it). None when nothing is stored
    about them (no user row, no staff row)."""
    if user_id < 0:
        return None  # an anonymous row already
    user = await session.get(User, user_id, with_for_update=True)
    if user is None and await session.get(StaffMember, user_id) is None:
        return None
    anon_id = -(secrets.randbelow(2**62) + 1)
    result = Erasure(user_id=user_id, anonymous_id=anon_id)
    if user is not None:
        session.add(User(
            id=anon_id, first_name="", status=UserStatus.ACTIVE, first_seen=user.first_seen, last_seen=user.last_seen, deleted_at=now,
        ))
        await session.flush()
        await _erase_user_content(session, result, user_id=user_id, now=now, by=by)
    await _erase_staff_traces(session, result, staff_id=user_id, policy=policy, now=now)
    await _erase_moderation_traces(session, result, staff_id=user_id)
    # notices whose text names them besides their audience (e.g. an assignee's reminder): gone
    from bot.outbox import erase_named

    await erase_named(session, person_id=user_id)
    # and the copies of those notices in the cases' history ("Thandi from support is on
    # your case"): the case keeps that the bot told the user something, not the name
    await session.execute(
        update(TicketMessage).where(TicketMessage.person_id == user_id).values(text=ERASED_TEXT, person_id=None)
    )
    # what their next message was for (a /feedback prompt, a staff answer): nothing to keep
    await session.execute(delete(PendingInput).where(PendingInput.user_id == user_id))
    # the dedupe markers of their private chat (chat id = user id) no longer say which chat
    # or message: the update id alone still stops a re-delivered update (Telegram re-sends
    # unconfirmed ones after a crash) from storing their words and name again
    await session.execute(
        update(ProcessedUpdate).where(ProcessedUpdate.chat_id == user_id).values(chat_id=None, message_id=None)
    )
    await session.flush()
    session.expire_all()

    # the account itself: gone, or a tombstone that keeps a ban in force
    user = await session.get(User, user_id, populate_existing=True)
    if user is not None and user.status in KEEP_TOMBSTONE:
        user.first_name, user.last_name, user.username = "", None, None
        user.language_code = user.locale = user.status_reason = None
        user.deleted_at = now
        result.tombstone = True
    elif user is not None:
        await session.delete(user)
    return result


async def _erase_user_content(session: AsyncSession, result: Erasure, *, user_id: int, now: datetime, by: int | None) -> None:
    """What they wrote and did as a user: moved to the anonymous id, texts blanked."""
    anon_id = result.anonymous_id
    # questions: the text goes, the figures stay; phrasings learned from them go too
    texts = [_same(t) for t in (await session.scalars(select(Question.text).where(Question.user_id == user_id))).all()]
    subjects = [_same(t) for t in (await session.scalars(select(Ticket.subject).where(Ticket.user_id == user_id))).all()]
    learned = {t for t in texts + subjects if t}
    entry_ids = set((await session.scalars(
        select(Ticket.learned_entry_id).where(Ticket.user_id == user_id, Ticket.learned_entry_id.is_not(None))
    )).all())
    if learned:
        gone = await session.execute(
            delete(KbPhrasing).where(KbPhrasing.source == PhrasingSource.LEARNED, KbPhrasing.text.in_(learned))
            .returning(KbPhrasing.status, KbPhrasing.entry_id)
        )
        rows = gone.all()
        entry_ids.update(entry_id for _, entry_id in rows)
        if any(status == PhrasingStatus.ACTIVE for status, _ in rows):
            from kb.service import bump_revision

            await bump_revision(session)
            result.kb_changed = True
        await _scrub_kb_copies(session, learned, entry_ids)
    await session.execute(update(Question).where(Question.user_id == user_id).values(user_id=anon_id, text=""))

    # tickets: open ones closed; every text of the case blanked
    tickets = (await session.scalars(select(Ticket).where(Ticket.user_id == user_id).with_for_update())).all()
    for t in tickets:
        if t.status in (*OPEN_STATUSES, TicketStatus.DRAFT):
            session.add(TicketEvent(
                ticket_id=t.id, actor_id=by, actor_kind="staff" if by else "system", from_status=t.status,
                to_status=TicketStatus.CLOSED, note="closed: the user's personal data was erased", at=now,
            ))
            if t.status != TicketStatus.DRAFT:
                result.closed_tickets.append(t.id)
            t.status, t.closed_at, t.close_reason = TicketStatus.CLOSED, now, "erased"
            t.reply_due_at = t.waiting_since = t.paused_at = None
        if t.staff_chat_id is not None:
            result.tickets.append(t.id)
        t.user_id, t.subject = anon_id, ""
    ids = [t.id for t in tickets]
    result.card_copies = await tickets_service.card_copies(session, ticket_ids=[t.id for t in tickets])
    if ids:
        await session.execute(
            update(TicketMessage).where(TicketMessage.ticket_id.in_(ids)).values(text="", file_id=None, error=None)
        )
        # relays not sent yet never will be: the repair sweep must not post blanked texts
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ids), TicketMessage.send_state.in_((SendState.PENDING, SendState.SENDING)))
            .values(send_state=SendState.SENT, delivered=False)
        )
        await session.execute(update(TicketMessage).where(TicketMessage.ticket_id.in_(ids), TicketMessage.sender_id == user_id).values(sender_id=anon_id))
        await session.execute(
            update(TicketEvent).where(TicketEvent.ticket_id.in_(ids), TicketEvent.actor_id == user_id).values(actor_id=anon_id)
        )
    await session.execute(update(Rating).where(Rating.user_id == user_id).values(user_id=anon_id, comment=None, comment_pending=False))

    # ads: drafts go; the rest keep their figures, withdrawn if still live or waiting
    ads = (await session.scalars(select(Ad).where(Ad.user_id == user_id).with_for_update())).all()
    posted_in_staff_chat = (await session.execute(
        select(AdStaffMessage.ad_id, AdStaffMessage.chat_id, AdStaffMessage.message_id, AdStaffMessage.kind)
        .where(AdStaffMessage.ad_id.in_([a.id for a in ads]))
        .order_by(AdStaffMessage.ad_id, AdStaffMessage.chat_id, AdStaffMessage.message_id)
    )).all() if ads else []
    for ad in ads:
        posted = ad.published_chat_id is not None and (ad.published_message_id or ad.published_photo_id)
        if ad.status == AdStatus.DRAFT and not posted:
            await session.delete(ad)
            continue
        # a draft still posted (a live ad taken back to edit whose post is not removed yet)
        # is kept as deleted until its post is off the channel
        withdrawn = ad.status in (AdStatus.APPROVED, AdStatus.SUBMITTED, AdStatus.CHANGES, AdStatus.DRAFT)
        if ad.mod_chat_id and ad.mod_message_id:  # every moderation card shows the owner's name and the ad
            result.mod_cards.append((ad.mod_chat_id, ad.mod_message_id, ad.id, withdrawn))
        if withdrawn:
            ad.status = AdStatus.DELETED
            session.add(AdEvent(ad_id=ad.id, user_id=anon_id, category=ad.category, kind=AdEventKind.DELETED, at=now))
        if posted:  # the post ids stay (no personal data) until the post is off the channel
            result.unpublished.append(ad.id)
        ad.user_id, ad.title, ad.description, ad.location, ad.phone = anon_id, "", "", "", None
        ad.decision_note, ad.step, ad.updated_at = None, None, now
    # every photo of theirs in the staff chat goes; every other card of their ads (earlier
    # rounds, cards posted again) is redrawn like the current one
    current = {(chat, message) for chat, message, _, _ in result.mod_cards}
    for ad_id, chat_id, message_id, kind in posted_in_staff_chat:
        if kind == StaffMessageKind.PHOTO:
            result.ad_photos.append((ad_id, chat_id, message_id))
        elif (chat_id, message_id) not in current:
            result.mod_cards.append((chat_id, message_id, ad_id, False))
    if posted_in_staff_chat:  # the erasure's redraws know them now
        await session.execute(delete(AdStaffMessage).where(AdStaffMessage.ad_id.in_([a.id for a in ads])))
    kept = [a.id for a in ads if a.status != AdStatus.DRAFT]
    if kept:
        await session.execute(delete(AdPhoto).where(AdPhoto.ad_id.in_(kept)))
        await session.execute(update(AdCheck).where(AdCheck.ad_id.in_(kept)).values(detail={}))
    ad_ids = [a.id for a in ads]
    about = or_(AdReport.reporter_id == user_id, AdReport.ad_id.in_(ad_ids)) if ad_ids else AdReport.reporter_id == user_id
    result.report_cards.extend(
        (await session.scalars(select(AdReport.id).where(about, AdReport.card_message_id.is_not(None)).order_by(AdReport.id))).all()
    )
    await session.execute(update(AdReport).where(AdReport.reporter_id == user_id).values(reporter_id=anon_id))
    await session.execute(update(Strike).where(Strike.user_id == user_id).values(user_id=anon_id))
    await session.execute(update(AdEvent).where(AdEvent.user_id == user_id).values(user_id=anon_id))
    await session.execute(update(UserEvent).where(UserEvent.user_id == user_id).values(user_id=anon_id))

    # feedback: text and answer blanked, the rating stays; its staff card is redrawn,
    # and a staff member's pending "Answer" to it is dropped (nobody to send it to)
    feedback = (await session.execute(select(Feedback.id, Feedback.staff_message_id).where(Feedback.user_id == user_id))).all()
    result.feedback_cards.extend(i for i, card in feedback if card is not None)
    await session.execute(
        update(Feedback).where(Feedback.user_id == user_id).values(user_id=anon_id, text="", answer=None)
    )
    if feedback:
        await session.execute(
            delete(PendingInput).where(PendingInput.kind == WAIT_ANSWER, PendingInput.ref_id.in_([i for i, _ in feedback]))
        )
    # the notices sent to them (texts about their cases and ads), and to staff about their
    # cases (SLA alerts): gone; unsent ones never go out
    from bot.outbox import erase_user as erase_notices

    await erase_notices(session, user_id=user_id, ticket_ids=ids)
