"""``helpdesk demo``: the whole product, offline, as a printed transcript.

The real Application runs against :class:`bot.fake_telegram.FakeTelegram` on a fresh
SQLite database in a temporary folder, with the shipped starter knowledge base.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select

from bot.app import build_app, running
from bot.config import parse_settings
from bot.fake_telegram import FakeTelegram
from bot.migrate import upgrade
from kb.models import Question

DEMO_STAFF_CHAT = -1001234567890

# (what the user does, what it shows). Kept in one list so that tests can check that the
# demo still covers every path it claims to.
SCRIPT: list[tuple[str, str]] = [
    ("send", "/start"),
    ("send", "How do I post an ad?"),
    ("press", "Helpful"),
    ("send", "how do i delet my add"),
    ("send", "can i sell a gun"),
    ("send", "someone wants me to pay a deposit before i see the car, is that ok?"),
    ("press", "1."),
    ("send", "can you recommend a good plumber in Soweto"),
    ("sticker", "🙂"),
    ("send", "/frobnicate"),
    ("send", "thanks!"),
]


def settings_for(folder: Path):  # type: ignore[no-untyped-def]
    return parse_settings(
        {
            "database": {"url": f"sqlite+aiosqlite:///{folder / 'demo.db'}"},
            "staff": {"chat_id": DEMO_STAFF_CHAT},
        },
        "<demo>",
        folder,
    )


async def play(folder: Path, out: TextIO) -> dict[str, int]:
    settings = settings_for(folder)
    tg = FakeTelegram()
    tg.add_group(DEMO_STAFF_CHAT, "SayPro support team", forum=True)
    app = build_app(settings, request=tg)
    tg.attach(app)
    async with running(app):
        user = tg.user(5550001, "Thandi", last_name="Mokoena", username="thandi_m", language_code="en")
        for action, arg in SCRIPT:
            if action == "send":
                await user.send(arg)
            elif action == "press":
                await user.press(arg)
            elif action == "sticker":
                await user.send_sticker(arg)
        desk = app.bot_data["desk"]
        async with desk.sessions() as session:
            rows = (await session.execute(select(Question.outcome, func.count()).group_by(Question.outcome))).all()
            votes = await session.scalar(select(func.count()).where(Question.vote.is_not(None)))
    outcomes = {str(outcome): int(n) for outcome, n in rows}
    out.write("SayPro Classified Help Desk: offline demo (fake Telegram, starter knowledge base)\n")
    out.write("=" * 78 + "\n")
    out.write(tg.transcript() + "\n")
    out.write("=" * 78 + "\n")
    out.write(
        "Question log: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + f"; votes {votes}; Telegram calls {len(tg.calls)}, refused {len(tg.errors())}\n"
    )
    return {**outcomes, "votes": int(votes or 0), "refused": len(tg.errors())}


def main(keep: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="helpdesk-demo-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        upgrade(str(settings_for(folder).database.url))
        result = asyncio.run(play(folder, out))
    return 1 if result["refused"] else 0
