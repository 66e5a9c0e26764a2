"""Ads and their photos, pre-check findings, reports from users, and strikes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base, SafeString, SafeText


class AdStatus(StrEnum):
    DRAFT = "draft"  # being written, step by step
    SUBMITTED = "submitted"  # waiting for a moderator
    APPROVED = "approved"  # published
    REJECTED = "rejected"
    CHANGES = "changes_requested"
    EXPIRED = "expired"
    SOLD = "sold"
    DELETED = "deleted"
    TAKEN_DOWN = "taken_down"


class Step(StrEnum):
    """Where a draft is in the posting conversation (stored: survives restarts)."""

    CATEGORY = "category"
    TITLE = "title"
    DESCRIPTION = "description"
    PRICE = "price"
    LOCATION = "location"
    PHOTOS = "photos"
    CONTACT = "contact"
    PREVIEW = "preview"


# Conditions of the partial indexes the sweep reads (migration 0023; the queries in
# ads/service.py say the same, so the planner can use them): an ad waiting for its
# moderation or Take down card, a channel post claimed and not confirmed, a post present.
ADS_NEEDING_CARD = "mod_message_id IS NULL AND (status = 'submitted' OR (status = 'approved' AND auto_approved IS true))"
ADS_PUBLISH_IN_FLIGHT = "published_message_id IS NULL AND publish_claimed_at IS NOT NULL"
ADS_POSTED = "published_chat_id IS NOT NULL"


class Ad(Base):
    __tablename__ = "ads"
    __table_args__ = (
        Index("ix_ads_user_status", "user_id", "status"),
        Index("ix_ads_status_submitted", "status", "submitted_at"),
        Index("ix_ads_published_message_id", "published_message_id"),
        # the minute's sweep (migration 0023): the few ads that need attention, not a scan of all
        Index("ix_ads_needing_card", "id", postgresql_where=text(ADS_NEEDING_CARD), sqlite_where=text(ADS_NEEDING_CARD)),
        Index("ix_ads_publish_in_flight", "id", postgresql_where=text(ADS_PUBLISH_IN_FLIGHT), sqlite_where=text(ADS_PUBLISH_IN_FLIGHT)),
        Index("ix_ads_posted", "id", postgresql_where=text(ADS_POSTED), sqlite_where=text(ADS_POSTED)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(SafeString(20), default=AdStatus.DRAFT)
    step: Mapped[str | None] = mapped_column(SafeString(16))
    # after "Edit a field" from the preview, the step returns to the preview
    editing: Mapped[bool] = mapped_column(default=False)
    category: Mapped[str | None] = mapped_column(SafeString(20))
    subcategory: Mapped[str | None] = mapped_column(SafeString(20))
    title: Mapped[str] = mapped_column(SafeString(120), default="")
    description: Mapped[str] = mapped_column(SafeText, default="")
    price_kind: Mapped[str | None] = mapped_column(SafeString(12))  # fixed | free | negotiable
    price_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(SafeString(3), default="ZAR")
    location: Mapped[str] = mapped_column(SafeString(100), default="")
    contact: Mapped[str | None] = mapped_column(SafeString(8))  # bot | phone
    phone: Mapped[str | None] = mapped_column(SafeString(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None]
    decision_reason: Mapped[str | None] = mapped_column(SafeString(20))
    decision_note: Mapped[str | None] = mapped_column(SafeText)
    auto_approved: Mapped[bool] = mapped_column(default=False)
    resubmissions: Mapped[int] = mapped_column(default=0)
    # the moderation card of the current submission (cleared at each submission)
    mod_chat_id: Mapped[int | None]
    mod_message_id: Mapped[int | None]
    # when posting that card was started (claimed): of the handler and the repair sweep
    # only one posts it; NULL again when Telegram refused it (the sweep tries again); kept
    # after a timeout (the sweep claims it again: card_timeouts)
    card_claimed_at: Mapped[datetime | None]
    # posts of the card that timed out with no card known: posted again by the sweep a bounded
    # number of times (bot.card_retries), then staff are told once
    card_timeouts: Mapped[int] = mapped_column(default=0, server_default="0")
    # the photos posted before this submission's card (its chat, the album's first
    # message), recorded as soon as Telegram confirmed them: a card posted again (the
    # sweep, /repost) replies to them instead of posting them again. Cleared at each
    # submission; photos in another chat (one that moved) count as not posted
    album_chat_id: Mapped[int | None]
    album_message_id: Mapped[int | None]
    published_chat_id: Mapped[int | None]
    published_message_id: Mapped[int | None]
    # The channel post's life (handlers.ads.publish / unpublish): claimed before posting
    # (a timed-out post stays claimed: it may have arrived, never posted twice); the
    # photo sent before the text, so that a retry does not send it again; refusals in a
    # row (bounded logs). Not approved but with post ids: a post still to remove.
    publish_claimed_at: Mapped[datetime | None]
    publish_uncertain: Mapped[bool] = mapped_column(default=False, server_default=false())  # timed out / poster died: maybe posted
    published_photo_id: Mapped[int | None]
    channel_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    reminded_at: Mapped[datetime | None]

    photos: Mapped[list[AdPhoto]] = relationship(
        back_populates="ad", cascade="all, delete-orphan", order_by="AdPhoto.position", lazy="selectin"
    )
    checks: Mapped[list[AdCheck]] = relationship(
        back_populates="ad", cascade="all, delete-orphan", order_by="AdCheck.id", lazy="selectin"
    )


class AdPhoto(Base):
    __tablename__ = "ad_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    file_id: Mapped[str] = mapped_column(SafeString(256))
    position: Mapped[int] = mapped_column(default=0)

    ad: Mapped[Ad] = relationship(back_populates="photos")


class StaffMessageKind(StrEnum):
    PHOTO = "photo"  # a photo of an ad's album
    CARD = "card"  # a moderation (or Take down) card


class AdStaffMessage(Base):
    """A message the bot posted about an ad in the staff chat: each photo of each round's
    album (``photo``) and each moderation or Take down card (``card``: the tracked one is
    ``ads.mod_message_id``; the others are earlier rounds' cards and cards posted again).
    Kept across resubmissions (``ads.album_*`` and ``ads.mod_*`` name only the current
    round's), so that erasing the owner deletes every photo and redraws every card
    (:mod:`bot.privacy`). Photos taken down again (their card was refused) are dropped."""

    __tablename__ = "ad_staff_messages"

    chat_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(SafeString(8))  # StaffMessageKind


class AdCheck(Base):
    """A pre-check finding stored with the submitted ad (what the moderator sees)."""

    __tablename__ = "ad_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(SafeString(32))
    severity: Mapped[str] = mapped_column(SafeString(8))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]

    ad: Mapped[Ad] = relationship(back_populates="checks")


class Strike(Base):
    """One strike against a user: active until it expires or is pardoned."""

    __tablename__ = "strikes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(SafeText)
    ad_id: Mapped[int | None] = mapped_column(ForeignKey("ads.id", ondelete="SET NULL"))
    moderator_id: Mapped[int | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    pardoned: Mapped[bool] = mapped_column(default=False)


class AdReport(Base):
    """A user's report of a published ad, waiting for a moderator's decision."""

    __tablename__ = "ad_reports"
    __table_args__ = (Index("ix_ad_reports_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(SafeString(20))
    status: Mapped[str] = mapped_column(SafeString(10), default="open")  # open | upheld | dismissed
    created_at: Mapped[datetime]
    decided_by: Mapped[int | None]
    decided_at: Mapped[datetime | None]
    card_chat_id: Mapped[int | None]
    card_message_id: Mapped[int | None]
    card_claimed_at: Mapped[datetime | None]  # posting the card was started (as for ads)
    # posts of the card that timed out with no card known: posted again by the sweep a bounded
    # number of times (bot.card_retries), then staff are told once
    card_timeouts: Mapped[int] = mapped_column(default=0, server_default="0")


class AdEventKind(StrEnum):
    """What happened to an ad (one ``ad_events`` row each, append-only)."""

    SUBMITTED = "submitted"  # the first submission: a moderation round starts
    RESUBMITTED = "resubmitted"  # submitted again after an edit: another round
    APPROVED = "approved"  # by a moderator
    AUTO_APPROVED = "auto_approved"  # a trusted user's clean ad, at submission
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    REOPENED = "reopened"  # back to a draft for editing (after a decision, or a live ad)
    RENEWED = "renewed"  # the owner extended a live or expired ad
    TAKEN_DOWN = "taken_down"  # by a moderator, or an upheld user report
    EXPIRED = "expired"
    SOLD = "sold"
    DELETED = "deleted"  # by its owner (or a reopened draft replaced by a new one)


SUBMISSION_KINDS = (AdEventKind.SUBMITTED, AdEventKind.RESUBMITTED)
DECISION_KINDS = (AdEventKind.APPROVED, AdEventKind.AUTO_APPROVED, AdEventKind.REJECTED, AdEventKind.CHANGES_REQUESTED)


class AdEvent(Base):
    """One state change of an ad, written in the transaction that makes it (ads/service.py).
    Never updated or deleted: the report counts moderation rounds from these rows."""

    __tablename__ = "ad_events"
    __table_args__ = (
        # an ad's events in time order, with their kind (the report: the round a decision
        # answers, the last event before a period's end); the report's index by kind and
        # time is declared with its queries (reports/models.py)
        Index("ix_ad_events_ad_at_kind", "ad_id", "at", "kind"),
        # a user's history on the moderation card, the pattern alert's rejections
        Index("ix_ad_events_user_kind", "user_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"))
    # the ad's owner and top-level category at the time (an edit may move the ad):
    # the report splits and counts events without joining the ads table
    user_id: Mapped[int]
    category: Mapped[str | None] = mapped_column(SafeString(20))
    kind: Mapped[str] = mapped_column(SafeString(20))
    actor_id: Mapped[int | None]  # the moderator (None: the owner, the bot or a sweep)
    reason: Mapped[str | None] = mapped_column(SafeString(20))  # rejection / change reason code
    at: Mapped[datetime]


class UserEventKind(StrEnum):
    """A change of a user's posting status (strikes themselves are rows of ``strikes``)."""

    WARNED = "warned"
    BLOCKED = "blocked"  # posting blocked until ``until``
    BANNED = "banned"
    LIFTED = "lifted"  # back to active: strikes expired or pardoned, or unbanned


class UserEvent(Base):
    """One penalty change of a user, written with the status change (ads/strikes.py)."""

    __tablename__ = "user_events"
    __table_args__ = (Index("ix_user_events_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(SafeString(10))
    actor_id: Mapped[int | None]  # the moderator, when given by hand
    until: Mapped[datetime | None]  # end of a posting block
    at: Mapped[datetime]
