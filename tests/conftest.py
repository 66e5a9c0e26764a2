"""Fixtures: the real Application on a fresh database, driven through the fake Telegram.

Every test that takes ``desk`` runs twice: on SQLite and on PostgreSQL. The PostgreSQL
run needs ``TEST_DATABASE_URL`` (``.ci/run`` sets it) and is skipped only when it is
unset. Each test session migrates a schema of its own on that server (dropped at the
end), and each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.app import build_app, running
from bot.config import Settings, parse_settings
from bot.db import make_engine, make_sessionmaker
from bot.fake_telegram import FakeTelegram
from bot.migrate import upgrade
from bot.schema import metadata

PG_URL = os.environ.get("TEST_DATABASE_URL")
ROOT = Path(__file__).resolve().parents[1]
STAFF_CHAT = -1001000000001


class FakeClock:
    """The desk's time, moved by the test."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Database:
    backend: str
    url: str
    schema: str | None = None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "helpdesk.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _drop_schema(url: str, schema: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


@pytest.fixture(scope="session")
def pg_schema() -> Any:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"helpdesk_test_{uuid.uuid4().hex[:12]}"
    upgrade(PG_URL, schema)
    yield schema
    asyncio.run(_drop_schema(PG_URL, schema))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        path = tmp_path / "helpdesk.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return Database("sqlite", f"sqlite+aiosqlite:///{path}")
    schema = request.getfixturevalue("pg_schema")
    return Database("postgres", PG_URL, schema)  # type: ignore[arg-type]


async def wipe(db: Database) -> None:
    """Empty every table (PostgreSQL tests share one migrated schema per session)."""
    if db.backend != "postgres":
        return
    engine = make_engine(db.url, schema=db.schema)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


def make_settings(db: Database, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db.url, **({"schema": db.schema} if db.schema else {})},
        "staff": {"chat_id": STAFF_CHAT, "admin_ids": [900001]},
        "kb": {"path": str(ROOT / "kb" / "data" / "faq.yaml")},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values) if isinstance(values, dict) else data.__setitem__(section, values)
    return parse_settings(data, "<tests>", ROOT)


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
async def desk(database: Database, settings_overrides: dict[str, Any]) -> Any:
    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    app = build_app(make_settings(database, **settings_overrides), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        yield Desk(app, tg, clock, database)
