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


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision_sync(connection) -> str | None:  # type: ignore[no-untyped-def]
    """For ``conn.run_sync``: the revision the database is at (None when empty)."""
    return MigrationContext.configure(connection).get_current_revision()
