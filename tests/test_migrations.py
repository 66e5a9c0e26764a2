"""Alembic on both databases: from empty to head, from every earlier revision to head
with rows present, and one step down from head and back up.

The revision list comes from ``ScriptDirectory.walk_revisions()``, and the rows are
made from the reflected tables of each revision, so a new migration is covered without
touching this file.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot.db import make_engine
from bot.migrate import alembic_config, current_revision_sync, downgrade, head_revision, upgrade
from bot.schema import metadata

SCRIPT = ScriptDirectory.from_config(alembic_config("sqlite://"))
REVISIONS = [r.revision for r in SCRIPT.walk_revisions()]  # head first
EARLIER = REVISIONS[1:]


async def _state(url: str, schema: str | None):
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            revision = await conn.run_sync(current_revision_sync)
    finally:
        await engine.dispose()
    return tables, revision



# ------------------------------------------------------------------ rows for any schema


def _value(column: sa.Column[Any], n: int) -> Any:
    """A valid value for a reflected column (the n-th row of its table)."""
    t = column.type
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, (sa.Integer, sa.BigInteger)):
        return n
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float):
        return Decimal("10.00")
    if isinstance(t, sa.Float):
        return 0.5
    if isinstance(t, sa.DateTime):
        return datetime(2026, 1, 1, 12, 0, tzinfo=UTC) if t.timezone else datetime(2026, 1, 1, 12, 0)
    if isinstance(t, sa.JSON):
        return []
    length = getattr(t, "length", None) or 20
    return f"r{n}"[:length]


def _fill(connection: sa.Connection) -> dict[str, int]:
    """Two rows in every table, parents first; foreign keys point at the parents' rows.
    Returns the row count per table."""
    reflected = sa.MetaData()
    reflected.reflect(connection)
    counts: dict[str, int] = {}
    for table in reflected.sorted_tables:
        if table.name == "alembic_version":
            continue
        for n in (1, 2):
            row: dict[str, Any] = {}
            for column in table.columns:
                if column.foreign_keys:
                    row[column.name] = _value(next(iter(column.foreign_keys)).column, n)
                elif column.nullable and not column.primary_key:
                    continue
                elif column.server_default is not None and not column.primary_key:
                    continue
                else:
                    row[column.name] = _value(column, n)
            connection.execute(table.insert().values(**row))
        counts[table.name] = 2
    return counts


def _counts(connection: sa.Connection, names: set[str]) -> dict[str, int]:
    tables = set(inspect(connection).get_table_names())
    return {name: connection.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names & tables}


async def _with_connection(url: str, schema: str | None, fn):  # type: ignore[no-untyped-def]
    engine = make_engine(url, schema=schema)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def test_the_revision_history_is_one_line():
    """One head and one base: a branch (two helpers using the same down_revision) shows here."""
    assert len(SCRIPT.get_heads()) == 1
    assert len(SCRIPT.get_bases()) == 1
    assert len(REVISIONS) >= 2


# ------------------------------------------------------------------ the tests


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


@pytest.mark.parametrize("start", EARLIER)
def test_upgrade_from_every_earlier_revision_keeps_the_rows(empty_db, start):
    url, schema = empty_db
    upgrade(url, schema, start)
    assert asyncio.run(_state(url, schema))[1] == start
    before = asyncio.run(_with_connection(url, schema, _fill))
    assert before, f"no tables at {start}"
    upgrade(url, schema)
    tables, revision = asyncio.run(_state(url, schema))
    assert revision == head_revision()
    assert set(metadata.tables) <= tables
    after = asyncio.run(_with_connection(url, schema, lambda c: _counts(c, set(before))))
    assert after == {name: n for name, n in before.items() if name in after}
    assert set(after) == set(before) & tables


def test_downgrade_one_step_from_head_and_back_up_with_rows(empty_db):
    url, schema = empty_db
    upgrade(url, schema)
    filled = asyncio.run(_with_connection(url, schema, _fill))
    downgrade(url, "-1", schema)
    tables, revision = asyncio.run(_state(url, schema))
    assert revision == REVISIONS[1]
    upgrade(url, schema)
    tables, revision = asyncio.run(_state(url, schema))
    assert revision == head_revision() and set(metadata.tables) <= tables
    kept = asyncio.run(_with_connection(url, schema, lambda c: _counts(c, set(filled))))
    # tables the last revision did not touch keep their rows through the round trip
    assert kept["users"] == 2 and kept["tickets"] == 2


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


def test_migration_0020_marks_the_posts_live_today_as_claimed(empty_db):
    """Live posts made before 0020 are the current posts (claimed), not ones to remove."""
    url, schema = empty_db
    upgrade(url, schema, "0019")
    asyncio.run(_with_connection(url, schema, _fill))

    def post(c):
        c.execute(sa.text("UPDATE ads SET status = 'approved', published_chat_id = -100, published_message_id = 7, decided_at = updated_at WHERE id = 1"))

    asyncio.run(_with_connection(url, schema, post))
    upgrade(url, schema, "0020")
    rows = asyncio.run(_with_connection(url, schema, lambda c: c.execute(sa.text(
        "SELECT id, publish_claimed_at IS NOT NULL, publish_uncertain, channel_failures FROM ads ORDER BY id"
    )).all()))
    assert [tuple(r) for r in rows] == [(1, True, False, 0), (2, False, False, 0)]


def test_migration_0024_downgrade_drops_the_notices_to_staff_the_old_code_cannot_place(empty_db):
    """Code before 0024 knows the audiences ``user`` and ``moderators`` only: it would send
    a pending ``ticket`` notice like a user's, to its chat id (the staff group), and its
    erasure would never find a finished one (``person_id`` goes with the downgrade). So
    the downgrade deletes every notice of an audience 0023 does not know, and no other."""
    url, schema = empty_db
    upgrade(url, schema)
    rows = [  # (audience, state)
        ("user", "pending"), ("moderators", "pending"), ("ticket", "pending"), ("ticket_general", "pending"),
        ("ticket", "sending"), ("ticket", "sent"), ("ticket_general", "failed"), ("user", "sent"),
    ]

    def queue(c):
        for n, (audience, state) in enumerate(rows, start=1):
            chat = 3001 if audience == "user" else -1001000000001
            c.execute(
                sa.text(
                    "INSERT INTO notices (id, chat_id, audience, kind, ref, text, state, created_at, person_id) "
                    "VALUES (:id, :chat, :audience, 'sla', 'ticket:1', 'text', :state, :at, :person)"
                ),
                {"id": n, "chat": chat, "audience": audience, "state": state,
                 "at": datetime(2026, 12, 6, 9, 0), "person": 4001 if audience.startswith("ticket") else None},
            )

    asyncio.run(_with_connection(url, schema, queue))
    downgrade(url, "0023", schema)
    assert asyncio.run(_state(url, schema))[1] == "0023"
    left = asyncio.run(_with_connection(url, schema, lambda c: c.execute(sa.text(
        "SELECT id, audience, state FROM notices ORDER BY id"
    )).all()))
    assert [tuple(r) for r in left] == [(1, "user", "pending"), (2, "moderators", "pending"), (8, "user", "sent")]
    upgrade(url, schema)  # and back up: the rows kept are still there
    assert asyncio.run(_with_connection(url, schema, lambda c: c.execute(sa.text("SELECT count(*) FROM notices")).scalar_one())) == 3


def test_migration_0028_records_the_known_ad_messages_and_links_the_on_your_case_texts(empty_db):
    """The ads' current album (first photo) and card are recorded; the "on your case"
    notices and their copies in a case's history name the staff member they name; such a
    copy naming nobody on the staff any more (erased before) is redacted."""
    url, schema = empty_db
    upgrade(url, schema, SCRIPT.get_revision("0028").down_revision)
    asyncio.run(_with_connection(url, schema, _fill))  # staff members 1 "r1" and 2 "r2"

    def history(c):
        c.execute(sa.text("UPDATE ads SET album_chat_id = -100, album_message_id = 5, mod_chat_id = -100, mod_message_id = 9 WHERE id = 1"))
        c.execute(sa.text("UPDATE ticket_messages SET direction = 'bot', text = '👋 r1 from support is on your case #1.' WHERE id = 1"))
        c.execute(sa.text("UPDATE ticket_messages SET direction = 'bot', text = '👋 Gone from support is on your case #2.' WHERE id = 2"))
        c.execute(sa.text("UPDATE notices SET kind = 'ticket_claimed', text = '👋 <b>r2</b> from support is on your case <b>#1</b>.' WHERE id = 1"))

    asyncio.run(_with_connection(url, schema, history))
    upgrade(url, schema, "0028")

    def read(c):
        return (
            [tuple(r) for r in c.execute(sa.text("SELECT chat_id, message_id, ad_id, kind FROM ad_staff_messages ORDER BY message_id"))],
            [tuple(r) for r in c.execute(sa.text("SELECT person_id, text FROM ticket_messages ORDER BY id"))],
            [tuple(r) for r in c.execute(sa.text("SELECT person_id FROM notices ORDER BY id"))],
        )

    albums, messages, notices = asyncio.run(_with_connection(url, schema, read))
    assert albums == [(-100, 5, 1, "photo"), (-100, 9, 1, "card")]
    assert messages == [(1, "👋 r1 from support is on your case #1."), (None, "(erased)")]
    assert notices == [(2,), (None,)]
