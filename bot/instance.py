"""One ``helpdesk run`` per database: a lock held for as long as the bot runs.

Two bots on one database would both handle updates (two pollers of one token each get
some of them, and Telegram's Conflict) and both run the sweeps and the SLA alerts. So
``helpdesk run`` takes this lock before it touches Telegram, and a second one stops with
one line (exit status 2). Only ``run`` takes it: the demo, the tests, ``migrate``, ``kb``,
``report`` and ``backup`` do not.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of
  its own. The bot's event loops come and go (the checks at start, the migrations, PTB's
  loop), so the connection lives in a thread with a loop of its own. The key comes from
  the schema (:func:`advisory_key`): desks in other schemas of one database do not
  collide. PostgreSQL frees the lock when the session ends: the process stops or is
  killed (SIGKILL too: the kernel closes the socket), or the server restarts. The
  server's TCP keepalives, set on this connection, end the session of a machine that
  vanished within minutes. A connection lost while the bot runs (a server restart) is
  opened again and the lock taken again; if another instance took it meanwhile, this
  one stops (``on_taken``). After a network blip the server may still keep the lost
  session and its lock (the close never reached it): the bot recognises its own earlier
  session by its server process id and ends it (:func:`end_own_session`).
- SQLite: ``flock`` on ``<database file>.lock``, next to the database, held through an
  open file that the kernel closes on any exit (SIGKILL too). The file holds the pid of
  the instance, for the second one's message. An in-memory database needs none.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

#: Seconds between two checks that the lock's connection is alive (a lost one is
#: usually noticed at once: the server closes it), and between two attempts to take
#: the lock again once it is lost.
CHECK_SECONDS = 30
RETAKE_SECONDS = 5

#: The server notices a client gone without closing its connection (a machine that
#: died) after about idle + interval * count seconds, and frees the lock.
KEEPALIVES = {"tcp_keepalives_idle": "60", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "6"}


class InstanceRunning(Exception):
    """Another ``helpdesk run`` holds the lock of this database."""

    def __init__(self, holder: str = ""):
        super().__init__(holder or "another instance")
        self.holder = holder  # e.g. "pid 1234", when known


def advisory_key(schema: str | None) -> int:
    """The advisory lock's key (a signed 64-bit number) for the desk in ``schema``; no
    schema is PostgreSQL's default one, ``public`` (two configs, one naming it and one
    not, share their tables and so their lock)."""
    digest = hashlib.sha256(f"helpdesk run:{schema or 'public'}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file(url: str) -> Path | None:
    """Where a SQLite database's lock is held; None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    path = Path(database).resolve()
    return path.with_name(path.name + ".lock")


class InstanceLock:
    """What :func:`hold` returns: ``release()`` it when the bot has stopped."""

    taken_over = False  # the lock was lost and another instance has it now

    def release(self) -> None:
        pass


def hold(url: str, schema: str | None, *, timeout: float, on_taken: Callable[[], None]) -> InstanceLock:
    """Take the lock of the database at ``url`` or raise :class:`InstanceRunning`; a
    database that cannot be reached raises what its driver raises (an ``OSError`` for
    the lock file)."""
    if make_url(url).get_backend_name() == "sqlite":
        path = lock_file(url)
        return _FileLock(path) if path is not None else InstanceLock()
    return _AdvisoryLock(url, schema, timeout, on_taken)


class _FileLock(InstanceLock):
    def __init__(self, path: Path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 20, 0).decode(errors="replace").strip()
            os.close(fd)
            raise InstanceRunning(f"pid {pid}" if pid.isdigit() else "") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the file's last descriptor
            self._fd = None


class _AdvisoryLock(InstanceLock):
    def __init__(self, url: str, schema: str | None, timeout: float, on_taken: Callable[[], None]):
        self._url = url
        self._key = advisory_key(schema)
        self._timeout = timeout
        self._on_taken = on_taken
        self._pid: tuple[int, Any] | None = None  # the server process (pid, start) of the session that holds the lock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._hold(ready),), name="instance-lock", daemon=True)
        self._thread.start()
        ready.result()  # InstanceRunning, or why the database cannot be reached

    def release(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed meanwhile: the thread has ended
                pass
        self._thread.join(timeout=10)

    async def _hold(self, ready: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        engine = create_async_engine(
            self._url, poolclass=NullPool, connect_args={"server_settings": {**KEEPALIVES, "application_name": "helpdesk run (instance lock)"}}
        )
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    conn = await self._take(engine)
            except BaseException as exc:  # noqa: BLE001 (handed to the caller of hold)
                ready.set_exception(exc)
                return
            ready.set_result(None)
            while conn is not None:
                await self._watch(conn)
                await _close(conn)
                conn = None if self._stop.is_set() else await self._take_again(engine)
        finally:
            await engine.dispose()

    async def _take(self, engine: Any) -> AsyncConnection:
        conn = await engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # never idle in a transaction
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})).scalar()
        except BaseException:
            await _close(conn)
            raise
        if not got:
            await _close(conn)
            raise InstanceRunning()
        self._pid = tuple((await conn.execute(text(_ME))).one())
        return conn

    async def _watch(self, conn: AsyncConnection) -> None:
        """Until the bot stops or the connection is lost."""
        assert self._stop is not None
        lost = asyncio.Event()
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_termination_listener(lambda _connection: lost.set())  # type: ignore[union-attr]
        while not self._stop.is_set():
            waits = {asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(lost.wait())}
            _, pending = await asyncio.wait(waits, timeout=CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            for wait in pending:
                wait.cancel()
            if self._stop.is_set():
                return
            try:
                if lost.is_set():
                    raise ConnectionError("closed by the server")
                async with asyncio.timeout(self._timeout):
                    await conn.execute(text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 (whatever the driver raises: the lock is gone with the session)
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("lost the database connection that holds this instance's lock (%s); taking it again", reason)
                return

    async def _take_again(self, engine: Any) -> AsyncConnection | None:
        """The lock, again, once the server answers; None if the bot stops first or
        another instance has it now (then that one goes on and this one stops)."""
        assert self._stop is not None
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), RETAKE_SECONDS)
                return None
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(self._timeout):
                    conn = await self._take(engine)
            except InstanceRunning:
                try:
                    async with asyncio.timeout(self._timeout):
                        if await end_own_session(engine, self._key, self._pid):
                            continue  # our own old session had it: ended, take it next round
                except Exception as exc:  # noqa: BLE001 (the server went away again: try again)
                    log.debug("could not look up the instance lock's holder yet: %s", exc)
                    continue
                log.critical("another helpdesk instance took this database's lock while its connection was lost: this one stops")
                self.taken_over = True
                self._on_taken()
                return None
            except Exception as exc:  # noqa: BLE001 (the server is still away: try again)
                log.debug("could not take the instance lock again yet: %s", exc)
                continue
            log.warning("this instance holds the database's lock again")
            return conn


#: The server process of this session: (pid, its start; a pid alone may be reused).
_ME = "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"


async def lock_holder(conn: AsyncConnection, key: int) -> tuple[int, Any] | None:
    """The server process (pid, its start) whose session holds the advisory lock ``key``
    in this database; None when nobody does. (A session of another role shows no start.)"""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks shows the key as two unsigned halves
    row = (await conn.execute(
        text(
            "SELECT l.pid, a.backend_start FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF},
    )).first()
    return tuple(row) if row is not None else None  # type: ignore[return-value]


async def end_own_session(engine: Any, key: int, own: tuple[int, Any] | None) -> bool:
    """The lock could not be taken again after its connection was lost: who holds it?
    The bot's own earlier session, when the server has not noticed yet that it is gone (a
    network blip: the client gave the connection up, its close never reached the server,
    whose keepalives would end it only minutes later): that session is ended
    (``pg_terminate_backend``: the same role may) and True returned, so that the lock is
    taken next time. Nobody (freed meanwhile): True. Another session (another instance):
    False."""
    async with engine.connect() as conn:
        holder = await lock_holder(conn, key)
        if holder is None:
            return True
        if holder != own:
            return False
        log.warning("the database still holds this instance's lock for its lost connection (server process %s): ending that session", holder[0])
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder[0]})
        await conn.commit()
        return True


async def _close(conn: AsyncConnection) -> None:
    try:
        await conn.close()
    except Exception:  # noqa: BLE001 (a connection already lost)
        try:
            await conn.invalidate()
        except Exception:  # noqa: BLE001
            pass
