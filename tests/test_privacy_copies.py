"""Erasure reaches the copies: a user's text copied into the KB change log and KB drafts,
feedback cards in the staff chat, a staff member's own traces, dedupe markers."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import BigInteger, Integer, text

from bot.schema import metadata
from tests.support import STAFF_CHAT
from tests.test_escalation import card, open_ticket, staff_pair
from tests.test_feedback import feedback_card, give_feedback
from tests.test_ads_flow import mod_card
from tests.test_privacy import ADMIN_ID, CHANNEL, a_full_history, everything, the_file

QUESTION = "my payment went through twice and I was charged R98"
OTHER_QUESTION = "can I pay my featured ad with eBucks points"
NO_MATCH = "why is the sky purple on tuesdays"  # the knowledge base has nothing for it


async def erase(desk, person):
    await person.send("/deleteme")
    await person.press("Yes, erase my data")


async def learned_and_reviewed(desk, user, thandi, question=QUESTION):
    """A case resolved with an FAQ link: its question becomes a learned phrasing that
    Thandi approves (the review is in kb_changes, quoting the question)."""
    number = await open_ticket(desk, user, text=question)
    await thandi.press("Resolve", card(desk, number))
    offer = next(m for m in desk.tg.chat_messages(STAFF_CHAT) if "Did one of these FAQ entries answer it?" in m.text)
    await thandi.press("📚", offer)
    entry_id = await desk.scalar("SELECT entry_id FROM kb_phrasings WHERE text = :t", t=question)
    await thandi.send("/kb review", chat_id=STAFF_CHAT)
    await thandi.press("Approve", desk.tg.last_bot_message(STAFF_CHAT))
    return number, entry_id


async def test_erasure_takes_the_question_out_of_the_kb_change_log_drafts_and_gap_report(desk):
    user = desk.tg.user(5101, "Lindiwe", username="lindiwe_k")
    thandi, _ = staff_pair(desk)
    _, entry_id = await learned_and_reviewed(desk, user, thandi)
    # a later change of the entry: its before/after snapshots list the learned phrasing
    await thandi.send(f"/kb phrase {entry_id} paid twice by mistake", chat_id=STAFF_CHAT)
    # another question of hers, copied by Thandi into a KB draft she has not finished
    await user.send(OTHER_QUESTION)
    await user.send(NO_MATCH)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    await thandi.send("Can I pay with eBucks?", chat_id=STAFF_CHAT)
    await thandi.send("Not yet: pay by card or EFT.", chat_id=STAFF_CHAT)
    await thandi.send(f"{OTHER_QUESTION}\npaying with loyalty points", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT step FROM kb_drafts") == "category"
    quoting = await desk.scalar("SELECT count(*) FROM kb_changes WHERE summary LIKE :q", q=f"%{QUESTION}%")
    assert quoting >= 1
    changes_before = await desk.scalar("SELECT count(*) FROM kb_changes")
    # /mydata shows the copies
    await user.send("/mydata")
    _, doc = the_file(desk, 5101)
    assert [(p["entry_id"], p["text"], p["status"]) for p in doc["learned_phrasings"]] == [(entry_id, QUESTION, "active")]
    assert doc["kb_changes_quoting_you"] and all(QUESTION in c["summary"] for c in doc["kb_changes_quoting_you"])
    assert doc["staff"] is None
    await erase(desk, user)
    dump = await everything(desk)
    assert QUESTION not in dump and OTHER_QUESTION not in dump and NO_MATCH not in dump and "Lindiwe" not in dump
    # the change records stay (anonymised), the draft too (without her question)
    assert await desk.scalar("SELECT count(*) FROM kb_changes") == changes_before
    assert await desk.scalar("SELECT summary FROM kb_changes WHERE action = 'review'") == "learned phrasing accepted: '(erased)'"
    assert await desk.scalar("SELECT actor_id FROM kb_changes WHERE action = 'review'") == 800001  # staff stay staff
    draft = await desk.scalar("SELECT data FROM kb_drafts")
    draft = json.loads(draft) if isinstance(draft, str) else draft
    assert draft["phrasings"] == ["paying with loyalty points"] and draft["title"] == "Can I pay with eBucks?"
    # the report's knowledge gaps count her unanswered question but show no empty example
    from reports.metrics import kb_gaps
    from reports.periods import month_of

    async with desk.sessions() as session:
        gaps = await kb_gaps(session, month_of(desk.clock.now, desk.app.bot_data["desk"].settings.report_tz))
    assert gaps["questions"] >= 1
    assert all(c["example"].strip() for c in gaps["clusters"])
    assert desk.tg.errors() == []


async def test_feedback_cards_are_redrawn_and_a_lost_card_does_not_stop_the_erasure(desk):
    user = desk.tg.user(5102, "Zanele", last_name="Khumalo", username="zanele_k")
    thandi, sipho = staff_pair(desk)
    first = await give_feedback(desk, user, "Please add dark mode, Zanele from Soweto")
    second = await give_feedback(desk, user, "The ads search is slow on my Nokia")
    third = await give_feedback(desk, user, "Thanks for the quick refund")
    await thandi.send("Glad it worked out, Zanele!", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, third))
    assert "Zanele" in feedback_card(desk, first).text
    number = await open_ticket(desk, user)
    lost = feedback_card(desk, second)
    desk.tg.messages[(STAFF_CHAT, lost.message_id)].deleted = True  # someone deleted it in Telegram
    desk.tg.messages[(STAFF_CHAT, card(desk, number).message_id)].deleted = True
    # Sipho pressed "Answer" on the first card and has not typed yet
    await sipho.press("✍️ Answer", feedback_card(desk, first))
    assert await desk.scalar("SELECT count(*) FROM pending_inputs WHERE user_id = 800002") == 1
    to_user = len([m for m in desk.tg.chat_messages(5102) if m.from_bot])
    await erase(desk, user)
    # committed whatever Telegram said about the lost cards
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5102") == 0
    assert await desk.scalar("SELECT count(*) FROM feedback WHERE text <> ''") == 0
    assert "clean slate" in desk.tg.last_bot_message(5102).text
    failed = desk.tg.errors()
    assert failed and all(c.method == "editMessageText" for c in failed), failed
    # the cards still there show neither her name nor her text, and offer no answer
    for number_ in (first, third):
        shown = feedback_card(desk, number_)
        for secret in ("Zanele", "Khumalo", "zanele_k", "dark mode", "quick refund", "5102"):
            assert secret not in shown.text, (number_, secret)
        assert "(erased user)" in shown.text and shown.button_texts == []
    # Sipho's answer (a reply to the card, or his pending "Answer") goes nowhere
    assert await desk.scalar("SELECT count(*) FROM pending_inputs WHERE user_id = 800002") == 0
    await sipho.send("Dark mode is planned", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, first))
    assert "had their personal data erased; your message was not sent" in desk.tg.last_bot_message(STAFF_CHAT).text
    await sipho.press_data(f"fb:a:{first}", feedback_card(desk, first))
    assert any("personal data was erased: there is nobody to answer" in e.text for e in desk.tg.events[-3:])
    assert len([m for m in desk.tg.chat_messages(5102) if m.from_bot]) == to_user + 2  # the erasure's own two only
    assert await desk.scalar("SELECT count(*) FROM feedback WHERE answer IS NOT NULL") == 0


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_a_staff_member_erasing_themselves_leaves_records_without_them(desk, staff_forum):
    thandi, sipho = staff_pair(desk)
    lerato = desk.tg.user(5103, "Lerato", username="lerato_m")
    held = await open_ticket(desk, lerato)
    await thandi.press("Claim", card(desk, held))
    await thandi.send("Checking with the payments team", chat_id=STAFF_CHAT, reply_to=card(desk, held))
    done = await open_ticket(desk, desk.tg.user(5104, "Musa"), text="where is my refund for the featured ad")
    await sipho.send(f"/assign {done} @thandi_support", chat_id=STAFF_CHAT)
    await thandi.send(f"/resolve {done}", chat_id=STAFF_CHAT)
    number = await give_feedback(desk, lerato, "Nice bot")
    await thandi.send("Thank you Lerato", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    await thandi.send("/kb phrase meet-safely where do I meet a buyer", chat_id=STAFF_CHAT)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    await thandi.send("Thandi's unfinished entry", chat_id=STAFF_CHAT)
    assert "Thandi" in card(desk, held).text and "Thandi" in feedback_card(desk, number).text
    # her /mydata lists what the desk keeps about her as staff
    await thandi.send("/mydata")
    msg, doc = the_file(desk, 800001)
    assert "As a staff member: your staff profile, 1 knowledge-base draft(s), 1 knowledge-base change(s) and 2 case(s)" in msg.text
    staff = doc["staff"]
    assert staff["member"]["username"] == "thandi_support"
    assert [d["step"] for d in staff["kb_drafts"]] == ["answer"]
    assert [c["action"] for c in staff["kb_changes"]] == ["phrase"]
    assert {t["id"] for t in staff["tickets_assigned"]} == {held, done}
    assert [f["id"] for f in staff["feedback_answered"]] == [number]
    assert "Lerato" not in json.dumps(staff)  # ids only where the record is about someone else
    events_before = await desk.scalar("SELECT count(*) FROM ticket_events")
    changes_before = await desk.scalar("SELECT count(*) FROM kb_changes")
    await erase(desk, thandi)
    said = [m.text for m in desk.tg.chat_messages(800001) if m.from_bot][-2]
    assert "Your staff profile and knowledge-base drafts are gone" in said and "the 1 open case(s) you held are back in the queue" in said
    assert await desk.scalar("SELECT count(*) FROM staff_members WHERE id = 800001") == 0
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    assert await desk.scalar("SELECT count(*) FROM kb_changes") == changes_before
    assert await desk.scalar("SELECT actor_id FROM kb_changes WHERE action = 'phrase'") < 0
    # the case she held goes back to the queue; the one she solved keeps an anonymous assignee
    assert tuple((await desk.rows("SELECT status, assignee_id FROM tickets WHERE id = :i", i=held))[0]) == ("new", None)
    assert await desk.scalar("SELECT count(*) FROM ticket_events") == events_before + 1
    assert await desk.scalar("SELECT status FROM tickets WHERE id = :i", i=done) == "resolved"
    assert await desk.scalar("SELECT assignee_id FROM tickets WHERE id = :i", i=done) < 0
    # her reply and answer stay (the user got them), but nothing points to her any more
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE text = 'Checking with the payments team'") == 1
    assert await desk.scalar("SELECT answer FROM feedback") == "Thank you Lerato"
    for table in metadata.sorted_tables:
        for column in table.c:
            if isinstance(column.type, (Integer, BigInteger)):
                found = await desk.scalar(f'SELECT count(*) FROM "{table.name}" WHERE "{column.name}" = 800001')
                assert found == 0, (table.name, column.name)
    dump = await everything(desk)
    assert "thandi_support" not in dump and "Thandi's unfinished entry" not in dump
    assert "assigned to Thandi" not in dump
    # the staff chat no longer shows her name on the cards
    assert "Thandi" not in card(desk, held).text and "🆕 new" in card(desk, held).text
    shown = feedback_card(desk, number).text
    assert "Thandi" not in shown and "Answered by (a staff member whose data was erased)" in shown
    assert any(f"Case #{held} is back in the queue" in m.text for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot)
    if staff_forum:  # the case's topic still names its user (only the staff member was erased)
        assert desk.tg.topic_named(STAFF_CHAT, f"#{held} · Lerato")
    # the case is Sipho's to take
    await sipho.press("Claim", card(desk, held))
    assert await desk.scalar("SELECT assignee_id FROM tickets WHERE id = :i", i=held) == 800002
    assert desk.tg.errors() == []


async def test_erasure_unlinks_the_dedupe_markers_of_the_private_chat(desk):
    from tests.test_duplicates import capture, deliver

    user = desk.tg.user(5105, "Sizwe")
    other = desk.tg.user(5106, "Ayanda")
    question = await capture(desk, user.send("how do I post an ad, Sizwe here"))
    await deliver(desk, question)
    await user.send("thanks")
    await other.send("how do I post an ad")
    assert await desk.scalar("SELECT count(*) FROM processed_updates WHERE chat_id = 5105") >= 1
    kept = await desk.scalar("SELECT count(*) FROM processed_updates WHERE chat_id = 5106")
    assert kept >= 1
    markers = await desk.scalar("SELECT count(*) FROM processed_updates")
    await erase(desk, user)
    assert await desk.scalar("SELECT count(*) FROM processed_updates WHERE chat_id = 5105") == 0
    assert await desk.scalar("SELECT count(*) FROM processed_updates WHERE chat_id = 5106") == kept
    # the markers no longer say which chat, but still recognise a re-delivered update:
    # Telegram re-sending her question after a crash does not store it (or her name) again
    assert await desk.scalar("SELECT count(*) FROM processed_updates") >= markers
    assert await deliver(desk, question) == []
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5105") == 0
    assert await desk.scalar("SELECT count(*) FROM questions WHERE text LIKE '%Sizwe%'") == 0
    assert desk.tg.errors() == []


@pytest.mark.parametrize("staff_forum", [True])
async def test_feedback_card_in_the_forum_topic_is_redrawn(desk, staff_forum):
    user = desk.tg.user(5107, "Nomvula", username="nomvula_d")
    number = await give_feedback(desk, user, "The Feedback topic is a nice touch")
    await erase(desk, user)
    shown = feedback_card(desk, number)
    assert shown.thread_id == desk.tg.topic_named(STAFF_CHAT, "Feedback")
    assert "Nomvula" not in shown.text and "nice touch" not in shown.text and "(erased user)" in shown.text
    assert desk.tg.errors() == []


@pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]])
@pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}])
async def test_moderation_and_report_cards_are_redrawn(desk, extra_chats, settings_overrides):
    h = await a_full_history(desk)
    report_card = tuple((await desk.rows("SELECT card_chat_id, card_message_id FROM ad_reports"))[0])
    assert "Lerato" in desk.tg.messages[report_card].text
    live_card = mod_card(desk, h["live"])
    assert "Lerato" in live_card.text and "VW Polo" in live_card.text
    await erase(desk, h["user"])
    shown = desk.tg.messages[(live_card.chat_id, live_card.message_id)].text
    assert shown == f"🗑 Ad #{h['live']} was withdrawn: its owner's personal data was erased."
    shown = desk.tg.messages[report_card]
    assert "Lerato" not in shown.text and "reported by (erased user) · owner Other seller" in shown.text
    assert shown.button_texts  # still open: a moderator decides it
    # the owner of the reported ad erases their data too: the card loses the ad's text
    await erase(desk, desk.tg.user(6001, "Other seller", username="other_seller"))
    shown = desk.tg.messages[report_card].text
    assert "Other seller" not in shown and "(the ad's text was erased)" in shown and "6001" not in shown
    # a moderator still decides it; nobody is left to tell (no message to an anonymous id)
    calls = len(desk.tg.calls)
    await h["mo"].press("✅ Uphold: take down", desk.tg.messages[report_card])
    assert "Upheld by Moderator Mo" in desk.tg.messages[report_card].text
    assert not [c for c in desk.tg.calls[calls:] if c.method == "sendMessage" and int(c.params["chat_id"]) < -10**15]
    assert desk.tg.errors() == []


async def test_admins_reach_a_staff_member_who_never_wrote_to_the_bot(desk):
    thandi, sipho = staff_pair(desk)
    admin = desk.tg.user(ADMIN_ID, "Admin")
    number = await open_ticket(desk, desk.tg.user(5108, "Musa"))
    await sipho.press("Claim", card(desk, number))
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 800002") == 0  # staff chat only
    await admin.send("/userdata @sipho_support", chat_id=STAFF_CHAT)
    msg, doc = the_file(desk, STAFF_CHAT)
    assert "Personal data of Sipho (id 800002)" in msg.text
    assert doc["user"] is None and doc["staff"]["member"]["username"] == "sipho_support"
    assert [t["id"] for t in doc["staff"]["tickets_assigned"]] == [number]
    await admin.send("/forget 800002", chat_id=STAFF_CHAT)
    confirm = desk.tg.last_bot_message(STAFF_CHAT)
    assert "Erase the personal data of Sipho" in confirm.text
    await admin.press("Erase", confirm)
    assert "Personal data of user 800002 erased by Admin" in desk.tg.messages[(STAFF_CHAT, confirm.message_id)].text
    assert await desk.scalar("SELECT count(*) FROM staff_members WHERE id = 800002") == 0
    assert tuple((await desk.rows("SELECT status, assignee_id FROM tickets WHERE id = :i", i=number))[0]) == ("new", None)
    assert await desk.scalar("SELECT count(*) FROM users WHERE deleted_at IS NOT NULL") == 0  # no anonymous user for a staff-only person
    await admin.send("/forget 800002", chat_id=STAFF_CHAT)
    assert "I don't know the user 800002" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert desk.tg.errors() == []


def test_a_short_question_is_replaced_only_where_it_is_quoted():
    from bot.privacy import _scrub_summary

    texts = {"ad", "sell my car"}
    assert _scrub_summary("phrasing added: 'ad'", texts) == "phrasing added: '(erased)'"
    assert _scrub_summary("learned phrasing accepted: 'sell my car'", texts) == "learned phrasing accepted: '(erased)'"
    assert _scrub_summary("added 'Featured ads' (3 phrasings)", texts) == "added 'Featured ads' (3 phrasings)"
    assert _scrub_summary("phrasing added: 'how do I post an ad'", texts) == "phrasing added: 'how do I post an ad'"
    # a summary cut at its length limit in the middle of the quoted text
    long = "my payment went through twice and I was charged R98 " * 9
    texts = {" ".join(long.split())}
    cut = ("learned phrasing accepted: " + repr(" ".join(long.split())))[:200]
    assert _scrub_summary(cut, texts) == "learned phrasing accepted: '(erased)'"


async def test_a_case_solved_by_an_erased_staff_member_reopens_into_the_queue(desk):
    """A solved case keeps the anonymous id as its assignee (past figures); when its user
    replies, it must come back as new, not claimed by that ghost (nobody would answer)."""
    thandi, sipho = staff_pair(desk)
    user = desk.tg.user(5105, "Dineo")
    number = await open_ticket(desk, user)
    await thandi.send("Done, refunded.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.press("Resolve", card(desk, number))
    notice = next(m for m in desk.tg.chat_messages(5105) if "marked as solved" in m.text)
    await erase(desk, thandi)
    assert await desk.scalar("SELECT assignee_id FROM tickets WHERE id = :i", i=number) < 0
    await user.send("The refund has not arrived", reply_to=notice)
    assert tuple((await desk.rows("SELECT status, assignee_id FROM tickets WHERE id = :i", i=number))[0]) == ("new", None)
    await sipho.press("Claim", card(desk, number))
    assert await desk.scalar("SELECT assignee_id FROM tickets WHERE id = :i", i=number) == 800002
    await sipho.send(f"/resolve {number}", chat_id=STAFF_CHAT)
    await sipho.send(f"/reopen {number}", chat_id=STAFF_CHAT)  # a staff reopen: the assignee is real
    assert await desk.scalar("SELECT status FROM tickets WHERE id = :i", i=number) == "claimed"


async def test_a_staff_member_with_many_finished_cases_gets_only_the_latest_cards_redrawn(desk, monkeypatch):
    """Each card edit counts against Telegram's 20 per minute in a group, and the erasure's
    update waits for them: the held cases and the latest finished ones are redrawn."""
    import bot.privacy

    monkeypatch.setattr(bot.privacy, "LATEST_REDRAWN", 2)
    thandi, _ = staff_pair(desk)
    finished = []
    for i in range(4):
        number = await open_ticket(desk, desk.tg.user(5120 + i, f"User{i}"), text=f"my payment number {i} failed")
        await thandi.press("Claim", card(desk, number))
        await thandi.send(f"/resolve {number}", chat_id=STAFF_CHAT)
        finished.append(number)
    held = await open_ticket(desk, desk.tg.user(5130, "Lerato"))
    await thandi.press("Claim", card(desk, held))
    assert all("Thandi" in card(desk, n).text for n in [*finished, held])
    await erase(desk, thandi)
    assert "Thandi" not in card(desk, held).text  # held: back in the queue, redrawn
    assert ["Thandi" in card(desk, n).text for n in finished] == [True, True, False, False]
    assert desk.tg.errors() == []
