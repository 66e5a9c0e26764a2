"""Database engine, sessions and the unit of work.

One transaction per update: handlers open ``async with unit_of_work(sessions) as session``,
call one service function and leave; the block commits on success and rolls back on any
exception. Services take the session and never commit.

Each update is recorded (``processed_updates``) in the same transaction as its effect: the
first unit of work of an update that writes anything also inserts the update's marker
(see :class:`UpdateMark`, set by ``handlers.dedupe``). If the marker is already there, the
update was handled before (Telegram re-delivered it): the unit of work rolls back and
raises :class:`DuplicateUpdate`, which ends the handler quietly.

SQLite gets WAL, a busy timeout, foreign keys and ``BEGIN IMMEDIATE`` transactions
(one writer at a time, no read-then-write upgrade failures), and its calls are made on
the event loop, not in aiosqlite's thread (:class:`InlineSQLite`). PostgreSQL goes through
asyncpg with the same code; an optional schema is put on the search path.

Work that only reads (e.g. reloading the knowledge base) takes ``unit_of_work(sessions,
read_only=True)``: on SQLite a plain (deferred) ``BEGIN``, i.e. a WAL read snapshot that
holds no write lock, and on PostgreSQL a ``REPEATABLE READ READ ONLY`` transaction (one
snapshot for all its statements). A write in it raises :class:`ReadOnlyViolation`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache, partial
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String, Text, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: WAL pages (4 KiB each) after which a commit checkpoints on its own (SQLite's default
#: is 1,000); see :func:`sqlite_upkeep`.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use bot.clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def clean_text(value: str) -> str:
    """Text as every database can store it: no NUL (PostgreSQL refuses it), and no lone
    UTF-16 surrogates (not encodable)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


class SafeString(TypeDecorator[str]):
    """``String`` that stores user-supplied text safely on SQLite and PostgreSQL alike."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else clean_text(value)


class SafeText(SafeString):
    impl = Text
    cache_ok = True


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        str: SafeText(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        # 64-bit ids (Telegram ids exceed 2**31); SQLite needs INTEGER for rowid autoincrement.
        int: BigInteger().with_variant(Integer(), "sqlite"),
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """Create the async engine with the per-backend settings described above."""
    if url.startswith("sqlite"):
        # No rollback when a connection goes back to the pool: the driver is in autocommit
        # mode (see below) and every transaction is ended by SQLAlchemy itself, so that
        # rollback would only cost a round trip to aiosqlite's thread per unit of work.
        engine = create_async_engine(url, echo=echo, pool_reset_on_return=None, async_creator=_inline_sqlite(url))
        _sqlite_pragmas(engine)
        _sqlite_index_hints(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


#: Set by :func:`offloaded` around work that may read a lot at once (the monthly report,
#: a user's data export): its SQLite calls run in the connection's thread, off the loop.
_offload: ContextVar[bool] = ContextVar("helpdesk_sqlite_offload", default=False)


@contextmanager
def offloaded() -> Iterator[None]:
    """SQLite calls made inside this block run in a worker thread (see :class:`InlineSQLite`)."""
    token = _offload.set(True)
    try:
        yield
    finally:
        _offload.reset(token)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


def _patiently(connection: sqlite3.Connection, call: Callable[[], Any]) -> Any:
    """In the worker thread: the call, waiting up to the busy timeout for a lock."""
    connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    try:
        return call()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


class InlineSQLite(aiosqlite.Connection):
    """aiosqlite's connection, with its calls made right on the event loop.

    A call into SQLite on a local file takes microseconds, less than handing it to
    aiosqlite's thread and waking the loop when it is done (``benchmarks/throughput.py``
    measured a unit of work with one query at 2.4 ms through the thread and 0.9 ms
    inline). Two kinds of call still go to the thread, so the loop never waits inside
    SQLite: one that finds the database locked by another connection (the connection's
    busy timeout is 0, so that is immediate; the call is repeated in the thread with the
    real busy timeout), and calls made inside :func:`offloaded` (long reads).
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if not _offload.get():
            changes = self._connection.total_changes
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                # A failed statement has no effect in SQLite: repeating it is safe. Not so
                # for an executemany that failed on its n-th row (outside a transaction the
                # rows before it are in; a repeat would store them twice, or skip rows of
                # an iterator): a call that changed rows is not repeated.
                if not _is_busy(exc) or self._connection.total_changes != changes:
                    raise
        call = asyncio.ensure_future(super()._execute(_patiently, self._connection, partial(fn, *args, **kwargs)))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # The thread goes on with the call (e.g. a BEGIN IMMEDIATE waiting for the
            # lock). Left alone, it would use the connection beside whoever gets it next
            # from the pool, and a BEGIN that succeeds later would leave it in the pool
            # holding the write lock for good. So: wait for the call, undo a transaction
            # it began (SQLAlchemy never learnt of it, or drops the connection anyway),
            # then let the cancellation through.
            await _settled(call)
            try:
                if self._connection is not None and self._connection.in_transaction:
                    self._connection.rollback()
            except sqlite3.Error:
                pass  # the cancellation goes through all the same; SQLAlchemy drops the connection
            raise


async def _settled(call: asyncio.Future[Any]) -> None:
    """Wait until ``call`` is done, whatever it ends with; a cancellation of the waiting
    task does not stop the wait (it lasts at most the busy timeout)."""
    while not call.done():
        try:
            await asyncio.wait({call})
        except asyncio.CancelledError:
            continue
    if not call.cancelled():
        call.exception()  # retrieved: no "exception never retrieved" warning


def _inline_sqlite(url: str) -> Callable[[], Awaitable[InlineSQLite]]:
    """``async_creator`` for the engine: SQLAlchemy's aiosqlite dialect then drives an
    :class:`InlineSQLite`, opened with the arguments the dialect itself would use."""
    from sqlalchemy.dialects.sqlite.aiosqlite import dialect
    from sqlalchemy.engine import make_url

    cargs, cparams = dialect().create_connect_args(make_url(url))
    cparams.update(check_same_thread=False, timeout=0)  # the thread is used for lock waits only

    async def connect() -> InlineSQLite:
        connection = InlineSQLite(lambda: sqlite3.connect(*cargs, **cparams), 64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own
        return await connection

    return connect


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=0")  # lock waits happen in the thread (InlineSQLite)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A commit that finds the WAL longer than this many pages copies it into the
        # database file (a checkpoint, with fsyncs) right there, i.e. on the event loop.
        # :func:`sqlite_upkeep` checkpoints in a worker thread every minute, so this is
        # only the safety net if that job stops.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to aiosqlite: one trip to its thread instead of three (cursor, execute,
        # close) through exec_driver_sql; this runs once per unit of work. A read-only unit
        # of work (see read_only_engine) begins a deferred transaction: no write lock.
        begin = "BEGIN" if conn.get_execution_options().get(READ_ONLY_OPTION) else "BEGIN IMMEDIATE"
        conn.connection.dbapi_connection.run_async(lambda driver: driver.execute(begin))


def _sqlite_index_hints(engine: AsyncEngine) -> None:
    """Let ``.with_hint(Model, "INDEXED BY ix_name", "sqlite")`` reach SQLite (SQLAlchemy's
    SQLite compiler drops table hints; SQL Server's and MySQL's render them the same way).

    Used where only a partial index finds the few rows the minute's sweep looks for among
    a big table (``ads``, migration 0023): without statistics SQLite's planner prefers the
    status index, which reads every approved ad (70 ms per query at 300,000 ads, on the
    event loop). ``INDEXED BY`` also makes SQLite refuse the query ("no query solution")
    if it stops repeating the index's condition, so the tests catch a drift."""
    dialect = engine.sync_engine.dialect
    compiler: Any = dialect.statement_compiler

    class HintingSQLiteCompiler(compiler):  # type: ignore[misc, valid-type]
        def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
            return text

    dialect.statement_compiler = HintingSQLiteCompiler


#: Execution option marking the connections of :func:`read_only_engine`.
READ_ONLY_OPTION = "helpdesk_read_only"


def read_only_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for transactions that only read (same pool, same events): a deferred
    ``BEGIN`` on SQLite, ``REPEATABLE READ READ ONLY`` on PostgreSQL."""
    options: dict[str, Any] = {READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine.execution_options(**options)


class ReadOnlyViolation(RuntimeError):
    """A read-only unit of work tried to write (a bug in the caller)."""


class TrackedSession(Session):
    """A session that notes (in ``info["wrote"]``) whether its transaction wrote anything."""


@event.listens_for(TrackedSession, "do_orm_execute")
def _note_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        _wrote(state.session)
    elif isinstance(state.statement, TextClause) and state.statement.text.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        _wrote(state.session)  # a text() statement


@event.listens_for(TrackedSession, "before_flush")
def _refuse_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        _wrote(session, flushing=True)


@event.listens_for(TrackedSession, "after_flush")
def _note_flush(session: Session, _flush: UOWTransaction) -> None:
    if session.new or session.dirty or session.deleted:
        _wrote(session)


def _wrote(session: Session, *, flushing: bool = False) -> None:
    if session.info.get("read_only"):
        # SQLite would quietly upgrade the deferred transaction to a write one
        raise ReadOnlyViolation("a read-only unit of work tried to write")
    if not flushing:
        session.info["wrote"] = True


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True, sync_session_class=TrackedSession)


@dataclass
class UpdateMark:
    """The Telegram update being handled, to be recorded with its first effect.

    Set for the handlers of one update by ``handlers.dedupe`` (group -3) in
    :data:`current_update`; only units of work in the same asyncio task use it (jobs
    running beside the update never record it)."""

    update_id: int
    chat_id: int | None  # with message_id: an incoming message
    message_id: int | None
    at: datetime
    task: asyncio.Task[Any] | None
    recorded: bool = False
    on_recorded: Callable[[int], None] | None = None


current_update: ContextVar[UpdateMark | None] = ContextVar("helpdesk_current_update", default=None)


class DuplicateUpdate(Exception):
    """The update was recorded already (Telegram re-delivered it): its effect was rolled
    back. The error handler ignores it."""

    def __init__(self, update_id: int):
        super().__init__(f"update {update_id} was handled before")
        self.update_id = update_id


def _pending_mark() -> UpdateMark | None:
    mark = current_update.get()
    if mark is None or mark.recorded:
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    return mark if mark.task is task else None


async def record_update(session: AsyncSession, mark: UpdateMark) -> bool:
    """Insert the update's marker; False when it (or its message) is there already."""
    values = {"update_id": mark.update_id, "chat_id": mark.chat_id, "message_id": mark.message_id, "at": mark.at}
    return (await session.execute(_record_statement(session.bind.dialect.name), values)).first() is not None


@cache
def _record_statement(dialect: str) -> Any:
    """Built once per dialect (it runs with every update's effect)."""
    from bot.models import ProcessedUpdate

    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = ProcessedUpdate.__table__
    return insert(table).on_conflict_do_nothing().returning(table.c.update_id)


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession], *, effect: bool = True, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back if it raises.

    During an update, the first unit of work that writes records the update in the same
    transaction (or raises :class:`DuplicateUpdate` if it was recorded before). Pass
    ``effect=False`` for bookkeeping that is not the update's effect and is harmless to
    repeat (e.g. refreshing the user's name), so that the marker goes with the real effect.
    ``read_only=True``: a transaction that takes no write lock and may not write (see the
    module's docstring); it never records the update.
    """
    mark = _pending_mark() if effect and not read_only else None
    recorded = False
    local: dict[str, Any] = {}
    if read_only:
        local = {"bind": read_only_engine(sessions.kw["bind"]), "info": {"read_only": True}}
    async with sessions(**local) as session, session.begin():
        yield session
        if mark is not None:
            await session.flush()
            if session.info.get("wrote"):
                if not await record_update(session, mark):
                    raise DuplicateUpdate(mark.update_id)  # rolls the whole transaction back
                recorded = True
    if recorded and mark is not None:
        mark.recorded = True
        if mark.on_recorded is not None:
            mark.on_recorded(mark.update_id)


@dataclass(frozen=True)
class Upkeep:
    """What one :func:`sqlite_upkeep` did: WAL pages written back to the database file
    and pages in the WAL."""

    checkpointed: int
    wal_pages: int


async def sqlite_upkeep(engine: AsyncEngine) -> Upkeep | None:
    """A passive WAL checkpoint of SQLite, in a worker thread (never on the event loop);
    None on other databases (PostgreSQL checkpoints on its own).

    The checkpoint copies committed pages into the database file without blocking
    readers or writers. Without it, a commit on the event loop would do it (with its
    fsyncs) once the WAL passed :data:`SQLITE_AUTOCHECKPOINT_PAGES` pages.
    """
    if engine.dialect.name != "sqlite":
        return None

    def work(driver: sqlite3.Connection) -> Upkeep:
        _busy, wal_pages, checkpointed = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return Upkeep(checkpointed=max(0, checkpointed), wal_pages=max(0, wal_pages))

    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        aio = raw.driver_connection  # the InlineSQLite (an aiosqlite connection)
        with offloaded():  # in the connection's thread, waiting up to the busy timeout for a lock
            return await aio._execute(work, aio._connection)
