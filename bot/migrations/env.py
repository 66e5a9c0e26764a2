"""Alembic environment: async engine, batch mode on SQLite, optional PostgreSQL schema."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from bot.db import make_engine
from bot.schema import metadata

config = context.config
URL: str = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or ""
SCHEMA: str | None = config.attributes.get("schema")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_foreign_keys_off(engine) -> None:  # type: ignore[no-untyped-def]
    """Batch mode rebuilds a table (copy, DROP, rename): with foreign keys on, dropping
    ``users`` would cascade-delete every ticket, ad and question. Alembic's advice: keep
    them off while migrating (set at connect time; the pragma is ignored in a transaction)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _off(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()


async def _run_async() -> None:
    engine = make_engine(URL, schema=SCHEMA)
    if engine.dialect.name == "sqlite":
        _sqlite_foreign_keys_off(engine)
    try:
        if SCHEMA and engine.dialect.name == "postgresql":
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=URL, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
