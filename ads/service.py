"""Ad services: the draft written step by step, submission with the pre-check, and
moderation decisions. Every function takes an ``AsyncSession`` and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ads.models import Ad, AdCheck, AdEvent, AdEventKind, AdPhoto, AdReport, AdStaffMessage, AdStatus, StaffMessageKind, Step, UserEvent, UserEventKind
from ads.policy import Finding, Policy, RecentAd, pre_check
from ads.price import PriceError, parse_price
from bot.card_retries import CardKind
from bot.config import AdsSettings
from bot.models import User, UserStatus

STEPS = [Step.CATEGORY, Step.TITLE, Step.DESCRIPTION, Step.PRICE, Step.LOCATION, Step.PHOTOS, Step.CONTACT, Step.PREVIEW]
EDITABLE = [Step.CATEGORY, Step.TITLE, Step.DESCRIPTION, Step.PRICE, Step.LOCATION, Step.PHOTOS, Step.CONTACT]
PENDING = (AdStatus.SUBMITTED,)


@dataclass(frozen=True)
class Rules:
    settings: AdsSettings
    policy: Policy


class FieldError(Exception):
    """A value the user gave does not fit; ``code`` picks the explanation template."""

    def __init__(self, code: str, **detail: Any):
        super().__init__(code)
        self.code = code
        self.detail = detail


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (emoji are two)."""
    return len(text.encode("utf-16-le")) // 2


def record(session: AsyncSession, ad: Any, kind: AdEventKind, *, now: datetime, actor_id: int | None = None, reason: str | None = None) -> None:
    """Append one ``ad_events`` row: every state change of an ad writes exactly one, in
    the same transaction (the report counts moderation rounds from them). ``ad``: the
    Ad, or a row with its id, user_id and category."""
    session.add(AdEvent(ad_id=ad.id, user_id=ad.user_id, category=ad.category, kind=kind, actor_id=actor_id, reason=reason, at=now))


def category_path(ad: Ad) -> list[str]:
    return [c for c in (ad.category, ad.subcategory) if c]


# ------------------------------------------------------------------ drafts


def draft_in_progress(user_id: int) -> ColumnElement[bool]:
    """True when the user has an ad draft (what ``current_draft`` could find): a condition
    to combine with others in one query (see ``bot.users.in_progress``)."""
    return exists().where(Ad.user_id == user_id, Ad.status == AdStatus.DRAFT)


async def current_draft(session: AsyncSession, *, user_id: int) -> Ad | None:
    return await session.scalar(
        select(Ad).where(Ad.user_id == user_id, Ad.status == AdStatus.DRAFT).order_by(Ad.id.desc()).limit(1)
    )


async def posting_block(session: AsyncSession, *, user_id: int, now: datetime) -> User | None:
    """The user, when they may not post now (banned, or blocked until a date)."""
    user = await session.get(User, user_id)
    if user is None:
        return None
    if user.status == UserStatus.BANNED or (user.blocked_until is not None and user.blocked_until > now):
        return user
    return None


async def _drop_drafts(session: AsyncSession, user_id: int, *, now: datetime, keep: int | None = None) -> bool:
    """Drafts that were never submitted are deleted; an ad reopened for editing (it has
    a history: decisions, reports, strikes) is only marked deleted, never erased."""
    never = delete(Ad).where(Ad.user_id == user_id, Ad.status == AdStatus.DRAFT, Ad.submitted_at.is_(None))
    reopened = (
        update(Ad)
        .where(Ad.user_id == user_id, Ad.status == AdStatus.DRAFT, Ad.submitted_at.is_not(None))
        .values(status=AdStatus.DELETED, step=None)
        .returning(Ad.id, Ad.user_id, Ad.category)
    )
    if keep is not None:
        never, reopened = never.where(Ad.id != keep), reopened.where(Ad.id != keep)
    first = await session.execute(never)
    gone = (await session.execute(reopened)).all()
    for row in gone:
        record(session, row, AdEventKind.DELETED, now=now)
    return bool(first.rowcount or gone)


async def start_draft(session: AsyncSession, rules: Rules, *, user_id: int, now: datetime) -> Ad:
    """A fresh draft (an unfinished one is discarded)."""
    await _drop_drafts(session, user_id, now=now)
    ad = Ad(user_id=user_id, status=AdStatus.DRAFT, step=Step.CATEGORY, currency=rules.settings.currency, created_at=now, updated_at=now)
    session.add(ad)
    await session.flush()
    return ad


async def discard_draft(session: AsyncSession, *, user_id: int, now: datetime) -> bool:
    """``now`` (the desk's clock) dates the "deleted" event of a discarded reopened ad."""
    return await _drop_drafts(session, user_id, now=now)


def _advance(ad: Ad, done: Step) -> None:
    if ad.editing:
        ad.step, ad.editing = Step.PREVIEW, False
    else:
        ad.step = STEPS[STEPS.index(done) + 1]


async def set_category(session: AsyncSession, rules: Rules, *, ad: Ad, subcategory: str, now: datetime) -> None:
    found = rules.settings.subcategory(subcategory)
    if found is None:
        raise FieldError("unknown_category")
    top, sub = found
    ad.category, ad.subcategory, ad.updated_at = top.id, sub.id, now
    _advance(ad, Step.CATEGORY)


async def set_text(session: AsyncSession, rules: Rules, *, ad: Ad, text: str, now: datetime) -> None:
    """The user's answer to the current text step (title, description, price, location)."""
    s = rules.settings
    text = " ".join(text.split()) if ad.step != Step.DESCRIPTION else text.strip()
    step = Step(ad.step)
    if step == Step.TITLE:
        if len(text) < s.title_min:
            raise FieldError("title_too_short", minimum=s.title_min, length=len(text))
        if utf16_len(text) > s.title_max:
            raise FieldError("title_too_long", maximum=s.title_max, length=utf16_len(text))
        ad.title = text
    elif step == Step.DESCRIPTION:
        if len(text) < rules.policy.min_description:
            raise FieldError("description_too_short", minimum=rules.policy.min_description, length=len(text))
        if utf16_len(text) > s.description_max:
            raise FieldError("description_too_long", maximum=s.description_max, length=utf16_len(text))
        ad.description = text
    elif step == Step.PRICE:
        try:
            price = parse_price(text, (s.currency_symbol, s.currency))
        except PriceError as exc:
            raise FieldError(f"price_{exc.reason}") from None
        ad.price_kind, ad.price_amount = price.kind, price.amount
    elif step == Step.LOCATION:
        if len(text) < 2:
            raise FieldError("location_missing")
        if utf16_len(text) > s.location_max:
            raise FieldError("location_too_long", maximum=s.location_max, length=utf16_len(text))
        ad.location = text
    else:
        raise FieldError("not_a_text_step", step=str(step))
    ad.updated_at = now
    _advance(ad, step)


async def add_photo(session: AsyncSession, rules: Rules, *, ad: Ad, file_id: str, now: datetime) -> int:
    if ad.step != Step.PHOTOS:
        raise FieldError("not_photo_step")
    if len(ad.photos) >= rules.settings.max_photos:
        raise FieldError("too_many_photos", maximum=rules.settings.max_photos)
    if any(p.file_id == file_id for p in ad.photos):
        return len(ad.photos)
    ad.photos.append(AdPhoto(file_id=file_id, position=len(ad.photos)))
    ad.updated_at = now
    await session.flush()
    return len(ad.photos)


async def photos_done(session: AsyncSession, rules: Rules, *, ad: Ad, now: datetime) -> None:
    top = rules.settings.category(ad.category or "")
    if not ad.photos and top is not None and top.photos_required:
        raise FieldError("photos_required", category=top.label)
    ad.updated_at = now
    _advance(ad, Step.PHOTOS)


async def clear_photos(session: AsyncSession, *, ad: Ad, now: datetime) -> None:
    ad.photos = []
    ad.updated_at = now


async def set_contact(session: AsyncSession, *, ad: Ad, phone: str | None, now: datetime) -> None:
    """Through the bot (``phone=None``), or a phone number shared with Telegram's button."""
    ad.contact = "phone" if phone else "bot"
    ad.phone = phone
    ad.updated_at = now
    _advance(ad, Step.CONTACT)


async def edit_field(session: AsyncSession, *, ad: Ad, step: str, now: datetime) -> None:
    if step not in [s.value for s in EDITABLE]:
        raise FieldError("unknown_field")
    ad.step, ad.editing, ad.updated_at = step, True, now
    if step == Step.PHOTOS:
        ad.photos = []


# ------------------------------------------------------------------ submission


class SubmitOutcome(StrEnum):
    BLOCKED = "blocked"  # findings the user must fix first
    SUBMITTED = "submitted"  # waiting for a moderator
    APPROVED = "approved"  # a trusted user's clean ad, approved at once


@dataclass(frozen=True)
class SubmitResult:
    outcome: SubmitOutcome
    ad: Ad
    findings: list[Finding]


async def submit(session: AsyncSession, rules: Rules, *, ad: Ad, now: datetime) -> SubmitResult:
    if ad.step != Step.PREVIEW or ad.status != AdStatus.DRAFT:
        raise FieldError("not_ready")
    if await posting_block(session, user_id=ad.user_id, now=now) is not None:
        raise FieldError("posting_blocked")
    ad.auto_approved = False
    policy = rules.policy
    since = now - timedelta(days=policy.duplicate_days)
    recent_rows = (
        await session.execute(
            select(Ad.id, Ad.user_id, Ad.title, Ad.description, Ad.submitted_at)
            .where(Ad.status.in_((AdStatus.SUBMITTED, AdStatus.APPROVED)), Ad.submitted_at >= since, Ad.id != ad.id, Ad.category == ad.category)
            .order_by(Ad.submitted_at.desc())
            .limit(500)
        )
    ).all()
    recent = [RecentAd(r.id, r.user_id, r.title, r.description, r.submitted_at) for r in recent_rows]
    in_window = await session.scalar(
        select(func.count()).select_from(Ad).where(
            Ad.user_id == ad.user_id, Ad.submitted_at >= now - policy.max_ads_window, Ad.id != ad.id
        )
    )
    findings = pre_check(
        policy,
        user_id=ad.user_id,
        category_path=category_path(ad),
        title=ad.title,
        description=ad.description,
        price=float(ad.price_amount) if ad.price_amount is not None else None,
        recent_ads=recent,
        ads_in_window=int(in_window or 0),
        now=now,
    )
    if any(f.severity == "block" for f in findings):
        return SubmitResult(SubmitOutcome.BLOCKED, ad, findings)
    ad.checks = [
        AdCheck(code=f.code, severity=f.severity, detail=_jsonable(f.detail), created_at=now) for f in findings if f.severity == "flag"
    ]
    ad.status, ad.step, ad.submitted_at, ad.updated_at = AdStatus.SUBMITTED, None, now, now
    ad.decided_at = ad.decided_by = ad.decision_reason = ad.decision_note = None
    # a new round gets a new card: the last round's (decided, buttons gone) is not it
    ad.mod_chat_id = ad.mod_message_id = ad.card_claimed_at = None
    ad.album_chat_id = ad.album_message_id = None  # this round's photos go with its card (they may have changed)
    ad.card_timeouts = 0
    record(session, ad, AdEventKind.RESUBMITTED if ad.resubmissions else AdEventKind.SUBMITTED, now=now)
    if rules.settings.auto_approve_trusted and not ad.checks and await _trusted(session, rules, ad.user_id, now):
        _approve(ad, rules, moderator_id=None, now=now)
        ad.auto_approved = True
        record(session, ad, AdEventKind.AUTO_APPROVED, now=now)
        await session.flush()
        return SubmitResult(SubmitOutcome.APPROVED, ad, findings)
    await session.flush()
    return SubmitResult(SubmitOutcome.SUBMITTED, ad, findings)


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in detail.items()}


async def count_active_strikes(session: AsyncSession, *, user_id: int, now: datetime) -> int:
    """Strikes of the user that are neither pardoned nor expired at ``now``."""
    from ads.models import Strike

    return int(
        await session.scalar(
            select(func.count()).select_from(Strike).where(Strike.user_id == user_id, Strike.pardoned.is_(False), Strike.expires_at > now)
        )
        or 0
    )


async def _trusted(session: AsyncSession, rules: Rules, user_id: int, now: datetime) -> bool:
    approved = await session.scalar(
        select(func.count()).select_from(Ad).where(Ad.user_id == user_id, Ad.status == AdStatus.APPROVED, Ad.auto_approved.is_(False))
    )
    strikes = await count_active_strikes(session, user_id=user_id, now=now)
    return int(approved or 0) >= rules.settings.trusted_min_approved and not strikes


def _approve(ad: Ad, rules: Rules, *, moderator_id: int | None, now: datetime) -> None:
    ad.status = AdStatus.APPROVED
    ad.decided_at, ad.decided_by = now, moderator_id
    ad.expires_at = now + timedelta(days=rules.settings.expiry_days)
    ad.reminded_at = None
    ad.updated_at = now  # the sweep's grace for posting it counts from here
    _new_post(ad)


def _new_post(ad: Ad) -> None:
    """A fresh approval is a fresh post: a claim left by an earlier post that timed out
    (it may have arrived, in an earlier life of the ad) no longer holds it back, and a
    post of an earlier life still in the channel (its removal refused so far) becomes
    one to remove (approved, posted, unclaimed) before the ad is posted again."""
    ad.publish_claimed_at, ad.publish_uncertain = None, False


# ------------------------------------------------------------------ moderation


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CHANGES = "changes"


@dataclass(frozen=True)
class DecideResult:
    won: bool  # False: someone else decided first (or the ad is no longer pending)
    ad: Ad


async def decide(
    session: AsyncSession,
    rules: Rules,
    *,
    ad_id: int,
    moderator_id: int,
    decision: Decision,
    reason: str | None,
    note: str | None,
    now: datetime,
) -> DecideResult:
    """Atomic: of two moderators deciding at once, exactly one decision is stored."""
    status = {
        Decision.APPROVE: AdStatus.APPROVED,
        Decision.REJECT: AdStatus.REJECTED,
        Decision.CHANGES: AdStatus.CHANGES,
    }[decision]
    won = await session.scalar(
        update(Ad)
        .where(Ad.id == ad_id, Ad.status == AdStatus.SUBMITTED)
        .values(status=status, decided_at=now, decided_by=moderator_id, decision_reason=reason, decision_note=note)
        .returning(Ad.id)
    )
    ad = await session.get(Ad, ad_id, populate_existing=True)
    if ad is None:
        raise FieldError("unknown_ad")
    if won is None:
        return DecideResult(False, ad)
    kind = {Decision.APPROVE: AdEventKind.APPROVED, Decision.REJECT: AdEventKind.REJECTED, Decision.CHANGES: AdEventKind.CHANGES_REQUESTED}[decision]
    record(session, ad, kind, now=now, actor_id=moderator_id, reason=reason)
    if decision == Decision.APPROVE:
        _approve(ad, rules, moderator_id=moderator_id, now=now)
    return DecideResult(True, ad)


#: The decision a moderation card shows for a Ban (the owner banned from the card).
BANNED = "banned"


async def decision_of(session: AsyncSession, ad: Ad) -> tuple[str, str | None] | None:
    """The moderator's decision on the ad's current round as its card shows it: the event
    kind (approved, rejected, changes_requested, taken_down; :data:`BANNED` for a Ban)
    and the reason code. None when no moderator decided this round."""
    if ad.decided_by is None or ad.decided_at is None:
        return None
    banned = await session.scalar(
        select(UserEvent.id).where(
            UserEvent.user_id == ad.user_id, UserEvent.kind == UserEventKind.BANNED,
            UserEvent.actor_id == ad.decided_by, UserEvent.at == ad.decided_at,
        ).limit(1)
    )
    if banned is not None:
        return BANNED, None
    kinds = (AdEventKind.APPROVED, AdEventKind.REJECTED, AdEventKind.CHANGES_REQUESTED, AdEventKind.TAKEN_DOWN)
    event = (await session.execute(
        select(AdEvent.kind, AdEvent.reason)
        .where(AdEvent.ad_id == ad.id, AdEvent.actor_id == ad.decided_by, AdEvent.at == ad.decided_at, AdEvent.kind.in_(kinds))
        .order_by(AdEvent.id.desc()).limit(1)
    )).first()
    if event is None:
        return None
    return event.kind, event.reason


async def attach_moderation_card(session: AsyncSession, *, ad_id: int, chat_id: int, message_id: int) -> None:
    await session.execute(update(Ad).where(Ad.id == ad_id).values(mod_chat_id=chat_id, mod_message_id=message_id))
    await _posted(session, ad_id, chat_id, [message_id], StaffMessageKind.CARD)


async def keep_album(session: AsyncSession, *, ad_id: int, chat_id: int, message_ids: list[int]) -> None:
    """The photos of this submission are in the staff chat (Telegram confirmed them): a
    card posted again replies to them (the album's first message), and erasing the owner
    deletes each of them (:class:`ads.models.AdStaffMessage`)."""
    await session.execute(update(Ad).where(Ad.id == ad_id).values(album_chat_id=chat_id, album_message_id=message_ids[0]))
    await _posted(session, ad_id, chat_id, message_ids, StaffMessageKind.PHOTO)


async def forget_album(session: AsyncSession, *, ad_id: int, chat_id: int, message_ids: list[int]) -> None:
    """The album recorded by :func:`keep_album` was taken down again (its card was refused)."""
    await session.execute(
        update(Ad)
        .where(Ad.id == ad_id, Ad.album_chat_id == chat_id, Ad.album_message_id == message_ids[0])
        .values(album_chat_id=None, album_message_id=None)
    )
    await session.execute(
        delete(AdStaffMessage).where(AdStaffMessage.chat_id == chat_id, AdStaffMessage.message_id.in_(message_ids))
    )


async def _posted(session: AsyncSession, ad_id: int, chat_id: int, message_ids: list[int], kind: StaffMessageKind) -> None:
    for message_id in message_ids:
        await session.merge(AdStaffMessage(chat_id=chat_id, message_id=message_id, ad_id=ad_id, kind=kind))


# The moderation card is posted after the submission commits. Posting it is claimed
# first (``ads.card_claimed_at``), like a ticket's card: of the handler and any number of
# repair sweeps exactly one posts it. A card Telegram surely refused releases the claim
# (the next sweep posts it); a timed-out one may have arrived and keeps it: the sweep
# posts it again after the repair grace, a bounded number of times (bot.card_retries).


# The ads that need their card: waiting for a moderator, or auto-approved and live (the
# spot-check card with Take down).
# Word for word the condition of the partial index ix_ads_needing_card (migration 0023),
# with constants, not parameters: SQLite uses a partial index only for a query that
# repeats its condition, and PostgreSQL's generic plans only for constants.
NEEDS_CARD = text("(status = 'submitted' OR (status = 'approved' AND auto_approved IS true))")
#: The sweep's queries for ads still waiting for their card (SQLite: see bot.db._sqlite_index_hints)
NEEDING_CARD_INDEX = "INDEXED BY ix_ads_needing_card"
# A moderation (or Take down) card whose post timed out is posted again by the sweep
# (bot.card_retries) while the ad needs it; so is an open report's card.
AD_CARDS = CardKind(Ad, Ad.mod_message_id, NEEDS_CARD, Ad.mod_chat_id, sqlite_hint=NEEDING_CARD_INDEX)
REPORT_CARDS = CardKind(AdReport, AdReport.card_message_id, AdReport.status == "open", AdReport.card_chat_id)


async def claim_moderation_card(session: AsyncSession, *, ad_id: int, now: datetime) -> bool:
    """Claim posting the moderation card of this submission: True for exactly one
    caller. Only an ad waiting for a moderator (or auto-approved: the spot-check card)
    whose card is neither known nor claimed."""
    claimed = await session.scalar(
        update(Ad)
        .where(
            Ad.id == ad_id,
            NEEDS_CARD,
            Ad.mod_message_id.is_(None),
            Ad.card_claimed_at.is_(None),
        )
        .values(card_claimed_at=now)
        .returning(Ad.id)
    )
    return claimed is not None


async def release_moderation_card(session: AsyncSession, *, ad_id: int) -> None:
    """The card surely did not arrive (Telegram refused it): the next sweep tries again."""
    await session.execute(update(Ad).where(Ad.id == ad_id, Ad.mod_message_id.is_(None)).values(card_claimed_at=None))


async def ads_without_card(session: AsyncSession, *, before: datetime, limit: int = 20) -> list[int]:
    """Ads waiting for a moderator (or auto-approved and live: the Take down card) since
    before ``before`` whose card was never claimed: the bot stopped between the
    submission and its card, Telegram refused the card, or the staff chat moved. Oldest
    first."""
    rows = await session.scalars(
        AD_CARDS.select_ids()  # with the SQLite index hint, as the card retries' queries
        .where(NEEDS_CARD, Ad.submitted_at <= before, Ad.mod_message_id.is_(None), Ad.card_claimed_at.is_(None))
        .order_by(Ad.submitted_at, Ad.id)
        .limit(limit)
    )
    return list(rows.all())


async def move_cards(session: AsyncSession, *, old_chat_id: int) -> tuple[list[int], list[int]]:
    """The staff chat moved to a new id: the moderation cards of ads still waiting and
    the cards of open reports stayed in the old chat, out of reach. Their place and
    their claim are cleared, in the transaction that records the move, so each card is
    posted again in the new chat by whoever claims it first (the caller right after the
    commit, or the repair sweep if the bot stops before). Returns (ad ids, report ids)."""
    from ads.models import AdReport

    ads = await session.scalars(
        update(Ad)
        .where(Ad.mod_chat_id == old_chat_id, Ad.status == AdStatus.SUBMITTED)
        .values(mod_chat_id=None, mod_message_id=None, card_claimed_at=None, card_timeouts=0)
        .returning(Ad.id)
    )
    ad_ids = sorted(ads.all())
    reports = await session.scalars(
        update(AdReport)
        .where(AdReport.card_chat_id == old_chat_id, AdReport.status == "open")
        .values(card_chat_id=None, card_message_id=None, card_claimed_at=None, card_timeouts=0)
        .returning(AdReport.id)
    )
    return ad_ids, sorted(reports.all())


# ------------------------------------------------------------------ the channel post
#
# An approved ad without post ids is to be posted; one that is no longer approved but
# still has post ids is a post to remove. The decisions only change the status; the
# handler posts / deletes after the commit and records it here, and the periodic sweep
# does the same for what a crash or a refusal left over.

CHANNEL_REFUSED = "ads_channel_refused"  # app_state: staff were told the channel refuses posts


def to_remove(ad: Ad) -> bool:
    """The ad's channel post must go: the ad is no longer approved, or it was approved
    afresh while the post of its earlier life is still there (no claim: its post is not
    the current one). A photo alone, of an approved ad, waits for its text (a retry)."""
    if post_of(ad) is None:
        return False
    return ad.status != AdStatus.APPROVED or (ad.publish_claimed_at is None and ad.published_message_id is not None)


def _to_remove() -> ColumnElement[bool]:
    posted = Ad.published_chat_id.is_not(None) & (Ad.published_message_id.is_not(None) | Ad.published_photo_id.is_not(None))
    stale = Ad.publish_claimed_at.is_(None) & Ad.published_message_id.is_not(None)
    return posted & ((Ad.status != AdStatus.APPROVED) | stale)


def post_of(ad: Ad) -> tuple[int, int] | None:
    """(chat, message) of the ad's channel post (or of its photo) when it has one."""
    message = ad.published_message_id or ad.published_photo_id
    return (ad.published_chat_id, message) if ad.published_chat_id and message else None  # type: ignore[return-value]


async def claim_publish(session: AsyncSession, *, ad_id: int, now: datetime) -> Ad | None:
    """The right to post an approved, unposted ad, taken atomically: None when it is not
    approved, posted already, or being posted (or its post timed out) by someone."""
    won = await session.scalar(
        update(Ad)
        .where(Ad.id == ad_id, Ad.status == AdStatus.APPROVED, Ad.published_message_id.is_(None), Ad.publish_claimed_at.is_(None))
        .values(publish_claimed_at=now)
        .returning(Ad.id)
    )
    if won is None:
        return None
    return await session.get(Ad, ad_id, populate_existing=True)


async def set_published_photo(session: AsyncSession, *, ad_id: int, chat_id: int, message_id: int) -> None:
    await session.execute(update(Ad).where(Ad.id == ad_id).values(published_chat_id=chat_id, published_photo_id=message_id))


async def set_published(session: AsyncSession, *, ad_id: int, chat_id: int, message_id: int) -> bool:
    """Record the post; the channel accepts posts again. False when the ad left the
    approved state while it was being posted: the post is then one to remove."""
    await session.execute(
        update(Ad).where(Ad.id == ad_id).values(published_chat_id=chat_id, published_message_id=message_id, channel_failures=0)
    )
    await channel_accepts(session)
    return await session.scalar(select(Ad.status).where(Ad.id == ad_id)) == AdStatus.APPROVED


async def publish_uncertain(session: AsyncSession, *, ad_id: int) -> None:
    """The post timed out (it may have arrived): it stays claimed, never posted again."""
    await session.execute(update(Ad).where(Ad.id == ad_id).values(publish_uncertain=True))


async def stuck_posts(session: AsyncSession, *, before: datetime) -> list[int]:
    """Ads claimed for posting before ``before`` whose poster stopped mid-post (the bot
    died): the post may have arrived, so it is marked uncertain, never posted again."""
    ids = (
        await session.scalars(
            update(Ad)
            .with_hint("INDEXED BY ix_ads_publish_in_flight", dialect_name="sqlite")  # see NEEDING_CARD_INDEX
            .where(
                Ad.status == AdStatus.APPROVED, Ad.published_message_id.is_(None), Ad.publish_claimed_at < before,
                Ad.publish_uncertain.is_(False),
            )
            .values(publish_uncertain=True)
            .returning(Ad.id)
        )
    ).all()
    return sorted(ids)


async def release_publish(session: AsyncSession, *, ad_id: int) -> int:
    """The channel refused the post: a later sweep tries again. Refusals in a row."""
    failures = await session.scalar(
        update(Ad).where(Ad.id == ad_id).values(publish_claimed_at=None, channel_failures=Ad.channel_failures + 1).returning(Ad.channel_failures)
    )
    return int(failures or 0)


async def channel_refuses(session: AsyncSession, *, reason: str) -> bool:
    """Remember that the channel refuses posts; True the first time (staff are told once)."""
    from bot.models import AppState

    if await session.get(AppState, CHANNEL_REFUSED) is not None:
        return False
    session.add(AppState(key=CHANNEL_REFUSED, value=reason[:500]))
    return True


async def channel_refusing(session: AsyncSession) -> bool:
    from bot.models import AppState

    return await session.get(AppState, CHANNEL_REFUSED) is not None


async def channel_accepts(session: AsyncSession) -> None:
    from bot.models import AppState

    await session.execute(delete(AppState).where(AppState.key == CHANNEL_REFUSED))


async def unposted(session: AsyncSession, *, before: datetime, limit: int = 20) -> list[int]:
    """Approved ads never posted and not being posted, approved before ``before``
    (the handler that approved one right now posts it first): those refused least often
    first, then oldest first, so that an ad the channel refuses for good (the sweep
    probes one ad per sweep while the channel refuses) does not keep the others out."""
    rows = await session.scalars(
        select(Ad.id)
        .where(Ad.status == AdStatus.APPROVED, Ad.published_message_id.is_(None), Ad.publish_claimed_at.is_(None), Ad.updated_at < before)
        .order_by(Ad.channel_failures, Ad.updated_at, Ad.id)
        .limit(limit)
    )
    return list(rows.all())


async def posts_to_remove(session: AsyncSession, *, before: datetime, limit: int = 50) -> list[int]:
    """Ads whose channel post (or photo) is still recorded but must go (:func:`to_remove`):
    those refused least often first, so that posts Telegram will not delete (it refuses
    to delete posts older than 48 hours) do not keep the others within ``limit`` out."""
    rows = await session.scalars(
        select(Ad.id)
        .where(_to_remove(), Ad.updated_at < before)
        .order_by(Ad.channel_failures, Ad.updated_at, Ad.id)
        .limit(limit)
    )
    return list(rows.all())


async def post_removed(session: AsyncSession, *, ad_id: int, chat_id: int, message_id: int | None, photo_id: int | None) -> None:
    """The post is off the channel: forget its ids (unless it became the live post meanwhile)."""
    await session.execute(
        update(Ad)
        .where(
            Ad.id == ad_id, _to_remove(), Ad.published_chat_id == chat_id,
            Ad.published_message_id.is_(None) if message_id is None else Ad.published_message_id == message_id,
        )
        .values(
            published_chat_id=None, published_message_id=None, published_photo_id=None, publish_claimed_at=None, publish_uncertain=False,
            channel_failures=0,
        )
    )


async def removal_failed(session: AsyncSession, *, ad_id: int) -> int:
    failures = await session.scalar(
        update(Ad).where(Ad.id == ad_id).values(channel_failures=Ad.channel_failures + 1).returning(Ad.channel_failures)
    )
    return int(failures or 0)


async def reopen_for_edit(session: AsyncSession, *, ad_id: int, user_id: int, step: str | None, now: datetime) -> Ad | None:
    """After a rejection or a change request: the ad becomes the user's draft again,
    at the field to change (or the preview)."""
    ad = await session.get(Ad, ad_id, with_for_update=True)
    if ad is None or ad.user_id != user_id or ad.status not in (AdStatus.REJECTED, AdStatus.CHANGES):
        return None
    await _drop_drafts(session, user_id, now=now, keep=ad.id)
    ad.status = AdStatus.DRAFT
    ad.resubmissions += 1
    record(session, ad, AdEventKind.REOPENED, now=now)
    ad.updated_at = now
    if step and step in [s.value for s in EDITABLE]:
        ad.step, ad.editing = step, True
        if step == Step.PHOTOS:
            ad.photos = []
    else:
        ad.step, ad.editing = Step.PREVIEW, False
    return ad


@dataclass(frozen=True)
class History:
    approved: int
    rejected: int
    strikes: int


async def user_history(session: AsyncSession, *, user_id: int, now: datetime) -> History:
    """The owner's record on the moderation card, from ``ad_events`` (the ads table keeps
    only each ad's latest state: a rejected ad resubmitted, or approved and then expired,
    sold or taken down, would not count there). Approved: distinct ads ever approved (by
    a moderator or automatically); rejected: every rejection, also of the same ad again.
    Read through ``ix_ad_events_user_kind``."""
    approved = await session.scalar(
        select(func.count(func.distinct(AdEvent.ad_id))).where(
            AdEvent.user_id == user_id, AdEvent.kind.in_((AdEventKind.APPROVED, AdEventKind.AUTO_APPROVED))
        )
    )
    rejected = await session.scalar(
        select(func.count()).select_from(AdEvent).where(AdEvent.user_id == user_id, AdEvent.kind == AdEventKind.REJECTED)
    )
    strikes = await count_active_strikes(session, user_id=user_id, now=now)
    return History(int(approved or 0), int(rejected or 0), strikes)


async def get_ad(session: AsyncSession, ad_id: int) -> Ad | None:
    return await session.get(Ad, ad_id)


# ------------------------------------------------------------------ the owner's ads


LISTED = (AdStatus.SUBMITTED, AdStatus.APPROVED, AdStatus.REJECTED, AdStatus.CHANGES, AdStatus.EXPIRED, AdStatus.SOLD, AdStatus.TAKEN_DOWN)


async def my_ads(session: AsyncSession, *, user_id: int, limit: int = 10) -> list[Ad]:
    rows = await session.scalars(
        select(Ad).where(Ad.user_id == user_id, Ad.status.in_(LISTED)).order_by(Ad.id.desc()).limit(limit)
    )
    return list(rows.all())


@dataclass(frozen=True)
class OwnerAction:
    ad: Ad
    unpublish: tuple[int, int] | None = None  # (chat, message) of the channel post to remove


async def owner_action(session: AsyncSession, rules: Rules, *, ad_id: int, user_id: int, action: str, now: datetime) -> OwnerAction | None:
    """The owner marks an ad sold, deletes it, renews it or takes it back to edit.
    None when the ad is not theirs or the action does not fit its state."""
    ad = await session.get(Ad, ad_id, with_for_update=True)
    if ad is None or ad.user_id != user_id:
        return None
    if action in ("edit", "renew") and await posting_block(session, user_id=user_id, now=now) is not None:
        raise FieldError("posting_blocked")
    published = post_of(ad)
    if action == "sold" and ad.status == AdStatus.APPROVED:
        ad.status = AdStatus.SOLD
        record(session, ad, AdEventKind.SOLD, now=now)
    elif action == "delete" and ad.status in (AdStatus.SUBMITTED, AdStatus.APPROVED, AdStatus.EXPIRED, AdStatus.REJECTED, AdStatus.CHANGES, AdStatus.SOLD):
        ad.status = AdStatus.DELETED
        record(session, ad, AdEventKind.DELETED, now=now)
    elif action == "renew" and ad.status in (AdStatus.APPROVED, AdStatus.EXPIRED):
        if ad.status == AdStatus.EXPIRED:  # its post was removed at expiry (or is to remove): posted afresh
            _new_post(ad)
        ad.status = AdStatus.APPROVED
        ad.expires_at = max(now, ad.expires_at or now) + timedelta(days=rules.settings.expiry_days)
        ad.reminded_at = None
        published = None
        record(session, ad, AdEventKind.RENEWED, now=now)
    elif action == "edit" and ad.status in (AdStatus.APPROVED, AdStatus.EXPIRED, AdStatus.REJECTED, AdStatus.CHANGES):
        await _drop_drafts(session, user_id, now=now, keep=ad.id)
        ad.status, ad.step, ad.editing = AdStatus.DRAFT, Step.PREVIEW, False
        ad.resubmissions += 1
        record(session, ad, AdEventKind.REOPENED, now=now)
    else:
        return None
    ad.updated_at = now
    if action not in ("sold", "delete", "edit"):  # the others take the ad off: the post is removed after the commit
        published = None
    return OwnerAction(ad, published)


class ExpiryAction(StrEnum):
    REMIND = "remind"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ExpiryItem:
    action: ExpiryAction
    ad: Ad
    unpublish: tuple[int, int] | None = None


async def expiry_sweep(session: AsyncSession, rules: Rules, *, now: datetime) -> list[ExpiryItem]:
    """Reminders before expiry and expiries, marked in this transaction (once each)."""
    items: list[ExpiryItem] = []
    remind_from = now + timedelta(days=rules.settings.reminder_days)
    soon = (
        await session.scalars(
            select(Ad)
            .where(Ad.status == AdStatus.APPROVED, Ad.expires_at <= remind_from, Ad.expires_at > now, Ad.reminded_at.is_(None))
            .with_for_update(skip_locked=True)
        )
    ).all()
    for ad in soon:
        ad.reminded_at = now
        items.append(ExpiryItem(ExpiryAction.REMIND, ad))
    gone = (
        await session.scalars(select(Ad).where(Ad.status == AdStatus.APPROVED, Ad.expires_at <= now).with_for_update(skip_locked=True))
    ).all()
    for ad in gone:
        published = post_of(ad)
        ad.status, ad.updated_at = AdStatus.EXPIRED, now
        record(session, ad, AdEventKind.EXPIRED, now=now)
        items.append(ExpiryItem(ExpiryAction.EXPIRED, ad, published))  # type: ignore[arg-type]
    return items


async def pending_ads(session: AsyncSession, *, limit: int = 30) -> list[Ad]:
    rows = await session.scalars(select(Ad).where(Ad.status == AdStatus.SUBMITTED).order_by(Ad.submitted_at, Ad.id).limit(limit))
    return list(rows.all())


# ------------------------------------------------------------------ reports from users


REPORT_REASONS = ("scam", "prohibited", "category", "offensive", "other")


async def report_ad(session: AsyncSession, *, ad_id: int, reporter_id: int, reason: str, now: datetime) -> tuple[Any, bool] | None:
    """A user reports a published ad: (the report, whether it is new). None when there
    is no such published ad (or it is the reporter's own)."""
    from ads.models import AdReport

    if reason not in REPORT_REASONS:
        return None
    ad = await session.get(Ad, ad_id)
    if ad is None or ad.status != AdStatus.APPROVED or ad.user_id == reporter_id:
        return None
    existing = await session.scalar(
        select(AdReport).where(AdReport.ad_id == ad_id, AdReport.reporter_id == reporter_id, AdReport.status == "open")
    )
    if existing is not None:
        return existing, False
    report = AdReport(ad_id=ad_id, reporter_id=reporter_id, reason=reason, status="open", created_at=now)
    session.add(report)
    await session.flush()
    return report, True


async def reported_as_scam(session: AsyncSession, *, ad_id: int, reporter_id: int) -> bool:
    """Only someone who reported the ad as a scam may open a dispute about it."""
    from ads.models import AdReport

    found = await session.scalar(
        select(AdReport.id).where(AdReport.ad_id == ad_id, AdReport.reporter_id == reporter_id, AdReport.reason == "scam").limit(1)
    )
    return found is not None


async def attach_report_card(session: AsyncSession, *, report_id: int, chat_id: int, message_id: int) -> None:
    from ads.models import AdReport

    await session.execute(update(AdReport).where(AdReport.id == report_id).values(card_chat_id=chat_id, card_message_id=message_id))


async def claim_report_card(session: AsyncSession, *, report_id: int, now: datetime) -> bool:
    """Claim posting an open report's card (as :func:`claim_moderation_card`)."""
    from ads.models import AdReport

    claimed = await session.scalar(
        update(AdReport)
        .where(AdReport.id == report_id, AdReport.status == "open", AdReport.card_message_id.is_(None), AdReport.card_claimed_at.is_(None))
        .values(card_claimed_at=now)
        .returning(AdReport.id)
    )
    return claimed is not None


async def release_report_card(session: AsyncSession, *, report_id: int) -> None:
    """The report's card surely did not arrive: the next sweep tries again."""
    from ads.models import AdReport

    await session.execute(
        update(AdReport).where(AdReport.id == report_id, AdReport.card_message_id.is_(None)).values(card_claimed_at=None)
    )


async def reports_without_card(session: AsyncSession, *, before: datetime, limit: int = 20) -> list[int]:
    """Open reports made before ``before`` whose card was never claimed. Oldest first."""
    from ads.models import AdReport

    rows = await session.scalars(
        select(AdReport.id)
        .where(
            AdReport.status == "open", AdReport.created_at <= before,
            AdReport.card_message_id.is_(None), AdReport.card_claimed_at.is_(None),
        )
        .order_by(AdReport.created_at, AdReport.id)
        .limit(limit)
    )
    return list(rows.all())


@dataclass(frozen=True)
class ReportDecision:
    won: bool
    report: Any
    ad: Ad | None
    unpublish: tuple[int, int] | None = None


async def decide_report(session: AsyncSession, *, report_id: int, moderator_id: int, uphold: bool, now: datetime) -> ReportDecision | None:
    """Atomic like ad decisions. An upheld report takes the ad down (the caller adds the
    strike against its owner)."""
    from ads.models import AdReport

    won = await session.scalar(
        update(AdReport)
        .where(AdReport.id == report_id, AdReport.status == "open")
        .values(status="upheld" if uphold else "dismissed", decided_by=moderator_id, decided_at=now)
        .returning(AdReport.id)
    )
    report = await session.get(AdReport, report_id, populate_existing=True)
    if report is None:
        return None
    ad = await session.get(Ad, report.ad_id, with_for_update=True)
    if won is None:
        return ReportDecision(False, report, ad)
    published = None
    if uphold and ad is not None and ad.status == AdStatus.APPROVED:
        published = post_of(ad)
        ad.status, ad.updated_at = AdStatus.TAKEN_DOWN, now
        record(session, ad, AdEventKind.TAKEN_DOWN, now=now, actor_id=moderator_id, reason=report.reason)
    return ReportDecision(True, report, ad, published)  # type: ignore[arg-type]


async def take_down(session: AsyncSession, *, ad_id: int, moderator_id: int, now: datetime) -> tuple[Ad, tuple[int, int] | None] | None:
    """A moderator takes down a live (e.g. auto-approved) ad."""
    ad = await session.get(Ad, ad_id, with_for_update=True)
    if ad is None or ad.status != AdStatus.APPROVED:
        return None
    published = post_of(ad)
    ad.status, ad.updated_at, ad.decided_by, ad.decided_at = AdStatus.TAKEN_DOWN, now, moderator_id, now
    record(session, ad, AdEventKind.TAKEN_DOWN, now=now, actor_id=moderator_id)
    return ad, published  # type: ignore[return-value]
