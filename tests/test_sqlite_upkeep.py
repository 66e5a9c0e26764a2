"""SQLite upkeep (bot.db.sqlite_upkeep, the ``sqlite_upkeep`` job): WAL checkpoints in the
connection's thread, never on the event loop; and the sweep's SQLite queries name the
partial indexes that find their few rows (bot.db._sqlite_index_hints)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from bot.db import SQLITE_AUTOCHECKPOINT_PAGES, make_engine, make_sessionmaker, sqlite_upkeep, unit_of_work
from tests.support import STAFF_CHAT


async def test_upkeep_checkpoints_in_the_thread_not_on_the_loop(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'upkeep.db'}")
    statements: list[tuple[str, int]] = []

    @event.listens_for(engine.sync_engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection._conn.set_trace_callback(
            lambda sql: statements.append((sql, threading.get_ident()))
        )

    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            assert (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == SQLITE_AUTOCHECKPOINT_PAGES
            await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
            await session.execute(text("INSERT INTO notes (body) VALUES (:body)"), [{"body": "x" * 200} for _ in range(2000)])

        done = await sqlite_upkeep(engine)

        assert done is not None
        assert done.wal_pages > 0 and done.checkpointed == done.wal_pages  # all of the WAL is in the file now
        [(sql, thread)] = [(sql, thread) for sql, thread in statements if "wal_checkpoint" in sql]
        assert sql == "PRAGMA wal_checkpoint(PASSIVE)" and thread != threading.get_ident()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_the_upkeep_job_runs_on_sqlite_only(desk: Any, caplog: pytest.LogCaptureFixture) -> None:
    jobs = desk.app.job_queue.get_jobs_by_name("sqlite_upkeep")
    if desk.db.backend != "sqlite":
        assert not jobs  # PostgreSQL checkpoints on its own
        return
    [job] = jobs
    await desk.tg.user(7401, "Lerato").send("How do I post an ad?")  # something in the WAL
    caplog.set_level(logging.DEBUG, logger="handlers.jobs")
    await job.run(desk.app)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SQLite upkeep")]
    checkpointed, wal = (int(w) for w in line.split() if w.isdigit())
    assert checkpointed == wal > 0


class Plans:
    """EXPLAIN QUERY PLAN of every SELECT / UPDATE the bot runs on ``table`` meanwhile:
    [(statement, [plan steps on that table])]."""

    def __init__(self, desk: Any, table: str) -> None:
        self.engine = desk.app.bot_data["desk"].engine.sync_engine
        self.table = table
        self.plans: list[tuple[str, list[str]]] = []

    def _explain(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if executemany or not statement.lstrip().startswith(("SELECT", "UPDATE")):
            return
        steps = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()]
        on_table = [step for step in steps if f" {self.table} " in f"{step} "]
        if on_table:
            self.plans.append((statement, on_table))

    def __enter__(self) -> list[tuple[str, list[str]]]:
        event.listen(self.engine, "before_cursor_execute", self._explain)
        return self.plans

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._explain)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_sweep_reads_ads_through_the_partial_indexes_on_sqlite(desk: Any) -> None:
    """Without statistics SQLite's planner would read every approved ad through the
    status index, five times a minute; the partial indexes hold only the rows wanted.
    (benchmarks/scale.py --sqlite: the sweep over 1M ads and 1M tickets, 952 -> 80 ms.)"""
    [job] = desk.app.job_queue.get_jobs_by_name("sla_sweep")
    with Plans(desk, "ads") as plans:
        await job.run(desk.app)
    assert len(plans) >= 4  # cards waiting, cards to post again, cards given up, posts in flight, posts to remove
    partial = ("ix_ads_needing_card", "ix_ads_publish_in_flight", "ix_ads_posted")
    for sql, steps in plans:
        assert all(any(index in step for index in partial) for step in steps), (sql, steps)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_staff_queue_reads_open_tickets_through_their_partial_index_on_sqlite(desk: Any) -> None:
    """/queue: the 30 oldest open tickets straight from ix_tickets_open_queue, in order,
    not every open ticket through the status index and a sort."""
    from tests.test_escalation import open_ticket

    number = await open_ticket(desk, desk.tg.user(7402, "Naledi"))
    agent = desk.tg.staff(9101, "Thandi", STAFF_CHAT)
    with Plans(desk, "tickets") as plans:
        await agent.send("/queue", chat_id=STAFF_CHAT)
    listing = desk.tg.last_bot_message(STAFF_CHAT).text
    assert "Open tickets" in listing and f"#{number}" in listing
    [(sql, steps)] = [(sql, steps) for sql, steps in plans if "ORDER BY tickets.escalated_at" in sql]
    assert steps == ["SCAN tickets USING INDEX ix_tickets_open_queue"], sql
