"""Property-based tests: random Unicode into every handler that takes text.

Emoji, right-to-left and zero-width marks, NUL, ``</a>``, ``{{7*7}}``, 4096-character
strings... go to the FAQ, ticket descriptions and relays both ways, every ad draft
step, staff commands' arguments and ``/report N``. For every input: no handler fails
(nothing logged at ERROR, so the error handler was not reached) and the bot sends
nothing Telegram would refuse (the fake Bot API validates HTML, lengths and buttons
as Telegram does).

One desk per test (built here, on one event loop, for all the examples of that test):
the examples run one after another against the same bot, as a stream of messages
would. SQLite gets more examples than PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.app import build_app, running
from bot.fake_telegram import FakeTelegram
from tests.conftest import Desk
from tests.support import STAFF_CHAT, FakeClock, make_settings, wipe
from tests.test_ads_flow import DESCRIPTION, post_ad
from tests.test_escalation import card, open_ticket

SPECIAL = [
    "\u200f", "\u200e", "\u202e", "\u2066", "\u2069", "\u200b", "\u200d", "\ufeff", "\x00", "\x1b", "\r\n",
    "</a>", "<a href='javascript:x'>", "<b>", "</b></i>", "&", "&amp;", "&#0;", "<", ">", "<tg-spoiler>",
    "{{7*7}}", "{% raw %}", "${7*7}", "%s", "{}", "{0}", "\\", "'", '"', "`", "*_~|",
    "🙂", "👨‍👩‍👧‍👦", "🏳️‍🌈", "\U0001f600" * 3, "é", "e\u0301", "ـ", "שלום", "مرحبا", "中文", "R 1 500", "#12", "@user", "/start",
]
TEXTS = st.one_of(
    st.text(min_size=1, max_size=300),
    st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=6)), min_size=1, max_size=60).map("".join),
    st.builds(
        lambda piece, n: (piece * n)[:4096],
        st.sampled_from(["a", "é", "🙂", "<", "&", "\u200b", "ab ", "</a>", "\n", "👨‍👩‍👧‍👦"]),
        st.integers(min_value=1000, max_value=4096),
    ),
).filter(lambda t: t.strip() != "")


def examples(database) -> int:
    """40 per handler on SQLite, 10 on PostgreSQL; PROPERTY_EXAMPLES=N for a longer hunt."""
    if os.environ.get("PROPERTY_EXAMPLES"):
        return int(os.environ["PROPERTY_EXAMPLES"])
    return 40 if database.backend == "sqlite" else 10


def hypothesis_settings(database, limit: int | None = None):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=min(examples(database), limit or 1000), deadline=None, database=None,
        # no shrinking: a failure reports the input as generated, and the run stays short
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def live_desk(database) -> Iterator[tuple[asyncio.Runner, Desk]]:  # type: ignore[no-untyped-def]
    """The real Application on a fresh database, on one loop shared by all examples."""
    runner = asyncio.Runner()
    stack = AsyncExitStack()

    async def start() -> Desk:
        await wipe(database)
        clock = FakeClock()
        tg = FakeTelegram(clock=lambda: clock.now.timestamp())
        tg.add_group(STAFF_CHAT, "Support staff")
        app = build_app(make_settings(database), request=tg, clock=clock)
        tg.attach(app)
        await stack.enter_async_context(running(app))
        return Desk(app, tg, clock, database)

    try:
        yield runner, runner.run(start())
    finally:
        runner.run(stack.aclose())
        runner.close()


@contextmanager
def watched(desk: Desk) -> Iterator[Errors]:
    errors = Errors()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        yield errors
    finally:
        root.removeHandler(errors)


def check(desk: Desk, errors: Errors, calls_before: int, what: str, text: str) -> None:
    refused = [f"{c.method}: {c.error.description}" for c in desk.tg.calls[calls_before:] if c.error is not None]
    assert refused == [], f"{what} {text!r}: Telegram would refuse {refused}"
    assert errors.records == [], f"{what} {text!r}: {errors.records}"


def step(runner: asyncio.Runner, desk: Desk, coro_fn, what: str, text: str, errors: Errors) -> None:  # type: ignore[no-untyped-def]
    """Run one example: a minute later than the last (no flood limit between examples)."""
    desk.clock.advance(seconds=61)
    before = len(desk.tg.calls)
    runner.run(coro_fn())
    check(desk, errors, before, what, text)


# ------------------------------------------------------------------ the tests


def test_questions_to_the_faq(database):
    with live_desk(database) as (runner, desk), watched(desk) as errors:
        user = desk.tg.user(7101, "Asker")

        @hypothesis_settings(database)
        @given(text=TEXTS)
        def ask(text: str) -> None:
            step(runner, desk, lambda: user.send(text), "question", text, errors)

        ask()
        assert runner.run(desk.scalar("SELECT count(*) FROM questions")) > 0


def test_ticket_descriptions_and_relays_both_ways(database):
    with live_desk(database) as (runner, desk), watched(desk) as errors:
        staff = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
        describer = desk.tg.user(7102, "Describer")
        talker = desk.tg.user(7103, "Talker")
        number = runner.run(open_ticket(desk, talker))
        alert = card(desk, number)

        async def describe(text: str) -> None:
            await describer.send("/support")
            await describer.press("Something is broken")
            await describer.send(text)  # the description
            await describer.send("/cancel")

        @hypothesis_settings(database)
        @given(text=TEXTS, note=st.booleans())
        def relay(text: str, note: bool) -> None:
            step(runner, desk, lambda: describe(text), "description", text, errors)
            step(runner, desk, lambda: talker.send(text), "user to staff", text, errors)
            staff_text = ("!" + text) if note else text
            step(runner, desk, lambda: staff.send(staff_text, chat_id=STAFF_CHAT, reply_to=alert), "staff to user", staff_text, errors)

        relay()
        assert runner.run(desk.scalar("SELECT count(*) FROM ticket_messages WHERE direction = 'out'")) > 0


def test_every_ad_draft_step(database):
    with live_desk(database) as (runner, desk), watched(desk) as errors:
        seller = desk.tg.user(7104, "Seller")
        runner.run(post_ad(desk, seller, submit=False))  # a complete draft at the preview

        def preview():  # type: ignore[no-untyped-def]
            return next(m for m in reversed(desk.tg.chat_messages(7104)) if m.from_bot and "Submit" in " ".join(m.button_texts))

        async def answer(field: str, text: str) -> None:
            await seller.press_data(f"ad:edit:{field}", preview())
            await seller.send(text)
            if "Submit" not in " ".join(desk.tg.last_bot_message(7104).button_texts):
                await seller.send(VALID[field])  # refused: a valid answer brings the preview back

        @hypothesis_settings(database)
        @given(field=st.sampled_from(["title", "description", "price", "location"]), text=TEXTS)
        def fill(field: str, text: str) -> None:
            step(runner, desk, lambda: answer(field, text), f"ad {field}", text, errors)

        fill()
        # whatever was accepted, the preview and the submission still work
        step(runner, desk, lambda: seller.press_data("ad:submit", preview()), "submit", "", errors)


VALID = {"title": "VW Polo 1.2 TSI 2015", "description": DESCRIPTION, "price": "R 85 000", "location": "Soweto, Johannesburg"}

STAFF_COMMANDS = ["ticket", "assign", "resolve", "reopen", "note", "canned", "transfer", "kb", "queue", "help",
                  "strikes", "warn", "unban", "pardon", "modqueue", "userdata", "forget", "repost"]


def test_staff_command_arguments_and_report_numbers(database):
    with live_desk(database) as (runner, desk), watched(desk) as errors:
        admin = desk.tg.user(900001, "Admin")  # staff.admin_ids: may run every command
        user = desk.tg.user(7105, "Reporter", username="reporter")
        runner.run(open_ticket(desk, user))

        @hypothesis_settings(database)
        @given(command=st.sampled_from(STAFF_COMMANDS), text=TEXTS)
        def command(command: str, text: str) -> None:
            line = f"/{command} {text}"[:4096]
            step(runner, desk, lambda: admin.send(line, chat_id=STAFF_CHAT), "staff command", line, errors)
            report = f"/report {text}"[:4096]
            step(runner, desk, lambda: user.send(report), "report", report, errors)
            deep_link = f"/start {text}"[:4096]  # what a t.me/<bot>?start=... link sends
            step(runner, desk, lambda: user.send(deep_link), "start payload", deep_link, errors)

        command()


def test_a_moderators_typed_reason(database):
    with live_desk(database) as (runner, desk), watched(desk) as errors:
        mo = desk.tg.staff(810001, "Moderator Mo", STAFF_CHAT, status="administrator")
        sellers = iter(range(7200, 7300))

        async def reject_with(text: str) -> Any:
            seller = desk.tg.user(next(sellers), "Seller")
            ad_id = await post_ad(desk, seller, photos=1)
            await mo.press_data(f"m:ro:{ad_id}", desk.tg.last_bot_message(STAFF_CHAT))
            await mo.send(text, chat_id=STAFF_CHAT)

        @hypothesis_settings(database, limit=15)
        @given(text=TEXTS)
        def reason(text: str) -> None:
            step(runner, desk, lambda: reject_with(text), "typed reason", text, errors)

        reason()
        assert runner.run(desk.scalar("SELECT count(*) FROM ads WHERE status = 'rejected'")) > 0



def test_rating_comments(database):
    with live_desk(database) as (runner, desk), watched(desk) as errors:
        staff = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
        users = iter(range(7300, 7400))

        async def rate_and_comment(text: str) -> None:
            user = desk.tg.user(next(users), "Rater")
            number = await open_ticket(desk, user)
            await staff.send(f"/resolve {number}", chat_id=STAFF_CHAT)
            await user.press("2⭐")
            await user.send(text)

        @hypothesis_settings(database, limit=12)
        @given(text=TEXTS)
        def comment(text: str) -> None:
            step(runner, desk, lambda: rate_and_comment(text), "rating comment", text, errors)

        comment()
        assert runner.run(desk.scalar("SELECT count(*) FROM ratings WHERE comment IS NOT NULL")) > 0
