"""SQLite calls run on the event loop (bot.db.InlineSQLite), except lock waits and
offloaded work, which run in the connection's thread so the loop never stalls."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from bot.db import InlineSQLite, _inline_sqlite, make_engine, make_sessionmaker, offloaded, unit_of_work


async def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    return engine


async def _thread_of_calls(session) -> int:  # type: ignore[no-untyped-def]
    """The id of the thread in which SQLite runs this session's statements."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, InlineSQLite)
    driver._conn.create_function("thread_id", 0, threading.get_ident)
    return int((await session.execute(text("SELECT thread_id()"))).scalar_one())


async def test_statements_run_on_the_loop_and_offloaded_ones_in_the_thread(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessions = make_sessionmaker(engine)
    try:
        async with unit_of_work(sessions) as session:
            assert await _thread_of_calls(session) == threading.get_ident()
        with offloaded():
            async with unit_of_work(sessions) as session:
                assert await _thread_of_calls(session) != threading.get_ident()
    finally:
        await engine.dispose()


async def test_a_writer_waits_for_the_lock_without_stalling_the_loop(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessions = make_sessionmaker(engine)
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with unit_of_work(sessions) as session:  # BEGIN IMMEDIATE: the write lock
            await session.execute(text("INSERT INTO notes (body) VALUES ('first')"))
            holding.set()
            await release.wait()

    async def writer() -> None:
        async with unit_of_work(sessions) as session:  # another connection: must wait, not fail
            await session.execute(text("INSERT INTO notes (body) VALUES ('second')"))

    try:
        first = asyncio.create_task(holder())
        await holding.wait()
        second = asyncio.create_task(writer())
        ticks = 0
        for _ in range(5):  # the loop keeps running while the writer waits for the lock
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 5 and not second.done()
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
        async with sessions() as session:
            bodies = (await session.execute(text("SELECT body FROM notes ORDER BY id"))).scalars().all()
        assert bodies == ["first", "second"]
    finally:
        release.set()
        await engine.dispose()


async def test_a_writer_cancelled_while_waiting_for_the_lock_leaves_no_transaction_behind(tmp_path: Path) -> None:
    """The cancelled writer's BEGIN IMMEDIATE goes on in the thread and takes the lock once
    the holder is done: that transaction must not stay open on a pooled connection (it
    held the write lock for good: every later writer failed with 'database is locked'
    and the connection itself with 'cannot start a transaction within a transaction')."""
    engine = await _engine(tmp_path)
    sessions = make_sessionmaker(engine)
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with unit_of_work(sessions) as session:
            await session.execute(text("INSERT INTO notes (body) VALUES ('first')"))
            holding.set()
            await release.wait()

    async def writer(body: str) -> None:
        async with unit_of_work(sessions) as session:
            await session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})

    try:
        first = asyncio.create_task(holder())
        await holding.wait()
        cancelled = asyncio.create_task(writer("cancelled"))
        await asyncio.sleep(0.1)  # its BEGIN IMMEDIATE waits in the thread
        cancelled.cancel()
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.wait_for(first, timeout=10)
        try:
            await asyncio.wait_for(cancelled, timeout=10)
        except asyncio.CancelledError:
            pass
        for n in range(3):  # whichever pooled connection they get
            await asyncio.wait_for(writer(f"after {n}"), timeout=5)
        async with sessions() as session:
            bodies = (await session.execute(text("SELECT body FROM notes ORDER BY id"))).scalars().all()
        assert bodies == ["first", "after 0", "after 1", "after 2"]
    finally:
        release.set()
        await engine.dispose()


async def test_an_executemany_locked_out_half_way_is_not_repeated(tmp_path: Path) -> None:
    """Outside a transaction each row of an executemany is committed on its own; if the
    lock is taken by another connection after the first row, the call fails on the
    second. Repeating it in the thread resumed the iterator: row 2 was silently lost
    (with a list, row 1 would have been stored twice). The caller must get the error."""
    path = tmp_path / "many.db"
    connection = await _inline_sqlite(f"sqlite+aiosqlite:///{path}")()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    release = threading.Timer(0.2, other.rollback)
    try:
        connection._conn.isolation_level = None  # autocommit, as the engine's connections
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("CREATE TABLE t (n INTEGER)")

        def rows() -> Iterator[tuple[int]]:
            yield (1,)
            other.execute("BEGIN IMMEDIATE")  # another process takes the write lock ...
            release.start()  # ... for a moment
            yield (2,)
            yield (3,)

        failed = False
        try:
            await connection.executemany("INSERT INTO t VALUES (?)", rows())
        except sqlite3.OperationalError:
            failed = True
        stored = [n for (n,) in await connection.execute_fetchall("SELECT n FROM t ORDER BY rowid")]
        assert stored == [1, 2, 3] or (failed and stored == [1])
    finally:
        if release.is_alive():
            release.join()
        other.close()
        await connection.close()
