"""Alembic, driven from Python: ``helpdesk migrate`` and the start of ``run``/``demo``.

These functions are synchronous (Alembic's env runs its own event loop); from async code
call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(url: str, schema: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url, schema), revision)


def downgrade(url: str, revision: str, schema: str | None = None) -> None:
    command.downgrade(alembic_config(url, schema), revision)


def migrate_to(url: str, target: str, schema: str | None = None) -> None:
    """Move the database to ``target`` ('head', 'base', a revision id or '-1'),
    upgrading or downgrading as needed."""
    if target.startswith("-"):
        downgrade(url, target, schema)
        return
    script = ScriptDirectory.from_config(alembic_config(url, schema))
    order = [r.revision for r in script.walk_revisions()]  # head first
    current = current_revision(url, schema)
    if target == "base":
        wanted_index = len(order)
    elif target == "head":
        wanted_index = 0
    else:
        wanted_index = order.index(script.get_revision(target).revision)
    current_index = len(order) if current is None else order.index(current)
    if wanted_index > current_index:
        downgrade(url, target, schema)
    else:
        upgrade(url, schema, target)


def current_revision(url: str, schema: str | None = None) -> str | None:
    import asyncio

    from bot.db import make_engine

    async def read() -> str | None:
        engine = make_engine(url, schema=schema)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(current_revision_sync)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision_sync(connection) -> str | None:  # type: ignore[no-untyped-def]
    """For ``conn.run_sync``: the revision the database is at (None when empty)."""
    return MigrationContext.configure(connection).get_current_revision()
