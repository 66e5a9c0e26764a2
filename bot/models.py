"""Tables shared by every feature: the people who talk to the bot."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, SafeString, SafeText


class UserStatus(StrEnum):
    ACTIVE = "active"
    WARNED = "warned"
    BLOCKED = "blocked"
    BANNED = "banned"


class User(Base):
    """A Telegram user who has written to the bot. ``id`` is the Telegram user id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(SafeString(256), default="")
    last_name: Mapped[str | None] = mapped_column(SafeString(256))
    username: Mapped[str | None] = mapped_column(SafeString(64), index=True)
    language_code: Mapped[str | None] = mapped_column(SafeString(16))
    locale: Mapped[str | None] = mapped_column(SafeString(16))
    status: Mapped[str] = mapped_column(SafeString(16), default=UserStatus.ACTIVE)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    blocked_until: Mapped[datetime | None]  # posting blocked until then (strikes)
    status_reason: Mapped[str | None] = mapped_column(SafeText)  # why warned / blocked / banned
    onboarded_at: Mapped[datetime | None]  # when the first-time welcome was shown (None: not yet)

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or (self.username or str(self.id))


class AppState(Base):
    """Small facts the bot must remember across restarts (e.g. the Moderation topic id)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    value: Mapped[str] = mapped_column(SafeText)


class PendingInput(Base):
    """What a person's next message in a chat is for, when it is not the usual thing:
    e.g. the text of a feedback (private chat) or a staff answer to one (staff chat).
    One per person and chat; it lives here so that a restart in between loses nothing."""

    __tablename__ = "pending_inputs"

    chat_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(SafeString(32))
    ref_id: Mapped[int | None]  # the object it is about (e.g. the feedback being answered)
    thread_id: Mapped[int | None]  # forum topic the answer is expected in (None: anywhere)
    since: Mapped[datetime]
