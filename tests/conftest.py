"""Fixtures: the real Application on a fresh database, driven through the fake Telegram.

Every test that takes ``desk`` runs twice: on SQLite and on PostgreSQL. The PostgreSQL
run needs ``TEST_DATABASE_URL`` (``.ci/run`` sets it) and is skipped only when it is
unset. Each test session migrates a schema of its own on that server (dropped at the
end), and each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.app import build_app, running
from bot.fake_telegram import FakeTelegram
from bot.migrate import upgrade
from tests.support import PG_URL, STAFF_CHAT, Database, FakeClock, drop_schema, make_settings, wipe


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "helpdesk.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_schema() -> Any:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"helpdesk_test_{uuid.uuid4().hex[:12]}"
    upgrade(PG_URL, schema)
    yield schema
    asyncio.run(drop_schema(PG_URL, schema))


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """An empty database (url, schema) on each backend, not migrated: for migration
    tests. The PostgreSQL schema is fresh and dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db", None
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"helpdesk_empty_{uuid.uuid4().hex[:10]}"
    yield PG_URL, schema
    asyncio.run(drop_schema(PG_URL, schema))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        path = tmp_path / "helpdesk.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return Database("sqlite", f"sqlite+aiosqlite:///{path}")
    schema = request.getfixturevalue("pg_schema")
    return Database("postgres", PG_URL, schema)  # type: ignore[arg-type]


@dataclass
class Desk:
    """What a test drives and inspects."""

    app: Any
    tg: FakeTelegram
    clock: FakeClock
    db: Database

    @property
    def sessions(self):  # type: ignore[no-untyped-def]
        return self.app.bot_data["desk"].sessions

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.sessions() as session:
            return (await session.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.execute(text(sql), params)).all())


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the desk's settings."""
    return {}


@pytest.fixture
def staff_forum() -> bool:
    """Override (e.g. parametrize) to make the staff chat a forum with topics."""
    return False


@pytest.fixture
def extra_chats() -> list[tuple[int, str, bool]]:
    """Override to create more group chats (id, title, forum) before the bot starts."""
    return []


@pytest.fixture
async def desk(database: Database, settings_overrides: dict[str, Any], staff_forum: bool, extra_chats: list[tuple[int, str, bool]]) -> Any:
    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff", forum=staff_forum)
    for chat_id, title, forum in extra_chats:
        tg.add_group(chat_id, title, forum=forum)
    app = build_app(make_settings(database, **settings_overrides), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        yield Desk(app, tg, clock, database)
