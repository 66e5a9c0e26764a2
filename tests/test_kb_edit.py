"""Knowledge-base upkeep from the staff chat (/kb ...), end to end on both databases."""

from __future__ import annotations

import json

import pytest

from bot.db import unit_of_work
from kb.kbfile import parse_kb, validate
from kb.service import add_learned_phrasing, import_kb
from tests.support import STAFF_CHAT
from tests.test_escalation import card, open_ticket

SAFE_MEET = "is it safe to meet a buyer"  # answered directly by entry meet-safely


def thandi_of(desk):
    return desk.tg.staff(800001, "Thandi", STAFF_CHAT, username="thandi_support")


def last(desk):
    return desk.tg.last_bot_message(STAFF_CHAT)


async def changes(desk, entry_id=None):
    """kb_changes rows made from the staff chat (the start-up import of the KB file
    writes one 'import' row per entry)."""
    where = "AND entry_id = :e" if entry_id else ""
    rows = await desk.rows(f"SELECT entry_id, action, actor_id, summary, before, after FROM kb_changes WHERE action <> 'import' {where} ORDER BY id", e=entry_id)
    return [
        (r[0], r[1], r[2], r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4], json.loads(r[5]) if isinstance(r[5], str) else r[5])
        for r in rows
    ]


async def test_only_staff_may_use_kb_commands(desk):
    thandi = thandi_of(desk)
    outsider = desk.tg.user(666, "Mallory")
    for command in ("/kb search meet", "/kb show meet-safely", "/kb add", "/kb edit meet-safely title Hacked",
                    "/kb phrase meet-safely free money", "/kb delete meet-safely", "/kb review", "/kb export"):
        await outsider.send(command, chat_id=STAFF_CHAT)
        assert last(desk).text == "⚠️ Only staff can do that.", command
    assert not desk.tg.sent("sendDocument")
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    # a button from a staff member's card, pressed by an outsider, does nothing
    await thandi.send("/kb delete meet-safely", chat_id=STAFF_CHAT)
    confirm = last(desk)
    await outsider.press("Yes, delete it", confirm)
    assert desk.tg.events[-1].text == "Only staff can do that."
    await thandi.send("/kb edit meet-safely", chat_id=STAFF_CHAT)
    await outsider.press("Title", last(desk))
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    assert await desk.scalar("SELECT title FROM kb_entries WHERE id = 'meet-safely'") == "How do I meet a buyer or seller safely?"
    assert await changes(desk) == []
    # and the commands do not exist in private chats
    await thandi.send("/kb export")
    assert "/kb" in desk.tg.last_bot_message(800001).text and not desk.tg.sent("sendDocument")


async def test_search_and_show(desk):
    thandi = thandi_of(desk)
    await thandi.send("/kb search meet a buyer safely", chat_id=STAFF_CHAT)
    found = last(desk).text
    assert found.startswith("🔎 Entries for “meet a buyer safely”")
    assert "• meet-safely: How do I meet a buyer or seller safely? (safety)" in found.splitlines()
    await thandi.send("/kb search zzqx wibble", chat_id=STAFF_CHAT)
    assert "No entry matches “zzqx wibble”" in last(desk).text
    await thandi.send("/kb search", chat_id=STAFF_CHAT)
    assert "Usage: /kb search words" in last(desk).text
    await thandi.send("/kb show meet-safely", chat_id=STAFF_CHAT)
    details, answer = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-2:]
    assert "id meet-safely · category safety" in details.text
    assert "✍️ is it safe to meet a seller" in details.text and "Phrasings (7)" in details.text
    assert "fake-payment-scam" in details.text  # its follow-up buttons
    # the answer exactly as users get it (Markdown rendered), minus the vote prompt
    assert answer.text.startswith("How do I meet a buyer or seller safely?")
    assert "• Meet in a busy public place" in answer.text and "Did this answer" not in answer.text
    await thandi.send("/kb show no-such-entry", chat_id=STAFF_CHAT)
    assert "There is no FAQ entry “no-such-entry”" in last(desk).text
    await thandi.send("/kb show", chat_id=STAFF_CHAT)
    assert "Usage: /kb show id" in last(desk).text
    await thandi.send("/kb", chat_id=STAFF_CHAT)
    assert "/kb add" in last(desk).text and "/kb export" in last(desk).text
    assert desk.tg.errors() == []


async def test_add_conversation_end_to_end(desk):
    thandi = thandi_of(desk)
    user = desk.tg.user(5101, "Naledi")
    number = await open_ticket(desk, user)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    assert "Send the title" in last(desk).text and last(desk).button_texts == ["✖️ Cancel"]
    # while the draft is open, a reply to the ticket's card still goes to the user (tests/test_routing.py)
    await thandi.send("Which card did you use?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert "Which card did you use?" in desk.tg.last_bot_message(5101).text
    assert await desk.scalar("SELECT step FROM kb_drafts") == "title"
    to_user_before = len(desk.tg.chat_messages(5101))
    await thandi.send("x" * 130, chat_id=STAFF_CHAT)
    assert "The title is 130 characters; at most 120." in last(desk).text
    await thandi.send("How do I meet a buyer or seller safely?", chat_id=STAFF_CHAT)
    assert "Entry meet-safely already has this title" in last(desk).text
    await thandi.send("Can I swap my bicycle for a laptop?", chat_id=STAFF_CHAT)
    assert "Send the answer" in last(desk).text
    assert len(desk.tg.chat_messages(5101)) == to_user_before  # nothing of the draft was relayed
    # bad answers: raw HTML, a link that is not a web link, an unclosed bold, too long
    await thandi.send("Yes, <b>swaps</b> are fine", chat_id=STAFF_CHAT)
    assert "HTML tags are shown as text" in last(desk).text
    await thandi.send("See [the rules](javascript:alert(1))", chat_id=STAFF_CHAT)
    assert "is not a web link" in last(desk).text
    await thandi.send("Yes, **swaps are fine", chat_id=STAFF_CHAT)
    assert "An unclosed “**”" in last(desk).text
    await thandi.send("word " * 800, chat_id=STAFF_CHAT)
    assert "must fit one Telegram message" in last(desk).text
    assert await desk.scalar("SELECT step FROM kb_drafts") == "answer"
    await thandi.send("Yes: **swaps** are welcome.\n\n- Say _swap_ in the price\n- Read [the rules](https://saypro.example/rules)", chat_id=STAFF_CHAT)
    assert "one per line" in last(desk).text
    # a phrasing that belongs to another entry is refused (the bot could not tell them apart)
    await thandi.send("can i swap my bike for a laptop\nsafety tips", chat_id=STAFF_CHAT)
    assert "“safety tips” is already a phrasing of entry meet-safely" in last(desk).text
    await thandi.send("can i swap my bike for a laptop\ntrade items instead of money\n\nexchange goods without paying", chat_id=STAFF_CHAT)
    step = last(desk)
    assert "Pick the category" in step.text and "safety" in step.button_texts and "posting" in step.button_texts
    await thandi.send("Trading & Swaps!", chat_id=STAFF_CHAT)
    assert "is not a category name" in last(desk).text
    await thandi.press("posting", step)
    preview = last(desk)
    assert "Preview: what users will see" in preview.text
    assert "Can I swap my bicycle for a laptop?" in preview.text and "• Say swap in the price" in preview.text
    assert "**" not in preview.text and "<b>swaps</b>" in preview.html and "<i>swap</i>" in preview.html
    assert "3 phrasings" in preview.text and preview.button_texts == ["✅ Save", "✖️ Cancel"]
    await thandi.send("and one more thing", chat_id=STAFF_CHAT)
    assert "press Save or Cancel" in last(desk).text
    assert await desk.scalar("SELECT count(*) FROM kb_entries WHERE id = 'can-i-swap-my-bicycle-for-a-laptop'") == 0
    await thandi.press("Save", preview)
    assert "Saved as can-i-swap-my-bicycle-for-a-laptop" in last(desk).text
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    row = (await desk.rows("SELECT title, category, answer FROM kb_entries WHERE id = 'can-i-swap-my-bicycle-for-a-laptop'"))[0]
    assert tuple(row) == ("Can I swap my bicycle for a laptop?", "posting",
                          "Yes: **swaps** are welcome.\n\n- Say _swap_ in the price\n- Read [the rules](https://saypro.example/rules)")
    (change,) = await changes(desk, "can-i-swap-my-bicycle-for-a-laptop")
    assert change[1:3] == ("add", 800001) and change[4] is None
    assert change[5]["phrasings"] == ["can i swap my bike for a laptop", "trade items instead of money", "exchange goods without paying"]
    # a second Save press (e.g. a retry) finds nothing to save
    await thandi.press_data("kbd:save", preview)
    assert desk.tg.events[-1].text == "This draft is gone (saved or cancelled already)."
    assert len(await changes(desk)) == 1
    # at once, without a restart, the bot answers users with it
    await user.send("/cancel")
    asker = desk.tg.user(5102, "Kagiso")
    await asker.send("trade items instead of money")
    assert desk.tg.last_bot_message(5102).text.startswith("Can I swap my bicycle for a laptop?")
    # the draft is over: replies to the card reach the user again
    await thandi.send("Which bank was it?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert "Which bank was it?" in desk.tg.last_bot_message(5101).text
    assert desk.tg.errors() == []


async def test_telegram_formatting_becomes_markdown(desk):
    thandi = thandi_of(desk)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    await thandi.send("How do I bump my ad?", chat_id=STAFF_CHAT)
    # the staff member used Telegram's own bold and a text link: entities, no asterisks
    text = "Tap Bump on your ad. See the rules."
    message = thandi._message(STAFF_CHAT, text=text, entities=[
        {"type": "bold", "offset": 4, "length": 5},
        {"type": "text_link", "offset": 25, "length": 9, "url": "https://saypro.example/rules"},
    ])
    await desk.tg.feed({"message": message})
    assert "one per line" in last(desk).text
    data = await desk.scalar("SELECT data FROM kb_drafts")
    data = json.loads(data) if isinstance(data, str) else data
    assert data["answer"] == "Tap **Bump** on your ad. See [the rules](https://saypro.example/rules)."
    # the one-line edit keeps it too (a bold entity, an emoji before it: UTF-16 offsets)
    text = "/kb edit meet-safely answer 🚓 Meet at the police station."
    start = len(text[: text.index("police")].encode("utf-16-le")) // 2
    message = thandi._message(STAFF_CHAT, text=text, entities=[
        {"type": "bot_command", "offset": 0, "length": 3}, {"type": "bold", "offset": start, "length": 14},
    ])
    await desk.tg.feed({"message": message})
    assert await desk.scalar("SELECT answer FROM kb_entries WHERE id = 'meet-safely'") == "🚓 Meet at the **police station**."


async def test_cancel_leaves_the_draft(desk):
    thandi = thandi_of(desk)
    sipho = desk.tg.staff(800002, "Sipho", STAFF_CHAT)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    await thandi.send("How do I bump my ad?", chat_id=STAFF_CHAT)
    # another staff member's messages are not taken by Thandi's draft, nor can they cancel it
    await sipho.send("/cancel", chat_id=STAFF_CHAT)
    assert last(desk).text == "There is nothing to cancel."
    assert await desk.scalar("SELECT step FROM kb_drafts WHERE staff_id = 800001") == "answer"
    await thandi.send("/cancel", chat_id=STAFF_CHAT)
    assert "Stopped. Nothing was saved." in last(desk).text
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    # the Cancel button, too
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    prompt = last(desk)
    await sipho.press("Cancel", prompt)
    assert desk.tg.events[-1].text == "This draft is gone (saved or cancelled already)."
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 1
    await thandi.press("Cancel", prompt)
    assert "Stopped" in last(desk).text and await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    await thandi.send("just chatting with colleagues", chat_id=STAFF_CHAT)
    assert "Stopped" in last(desk).text  # ordinary staff talk: the bot stays quiet
    assert await desk.scalar("SELECT count(*) FROM kb_entries WHERE title = 'How do I bump my ad?'") == 0


async def test_add_draft_survives_a_restart(database):
    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import FakeClock, make_settings, wipe

    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    thandi = tg.staff(800001, "Thandi", STAFF_CHAT)
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await thandi.send("/kb phrase meet-safely where do people usually swap goods", chat_id=STAFF_CHAT)
        await thandi.send("/kb add", chat_id=STAFF_CHAT)
        await thandi.send("Can I pay with crypto?", chat_id=STAFF_CHAT)
        await thandi.send("No. Pay in person, in cash or by instant EFT.", chat_id=STAFF_CHAT)
    # the bot restarts in the middle of the conversation
    clock.advance(minutes=10)
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await thandi.send("pay with bitcoin\ncrypto payments accepted?\ncan i use crypto", chat_id=STAFF_CHAT)
        await thandi.send("payments", chat_id=STAFF_CHAT)
        await thandi.press("Save", chat_id=STAFF_CHAT)
        assert "Saved as can-i-pay-with-crypto" in tg.last_bot_message(STAFF_CHAT).text
        user = tg.user(5103, "Zodwa")
        await user.send("pay with bitcoin")
        assert tg.last_bot_message(5103).text.startswith("Can I pay with crypto?")
        # the same KB file was not imported again over the staff's edits
        await user.send("where do people usually swap goods")
        assert tg.last_bot_message(5103).text.startswith("How do I meet a buyer or seller safely?")
    assert [e.text for e in tg.events if e.who == "error"] == []


async def test_edit_changes_the_very_next_answer(desk):
    thandi = thandi_of(desk)
    user = desk.tg.user(5104, "Lerato")
    await user.send(SAFE_MEET)
    assert "Meet in a busy public place in daylight" in desk.tg.last_bot_message(5104).text
    await thandi.send("/kb edit meet-safely", chat_id=STAFF_CHAT)
    menu = last(desk)
    assert menu.button_texts == ["Title", "Answer", "Phrasings", "Category", "✖️ Cancel"]
    await thandi.press("Answer", menu)
    assert "Send the new answer" in last(desk).text and "Meet in a busy public place" in last(desk).text
    await thandi.send("Meet only at a **police station** counter. Never at home.", chat_id=STAFF_CHAT)
    assert "meet-safely changed:\n• new answer\nThe bot uses it" in last(desk).text
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(5104)
    assert "Meet only at a police station counter. Never at home." in answer.text
    assert "busy public place" not in answer.text and "<b>police station</b>" in answer.html
    (change,) = await changes(desk, "meet-safely")
    assert change[1:3] == ("edit", 800001)
    assert change[4]["answer"].startswith("- Meet in a busy public place") and change[5]["answer"].startswith("Meet only at")
    assert change[4]["phrasings"] == change[5]["phrasings"]
    # the one-line form; the same validation as everywhere
    await thandi.send("/kb edit meet-safely title   Meeting buyers and sellers safely ", chat_id=STAFF_CHAT)
    assert "• title: “How do I meet a buyer or seller safely?” → “Meeting buyers and sellers safely”" in last(desk).text
    await user.send(SAFE_MEET)
    assert desk.tg.last_bot_message(5104).text.startswith("Meeting buyers and sellers safely")
    await thandi.send("/kb edit meet-safely category Safety Tips", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT category FROM kb_entries WHERE id = 'meet-safely'") == "safety-tips"
    await thandi.send("/kb edit meet-safely answer <i>hi</i>", chat_id=STAFF_CHAT)
    assert "HTML tags are shown as text" in last(desk).text
    await thandi.send("/kb edit meet-safely title How do I post an ad?", chat_id=STAFF_CHAT)
    assert "Entry post-an-ad already has this title" in last(desk).text
    await thandi.send("/kb edit meet-safely category safety-tips", chat_id=STAFF_CHAT)
    assert "nothing changed" in last(desk).text
    await thandi.send("/kb edit nope title Whatever", chat_id=STAFF_CHAT)
    assert "There is no FAQ entry “nope”" in last(desk).text
    await thandi.send("/kb edit meet-safely colour red", chat_id=STAFF_CHAT)
    assert "Usage: /kb edit id" in last(desk).text
    # phrasings: the whole list, one per line; the matcher follows at once
    await thandi.press("Phrasings", menu)
    await thandi.send("meeting strangers from the site\nhandover spot", chat_id=STAFF_CHAT)
    assert "• 2 phrasings added\n• 7 phrasings removed" in last(desk).text
    await user.send("handover spot")
    assert desk.tg.last_bot_message(5104).text.startswith("Meeting buyers and sellers safely")
    assert [c[1] for c in await changes(desk, "meet-safely")] == ["edit", "edit", "edit", "edit"]
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    assert desk.tg.errors() == []


async def test_phrase_adds_a_way_of_asking(desk):
    thandi = thandi_of(desk)
    user = desk.tg.user(5105, "Sizwe")
    await thandi.send("/kb phrase meet-safely   where to do the handover  ", chat_id=STAFF_CHAT)
    assert "“where to do the handover” is now a phrasing of meet-safely" in last(desk).text
    await user.send("where to do the handover")
    assert desk.tg.last_bot_message(5105).text.startswith("How do I meet a buyer or seller safely?")
    await thandi.send("/kb phrase meet-safely Where to do the handover?", chat_id=STAFF_CHAT)
    assert "is already a phrasing of meet-safely" in last(desk).text
    await thandi.send("/kb phrase advance-fee-scam safety tips", chat_id=STAFF_CHAT)
    assert "“safety tips” is already a phrasing of entry meet-safely" in last(desk).text
    await thandi.send("/kb phrase ghost-entry hello there", chat_id=STAFF_CHAT)
    assert "There is no FAQ entry “ghost-entry”" in last(desk).text
    await thandi.send("/kb phrase meet-safely", chat_id=STAFF_CHAT)
    assert "Usage: /kb phrase id" in last(desk).text
    rows = await changes(desk)
    assert [(r[0], r[1], r[3]) for r in rows] == [("meet-safely", "phrase", "phrasing added: 'where to do the handover'")]
    assert rows[0][5]["phrasings"][-1] == "where to do the handover"


async def test_delete_asks_first(desk):
    thandi = thandi_of(desk)
    user = desk.tg.user(5106, "Ayanda")
    await thandi.send("/kb delete fake-payment-scam", chat_id=STAFF_CHAT)
    confirm = last(desk)
    assert "Delete" in confirm.text and confirm.button_texts == ["🗑 Yes, delete it", "Keep it"]
    await thandi.press("Keep it", confirm)
    assert "fake-payment-scam kept" in desk.tg.messages[(STAFF_CHAT, confirm.message_id)].text
    assert await desk.scalar("SELECT count(*) FROM kb_entries WHERE id = 'fake-payment-scam'") == 1
    await thandi.send("/kb delete fake-payment-scam", chat_id=STAFF_CHAT)
    confirm = last(desk)
    await thandi.press("Yes, delete it", confirm)
    done = desk.tg.messages[(STAFF_CHAT, confirm.message_id)].text
    assert "fake-payment-scam" in done and "deleted by Thandi" in done and "meet-safely" in done
    assert await desk.scalar("SELECT count(*) FROM kb_entries WHERE id = 'fake-payment-scam'") == 0
    assert await desk.scalar("SELECT count(*) FROM kb_phrasings WHERE entry_id = 'fake-payment-scam'") == 0
    rows = await changes(desk)
    assert [(r[0], r[1], r[2]) for r in rows] == [("meet-safely", "edit", 800001), ("fake-payment-scam", "delete", 800001)]
    assert rows[1][4]["title"] and rows[1][5] is None  # the log keeps a copy
    # the follow-up button to it is gone from the answer users get
    await user.send(SAFE_MEET)
    assert all("fake payment" not in b.lower() for b in desk.tg.last_bot_message(5106).button_texts)
    # pressed again (an old card): nothing more happens
    await thandi.press_data("kbx:yes:fake-payment-scam", confirm)
    assert "There is no FAQ entry" in desk.tg.messages[(STAFF_CHAT, confirm.message_id)].text
    assert len(await changes(desk)) == 2
    await thandi.send("/kb delete", chat_id=STAFF_CHAT)
    assert "Usage: /kb delete id" in last(desk).text
    assert desk.tg.errors() == []


async def test_review_is_recorded(desk):
    thandi = thandi_of(desk)
    async with unit_of_work(desk.sessions) as session:
        await add_learned_phrasing(session, entry_id="meet-safely", text="is the mall ok for meeting", now=desk.clock())
        await add_learned_phrasing(session, entry_id="meet-safely", text="meeting at night?", now=desk.clock())
    await thandi.send("/kb review", chat_id=STAFF_CHAT)
    review = last(desk)
    assert "is the mall ok for meeting" in review.text and "(2 in all)" in review.text
    await thandi.press("Approve", review)
    await thandi.press("Drop", review)
    assert "No learned phrasings are waiting" in desk.tg.messages[(STAFF_CHAT, review.message_id)].text
    rows = await changes(desk)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("review", 800001, "learned phrasing accepted: 'is the mall ok for meeting'"),
        ("review", 800001, "learned phrasing dropped: 'meeting at night?'"),
    ]
    await thandi.send("/kb show meet-safely", chat_id=STAFF_CHAT)
    details = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-2]
    assert "🎓 is the mall ok for meeting" in details.text and "last change: review by Thandi" in details.text


async def test_export_after_edits_round_trips(desk):
    thandi = thandi_of(desk)
    await thandi.send("/kb edit meet-safely answer Meet at a **police station**.\n\n1. Check the item\n2. Then pay", chat_id=STAFF_CHAT)
    await thandi.send("/kb phrase meet-safely handover spot", chat_id=STAFF_CHAT)
    await thandi.send("/kb delete photo-order", chat_id=STAFF_CHAT)
    await thandi.press("Yes, delete it", chat_id=STAFF_CHAT)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    for text in ("Can I pay with crypto?", "No: cash or instant EFT, in person.", "pay with bitcoin\ncan i use crypto\ncrypto accepted", "payments"):
        await thandi.send(text, chat_id=STAFF_CHAT)
    await thandi.press("Save", chat_id=STAFF_CHAT)
    await thandi.send("/kb export", chat_id=STAFF_CHAT)
    sent = last(desk)
    assert sent.kind == "document" and "69 entries" in sent.text
    name, content = desk.tg.uploads[sent.file_id]
    assert name.startswith("faq-") and name.endswith(".yaml")
    text = content.decode("utf-8")
    doc, problems = parse_kb(text)
    assert [p for p in problems + validate(doc) if p.severity == "error"] == []
    by_id = doc.by_id()
    assert by_id["meet-safely"].answer == "Meet at a **police station**.\n\n1. Check the item\n2. Then pay"
    assert by_id["meet-safely"].phrasings[-1] == "handover spot"
    assert "photo-order" not in by_id and by_id["can-i-pay-with-crypto"].category == "payments"
    # importing the exported file changes nothing: the file and the database agree
    revision = await desk.scalar("SELECT revision FROM kb_state")
    async with unit_of_work(desk.sessions) as session:
        report = await import_kb(session, doc, desk.clock())
    assert not report.changed and report.unchanged == 69
    # the log: the start-up import (one row per entry, no actor), then the staff's changes
    assert await desk.scalar("SELECT count(*) FROM kb_changes WHERE action = 'import' AND actor_id IS NULL") == 69
    rows = await changes(desk)
    assert [c[1] for c in rows if "follow-up" not in c[3]] == ["edit", "phrase", "delete", "add"]
    assert [c[3] for c in rows if "follow-up" in c[3]] == ["follow-up to deleted entry 'photo-order' removed"] * (len(rows) - 4)
    assert await desk.scalar("SELECT revision FROM kb_state") == revision
    assert desk.tg.errors() == []


@pytest.mark.parametrize("staff_forum", [True])
async def test_add_in_a_forum_topic(desk):
    thandi = thandi_of(desk)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    assert "Send the title" in last(desk).text
    await thandi.send("How do I bump my ad?", chat_id=STAFF_CHAT)
    assert "Send the answer" in last(desk).text
    await thandi.send_photo("a screenshot", chat_id=STAFF_CHAT)
    assert "Please send text for this step" in last(desk).text
    assert desk.tg.errors() == []


async def test_editing_an_entry_deleted_meanwhile(desk):
    thandi = thandi_of(desk)
    await thandi.send("/kb edit advance-fee-scam", chat_id=STAFF_CHAT)
    await thandi.press("Title", last(desk))
    await thandi.send("/kb delete advance-fee-scam", chat_id=STAFF_CHAT)
    await thandi.press("Yes, delete it", last(desk))
    await thandi.send("Advance-fee scams", chat_id=STAFF_CHAT)
    assert "There is no FAQ entry “advance-fee-scam”" in last(desk).text
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    assert await desk.scalar("SELECT count(*) FROM kb_entries WHERE title = 'Advance-fee scams'") == 0


@pytest.mark.parametrize("staff_forum", [True])
async def test_kb_drafts_do_not_start_in_a_ticket_topic(desk):
    """In a ticket's topic staff messages go to the customer: /kb add and the /kb edit
    menu say where to start instead of opening a draft that could never get (or would
    steal) the next message; the one-message commands still work there."""
    thandi = thandi_of(desk)
    user = desk.tg.user(5110, "Palesa")
    number = await open_ticket(desk, user)
    topic = desk.tg.topic_named(STAFF_CHAT, f"#{number} · Palesa")

    def in_topic():
        return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.thread_id == topic][-1]

    await thandi.send("/kb add", chat_id=STAFF_CHAT, thread_id=topic)
    refusal = in_topic()
    assert refusal.text.startswith(f"⚠️ This is the topic of ticket #{number}: what you write here goes to the customer")
    assert "Start them in the General topic" in refusal.text
    await thandi.send("/kb edit meet-safely", chat_id=STAFF_CHAT, thread_id=topic)
    assert in_topic().text == refusal.text and not in_topic().button_texts
    # a field button of an /kb edit menu shown there (before this rule) opens no draft either
    await thandi.press_data("kbe:answer:meet-safely", in_topic(), label="Answer")
    assert in_topic().text == refusal.text
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0
    # so the next message is the customer's reply, as everywhere in the topic
    await thandi.send("Hi Palesa, let me check your payment.", chat_id=STAFF_CHAT, thread_id=topic)
    assert "Hi Palesa, let me check your payment." in desk.tg.last_bot_message(5110).text
    # one-message commands work in the topic
    await thandi.send("/kb edit meet-safely title Meeting people safely", chat_id=STAFF_CHAT, thread_id=topic)
    assert "meet-safely changed" in in_topic().text
    await thandi.send("/kb search meet a buyer safely", chat_id=STAFF_CHAT, thread_id=topic)
    assert "• meet-safely: Meeting people safely (safety)" in in_topic().text.splitlines()
    # and /kb add in the General topic works as ever
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    assert "Send the title" in last(desk).text
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 1
    assert desk.tg.errors() == []
