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
    # personal data erased then (/deleteme, /forget): see bot/privacy.py for what stays
    deleted_at: Mapped[datetime | None]

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or (self.username or str(self.id))


class AppState(Base):
    """Small facts the bot must remember across restarts (e.g. the Moderation topic id)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    value: Mapped[str] = mapped_column(SafeText)
