"""Alembic: from an empty database to head and back, on both databases."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import inspect

from bot.db import make_engine
from bot.migrate import current_revision_sync, downgrade, head_revision, upgrade
from bot.schema import metadata
from tests.support import PG_URL, drop_schema



async def _state(url: str, schema: str | None):
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            revision = await conn.run_sync(current_revision_sync)
    finally:
        await engine.dispose()
    return tables, revision


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/m.db", None
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"helpdesk_mig_{uuid.uuid4().hex[:10]}"
    yield PG_URL, schema
    asyncio.run(drop_schema(PG_URL, schema))


def test_upgrade_from_empty_creates_every_table_then_downgrade_to_empty(empty_db):
    url, schema = empty_db
    upgrade(url, schema)
    tables, revision = asyncio.run(_state(url, schema))
    assert revision == head_revision()
    assert set(metadata.tables) <= tables
    upgrade(url, schema)  # again: nothing to do, no error
    downgrade(url, "base", schema)
    tables, revision = asyncio.run(_state(url, schema))
    assert revision is None and not (set(metadata.tables) & tables)


def test_models_and_migrations_agree(empty_db):
    """A model changed without a migration shows up here as a non-empty diff."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url, schema = empty_db
    upgrade(url, schema)

    async def diff():
        engine = make_engine(url, schema=schema)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
