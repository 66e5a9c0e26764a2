"""Knowledge-base tables and the question log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base, SafeString, SafeText


class PhrasingSource(StrEnum):
    AUTHORED = "authored"  # from the KB file
    LEARNED = "learned"  # from a resolved support case


class PhrasingStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # learned, waiting for a staff member's review


class Outcome(StrEnum):
    ANSWERED = "answered"
    SUGGESTED = "suggested"
    NO_MATCH = "no_match"


class Vote(StrEnum):
    HELPFUL = "helpful"
    NOT_HELPFUL = "not_helpful"


class KbEntry(Base):
    __tablename__ = "kb_entries"

    id: Mapped[str] = mapped_column(SafeString(40), primary_key=True)
    title: Mapped[str] = mapped_column(SafeString(200))
    category: Mapped[str] = mapped_column(SafeString(64), index=True)
    answer: Mapped[str] = mapped_column(SafeText)
    followups: Mapped[list[Any]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    phrasings: Mapped[list[KbPhrasing]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        order_by="KbPhrasing.position",
        lazy="selectin",
    )


class KbState(Base):
    """One row: the revision of the knowledge base, bumped by every change."""

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(default=0)
    # SHA-256 of the KB file last imported: a start with the same file does not import
    # it again, so edits made from the staff chat since then survive a restart.
    file_sha256: Mapped[str | None] = mapped_column(SafeString(64))


class KbPhrasing(Base):
    __tablename__ = "kb_phrasings"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("kb_entries.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(SafeString(500))
    position: Mapped[int] = mapped_column(default=0)
    source: Mapped[str] = mapped_column(SafeString(16), default=PhrasingSource.AUTHORED)
    status: Mapped[str] = mapped_column(SafeString(16), default=PhrasingStatus.ACTIVE)
    created_at: Mapped[datetime]

    entry: Mapped[KbEntry] = relationship(back_populates="phrasings")


class Question(Base):
    """Every question a user asked, what the bot offered and how it ended."""

    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(SafeText)
    source: Mapped[str] = mapped_column(SafeString(16), default="text")  # text | followup
    # [{"entry_id": ..., "score": ...}, ...] best first, as the matcher returned them
    offered: Mapped[list[Any]] = mapped_column(default=list)
    top_score: Mapped[float] = mapped_column(default=0.0)
    outcome: Mapped[str] = mapped_column(SafeString(16))
    # the entry whose answer the user got (directly or by choosing a suggestion)
    answer_entry_id: Mapped[str | None] = mapped_column(SafeString(40))
    none_of_these: Mapped[bool] = mapped_column(default=False)
    vote: Mapped[str | None] = mapped_column(SafeString(16))
    created_at: Mapped[datetime] = mapped_column(index=True)
    chosen_at: Mapped[datetime | None]
    voted_at: Mapped[datetime | None]


class KbChange(Base):
    """Audit trail of the knowledge base: who changed which entry, when, and how.

    ``before`` and ``after`` hold the entry as the KB file writes it (title, category,
    answer, phrasings, followups); None for a creation or a deletion.
    """

    __tablename__ = "kb_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[str] = mapped_column(SafeString(40), index=True)
    action: Mapped[str] = mapped_column(SafeString(16))  # add | edit | phrase | delete | import | review
    actor_id: Mapped[int | None]  # Telegram id of the staff member; None: the CLI / an import
    at: Mapped[datetime] = mapped_column(index=True)
    summary: Mapped[str] = mapped_column(SafeText, default="")
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class KbDraft(Base):
    """A staff member's knowledge-base conversation in a staff chat (``/kb add``,
    ``/kb edit``): which step it is at and what was typed so far. In the database so
    that it survives a restart; one per staff member and chat."""

    __tablename__ = "kb_drafts"

    staff_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(SafeString(16))  # add | edit
    entry_id: Mapped[str | None] = mapped_column(SafeString(40))  # the entry being edited
    step: Mapped[str] = mapped_column(SafeString(16))  # title | answer | phrasings | category | preview
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]
