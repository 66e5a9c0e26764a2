"""Tables shared by every feature: the people who talk to the bot."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


from sqlalchemy import UniqueConstraint
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


class ProcessedUpdate(Base):
    """A Telegram update whose effect is in the database, written in the same transaction
    as that effect (see ``bot.db.unit_of_work``): a re-delivered update is recognised by
    its id, a re-delivered incoming message also by its (chat, message) pair. Rows older
    than a few days are pruned (Telegram keeps unconfirmed updates for 24 hours)."""

    __tablename__ = "processed_updates"
    # NULLs are distinct in a unique constraint (SQLite and PostgreSQL): only incoming
    # messages (chat and message id both set) take part in it.
    __table_args__ = (UniqueConstraint("chat_id", "message_id"),)

    update_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None]
    message_id: Mapped[int | None]
    at: Mapped[datetime] = mapped_column(index=True)


class ChatMigration(Base):
    """A staff chat that Telegram moved to a new id (a group upgraded to a supergroup).

    Read at every start: the bot keeps using the new id even while config.toml still
    names the old one (and logs that config.toml needs updating)."""

    __tablename__ = "chat_migrations"

    old_chat_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    new_chat_id: Mapped[int]
    migrated_at: Mapped[datetime]


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
