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
  removed; a live or waiting ad is withdrawn (``deleted``).
  ``ad_events`` of their ads move to the anonymous id (a withdrawal is recorded).
- ``ad_reports`` they made, ``strikes`` against them, ``user_events`` (penalties),
  ``feedback`` (text and answer blanked, rating kept): moved to the anonymous id.

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

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ads.models import Ad, AdCheck, AdEvent, AdEventKind, AdPhoto, AdReport, AdStatus, Strike, UserEvent
from bot.models import PendingInput, User, UserStatus
from escalation.models import OPEN_STATUSES, Direction, Feedback, Rating, SendState, Ticket, TicketEvent, TicketMessage, TicketStatus
from kb.models import KbPhrasing, PhrasingSource, PhrasingStatus, Question

EXPORT_FORMAT = "saypro-helpdesk-personal-data/1"
KEEP_TOMBSTONE = (UserStatus.BANNED, UserStatus.BLOCKED)


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


async def find_user(session: AsyncSession, ref: str) -> User | None:
    """A user by Telegram id or @username (the most recently seen one with that name)."""
    ref = ref.strip()
    digits = ref.lstrip("-")
    if digits.isascii() and digits.isdigit():
        return await session.get(User, int(ref)) if len(digits) <= 18 else None
    name = ref.lstrip("@").lower()
    if not name or len(name) > 64:
        return None
    return await session.scalar(select(User).where(func.lower(User.username) == name).order_by(User.last_seen.desc()).limit(1))


async def export_user(session: AsyncSession, *, user_id: int, now: datetime) -> dict[str, Any] | None:
    """Everything stored about the user, as one JSON-ready document (None: unknown user).

    Staff members' identities and other users' data are left out: staff replies appear
    with their text but not who wrote them, reports about the user's ads without the
    reporter. Internal staff notes about a case are not part of the messages."""
    user = await session.get(User, user_id)
    if user is None:
        return None
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generated_at": _plain(now),
        "user": _row(
            user, "id", "first_name", "last_name", "username", "language_code", "locale", "status", "status_reason",
            "blocked_until", "first_seen", "last_seen", "deleted_at",
        ),
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
    return doc


@dataclass
class Erasure:
    """What ``erase_user`` did, for the handler to finish in Telegram."""

    user_id: int
    anonymous_id: int
    closed_tickets: list[int] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)  # every case that reached staff (cards to redraw)
    unpublished: list[tuple[int, int]] = field(default_factory=list)  # channel posts to delete
    mod_cards: list[tuple[int, int]] = field(default_factory=list)  # moderation cards of withdrawn ads
    tombstone: bool = False
    kb_changed: bool = False


async def erase_user(session: AsyncSession, *, user_id: int, now: datetime, by: int | None = None) -> Erasure | None:
    """Erase or anonymise everything about the user (see the module's docstring).
    ``by``: the admin who asked (None: the user). None when the user is unknown."""
    if user_id < 0:
        return None  # an anonymous row already
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        return None
    anon_id = -(secrets.randbelow(2**62) + 1)
    session.add(User(
        id=anon_id, first_name="", status=UserStatus.ACTIVE, first_seen=user.first_seen, last_seen=user.last_seen, deleted_at=now,
    ))
    await session.flush()
    result = Erasure(user_id=user_id, anonymous_id=anon_id)

    # questions: the text goes, the figures stay; phrasings learned from them go too
    texts = [" ".join(t.split())[:500] for t in (await session.scalars(select(Question.text).where(Question.user_id == user_id))).all()]
    subjects = [" ".join(t.split())[:500] for t in (await session.scalars(select(Ticket.subject).where(Ticket.user_id == user_id))).all()]
    learned = [t for t in texts + subjects if t]
    if learned:
        gone = await session.execute(
            delete(KbPhrasing).where(KbPhrasing.source == PhrasingSource.LEARNED, KbPhrasing.text.in_(learned)).returning(KbPhrasing.status)
        )
        if any(status == PhrasingStatus.ACTIVE for (status,) in gone.all()):
            from kb.service import bump_revision

            await bump_revision(session)
            result.kb_changed = True
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
    for ad in ads:
        if ad.status == AdStatus.DRAFT:
            await session.delete(ad)
            continue
        if ad.status == AdStatus.APPROVED and ad.published_chat_id and ad.published_message_id:
            result.unpublished.append((ad.published_chat_id, ad.published_message_id))
        if ad.status == AdStatus.SUBMITTED and ad.mod_chat_id and ad.mod_message_id:
            result.mod_cards.append((ad.mod_chat_id, ad.mod_message_id))
        if ad.status in (AdStatus.APPROVED, AdStatus.SUBMITTED, AdStatus.CHANGES):
            ad.status = AdStatus.DELETED
            session.add(AdEvent(ad_id=ad.id, user_id=anon_id, category=ad.category, kind=AdEventKind.DELETED, at=now))
        ad.published_chat_id = ad.published_message_id = None
        ad.user_id, ad.title, ad.description, ad.location, ad.phone = anon_id, "", "", "", None
        ad.decision_note, ad.step, ad.updated_at = None, None, now
    kept = [a.id for a in ads if a.status != AdStatus.DRAFT]
    if kept:
        await session.execute(delete(AdPhoto).where(AdPhoto.ad_id.in_(kept)))
        await session.execute(update(AdCheck).where(AdCheck.ad_id.in_(kept)).values(detail={}))
    await session.execute(update(AdReport).where(AdReport.reporter_id == user_id).values(reporter_id=anon_id))
    await session.execute(update(Strike).where(Strike.user_id == user_id).values(user_id=anon_id))
    await session.execute(update(AdEvent).where(AdEvent.user_id == user_id).values(user_id=anon_id))
    await session.execute(update(UserEvent).where(UserEvent.user_id == user_id).values(user_id=anon_id))
    await session.execute(
        update(Feedback).where(Feedback.user_id == user_id).values(user_id=anon_id, text="", answer=None)
    )
    # the notices sent to them (texts about their cases and ads): gone; unsent ones never go out
    from bot.outbox import erase_user as erase_notices

    await erase_notices(session, user_id=user_id)
    # what their next message was for (a /feedback prompt): nothing to keep
    await session.execute(delete(PendingInput).where(PendingInput.user_id == user_id))
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
