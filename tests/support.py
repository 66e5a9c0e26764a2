"""Helpers shared by the tests: a controllable clock, the test databases, settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.config import Settings, parse_settings
from bot.db import make_engine
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


async def drop_schema(url: str, schema: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


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
        # the test clock stands still, so a whole scenario happens "in one minute": only
        # tests/test_flood.py turns the per-user flood limit on
        "limits": {"messages_per_minute": 0},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values) if isinstance(values, dict) else data.__setitem__(section, values)
    return parse_settings(data, "<tests>", ROOT)
