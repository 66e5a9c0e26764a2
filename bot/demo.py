"""``helpdesk demo``: the whole product, offline, as a printed transcript.

The real Application runs against :class:`bot.fake_telegram.FakeTelegram` on a fresh
SQLite database in a temporary folder, with the shipped starter knowledge base. The
desk's clock is the demo's own: it starts on a fixed Monday morning and moves the way a
real month would (minutes before staff answer, hours before a moderator decides), so
the transcript is the same on every run and the month's report shows real-looking times.
Everything the bot says comes from its templates; this module only plays the people.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import build_app, running
from bot.config import parse_settings
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.migrate import upgrade
from ads.models import Ad
from escalation.models import Feedback, Rating, Ticket
from kb.models import KbPhrasing, Question
from reports import month_of

DEMO_STAFF_CHAT = -1001234567890
# The demo's month starts on a Monday; every scene happens at a set local time in it.
DEMO_YEAR, DEMO_MONTH = 2026, 11

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

FEEDBACK = "Love the bot! Could I get a message when someone posts a car under R 90 000 in Soweto?"
MODERATION_QUESTION = "how long does approval take"
NEW_MODERATION_ANSWER = (
    "Most ads are checked within **2 hours** on weekdays, 08:00-17:00 SAST. "
    "Ads sent in the evening or at the weekend are checked first thing the next working morning."
)


class DemoClock:
    """The desk's time: set by the scenes to a local day and hour of the demo's month."""

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self.now = datetime(DEMO_YEAR, DEMO_MONTH, 2, 9, 0, tzinfo=tz).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def at(self, day: int, hhmm: str) -> datetime:
        hour, minute = (int(part) for part in hhmm.split(":"))
        moment = datetime(DEMO_YEAR, DEMO_MONTH, day, hour, minute, tzinfo=self.tz).astimezone(UTC)
        if moment < self.now:
            raise ValueError(f"the demo's clock only moves forward ({moment} is before {self.now})")
        self.now = moment
        return moment

    def local(self) -> datetime:
        return self.now.astimezone(self.tz)


@dataclass
class Cast:
    """The people of the demo, the fake Telegram they use, and the clock."""

    tg: FakeTelegram
    clock: DemoClock
    lerato: FakeUser  # a buyer with questions
    sipho: FakeUser  # a seller
    thandi: FakeUser  # support staff
    mo: FakeUser  # a moderator (a staff chat admin)
    # (event index, note) lines printed between the transcript's events: time passing, files
    notes: list[tuple[int, str]] = field(default_factory=list)

    def at(self, day: int, hhmm: str) -> None:
        """Move the clock, and say so in the transcript when a scene is under way."""
        before = self.clock.now
        self.clock.at(day, hhmm)
        if before != self.clock.now:
            self.notes.append((len(self.tg.events), f"⏱  {_later(self.clock.now - before)}: {self.clock.local():%a %d %b, %H:%M}"))

    def note(self, text: str) -> None:
        self.notes.append((len(self.tg.events), text))


def _later(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min later"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min later" if rest else f"{hours} h later"
    days, hours = divmod(minutes // 60, 24)
    return f"{days} day{'s' if days > 1 else ''} {hours} h later" if hours else f"{days} day{'s' if days > 1 else ''} later"


def settings_for(folder: Path):  # type: ignore[no-untyped-def]
    return parse_settings(
        {
            "database": {"url": f"sqlite+aiosqlite:///{folder / 'demo.db'}"},
            "staff": {"chat_id": DEMO_STAFF_CHAT},
        },
        "<demo>",
        folder,
    )


async def questions_scene(cast: Cast) -> None:
    """A new user: /start with the first-time welcome, then questions of every kind."""
    user = cast.lerato
    for action, arg in SCRIPT:
        if action == "send":
            await user.send(arg)
        elif action == "press":
            await user.press(arg)
        elif action == "sticker":
            await user.send_sticker(arg)


async def escalation_scene(cast: Cast) -> None:
    tg, user, thandi = cast.tg, cast.lerato, cast.thandi
    cast.at(2, "09:20")
    await user.send("I paid for a featured ad twice and the money was taken from my account two times")
    await user.press("None of these")
    await user.press("Talk to a person")
    await user.press("Payments")
    topic = tg.topic_named(DEMO_STAFF_CHAT, "#1 ")
    cast.at(2, "09:31")
    await thandi.press("Claim", chat_id=DEMO_STAFF_CHAT)
    cast.at(2, "09:33")
    await thandi.send("Hi Lerato, sorry about that! Can you send a screenshot of the two payments?", chat_id=DEMO_STAFF_CHAT, thread_id=topic)
    cast.at(2, "09:41")
    await user.send_photo("here they are")
    cast.at(2, "10:02")
    await thandi.send("!two charges of R49 confirmed in the payment console, refunding one", chat_id=DEMO_STAFF_CHAT, thread_id=topic)
    await thandi.send("Thanks! I have refunded one R49 payment; it shows in 5-7 business days.", chat_id=DEMO_STAFF_CHAT, thread_id=topic)
    cast.at(2, "10:05")
    await user.send("Great, thank you!")
    cast.at(2, "10:09")
    await thandi.press("Resolve", chat_id=DEMO_STAFF_CHAT)
    await thandi.press("📚", chat_id=DEMO_STAFF_CHAT)
    cast.at(2, "10:12")
    await user.press("5⭐")
    cast.at(2, "16:30")
    await thandi.send("/kb review", chat_id=DEMO_STAFF_CHAT)
    await thandi.press("Approve", chat_id=DEMO_STAFF_CHAT)


async def ads_scene(cast: Cast) -> None:
    seller, mo, buyer = cast.sipho, cast.mo, cast.lerato
    cast.at(3, "08:05")
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
    cast.at(3, "08:12")
    await seller.press("Submit")
    cast.at(3, "10:40")
    await mo.press("Reject", chat_id=DEMO_STAFF_CHAT)
    await mo.press("Contact details in text", chat_id=DEMO_STAFF_CHAT)
    cast.at(3, "12:15")
    await seller.press("Edit and resubmit")
    await seller.send("Full service history, 98 000 km, new tyres, one owner. Viewing in Soweto on weekends.")
    await seller.press("Submit")
    cast.at(3, "14:50")
    await mo.press("Approve", chat_id=DEMO_STAFF_CHAT)
    # a buyer reports the live ad; the moderator finds nothing wrong
    cast.at(4, "19:30")
    await buyer.send("/report 1")
    await buyer.press("Wrong category")
    cast.at(5, "08:40")
    await mo.press("Dismiss", chat_id=DEMO_STAFF_CHAT)


async def feedback_scene(cast: Cast) -> None:
    user, thandi, tg = cast.lerato, cast.thandi, cast.tg
    cast.at(6, "12:10")
    await user.send("/feedback")
    await user.send(FEEDBACK)
    await user.press("4⭐")
    card = next(m for m in reversed(tg.chat_messages(DEMO_STAFF_CHAT)) if m.from_bot and m.text.startswith("✍️ Feedback #"))
    cast.at(6, "14:25")
    await thandi.send(
        "Thank you, Lerato! Saved searches with alerts are on our plan for the new year.", chat_id=DEMO_STAFF_CHAT, reply_to=card
    )


async def guide_scene(cast: Cast) -> None:
    seller = cast.sipho
    cast.at(9, "18:45")
    await seller.send("/guide")
    await seller.press("Photo tips")
    await seller.press("Next")


async def language_scene(cast: Cast) -> None:
    user = cast.sipho
    cast.at(9, "18:52")
    await user.send("/language")
    await user.press("Afrikaans")
    await user.send("/help")
    await user.send("/language")
    await user.press("English")


async def kb_edit_scene(cast: Cast) -> None:
    seller, thandi = cast.sipho, cast.thandi
    cast.at(10, "11:00")
    await seller.send(MODERATION_QUESTION)
    cast.at(10, "11:20")
    await thandi.send(f"/kb edit moderation-time answer {NEW_MODERATION_ANSWER}", chat_id=DEMO_STAFF_CHAT)
    cast.at(10, "11:24")
    await seller.send(MODERATION_QUESTION)


async def mydata_scene(cast: Cast) -> None:
    user, tg = cast.lerato, cast.tg
    cast.at(12, "20:15")
    await user.send("/mydata")
    document = next(m for m in reversed(tg.chat_messages(user.id)) if m.from_bot and m.kind == "document")
    name, content = tg.uploads[document.file_id]
    cast.note(f"   📎 the file: {name} ({len(content) // 1024 + 1} KB)\n   📎 in it: {summarise(json.loads(content))}")


def summarise(doc: dict[str, Any]) -> str:
    """One line about a /mydata document: whose account, and how many of each kind of record."""
    user = doc.get("user") or {}
    who = " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k))
    counts = ", ".join(f"{key.replace('_', ' ')} {len(value)}" for key, value in doc.items() if isinstance(value, list))
    return f"the account of {who}; {counts}"


Scene = Callable[[Cast], Awaitable[None]]
SCENES: list[tuple[str, Scene]] = [
    ("First start (the welcome a new user gets once), then questions and answers", questions_scene),
    ("The bot cannot help; a person takes over (staff chat with a topic per ticket)", escalation_scene),
    ("Posting an ad: the pre-check flags a phone number; reject, fix, approve; a buyer reports it", ads_scene),
    ("Feedback: a user writes and rates it, staff answer by replying to the card", feedback_scene),
    ("Guides: short pages with Next and Back", guide_scene),
    ("Language: Afrikaans, and back to English", language_scene),
    ("Staff edit the knowledge base from the staff chat; the next answer changes", kb_edit_scene),
    ("My data: the user asks for everything stored about them", mydata_scene),
]


async def play(folder: Path, out: TextIO, out_dir: Path = Path("demo-output")) -> dict[str, int]:
    settings = settings_for(folder)
    clock = DemoClock(settings.report_tz)
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(DEMO_STAFF_CHAT, "SayPro support team", forum=True)
    app = build_app(settings, request=tg, clock=clock)
    tg.attach(app)
    rule = "=" * 78 + "\n"
    out.write("SayPro Classified Help Desk: offline demo (fake Telegram, starter knowledge base)\n")
    out.write(f"The clock starts on {clock.local():%A %d %B %Y, %H:%M} ({settings.report_tz.key}); ⏱ lines show it moving.\n")
    async with running(app):
        cast = Cast(
            tg,
            clock,
            lerato=tg.user(5550001, "Lerato", last_name="Mokoena", username="lerato_m", language_code="en"),
            sipho=tg.user(5550002, "Sipho", username="sipho_sells", language_code="en"),
            thandi=tg.staff(7770001, "Thandi", DEMO_STAFF_CHAT, username="thandi_support"),
            mo=tg.staff(7770002, "Mo", DEMO_STAFF_CHAT, username="mo_moderates", status="administrator"),
        )
        for number, (title, scene) in enumerate(SCENES, 1):
            start = len(tg.events)
            cast.notes.clear()
            await scene(cast)
            out.write(rule + f"Scene {number}: {title}\n" + rule)
            out.write(transcript(tg, start, cast.notes) + "\n")
        desk = app.bot_data["desk"]
        month = month_of(clock(), settings.report_tz)
        start = len(tg.events)
        cast.notes.clear()
        cast.at(30, "08:30")  # the month's last Monday: still inside the month, like the whole demo
        report_file = await report_scene(cast, month.label, out_dir)
        out.write(rule + f"Scene {len(SCENES) + 1}: The manager's report for {month.title()}, asked for in the staff chat\n" + rule)
        out.write(transcript(tg, start, cast.notes) + "\n")
        async with desk.sessions() as session:
            rows = (await session.execute(select(Question.outcome, func.count()).group_by(Question.outcome))).all()
            votes = await session.scalar(select(func.count()).where(Question.vote.is_not(None)))
            tickets = (await session.execute(select(Ticket.id, Ticket.status))).all()
            stars = await session.scalar(select(Rating.stars))
            ad_status = await session.scalar(select(Ad.status).order_by(Ad.id.desc()).limit(1))
            feedback = (await session.execute(select(Feedback.rating, Feedback.answer.is_not(None)))).all()
            learned = await session.scalar(
                select(func.count()).select_from(KbPhrasing).where(KbPhrasing.source == "learned", KbPhrasing.status == "active")
            )
    outcomes = {str(outcome): int(n) for outcome, n in rows}
    out.write(rule)
    out.write(
        "Question log: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + f"; votes {votes}\n"
        + "Tickets: " + ", ".join(f"#{n} {s}" for n, s in tickets)
        + f"; rating {stars}/5; learned phrasings approved {learned}\n"
        + f"Ads: #1 {ad_status}\n"
        + "Feedback: " + ", ".join(f"{rating}/5, {'answered' if answered else 'not answered'}" for rating, answered in feedback) + "\n"
        + f"Telegram calls {len(tg.calls)}, refused {len(tg.errors())}\n"
    )
    out.write(rule + f"Report summary for {month.title()} (the caption staff received):\n")
    caption = [m for m in tg.chat_messages(DEMO_STAFF_CHAT) if m.kind == "document"][-1].text
    out.write(caption + "\n")
    out.write(f"HTML report written to {report_file}\n")
    return {**outcomes, "votes": int(votes or 0), "refused": len(tg.errors()), "tickets": len(tickets)}


def transcript(tg: FakeTelegram, start: int, notes: list[tuple[int, str]]) -> str:
    """The events from ``start`` on, with the scene's notes where they happened."""
    parts: list[str] = []
    at = start
    for index, note in notes:
        if index > at:
            parts.append(tg.transcript(at, index))
            at = index
        parts.append(note)
    if len(tg.events) > at:
        parts.append(tg.transcript(at))
    return "\n".join(parts)


async def report_scene(cast: Cast, period: str, out_dir: Path) -> Path:
    """A staff member asks for the month's report; the file staff got is saved."""
    tg = cast.tg
    await cast.thandi.send(f"/report {period}", chat_id=DEMO_STAFF_CHAT)
    document = tg.chat_messages(DEMO_STAFF_CHAT)[-1]
    name, content = tg.uploads[document.file_id]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(content)
    return path


def main(keep: str | None = None, out: TextIO | None = None, out_dir: str | None = None) -> int:
    """Play the demo; the month's HTML report goes to ``out_dir`` (default ./demo-output)."""
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="helpdesk-demo-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        upgrade(str(settings_for(folder).database.url))
        result = asyncio.run(play(folder, out, Path(out_dir or "demo-output")))
    return 1 if result["refused"] else 0
