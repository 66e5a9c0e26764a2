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
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.migrate import upgrade
from ads.models import Ad
from escalation.models import Rating, Ticket
from kb.models import KbPhrasing, Question
from reports import month_of

DEMO_STAFF_CHAT = -1001234567890

# (what the user does, what it shows). Kept in one list so that tests can check that the
# demo still covers every path it claims to.
SCRIPT: list[tuple[str, str]] = [
    ("send", "/start"),
    ("send", "How do I post an ad?"),
    ("press", "Helpful"),
    ("send", "how do i delet my add"),
    ("send", "can i sell a gun"),
    ("send", "my account"),  # a near tie between account entries: "did you mean"
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


async def play(folder: Path, out: TextIO, out_dir: Path = Path("demo-output")) -> dict[str, int]:
    settings = settings_for(folder)
    tg = FakeTelegram()
    tg.add_group(DEMO_STAFF_CHAT, "SayPro support team", forum=True)
    app = build_app(settings, request=tg)
    tg.attach(app)
    async with running(app):
        user = tg.user(5550001, "Lerato", last_name="Mokoena", username="lerato_m", language_code="en")
        for action, arg in SCRIPT:
            if action == "send":
                await user.send(arg)
            elif action == "press":
                await user.press(arg)
            elif action == "sticker":
                await user.send_sticker(arg)
        faq_part = len(tg.events)
        await escalation_scene(tg, user)
        support_part = len(tg.events)
        await ads_scene(tg)
        ads_part = len(tg.events)
        desk = app.bot_data["desk"]
        month = month_of(desk.clock(), desk.settings.report_tz)
        report_file = await report_scene(tg, month.label, out_dir)
        async with desk.sessions() as session:
            rows = (await session.execute(select(Question.outcome, func.count()).group_by(Question.outcome))).all()
            votes = await session.scalar(select(func.count()).where(Question.vote.is_not(None)))
            tickets = (await session.execute(select(Ticket.id, Ticket.status))).all()
            stars = await session.scalar(select(Rating.stars))
            ad_status = await session.scalar(select(Ad.status).order_by(Ad.id.desc()).limit(1))
            learned = await session.scalar(
                select(func.count()).select_from(KbPhrasing).where(KbPhrasing.source == "learned", KbPhrasing.status == "active")
            )
    outcomes = {str(outcome): int(n) for outcome, n in rows}
    rule = "=" * 78 + "\n"
    out.write("SayPro Classified Help Desk: offline demo (fake Telegram, starter knowledge base)\n")
    out.write(rule + "Scene 1: questions and answers\n" + rule)
    out.write(tg.transcript(0, faq_part) + "\n")
    out.write(rule + "Scene 2: the bot cannot help; a person takes over (staff chat with a topic per ticket)\n" + rule)
    out.write(tg.transcript(faq_part, support_part) + "\n")
    out.write(rule + "Scene 3: posting an ad; the pre-check flags a phone number; reject, fix, approve\n" + rule)
    out.write(tg.transcript(support_part, ads_part) + "\n")
    out.write(rule + f"Scene 4: the manager's report for this month ({month.title()}), asked for in the staff chat\n" + rule)
    out.write(tg.transcript(ads_part) + "\n")
    out.write(rule)
    out.write(
        "Question log: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + f"; votes {votes}\n"
        + "Tickets: " + ", ".join(f"#{n} {s}" for n, s in tickets)
        + f"; rating {stars}/5; learned phrasings approved {learned}\n"
        + f"Ads: #1 {ad_status}\n"
        + f"Telegram calls {len(tg.calls)}, refused {len(tg.errors())}\n"
    )
    out.write(rule + f"Report summary for {month.title()} (the caption staff received):\n")
    caption = [m for m in tg.chat_messages(DEMO_STAFF_CHAT) if m.kind == "document"][-1].text
    out.write(caption + "\n")
    out.write(f"HTML report written to {report_file}\n")
    return {**outcomes, "votes": int(votes or 0), "refused": len(tg.errors()), "tickets": len(tickets)}


async def report_scene(tg: FakeTelegram, period: str, out_dir: Path) -> Path:
    """A staff member asks for this month's report; the file staff got is saved."""
    thandi = tg.staff(7770001, "Thandi", DEMO_STAFF_CHAT, username="thandi_support")
    await thandi.send(f"/report {period}", chat_id=DEMO_STAFF_CHAT)
    document = tg.chat_messages(DEMO_STAFF_CHAT)[-1]
    name, content = tg.uploads[document.file_id]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(content)
    return path


async def ads_scene(tg: FakeTelegram) -> None:
    seller = tg.user(5550002, "Sipho", username="sipho_sells", language_code="en")
    mo = tg.staff(7770002, "Mo", DEMO_STAFF_CHAT, username="mo_moderates", status="administrator")
    await seller.send("/newad")
    await seller.press("Vehicles")
    await seller.press("Cars")
    await seller.send("VW Polo 1.2 TSI 2015")
    await seller.send("Full service history, 98 000 km, new tyres, one owner. Call me on 082 123 4567.")
    await seller.send("R 85 000")
    await seller.send("Soweto, Johannesburg")
    await seller.send_photo()
    await seller.press("Done")
    await seller.send("💬 Through the bot")
    await seller.press("Submit")
    await mo.press("Reject", chat_id=DEMO_STAFF_CHAT)
    await mo.press("Contact details in text", chat_id=DEMO_STAFF_CHAT)
    await seller.press("Edit and resubmit")
    await seller.send("Full service history, 98 000 km, new tyres, one owner. Viewing in Soweto on weekends.")
    await seller.press("Submit")
    await mo.press("Approve", chat_id=DEMO_STAFF_CHAT)


async def escalation_scene(tg: FakeTelegram, user: FakeUser) -> None:
    thandi = tg.staff(7770001, "Thandi", DEMO_STAFF_CHAT, username="thandi_support")
    await user.send("I paid for a featured ad twice, the money left my account two times")
    await user.press("None of these")
    await user.press("Talk to a person")
    await user.press("Payments")
    topic = tg.topic_named(DEMO_STAFF_CHAT, "#1 ")
    await thandi.press("Claim", chat_id=DEMO_STAFF_CHAT)
    await thandi.send("Hi Lerato, sorry about that! Can you send a screenshot of the two payments?", chat_id=DEMO_STAFF_CHAT, thread_id=topic)
    await user.send_photo("here they are")
    await thandi.send("!two charges of R49 confirmed in the payment console, refunding one", chat_id=DEMO_STAFF_CHAT, thread_id=topic)
    await thandi.send("Thanks! I have refunded one R49 payment; it shows in 5-7 business days.", chat_id=DEMO_STAFF_CHAT, thread_id=topic)
    await user.send("Great, thank you!")
    await thandi.press("Resolve", chat_id=DEMO_STAFF_CHAT)
    await thandi.press("📚", chat_id=DEMO_STAFF_CHAT)
    await user.press("5⭐")
    await thandi.send("/kb review", chat_id=DEMO_STAFF_CHAT)
    await thandi.press("Approve", chat_id=DEMO_STAFF_CHAT)


def main(keep: str | None = None, out: TextIO | None = None, out_dir: str | None = None) -> int:
    """Play the demo; the month's HTML report goes to ``out_dir`` (default ./demo-output)."""
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="helpdesk-demo-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        upgrade(str(settings_for(folder).database.url))
        result = asyncio.run(play(folder, out, Path(out_dir or "demo-output")))
    return 1 if result["refused"] else 0
