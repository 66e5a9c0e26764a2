"""Updates per second through the real Application, offline.

Three workloads, all driven through the in-process fake Bot API
(:class:`bot.fake_telegram.FakeTelegram`) one update after another with
``Application.process_update``, in one run, so that the ratios between them mean
something on a shared, noisy machine:

(a) a bare python-telegram-bot echo bot: one handler that replies with the text;
    the ceiling that PTB, the fake API and this machine allow;
(b) the FAQ answer path of the help desk (track the user, match, log the question,
    render the answer, reply) with 500 distinct users asking the starter knowledge
    base's own phrasings;
(c) a ticket relay, user to staff: 50 users with an open case each write to it, and
    each message is copied into the staff chat and recorded.

Each runs on SQLite (a file in a temporary folder) and, when ``--postgres URL`` is
given (or ``TEST_DATABASE_URL`` is set), on PostgreSQL. Targets: (b) ≥ 0.6 × (a) and
(c) ≥ 0.3 × (a).

    python -m benchmarks.throughput [--updates 2000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import event, text
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import OFFLINE_TOKEN, build_app, running
from bot.config import parse_settings
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.migrate import upgrade
from kb.kbfile import load_kb

STAFF_CHAT = -1001000000001
USERS = 500
TICKET_USERS = 50
ROUNDS = 3  # each workload is measured this many times; the median counts


def _trim(tg: FakeTelegram) -> None:
    """Forget what the fake API recorded so far (keeps its memory flat over long runs)."""
    tg.calls.clear()
    tg.events.clear()
    tg.messages.clear()


async def echo_bot(n: int) -> float:
    """(a) updates per second of a bare PTB echo bot."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(update.effective_message.text)  # type: ignore[union-attr]

    tg = FakeTelegram()
    app = ApplicationBuilder().token(OFFLINE_TOKEN).request(tg).get_updates_request(tg).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    tg.attach(app)
    users = [tg.user(7_000_000 + i, f"U{i}") for i in range(USERS)]
    async with app:
        await app.start()
        rate = await _timed(n, lambda i: users[i % USERS].send(f"hello number {i}"), tg, key=("a", "-"))
        await app.stop()
    return rate


# Costs per update that do not depend on the machine's load: counted in an extra,
# untimed pass after each timed one. (workload, backend) -> (Python calls, SQL
# statements, transactions) per update.
COSTS: dict[tuple[str, str], tuple[float, float, float]] = {}
COST_UPDATES = 200


async def _timed(
    n: int, step: Callable[[int], Awaitable[object]], tg: FakeTelegram, *, app: Application | None = None, key: tuple[str, str] | None = None
) -> float:
    warm = min(50, n // 10)
    for i in range(warm):
        await step(i)
    _trim(tg)
    start = time.perf_counter()
    for i in range(warm, warm + n):
        await step(i)
        if i % 500 == 0:
            _trim(tg)
    rate = n / (time.perf_counter() - start)
    if key is not None and key not in COSTS:
        COSTS[key] = await _count_costs(step, warm + n, app)
    return rate


async def _count_costs(step: Callable[[int], Awaitable[object]], first: int, app: Application | None) -> tuple[float, float, float]:
    """Python function calls (this thread), SQL statements and transactions per update."""
    calls = statements = transactions = 0

    def on_call(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    def on_statement(*args: object) -> None:
        nonlocal statements
        statements += 1

    def on_begin(*args: object) -> None:
        nonlocal transactions
        transactions += 1

    engine = app.bot_data["desk"].engine.sync_engine if app is not None and "desk" in app.bot_data else None
    if engine is not None:
        event.listen(engine, "before_cursor_execute", on_statement)
        event.listen(engine, "begin", on_begin)
    sys.setprofile(on_call)
    try:
        for i in range(first, first + COST_UPDATES):
            await step(i)
    finally:
        sys.setprofile(None)
        if engine is not None:
            event.remove(engine, "before_cursor_execute", on_statement)
            event.remove(engine, "begin", on_begin)
    return calls / COST_UPDATES, statements / COST_UPDATES, transactions / COST_UPDATES


def _settings(url: str, folder: Path):  # type: ignore[no-untyped-def]
    # the flood limit off: (c) has each of 50 users write dozens of messages within seconds
    settings = {"database": {"url": url}, "staff": {"chat_id": STAFF_CHAT}, "limits": {"messages_per_minute": 0}}
    return parse_settings(settings, "<bench>", folder)


async def _reset_postgres(url: str) -> None:
    from bot.db import make_engine

    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _prepare(url: str) -> None:
    if url.startswith("postgresql"):
        await _reset_postgres(url)
    await asyncio.to_thread(upgrade, url)


async def faq_path(url: str, folder: Path, n: int, backend: str = "sqlite") -> float:
    """(b) questions answered per second, 500 distinct users."""
    await _prepare(url)
    doc, _ = load_kb(_settings(url, folder).kb.path)
    questions = [p for entry in doc.entries for p in entry.phrasings]
    tg = FakeTelegram()
    tg.add_group(STAFF_CHAT, "Staff")
    app = build_app(_settings(url, folder), request=tg)
    tg.attach(app)
    users = [tg.user(7_100_000 + i, f"U{i}") for i in range(USERS)]
    async with running(app):
        step = lambda i: users[i % USERS].send(questions[(i * 7) % len(questions)])  # noqa: E731
        rate = await _timed(n, step, tg, app=app, key=("b", backend))
        _trim(tg)
        await _faq_parts(app, step, questions, 2 * n, max(100, n // 2), backend)
        return rate


# Where an FAQ update's time goes: after the timed pass, each of n/2 more updates is
# followed by its matcher call and its unit of work run alone, interleaved so that all
# three meet the same load. (backend) -> [(update, matcher, database) µs], per round.
PARTS: dict[str, list[tuple[float, float, float]]] = {}


async def _faq_parts(app: Application, step: Callable[[int], Awaitable[object]], questions: list[str], first: int, n: int, backend: str) -> None:
    from bot.db import UpdateMark, current_update, unit_of_work
    from bot.users import in_progress
    from kb import service

    desk = app.bot_data["desk"]
    kb = desk.settings.kb
    total = matcher = database = 0.0
    for i in range(first, first + n):
        text = questions[(i * 7) % len(questions)]
        user_id = 7_100_000 + i % USERS
        t0 = time.perf_counter()
        await step(i)
        t1 = time.perf_counter()
        desk.kb.matcher.match(text, limit=service.MAX_SUGGESTIONS)
        t2 = time.perf_counter()
        # what handlers.faq.on_text does in its unit of work (the matcher included: taken off below)
        current_update.set(UpdateMark(10**9 + i, user_id, 10**9 + i, desk.clock(), asyncio.current_task()))
        async with unit_of_work(desk.sessions) as session:
            await in_progress(session, user_id=user_id)
            await service.ask(
                session, desk.kb, user_id=user_id, text=text,
                answer_threshold=kb.answer_threshold, suggest_threshold=kb.suggest_threshold, now=desk.clock(),
            )
        current_update.set(None)
        t3 = time.perf_counter()
        total += t1 - t0
        matcher += t2 - t1
        database += (t3 - t2) - (t2 - t1)
    PARTS.setdefault(backend, []).append((total * 1e6 / n, matcher * 1e6 / n, database * 1e6 / n))


async def relay_path(url: str, folder: Path, n: int, backend: str = "sqlite") -> float:
    """(c) user messages relayed into the staff chat per second."""
    await _prepare(url)
    tg = FakeTelegram()
    tg.add_group(STAFF_CHAT, "Staff")
    app = build_app(_settings(url, folder), request=tg)
    tg.attach(app)
    users: list[FakeUser] = [tg.user(7_200_000 + i, f"U{i}") for i in range(TICKET_USERS)]
    async with running(app):
        for user in users:
            await user.send("/support")
            await user.press("Something is broken")
            await user.send("My payment for a featured ad did not go through")
        opened = len([c for c in tg.sent("sendMessage", STAFF_CHAT)])
        if opened < TICKET_USERS:
            raise RuntimeError(f"only {opened} of {TICKET_USERS} cases reached the staff chat")
        return await _timed(n, lambda i: users[i % TICKET_USERS].send(f"more details, message {i}"), tg, app=app, key=("c", backend))


async def main_async(n: int, postgres: str | None) -> None:
    logging.basicConfig(level=logging.ERROR)
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        backends = [("sqlite", None)] + ([("postgresql", postgres)] if postgres else [])
        for _ in range(ROUNDS):
            _collect(results, ("a", "-"), await echo_bot(n))
            for name, url in backends:
                db_url = url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
                _wipe_sqlite(folder)
                _collect(results, ("b", name), await faq_path(db_url, folder, n, name))
                _wipe_sqlite(folder)
                _collect(results, ("c", name), await relay_path(db_url, folder, n, name))
    _report(results, n, [b for b, _ in backends])
    _report_parts(results, [b for b, _ in backends])


def _wipe_sqlite(folder: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (folder / f"bench.db{suffix}").unlink(missing_ok=True)


_SAMPLES: dict[tuple[str, str], list[float]] = {}


def _collect(results: dict[tuple[str, str], float], key: tuple[str, str], rate: float) -> None:
    _SAMPLES.setdefault(key, []).append(rate)
    results[key] = statistics.median(_SAMPLES[key])


def _report(results: dict[tuple[str, str], float], n: int, backends: list[str]) -> None:
    echo = results[("a", "-")]
    print(f"Throughput, {n} updates per workload, median of {ROUNDS} rounds, one process, one core")
    print(f"{'workload':44} {'backend':11} {'updates/s':>10} {'× echo':>8} {'target':>7}")
    print(f"{'(a) bare PTB echo bot':44} {'-':11} {echo:10.0f} {1.0:8.2f} {'':>7}")
    for key, label, target in (("b", "(b) FAQ answer, 500 users", 0.6), ("c", "(c) ticket relay user -> staff", 0.3)):
        for backend in backends:
            rate = results[(key, backend)]
            ratio = rate / echo
            mark = "ok" if ratio >= target else "MISS"
            print(f"{label:44} {backend:11} {rate:10.0f} {ratio:8.2f} {f'≥{target} {mark}':>7}")
    print()
    print(f"Cost per update (counted over {COST_UPDATES} more updates; does not depend on the machine's load)")
    print(f"{'workload':44} {'backend':11} {'Py calls':>10} {'× echo':>8} {'SQL stmts':>10} {'transactions':>13}")
    base = COSTS[("a", "-")][0]
    for (key, backend), (calls, statements, transactions) in sorted(COSTS.items()):
        label = {"a": "(a) bare PTB echo bot", "b": "(b) FAQ answer, 500 users", "c": "(c) ticket relay user -> staff"}[key]
        print(f"{label:44} {backend:11} {calls:10.0f} {calls / base:8.2f} {statements:10.1f} {transactions:13.1f}")


def _report_parts(results: dict[tuple[str, str], float], backends: list[str]) -> None:
    echo_us = 1e6 / results[("a", "-")]
    print()
    print("Where an FAQ update's time goes (µs; each update followed by its matcher call and its unit of work run alone)")
    print(f"{'backend':11} {'update':>8} {'matcher':>8} {'database':>9} {'the rest':>9}   {'echo':>6}   (b) × echo if free: {'db':>5} {'db+matcher':>11}")
    for backend in backends:
        update, matcher, database = (statistics.median(p[k] for p in PARTS[backend]) for k in range(3))
        rest = update - matcher - database
        print(
            f"{backend:11} {update:8.0f} {matcher:8.0f} {database:9.0f} {rest:9.0f}   {echo_us:6.0f}   {'':19}"
            f"{echo_us / (update - database):5.2f} {echo_us / rest:11.2f}"
        )
    print("the rest: PTB's dispatch through the bot's handler groups, the rate limiter, templates, keyboards, the fake API;")
    print("echo: (a)'s time per update, from its own rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000, help="updates per workload and round")
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"), help="PostgreSQL URL (the database is wiped)")
    args = parser.parse_args()
    asyncio.run(main_async(args.updates, args.postgres))


if __name__ == "__main__":
    main()
