"""One ``helpdesk run`` per database (bot/instance.py): the real processes, polling a
local fake Bot API. A second start on the same database stops with one line (exit
status 2) before it asks Telegram anything; the lock goes with the first process,
however it ends; only ``run`` takes it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cli import main
from bot.db import make_engine
from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram
from bot.instance import RETAKE_SECONDS, advisory_key, lock_holder
from tests.support import PG_URL, drop_schema
from tests.test_run_process import ROOT, TOKEN, wait_for
from tests.test_run_start import helpdesk, one_clear_line

ANOTHER = "another helpdesk instance is running on this database"


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):  # type: ignore[no-untyped-def]
    """The [database] section of a config: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f'url = "sqlite+aiosqlite:///{tmp_path}/run.db"\n', None
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"helpdesk_lock_{uuid.uuid4().hex[:10]}"
    yield f'url = "{PG_URL}"\nschema = "{schema}"\n', schema
    asyncio.run(drop_schema(PG_URL, schema))


def config(tmp_path: Path, server: FakeBotServer, database: str) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[telegram]\napi_base_url = "{server.url}"\n[database]\n{database}[staff]\nchat_id = -1009999\n')
    return cfg


class Bot:
    """``helpdesk run`` in the background, its output in a file."""

    def __init__(self, cfg: Path, log: Path):
        self.log = log
        env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        env.pop("HELPDESK_CONFIG", None)
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def started(self) -> bool:
        assert wait_for(lambda: "Application started" in self.output or self.proc.poll() is not None, timeout=60), self.output
        return "Application started" in self.output

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def test_a_second_instance_on_the_same_database_stops_before_it_asks_telegram_anything(tmp_path, database):
    url, schema = database
    tg = FakeTelegram()
    with FakeBotServer(tg, TOKEN) as server:
        cfg = config(tmp_path, server, url)
        first = Bot(cfg, tmp_path / "first.log")
        try:
            assert first.started(), first.output
            asked = sum(method == "getMe" for _, method in server.requests)
            line = one_clear_line(helpdesk(cfg, "run"), status=2)
            assert f"{cfg}: database.url: {ANOTHER} (" in line, line
            assert "stop it first" in line
            if schema is None:
                assert f"pid {first.proc.pid})" in line  # the SQLite lock file names the holder
            assert sum(method == "getMe" for _, method in server.requests) == asked  # Telegram never heard of it
            # the commands beside a running bot take no lock
            assert main(["--config", str(cfg), "migrate"]) == 0
            if schema is None:
                assert main(["--config", str(cfg), "backup", "--out", str(tmp_path / "copy.db")]) == 0
            # the first goes on answering
            asyncio.run(tg.user(3001, "Palesa").send("/start"))
            assert wait_for(lambda: tg.sent("sendMessage", 3001)), tg.calls
        finally:
            assert first.stop() == 0, first.output
        assert ANOTHER not in first.output

        # stopped, the lock is free; killed (SIGKILL), too
        second = Bot(cfg, tmp_path / "second.log")
        try:
            assert second.started(), second.output
        finally:
            assert second.stop(signal.SIGKILL) == -signal.SIGKILL
        third = Bot(cfg, tmp_path / "third.log")
        try:
            assert third.started(), third.output
        finally:
            assert third.stop() == 0, third.output


def holder(schema: str) -> int | None:
    """The PostgreSQL backend (pid) that holds the instance lock of ``schema``."""

    async def query() -> int | None:
        engine = make_engine(PG_URL)  # type: ignore[arg-type]
        try:
            async with engine.connect() as conn:
                found = await lock_holder(conn, advisory_key(schema))
                return found[0] if found is not None else None
        finally:
            await engine.dispose()

    return asyncio.run(query())


def terminate(pid: int) -> None:
    async def run() -> None:
        engine = make_engine(PG_URL)  # type: ignore[arg-type]
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
def test_a_lock_whose_connection_is_lost_is_taken_again(tmp_path):
    """A PostgreSQL restart ends the session, and the lock with it: the bot takes it
    again as soon as the server answers, and keeps out a second instance as before."""
    tg = FakeTelegram()
    schema = f"helpdesk_lock_{uuid.uuid4().hex[:10]}"
    try:
        with FakeBotServer(tg, TOKEN) as server:
            cfg = config(tmp_path, server, f'url = "{PG_URL}"\nschema = "{schema}"\n')
            bot = Bot(cfg, tmp_path / "bot.log")
            try:
                assert bot.started(), bot.output
                before = holder(schema)
                assert before is not None
                terminate(before)
                assert wait_for(lambda: holder(schema) not in (None, before), timeout=RETAKE_SECONDS + 20), bot.output
                assert ANOTHER in one_clear_line(helpdesk(cfg, "run"), status=2)
                assert bot.proc.poll() is None
            finally:
                assert bot.stop() == 0, bot.output
        assert "lost the database connection that holds this instance's lock" in bot.output
        assert "this instance holds the database's lock again" in bot.output
    finally:
        asyncio.run(drop_schema(PG_URL, schema))  # type: ignore[arg-type]


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
def test_an_instance_whose_lock_another_took_meanwhile_stops(tmp_path):
    """While the lock's connection was away, another instance started (it got the lock):
    this one stops (exit status 2), leaving the database to that one."""
    tg = FakeTelegram()
    schema = f"helpdesk_lock_{uuid.uuid4().hex[:10]}"
    key = advisory_key(schema)
    try:
        with FakeBotServer(tg, TOKEN) as server:
            cfg = config(tmp_path, server, f'url = "{PG_URL}"\nschema = "{schema}"\n')
            bot = Bot(cfg, tmp_path / "bot.log")
            try:
                assert bot.started(), bot.output
                pid = holder(schema)
                assert pid is not None

                async def take_it() -> int | None:
                    engine = make_engine(PG_URL)  # type: ignore[arg-type]
                    try:
                        async with engine.connect() as conn:
                            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                            got = False
                            for _ in range(200):  # the bot tries again after RETAKE_SECONDS only
                                got = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar()
                                if got:
                                    break
                                await asyncio.sleep(0.01)
                            assert got
                            await conn.commit()
                            for _ in range(300):
                                if bot.proc.poll() is not None:
                                    break
                                await asyncio.sleep(0.1)
                            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                            await conn.commit()
                            return bot.proc.poll()
                    finally:
                        await engine.dispose()

                assert asyncio.run(take_it()) == 2, bot.output
            finally:
                bot.stop()
        assert "another helpdesk instance took this database's lock while its connection was lost: this one stops" in bot.output
        assert "Traceback" not in bot.output
    finally:
        asyncio.run(drop_schema(PG_URL, schema))  # type: ignore[arg-type]


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
def test_after_a_network_blip_the_lock_its_own_old_session_still_holds_is_taken_back():
    """A network blip: the bot gave its lock's connection up, but its close never reached
    the server, which still keeps that session, and the lock with it. Trying to take the
    lock again, the bot finds its own old session holding it (same server process and
    start), ends it and gets the lock: it does not stop as if another instance had taken
    it. A session of anyone else is left alone (the bot then stops, as above)."""
    from bot.instance import _ME, end_own_session

    key = advisory_key(f"helpdesk_lock_{uuid.uuid4().hex[:10]}")

    async def scenario() -> None:
        engine = make_engine(PG_URL)  # type: ignore[arg-type]
        try:
            old = await (await engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
            assert (await old.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar()
            own = tuple((await old.execute(text(_ME))).one())
            async with engine.connect() as probe:
                other = tuple((await probe.execute(text(_ME))).one())
                assert not await end_own_session(engine, key, other)  # held by someone else: not ended
                assert not (await probe.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar()
                assert await end_own_session(engine, key, own)  # its own old session: ended
                got = False
                for _ in range(100):
                    got = (await probe.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar()
                    if got:
                        break
                    await asyncio.sleep(0.05)
                assert got
                assert await end_own_session(engine, key, own) is False  # now the probe holds it
                await probe.execute(text("SELECT pg_advisory_unlock_all()"))
                await probe.commit()
            assert await end_own_session(engine, key, own)  # nobody holds it
            await old.invalidate()
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_no_schema_and_the_public_schema_share_one_lock():
    """A config naming ``schema = "public"`` and one naming no schema use the same tables
    (PostgreSQL's default schema): they must not both run."""
    assert advisory_key(None) == advisory_key("public") == advisory_key("")
    assert advisory_key("public") != advisory_key("desk_two")
