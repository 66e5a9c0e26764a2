"""Personal data (POPIA / GDPR): /mydata, /deleteme, and /userdata, /forget for admins."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.schema import metadata
from escalation.models import Feedback
from tests.support import STAFF_CHAT
from tests.test_ads_flow import mod_card, post_ad
from tests.test_escalation import card, open_ticket

CHANNEL = -1003000000003
ADMIN_ID = 900001  # staff.admin_ids in tests.support

pytestmark = [
    pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]]),
    pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}]),
]

QUESTION = "my payment went through twice and I was charged R98"
SECRETS = ("Lerato", "Mokoena", "lerato_m", "charged R98", "Visa ending 4321", "took three days", "photo-5001",
           "great service from Thandi", "Only the refund", "082 555")


async def a_full_history(desk):
    """Lerato asks, has a solved case (rated 2 with a comment) and an open one, a live
    ad with photos, a draft, a report of someone else's ad, a strike and feedback."""
    tg = desk.tg
    lerato = tg.user(5001, "Lerato", last_name="Mokoena", username="lerato_m")
    thandi = tg.staff(800001, "Thandi", STAFF_CHAT, username="thandi_support")
    mo = tg.staff(810001, "Moderator Mo", STAFF_CHAT, status="administrator")
    solved = await open_ticket(desk, lerato, QUESTION)
    await lerato.send("It was the Visa ending 4321")
    await thandi.send("Only the refund team can see that, one moment", chat_id=STAFF_CHAT, reply_to=card(desk, solved))
    await thandi.send("!internal: checked the console", chat_id=STAFF_CHAT, reply_to=card(desk, solved))
    await thandi.send(f"/resolve {solved}", chat_id=STAFF_CHAT)
    await lerato.press("2⭐")
    await lerato.send("It took three days")
    await lerato.send("/support")
    await lerato.press("Something is broken")
    await lerato.send("The app closes when I open chats")
    still_open = await desk.scalar("SELECT max(id) FROM tickets")
    live = await post_ad(desk, lerato)
    await mo.press("Approve", mod_card(desk, live))
    draft = await post_ad(desk, lerato, submit=False)
    seller = tg.user(6001, "Other seller", username="other_seller")
    other_ad = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, other_ad))
    await lerato.send(f"/report {other_ad}")
    await lerato.press("Wrong category")
    await mo.send("/warn @lerato_m posting the same ad twice", chat_id=STAFF_CHAT)
    async with desk.sessions() as session, session.begin():  # /feedback is another branch: its table is here already
        session.add(Feedback(user_id=5001, text="great service from Thandi", rating=5, created_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC)))
    return {"user": lerato, "thandi": thandi, "mo": mo, "solved": solved, "open": still_open, "live": live, "draft": draft, "other_ad": other_ad}


def the_file(desk, chat_id):
    msg = desk.tg.last_bot_message(chat_id)
    assert msg.kind == "document" and msg.upload, msg
    assert msg.filename.endswith(".json")
    return msg, json.loads(msg.upload.decode("utf-8"))


async def everything(desk) -> str:
    """Every row of every table, as one string (to look for what must be gone)."""
    parts = []
    async with desk.sessions() as session:
        for table in metadata.sorted_tables:
            if table.name in ("kb_entries",):
                continue  # the shipped articles, not about anyone
            rows = (await session.execute(text(f'SELECT * FROM "{table.name}"'))).all()
            parts.append(f"{table.name}: {rows!r}")
    return "\n".join(parts)


async def test_mydata_sends_everything_stored_about_the_user(desk):
    h = await a_full_history(desk)
    await h["user"].send("/mydata")
    msg, doc = the_file(desk, 5001)
    assert "Everything we store about you" in msg.text and "2 support case(s)" in msg.text
    assert f"{len(doc['feedback'])} feedback message(s)" in msg.text and f"{len(doc['strikes'])} strike(s)" in msg.text
    assert doc["format"] == "saypro-helpdesk-personal-data/1"
    assert doc["user"]["id"] == 5001 and doc["user"]["username"] == "lerato_m" and doc["user"]["last_name"] == "Mokoena"
    assert [q["text"] for q in doc["questions"]][:1] == [QUESTION]
    solved = next(t for t in doc["tickets"] if t["id"] == h["solved"])
    texts = [(m["direction"], m["text"]) for m in solved["messages"]]
    assert ("from_you", "It was the Visa ending 4321") in texts
    assert ("from_staff", "Only the refund team can see that, one moment") in texts
    assert not any("internal" in t for _, t in texts)  # staff notes are not the user's data
    assert solved["rating"]["stars"] == 2 and solved["rating"]["comment"] == "It took three days"
    assert next(t for t in doc["tickets"] if t["id"] == h["open"])["subject"] == "The app closes when I open chats"
    ads = {a["id"]: a for a in doc["ads"]}
    assert ads[h["live"]]["status"] == "approved" and ads[h["live"]]["title"] == "VW Polo 1.2 TSI 2015"
    assert len(ads[h["live"]]["photos"]) == 2 and all(p.startswith("photo-5001-") for p in ads[h["live"]]["photos"])
    assert ads[h["draft"]]["status"] == "draft"
    assert doc["reports_made"] == [{**doc["reports_made"][0], "ad_id": h["other_ad"], "reason": "category", "status": "open"}]
    assert [s["reason"] for s in doc["strikes"]] == ["posting the same ad twice"]
    assert [f["text"] for f in doc["feedback"]] == ["great service from Thandi"]
    # nobody else's data: not the staff member's id, not the other seller's ad
    flat = json.dumps(doc)
    assert "800001" not in flat and "Other seller" not in flat and "other_seller" not in flat
    assert desk.tg.errors() == []


async def test_deleteme_after_confirmation_erases_and_keeps_anonymous_figures(desk):
    h = await a_full_history(desk)
    user = h["user"]
    counts = {t: await desk.scalar(f"SELECT count(*) FROM {t}") for t in ("questions", "tickets", "ticket_messages", "ratings", "strikes", "ad_reports", "feedback")}
    post = await desk.scalar("SELECT published_message_id FROM ads WHERE id = :i", i=h["live"])
    other_post = await desk.scalar("SELECT published_message_id FROM ads WHERE id = :i", i=h["other_ad"])
    assert post and not desk.tg.messages[(CHANNEL, post)].deleted
    # Cancel first: nothing happens
    await user.send("/deleteme")
    assert "Erase your personal data?" in desk.tg.last_bot_message(5001).text
    await user.press("Cancel")
    assert await desk.scalar("SELECT first_name FROM users WHERE id = 5001") == "Lerato"
    # then for real
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    texts = [m.text for m in desk.tg.chat_messages(5001) if m.from_bot][-2:]
    assert "Your personal data has been erased" in texts[0] and "open support case(s) were closed" in texts[0]
    assert "clean slate" in texts[1]
    # the account is gone; an anonymous row holds the figures
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5001") == 0
    anon = await desk.scalar("SELECT id FROM users WHERE deleted_at IS NOT NULL")
    assert anon < 0 and await desk.scalar("SELECT first_name FROM users WHERE id = :i", i=anon) == ""
    for table, n in counts.items():
        assert await desk.scalar(f"SELECT count(*) FROM {table}") == n, table
    assert await desk.scalar("SELECT count(*) FROM questions WHERE user_id = :i AND text = ''", i=anon) >= 1
    statuses = dict(await desk.rows("SELECT id, status FROM tickets WHERE user_id = :i", i=anon))
    assert statuses == {h["solved"]: "resolved", h["open"]: "closed"}
    assert await desk.scalar("SELECT close_reason FROM tickets WHERE id = :i", i=h["open"]) == "erased"
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE text <> '' OR file_id IS NOT NULL") == 0
    assert tuple(await desk.rows("SELECT stars, comment FROM ratings"))[0] == (2, None)
    ads = dict(await desk.rows("SELECT id, status FROM ads WHERE user_id = :i", i=anon))
    assert ads == {h["live"]: "deleted"}  # the draft is gone, the live ad withdrawn
    assert await desk.scalar("SELECT title || description || location FROM ads WHERE id = :i", i=h["live"]) == ""
    assert await desk.scalar("SELECT count(*) FROM ad_photos WHERE ad_id = :i", i=h["live"]) == 0
    assert desk.tg.messages[(CHANNEL, post)].deleted and not desk.tg.messages[(CHANNEL, other_post)].deleted
    assert await desk.scalar("SELECT reporter_id FROM ad_reports") == anon
    assert await desk.scalar("SELECT user_id FROM strikes") == anon
    assert tuple((await desk.rows("SELECT user_id, text, rating FROM feedback"))[0]) == (anon, "", 5)
    # nothing personal is left anywhere in the database
    dump = await everything(desk)
    for secret in SECRETS:
        assert secret not in dump, secret
    for table in metadata.sorted_tables:
        for column in ("user_id", "reporter_id", "sender_id", "actor_id"):
            if column in table.c:
                assert await desk.scalar(f"SELECT count(*) FROM {table.name} WHERE {column} = 5001") == 0, (table.name, column)
    # staff see why the open case closed
    assert any("personal data was erased" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    # coming back: a clean slate
    await user.send("/mydata")
    _, doc = the_file(desk, 5001)
    assert doc["tickets"] == [] and doc["ads"] == [] and doc["questions"] == [] and doc["strikes"] == []
    assert desk.tg.errors() == []


async def test_a_banned_user_can_get_and_erase_their_data_and_the_ban_stays(desk):
    tg = desk.tg
    mo = tg.staff(810001, "Moderator Mo", STAFF_CHAT, status="administrator")
    user = tg.user(5002, "Sizwe", username="sizwe_z")
    await user.send("hello there")
    for _ in range(3):
        await mo.send("/warn @sizwe_z scam attempts", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT status FROM users WHERE id = 5002") == "banned"
    await user.send("/mydata")
    _, doc = the_file(desk, 5002)
    assert doc["user"]["status"] == "banned" and len(doc["strikes"]) == 3
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    assert "to keep the ban in force" in tg.last_bot_message(5002).text or "to keep the ban in force" in tg.chat_messages(5002)[-2].text
    row = tuple((await desk.rows("SELECT first_name, username, status, status_reason, deleted_at IS NOT NULL FROM users WHERE id = 5002"))[0])
    assert row == ("", None, "banned", None, True)
    assert await desk.scalar("SELECT count(*) FROM strikes WHERE user_id = 5002") == 0
    # the month's report counts the person once (the anonymous row, not the tombstone too)
    from reports.metrics import user_metrics
    from reports.periods import month_of

    async with desk.sessions() as session:
        figures = await user_metrics(session, month_of(desk.clock.now, desk.app.bot_data["desk"].settings.report_tz))
    assert (figures["new"], figures["active"]) == (1, 1)


async def test_admins_export_and_forget_a_user_on_request(desk):
    h = await a_full_history(desk)
    thandi = h["thandi"]  # staff, not an admin
    admin = desk.tg.user(ADMIN_ID, "Admin")
    await thandi.send("/userdata @lerato_m", chat_id=STAFF_CHAT)
    assert "Only admins can do that" in desk.tg.last_bot_message(STAFF_CHAT).text
    await admin.send("/userdata @nobody", chat_id=STAFF_CHAT)
    assert "I don't know the user @nobody" in desk.tg.last_bot_message(STAFF_CHAT).text
    await admin.send("/userdata", chat_id=STAFF_CHAT)
    assert "Usage: /userdata" in desk.tg.last_bot_message(STAFF_CHAT).text
    await admin.send("/userdata @lerato_m", chat_id=STAFF_CHAT)
    msg, doc = the_file(desk, STAFF_CHAT)
    assert "Personal data of Lerato Mokoena (id 5001)" in msg.text and doc["user"]["id"] == 5001
    await admin.send("/userdata 5001", chat_id=STAFF_CHAT)
    assert the_file(desk, STAFF_CHAT)[1]["user"]["username"] == "lerato_m"
    # forget: confirmation, re-checked on the press
    await thandi.send("/forget @lerato_m", chat_id=STAFF_CHAT)
    assert "Only admins can do that" in desk.tg.last_bot_message(STAFF_CHAT).text
    await admin.send("/forget @lerato_m", chat_id=STAFF_CHAT)
    confirm = desk.tg.last_bot_message(STAFF_CHAT)
    assert "Erase the personal data of Lerato Mokoena" in confirm.text
    await thandi.press("Erase", confirm)
    assert desk.tg.events[-1].text == "Only admins can do that."
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5001") == 1
    await admin.press("Cancel", confirm)
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5001") == 1
    await admin.send("/forget 5001", chat_id=STAFF_CHAT)
    confirm = desk.tg.last_bot_message(STAFF_CHAT)
    await admin.press("Erase", confirm)
    assert "Personal data of user 5001 erased by Admin; 1 open case(s) closed" in desk.tg.messages[(STAFF_CHAT, confirm.message_id)].text
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5001") == 0
    await admin.press_data("pv:forget:5001", confirm)  # a second press: nothing left to erase
    assert desk.tg.events[-1].text.startswith("This button belongs")
    dump = await everything(desk)
    for secret in SECRETS:
        assert secret not in dump, secret
    # the user row of the admin's own account, the other seller and the staff are untouched
    assert await desk.scalar("SELECT username FROM users WHERE id = 6001") == "other_seller"
    assert desk.tg.errors() == []


@pytest.mark.parametrize("staff_forum", [True])
async def test_erasure_scrubs_the_name_from_the_staff_cards_and_topics(desk, staff_forum):
    user = desk.tg.user(5003, "Nomvula", last_name="Dlamini", username="nomvula_d")
    number = await open_ticket(desk, user)
    topic = desk.tg.topic_named(STAFF_CHAT, f"#{number} · Nomvula")
    assert "Nomvula" in card(desk, number).text
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    assert desk.tg.topics[(STAFF_CHAT, topic)]["name"].startswith(f"#{number} · (erased user) · ")
    assert desk.tg.topics[(STAFF_CHAT, topic)]["closed"]
    shown = card(desk, number).text
    assert "Nomvula" not in shown and "nomvula_d" not in shown and "Dlamini" not in shown
    assert "closed" in shown
    assert desk.tg.errors() == []


async def test_erasure_takes_the_channel_post_down_before_redrawing_staff_cards(desk):
    """The post in the public channel is the one copy everybody sees, and its place is
    not kept once the erasure committed: a restart while the staff chat's cards are
    being redrawn (20 edits a minute per group) would leave it up for good. It goes
    first."""
    h = await a_full_history(desk)
    start = len(desk.tg.calls)
    await h["user"].send("/deleteme")
    await h["user"].press("Yes, erase my data")
    calls = desk.tg.calls[start:]
    deleted = [i for i, c in enumerate(calls) if c.method == "deleteMessage" and int(c.params["chat_id"]) == CHANNEL]
    staff = [i for i, c in enumerate(calls) if c.method != "answerCallbackQuery" and int(c.params.get("chat_id", 0)) == STAFF_CHAT]
    assert deleted and staff and max(deleted) < min(staff)
