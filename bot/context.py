"""The per-update context handlers receive: PTB's ``CallbackContext`` plus the desk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram.ext import Application, CallbackContext, ExtBot

from bot.config import Settings
from bot.templates import Templates
from bot.users import Account
from ads.service import Rules
from escalation.service import Policy
from kb.service import KbSnapshot


@dataclass
class Desk:
    """Everything the handlers share, built in ``post_init`` and closed in ``post_shutdown``."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    templates: Templates
    kb: KbSnapshot
    kb_version: int  # the revision ``kb`` was read at (handlers.jobs.refresh_kb swaps both)
    clock: Callable[[], datetime]
    policy: Policy
    ad_rules: Rules
    # the staff's synonyms for the matcher (kb.synonyms_path), read at start
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # staff chat id -> is it a forum (topics on)? Filled at start-up from getChat.
    staff_chats: dict[int, bool] = field(default_factory=dict)
    # (chat, message) -> (text, buttons) of each staff card as last shown: no no-op edits
    cards_shown: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)
    # user id -> (Account, when it was last written to the users table)
    accounts: dict[int, tuple[Account, datetime]] = field(default_factory=dict)
    # (chat, person) of every pending_inputs row: an index of that table, loaded on first
    # use, so that ordinary messages skip the lookup (the rows themselves decide)
    pending: set[tuple[int, int]] | None = None


class HelpdeskContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """``context.desk``, ``context.account`` and ``context.locale`` for every handler."""

    def __init__(self, application: Application, chat_id: int | None = None, user_id: int | None = None):  # type: ignore[type-arg]
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)
        self.account: Account | None = None

    @property
    def desk(self) -> Desk:
        return self.application.bot_data["desk"]  # type: ignore[no-any-return]

    @property
    def locale(self) -> str:
        if self.account is None:
            return self.desk.templates.default
        return self.desk.templates.locale_of(self.account.locale, self.account.language_code)

    def render(self, template: str, /, **values: Any) -> str:
        return self.desk.templates.render(template, self.locale, **values)

    def label(self, key: str, /, **values: Any) -> str:
        return self.desk.templates.label(self.locale, key, **values)

    def now(self) -> datetime:
        return self.desk.clock()

    def department_chat(self, department: str) -> int:
        settings = self.desk.settings
        dep = settings.support.departments.get(department)
        return (dep.chat_id if dep and dep.chat_id else None) or settings.staff.chat_id  # type: ignore[return-value]
