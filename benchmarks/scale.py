"""Scale: the staff's and users' everyday views over a big PostgreSQL (or SQLite) database.

Seeds PostgreSQL (the database is wiped!) or, with ``--sqlite FILE``, a new SQLite file with 100,000 users, 1,000,000 tickets and
1,000,000 ads spread over two years with their event log (about 3 events per ad;
one ad in ten had a rejected first round and was resubmitted) (bulk COPY, with a
progress bar), a realistic few thousand of them still open or waiting for moderation,
then times, through the real Application and the in-process fake Bot API:

- ``/queue`` in the staff chat (open tickets, oldest first),
- ``/mytickets`` of a user with a long history,
- ``/modqueue`` (ads waiting for a moderator),
- the monthly report of October 2026 (figures, charts and HTML).

Targets: 50 ms, 50 ms, 50 ms and 5 s (median of several runs).

    python -m benchmarks.scale --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/bench
    python -m benchmarks.scale --sqlite /tmp/scale.db
    [--tickets 1000000] [--ads 1000000] [--no-seed]

SQLite is seeded through SQLAlchemy Core (``executemany``; the types convert the values
as the bot stores them), without the ``COPY`` PostgreSQL has.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text
from tqdm import tqdm

from bot.app import build_app, running
from bot.config import parse_settings
from bot.db import make_engine
from bot.fake_telegram import FakeTelegram
from bot.migrate import upgrade

STAFF_CHAT = -1001000000001
CARD_IDS = 1_000_000  # made-up message ids of the seeded cards
FIRST_USER = 10_000_000
HEAVY_USER = FIRST_USER  # the user whose /mytickets is timed: many tickets
SEED = 20261125
BATCH = 50_000
RUNS = 7

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=730)


def _raw_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _reset(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    await asyncio.to_thread(upgrade, url)


def _users(n: int) -> Iterator[tuple]:
    for i in range(n):
        seen = NOW - SPAN + timedelta(seconds=i * SPAN.total_seconds() / n)
        yield (FIRST_USER + i, f"User{i}", None, None, "en", None, "active", seen, seen, None, None)


def _tickets(n: int, users: int, rng: random.Random) -> Iterator[tuple]:
    categories = [("ads", "general"), ("account", "general"), ("payments", "general"), ("safety", "general"), ("technical", "it"), ("other", "general")]
    open_every = max(1, n // 2000)  # about 2,000 open tickets
    for i in range(n):
        created = NOW - SPAN + timedelta(seconds=i * SPAN.total_seconds() / n)
        escalated = created + timedelta(minutes=1)
        category, department = categories[i % len(categories)]
        user = HEAVY_USER if i % 5000 == 0 else FIRST_USER + rng.randrange(users)
        if i % open_every == 0:
            status, first, resolved, closed = rng.choice(["new", "claimed", "waiting"]), None, None, None
        else:
            first = escalated + timedelta(minutes=rng.randint(2, 600))
            resolved = first + timedelta(minutes=rng.randint(5, 3000))
            closed = resolved + timedelta(days=7)
            status = "closed"
        due = escalated + timedelta(hours=4)
        yield (
            i + 1, user, category, department, "normal", f"Problem number {i}", status, None, None, "[]",
            # every case reached the staff chat and has its card there (message ids made up)
            created, escalated, first, resolved, closed, "resolved" if closed else None, STAFF_CHAT, None, CARD_IDS + i,
            due, due if first is None else None, due + timedelta(days=1), None, None, 0, False, False, False, 0, None,
        )


TICKET_COLUMNS = [
    "id", "user_id", "category", "department", "priority", "subject", "status", "assignee_id", "question_id", "offered",
    "created_at", "escalated_at", "first_response_at", "resolved_at", "closed_at", "close_reason", "staff_chat_id",
    "topic_id", "card_message_id", "first_due_at", "reply_due_at", "resolve_due_at", "paused_at", "waiting_since",
    "sla_level", "first_response_breached", "resolution_breached", "user_blocked_bot", "reopen_count", "learned_entry_id",
]

AD_COLUMNS = [
    "id", "user_id", "status", "step", "editing", "category", "subcategory", "title", "description", "price_kind",
    "price_amount", "currency", "location", "contact", "phone", "created_at", "updated_at", "submitted_at", "decided_at",
    "decided_by", "decision_reason", "decision_note", "auto_approved", "resubmissions", "expires_at",
    "mod_chat_id", "mod_message_id",
]

USER_COLUMNS = [
    "id", "first_name", "last_name", "username", "language_code", "locale", "status", "first_seen", "last_seen",
    "blocked_until", "status_reason",
]


def _ads(n: int, users: int, rng: random.Random) -> Iterator[tuple]:
    from decimal import Decimal

    categories = ["vehicles", "property", "electronics", "home", "pets", "jobs", "services"]
    pending_every = max(1, n // 500)  # about 500 waiting for a moderator
    for i in range(n):
        created = NOW - SPAN + timedelta(seconds=i * SPAN.total_seconds() / n)
        # one in ten: rejected at first, fixed and resubmitted 4 hours later
        second_round = i % 10 == 1
        submitted = created + timedelta(hours=4 if second_round else 0, minutes=10)
        if i % pending_every == 0:
            status, decided, expires = "submitted", None, None
        else:
            status = rng.choice(["approved", "expired", "expired", "sold", "rejected", "deleted"])
            decided = submitted + timedelta(minutes=rng.randint(1, 900))
            expires = decided + timedelta(days=30)
        yield (
            i + 1, FIRST_USER + rng.randrange(users), status, None, False, categories[i % len(categories)], None,
            f"Item for sale {i}", "A fine item in good condition.", "fixed", Decimal(rng.randint(50, 90000)), "ZAR",
            "Johannesburg", "bot", None, created, decided or submitted, submitted, decided, 900001 if decided else None,
            None, None, False, 1 if second_round else 0, expires,
            STAFF_CHAT, CARD_IDS + 2_000_000 + i,  # every submission had its moderation card
        )


AD_EVENT_COLUMNS = ["ad_id", "user_id", "category", "kind", "actor_id", "reason", "at"]


def _ad_events(n: int, users: int) -> Iterator[tuple]:
    """The event log of the ads of ``_ads`` (replayed with the same random sequence), as
    ads/service.py writes it: the rounds, the decision, how the ad ended."""
    for row in _ads(n, users, random.Random(SEED + 1)):
        ad_id, user, status, category, created, submitted, decided, by, resubmissions, expires = (
            row[0], row[1], row[2], row[5], row[15], row[17], row[18], row[19], row[23], row[24]
        )
        if resubmissions:
            first = created + timedelta(minutes=10)
            yield (ad_id, user, category, "submitted", None, None, first)
            yield (ad_id, user, category, "rejected", 900002, "photos", first + timedelta(hours=1))
            yield (ad_id, user, category, "reopened", None, None, first + timedelta(hours=2))
            yield (ad_id, user, category, "resubmitted", None, None, submitted)
        else:
            yield (ad_id, user, category, "submitted", None, None, submitted)
        if decided is None:
            continue
        if status == "rejected":
            yield (ad_id, user, category, "rejected", by, "scam", decided)
            continue
        yield (ad_id, user, category, "approved", by, None, decided)
        if status == "expired":
            yield (ad_id, user, category, "expired", None, None, min(expires, NOW))
        elif status in ("sold", "deleted"):
            yield (ad_id, user, category, status, None, None, min(decided + timedelta(days=2), NOW))


async def seed(url: str, users: int, tickets: int, ads: int) -> None:
    rng = random.Random(SEED)
    await _reset(url)
    conn = await asyncpg.connect(_raw_dsn(url))
    try:
        for table, columns, rows, total in (
            ("users", USER_COLUMNS, _users(users), users),
            ("tickets", TICKET_COLUMNS, _tickets(tickets, users, rng), tickets),
            ("ads", AD_COLUMNS, _ads(ads, users, random.Random(SEED + 1)), ads),
            ("ad_events", AD_EVENT_COLUMNS, _ad_events(ads, users), int(ads * 2.97)),
        ):
            with tqdm(total=total, desc=f"seeding {table}", unit="rows", unit_scale=True) as bar:
                while True:
                    batch = [row for _, row in zip(range(BATCH), rows)]
                    if not batch:
                        break
                    await conn.copy_records_to_table(table, records=batch, columns=columns)
                    bar.update(len(batch))
            if table in ("tickets", "ads"):
                await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {total})")
        # what autovacuum does soon after a bulk load on a live server (statistics, and the
        # visibility map without which an index-only scan still reads the table)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def seed_sqlite(path: Path, users: int, tickets: int, ads: int) -> None:
    """The same rows as :func:`seed`, in a new SQLite file (an existing one is replaced)."""
    from sqlalchemy import JSON, create_engine

    from bot.db import Base

    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    upgrade(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    rng = random.Random(SEED)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            for name, columns, rows, total in (
                ("users", USER_COLUMNS, _users(users), users),
                ("tickets", TICKET_COLUMNS, _tickets(tickets, users, rng), tickets),
                ("ads", AD_COLUMNS, _ads(ads, users, random.Random(SEED + 1)), ads),
                ("ad_events", AD_EVENT_COLUMNS, _ad_events(ads, users), int(ads * 2.97)),
            ):
                table = Base.metadata.tables[name]
                as_json = [isinstance(table.c[c].type, JSON) for c in columns]
                with tqdm(total=total, desc=f"seeding {name}", unit="rows", unit_scale=True) as bar:
                    while True:
                        batch = [
                            {c: json.loads(v) if j and isinstance(v, str) else v for c, v, j in zip(columns, row, as_json)}
                            for _, row in zip(range(BATCH), rows)
                        ]
                        if not batch:
                            break
                        conn.execute(table.insert(), batch)
                        bar.update(len(batch))
    finally:
        engine.dispose()


async def _median_ms(step: Callable[[], Awaitable[object]]) -> float:
    await step()  # warm
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def measure(url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = parse_settings(
            {"database": {"url": url}, "staff": {"chat_id": STAFF_CHAT}, "kb": {"import_on_start": False}}, "<bench>", Path(tmp)
        )
        tg = FakeTelegram()
        tg.add_group(STAFF_CHAT, "Staff")
        app = build_app(settings, request=tg)
        tg.attach(app)
        staff = tg.staff(900001, "Thandi", STAFF_CHAT, status="administrator")  # staff and moderator
        heavy = tg.user(HEAVY_USER, "User0")
        results: dict[str, float] = {}
        async with running(app):
            for name, who, command, chat, expect in (
                ("/queue (staff chat)", staff, "/queue", STAFF_CHAT, "Open tickets"),
                ("/mytickets (200 tickets)", heavy, "/mytickets", HEAVY_USER, "#"),
                ("/modqueue (staff chat)", staff, "/modqueue", STAFF_CHAT, "Ads waiting for moderation"),
            ):
                results[name] = await _median_ms(lambda who=who, command=command, chat=chat: who.send(command, chat_id=chat))
                answer = tg.last_bot_message(chat).text
                if expect not in answer:  # a refusal or an error would be fast and meaningless
                    raise RuntimeError(f"{name}: unexpected answer {answer[:200]!r}")
            results["monthly report (2026-10)"] = await _median_ms(_report_step(app))
            results["the minute's sweep (SLA, repairs)"] = await _median_ms(_sweep_step(app))
    return results


def _report_step(app) -> Callable[[], Awaitable[object]]:  # type: ignore[no-untyped-def]
    """The monthly report of October 2026: every section's figures, the charts and the
    HTML, as ``/report`` and the scheduler build it."""
    from reports import build_report

    desk = app.bot_data["desk"]

    async def step() -> object:
        async with desk.sessions() as session:
            report = await build_report(session, desk.settings, "2026-10")
        if report.figures.tickets["opened"] == 0:  # an empty report would be fast and meaningless
            raise RuntimeError("the monthly report found no tickets in 2026-10")
        return report

    return step


def _sweep_step(app) -> Callable[[], Awaitable[object]]:  # type: ignore[no-untyped-def]
    """One run of the sweep that the JobQueue starts every minute (SLA deadlines, card,
    relay, notice and channel repairs): it must stay far below its interval. The warm-up
    run posts the cards the seeded rows lack; the timed runs find the steady state."""
    [job] = app.job_queue.get_jobs_by_name("sla_sweep")

    async def step() -> object:
        return await job.run(app)

    return step


TARGETS = {
    "/queue (staff chat)": 50, "/mytickets (200 tickets)": 50, "/modqueue (staff chat)": 50, "monthly report (2026-10)": 5000,
    # not in the issue: the sweep runs every minute, so it must take a small part of that
    "the minute's sweep (SLA, repairs)": 1000,
}


async def main_async(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    url = f"sqlite+aiosqlite:///{Path(args.sqlite).resolve()}" if args.sqlite else args.postgres
    if not args.no_seed:
        start = time.perf_counter()
        if args.sqlite:
            await asyncio.to_thread(seed_sqlite, Path(args.sqlite).resolve(), args.users, args.tickets, args.ads)
        else:
            await seed(args.postgres, args.users, args.tickets, args.ads)
        print(f"seeded {args.users:,} users, {args.tickets:,} tickets, {args.ads:,} ads in {time.perf_counter() - start:.0f} s")
    results = await measure(url)
    print(f"Scale, {'SQLite' if args.sqlite else 'PostgreSQL'}, median of {RUNS} runs (ms), through the real Application")
    print(f"{'view':36} {'ms':>9} {'target':>8}")
    for name, ms in results.items():
        target = TARGETS[name]
        print(f"{name:36} {ms:9.1f} {f'<{target}':>8} {'ok' if ms < target else 'MISS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=os.environ.get("BENCH_DATABASE_URL") is None)
    where.add_argument("--postgres", default=os.environ.get("BENCH_DATABASE_URL"), help="a PostgreSQL database to wipe")
    where.add_argument("--sqlite", metavar="FILE", help="an SQLite file to create (replaced if it exists)")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--ads", type=int, default=1_000_000)
    parser.add_argument("--no-seed", action="store_true", help="time only, on the database as it is")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
