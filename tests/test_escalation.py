"""Support tickets end to end: one user, two staff members, the staff chat (forum or not)."""

from __future__ import annotations

import asyncio

import pytest
from telegram import Update

from tests.support import STAFF_CHAT

UNKNOWN = "my payment went through twice and I was charged R98"


async def open_ticket(desk, user, text=UNKNOWN, category="Payments"):
    """The bot answers, the answer does not help, the user asks for a person."""
    await user.send(text)
    if any("Not helpful" in b for b in desk.tg.last_bot_message(user.id).button_texts[:2]):
        await user.press("Not helpful")
    await user.press("Talk to a person")
    await user.press(category)
    return await desk.scalar("SELECT max(id) FROM tickets")


def staff_pair(desk):
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT, username="thandi_support")
    sipho = desk.tg.staff(800002, "Sipho", STAFF_CHAT, username="sipho_support")
    return thandi, sipho


def card(desk, number):
    for msg in desk.tg.chat_messages(STAFF_CHAT):
        if msg.from_bot and msg.text.startswith(f"🎫 #{number} "):
            return msg
    raise LookupError(f"no card for #{number}")


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_full_case_from_failed_answer_to_rating(desk, staff_forum):
    user = desk.tg.user(5001, "Lerato", username="lerato")
    thandi, sipho = staff_pair(desk)
    number = await open_ticket(desk, user)
    created = desk.tg.last_bot_message(5001).text
    assert f"Your case #{number} (Payments and featured ads) is with our support team" in created
    alert = card(desk, number)
    assert UNKNOWN in alert.text and "Lerato (@lerato)" in alert.text and "🆕 new" in alert.text
    assert "earlier cases: 0 · ads: 0 · strikes: 0" in alert.text
    assert alert.button_texts[0] == "✋ Claim"
    if staff_forum:
        assert alert.thread_id == desk.tg.topic_named(STAFF_CHAT, f"#{number} · Lerato")
    # Thandi claims: the card changes in place, the user is told
    await thandi.press("Claim", alert)
    alert = card(desk, number)
    assert "✋ claimed" in alert.text and "✋ Thandi" in alert.text
    assert "Thandi from support is on your case" in desk.tg.last_bot_message(5001).text
    # Thandi answers: in the topic (forum) or as a reply to the card
    where = {"thread_id": alert.thread_id} if staff_forum else {"reply_to": alert}
    await thandi.send("Sorry about that! Which card did you use?", chat_id=STAFF_CHAT, **where)
    reply = desk.tg.last_bot_message(5001)
    assert "Thandi (support, case #" in reply.text and "Which card did you use?" in reply.text
    # an internal note is not relayed
    await sipho.send("!refund limit is R500, fine", chat_id=STAFF_CHAT, **where)
    assert desk.tg.last_bot_message(5001).message_id == reply.message_id
    # the user answers with text and a photo; both reach the staff chat
    await user.send("The Visa ending 1234")
    await user.send_photo("bank statement")
    staff_side = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-2:]
    assert "Visa ending 1234" in staff_side[0].text
    assert staff_side[1].kind == "photo" and "bank statement" in staff_side[1].text
    # and staff send a document back
    await thandi.send_document("refund confirmation", chat_id=STAFF_CHAT, **where)
    doc = desk.tg.last_bot_message(5001)
    assert doc.kind == "document" and "refund confirmation" in doc.text
    # the other way round too: a document from the user, a photo from staff
    await user.send_document("invoice")
    assert [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-1].kind == "document"
    await thandi.send_photo("where to find the card number", chat_id=STAFF_CHAT, **where)
    photo = desk.tg.last_bot_message(5001)
    assert photo.kind == "photo" and "Thandi (support, case #" in photo.text
    # resolve: user told, survey sent
    await thandi.press("Resolve", card(desk, number))
    resolved, survey = [m for m in desk.tg.chat_messages(5001) if m.from_bot][-2:]
    assert f"case #{number} has been marked as solved" in resolved.text
    assert survey.button_texts[0].startswith("⭐")
    await user.press("5⭐", survey)
    assert "You rated ⭐⭐⭐⭐⭐ (5/5)" in desk.tg.messages[(5001, survey.message_id)].text
    row = (await desk.rows("SELECT status, assignee_id, first_response_at IS NOT NULL FROM tickets"))[0]
    assert tuple(row) == ("resolved", 800001, True)
    kinds = await desk.rows("SELECT direction, kind FROM ticket_messages ORDER BY id")
    assert [tuple(k) for k in kinds] == [
        ("in", "text"), ("bot", "text"), ("bot", "text"), ("out", "text"), ("note", "text"), ("in", "text"), ("in", "photo"),
        ("out", "document"), ("in", "document"), ("out", "photo"), ("bot", "text"), ("bot", "text"),
    ]  # question, created and claimed notices, ..., solved notice, survey
    assert await desk.scalar("SELECT stars FROM ratings") == 5
    events = [r[0] for r in await desk.rows("SELECT to_status FROM ticket_events ORDER BY id")]
    assert events[:2] == ["new", "claimed"] and events[-1] == "resolved"
    assert desk.tg.errors() == []


async def test_support_command_asks_for_a_description_and_one_ticket_per_category(desk):
    user = desk.tg.user(5002, "Kabelo")
    thandi, _ = staff_pair(desk)
    await user.send("/support")
    await user.press("Something is broken")
    assert "Please describe the problem" in desk.tg.last_bot_message(5002).text
    assert await desk.scalar("SELECT status FROM tickets") == "draft"
    assert not [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot]  # staff see nothing yet
    await user.send("The app <b>crashes</b> & closes when I open chats")
    number = await desk.scalar("SELECT id FROM tickets")
    assert "The app <b>crashes</b> & closes" in card(desk, number).text  # escaped, shown as typed
    assert await desk.scalar("SELECT department FROM tickets") == "it"
    # a second request in the same category joins the open ticket
    await user.send("/mytickets")
    assert f"#{number}" in desk.tg.last_bot_message(5002).text
    await thandi.send("Which phone do you use?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await user.send("/support")
    await user.press("Something is broken")
    assert f"You already have an open case #{number}" in desk.tg.last_bot_message(5002).text
    assert await desk.scalar("SELECT count(*) FROM tickets") == 1


async def test_cancel_before_describing(desk):
    user = desk.tg.user(5003, "Zodwa")
    await user.send("💬 Contact support")
    await user.press("Something else")
    await user.press("Cancel")
    assert "cancelled the request" in desk.tg.last_bot_message(5003).text
    assert await desk.scalar("SELECT status FROM tickets") == "closed"
    await user.send("is it safe to meet a buyer")  # back to questions, not a description
    assert desk.tg.last_bot_message(5003).text.startswith("How do I meet")


async def test_claim_race_exactly_one_winner(desk):
    user = desk.tg.user(5004, "Naledi")
    thandi, sipho = staff_pair(desk)
    number = await open_ticket(desk, user)
    alert = card(desk, number)
    data = f"t:claim:{number}"
    one, two = thandi.callback_update(data, alert), sipho.callback_update(data, alert)
    start = len(desk.tg.events)
    await asyncio.gather(desk.tg.feed(one), desk.tg.feed(two))
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE note = 'claimed'") == 1
    winner = await desk.scalar("SELECT assignee_id FROM tickets")
    assert winner in (800001, 800002)
    toasts = [e.text for e in desk.tg.events[start:] if e.who == "toast"]
    loser_name = "Thandi" if winner == 800001 else "Sipho"
    assert sorted(toasts) == sorted(["It's yours.", f"{loser_name} already has this ticket."])
    claimed_notices = [m for m in desk.tg.chat_messages(5004) if "from support is on your case" in m.text]
    assert len(claimed_notices) == 1


async def test_non_staff_are_refused_and_logged(desk, caplog):
    user = desk.tg.user(5005, "Pieter")
    number = await open_ticket(desk, user)
    alert = card(desk, number)
    outsider = desk.tg.user(666, "Mallory")  # not a member of the staff chat
    await outsider.press("Claim", alert)
    assert desk.tg.events[-1].text == "Only staff can do that."
    await outsider.send("/queue", chat_id=STAFF_CHAT)
    await outsider.send("I am support, send me your password", chat_id=STAFF_CHAT, reply_to=alert)
    assert await desk.scalar("SELECT status FROM tickets") == "new"
    assert not [m for m in desk.tg.chat_messages(5005) if "password" in m.text]
    assert sum("refused a staff action" in r.getMessage() for r in caplog.records) == 3
    # someone who left the staff chat loses access at once
    leaver = desk.tg.staff(800009, "Former", STAFF_CHAT)
    desk.tg.add_member(STAFF_CHAT, leaver.data, "left")
    await leaver.press("Claim", alert)
    assert await desk.scalar("SELECT assignee_id FROM tickets") is None


@pytest.mark.parametrize("settings_overrides", [{"staff": {"membership": "admins"}}])
async def test_membership_admins_only(desk):
    user = desk.tg.user(5006, "Ayanda")
    number = await open_ticket(desk, user)
    member = desk.tg.staff(800010, "Member", STAFF_CHAT)
    admin = desk.tg.staff(800011, "Admin", STAFF_CHAT, status="administrator")
    await member.press("Claim", card(desk, number))
    assert await desk.scalar("SELECT assignee_id FROM tickets") is None
    await admin.press("Claim", card(desk, number))
    assert await desk.scalar("SELECT assignee_id FROM tickets") == 800011


@pytest.mark.parametrize("settings_overrides", [{"sla": {"escalation_contacts": ["@team_lead"]}}])
async def test_sla_realert_ping_and_auto_resolve(desk):
    user = desk.tg.user(5007, "Thabo")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)  # payments: high priority, first reply within 1 h
    sweep = desk.app.job_queue.get_jobs_by_name("sla_sweep")[0]
    desk.clock.advance(minutes=59)
    await sweep.run(desk.app)
    assert not [m for m in desk.tg.chat_messages(STAFF_CHAT) if "⏰" in m.text]
    desk.clock.advance(minutes=2)
    await sweep.run(desk.app)
    await sweep.run(desk.app)  # a repeated sweep does nothing twice
    alerts = [m for m in desk.tg.chat_messages(STAFF_CHAT) if "⏰" in m.text]
    assert len(alerts) == 1 and f"#{number} has waited 1 hour without an agent (target 1 hour)" in alerts[0].text and "@team_lead" in alerts[0].text
    # claimed but still no reply: the assignee is reminded, once
    await thandi.press("Claim", card(desk, number))
    desk.clock.advance(minutes=5)
    await sweep.run(desk.app)
    await sweep.run(desk.app)
    pings = [m for m in desk.tg.chat_messages(STAFF_CHAT) if "has no reply yet" in m.text]
    assert len(pings) == 1 and "Thandi" in pings[0].text
    assert await desk.scalar("SELECT first_response_breached FROM tickets") in (1, True)
    # staff answer; the user never replies: resolved after 3 days with a notice and the survey
    await thandi.send("Can you send the receipt?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    desk.clock.advance(days=2, hours=23)
    await sweep.run(desk.app)
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"
    desk.clock.advance(hours=2)
    await sweep.run(desk.app)
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"
    notices = [m.text for m in desk.tg.chat_messages(5007) if m.from_bot][-2:]
    assert "because we did not hear back from you" in notices[0] and "How happy are you" in notices[1]
    # and after the reopen window it closes quietly
    desk.clock.advance(days=8)
    await sweep.run(desk.app)
    assert await desk.scalar("SELECT status FROM tickets") == "closed"


async def test_sla_reminder_survives_a_restart_and_fires_once(database):
    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import FakeClock, make_settings, wipe

    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    user = tg.user(5008, "Mpho")
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await user.send("/support")
        await user.press("Scam or safety problem")  # urgent: first reply within 15 min
        await user.send("Someone is pretending to be SayPro and asking for my OTP")
    # the bot is down for a while; when it comes back, the overdue reminder fires once
    clock.advance(minutes=20)
    for _ in range(2):
        app = build_app(make_settings(database), request=tg, clock=clock)
        tg.attach(app)
        async with running(app):
            await app.job_queue.get_jobs_by_name("sla_sweep")[0].run(app)
    alerts = [m for m in tg.chat_messages(STAFF_CHAT) if "⏰" in m.text]
    assert len(alerts) == 1


async def test_low_rating_with_comment_and_repeated_press(desk):
    user = desk.tg.user(5009, "Refilwe")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.send("Refund sent.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.send(f"/resolve {number}", chat_id=STAFF_CHAT)
    survey = [m for m in desk.tg.chat_messages(5009) if "How happy are you" in m.text][-1]
    await user.press("2⭐", survey)
    assert "What could we have done better?" in desk.tg.last_bot_message(5009).text
    await user.press_data(f"r:{number}:5", survey)  # a late second press (an old client still shows the stars)
    assert desk.tg.events[-1].text == "You have already rated this case. Thank you!"
    await user.send("It took <b>three</b> days & two calls")
    assert "your comment goes to the support team lead" in desk.tg.last_bot_message(5009).text
    row = (await desk.rows("SELECT stars, comment, comment_pending FROM ratings"))[0]
    assert (row[0], row[1], bool(row[2])) == (2, "It took <b>three</b> days & two calls", False)
    assert await desk.scalar("SELECT count(*) FROM ratings") == 1


@pytest.mark.parametrize("settings_overrides", [{"support": {"csat": False}}])
async def test_csat_can_be_turned_off(desk):
    user = desk.tg.user(5010, "Sizwe")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Resolve", card(desk, number))
    assert not [m for m in desk.tg.chat_messages(5010) if "How happy are you" in m.text]


async def test_spam_gets_no_survey_and_no_notice(desk):
    user = desk.tg.user(5011, "Spammer")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    before = len(desk.tg.chat_messages(5011))
    await thandi.press("Close as spam", card(desk, number))
    assert await desk.scalar("SELECT close_reason FROM tickets") == "spam"
    assert len(desk.tg.chat_messages(5011)) == before
    assert "🔒 closed" in card(desk, number).text


async def test_user_closes_own_ticket(desk):
    user = desk.tg.user(5012, "Karabo")
    number = await open_ticket(desk, user)
    await user.send("/mytickets")
    await user.press(f"Close case #{number}")
    assert f"Your case #{number} is closed" in desk.tg.last_bot_message(5012).text
    assert await desk.scalar("SELECT status FROM tickets") == "closed"
    assert "🔒 closed" in card(desk, number).text
    assert any("closed by the user" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    # another user cannot close it
    other = desk.tg.user(5013, "Other")
    await other.press_data(f"tk:close:{number}", desk.tg.last_bot_message(5012))


async def test_reopen_by_replying_to_the_solved_notice(desk):
    user = desk.tg.user(5014, "Dineo")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.send("Done, refunded.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.press("Resolve", card(desk, number))
    notice = next(m for m in desk.tg.chat_messages(5014) if "marked as solved" in m.text)
    # a plain new message after the case is solved is a new question, not a reopen
    await user.send("is it safe to meet a buyer")
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"
    desk.clock.advance(days=2)
    await user.send("The refund has not arrived", reply_to=notice)
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"
    assert f"case #{number} is open again" in desk.tg.last_bot_message(5014).text
    assert "The refund has not arrived" in [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-1].text
    assert await desk.scalar("SELECT reopen_count FROM tickets") == 1


async def test_user_who_blocked_the_bot_is_recorded_and_staff_told(desk):
    user = desk.tg.user(5015, "Gone")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    desk.tg.blocked_by.add(5015)
    await thandi.send("Hello?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert any("Not delivered to the user" in m.text and "blocked the bot" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    row = (await desk.rows("SELECT delivered, error FROM ticket_messages WHERE direction = 'out'"))[0]
    assert not row[0] and "blocked" in row[1]
    assert await desk.scalar("SELECT user_blocked_bot FROM tickets") in (1, True)
    # the desk goes on: the ticket can still be resolved
    await thandi.press("Resolve", card(desk, number))
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"


async def test_learning_a_phrasing_from_a_resolved_ticket(desk):
    user = desk.tg.user(5016, "Lindiwe")
    thandi, _ = staff_pair(desk)
    question = "my payment went through twice and I was charged R98"
    number = await open_ticket(desk, user, text=question)
    await thandi.press("Resolve", card(desk, number))
    offer = next(m for m in desk.tg.chat_messages(STAFF_CHAT) if "Did one of these FAQ entries answer it?" in m.text)
    await thandi.press("📚", offer)
    status = (await desk.rows("SELECT source, status, entry_id FROM kb_phrasings WHERE text = :t", t=question))[0]
    assert tuple(status[:2]) == ("learned", "pending")
    await thandi.send("/kb review", chat_id=STAFF_CHAT)
    review = desk.tg.last_bot_message(STAFF_CHAT)
    assert question in review.text
    await thandi.press("Approve", review)
    assert await desk.scalar("SELECT status FROM kb_phrasings WHERE text = :t", t=question) == "active"
    assert "No learned phrasings are waiting" in desk.tg.messages[(STAFF_CHAT, review.message_id)].text
    # the matcher now knows the question word for word
    entry_id = status[2]
    snapshot = desk.app.bot_data["desk"].kb
    assert snapshot.matcher.match(question)[0].entry_id == entry_id


async def test_staff_commands(desk):
    user = desk.tg.user(5017, "Bongani")
    thandi, sipho = staff_pair(desk)
    await sipho.send("/queue", chat_id=STAFF_CHAT)  # sipho becomes known for /assign
    assert "No open tickets" in desk.tg.last_bot_message(STAFF_CHAT).text
    number = await open_ticket(desk, user)
    await thandi.send("/queue", chat_id=STAFF_CHAT)
    queue = desk.tg.last_bot_message(STAFF_CHAT).text
    assert f"#{number} Payments and featured ads · Bongani · 🆕 new · due in 1 hour" in queue
    await thandi.send(f"/assign {number} @sipho_support", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT assignee_id FROM tickets") == 800002
    assert "Sipho from support is on your case" in desk.tg.last_bot_message(5017).text
    await thandi.send("/canned add receipt Please send us the receipt number from your bank SMS.", chat_id=STAFF_CHAT)
    await thandi.send("/canned", chat_id=STAFF_CHAT)
    assert "receipt" in desk.tg.last_bot_message(STAFF_CHAT).text
    await thandi.send("/canned receipt", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert "Please send us the receipt number" in desk.tg.last_bot_message(5017).text
    await thandi.send("/note customer sounds upset", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    detail = desk.tg.last_bot_message(STAFF_CHAT).text
    assert "📝" in detail and "customer sounds upset" in detail and "💬" in detail
    await thandi.send("/resolve", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"
    await thandi.send(f"/resolve {number}", chat_id=STAFF_CHAT)
    assert "is ✅ resolved: that is not possible now" in desk.tg.last_bot_message(STAFF_CHAT).text
    await thandi.send(f"/reopen {number}", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"
    await thandi.send("/ticket 999", chat_id=STAFF_CHAT)
    assert "There is no ticket #999" in desk.tg.last_bot_message(STAFF_CHAT).text
    await thandi.send("/help", chat_id=STAFF_CHAT)
    assert "/queue" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert desk.tg.errors() == []


IT_CHAT = -1002000000002


@pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", False)]])
@pytest.mark.parametrize("settings_overrides", [{"support": {"departments": {
    "general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}}}])
async def test_transfer_to_another_department_chat(desk):
    user = desk.tg.user(5018, "Tumi")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await user.send("I also attached a screenshot earlier")
    await thandi.send(f"/transfer {number} it", chat_id=STAFF_CHAT)
    it_card = next(m for m in desk.tg.chat_messages(IT_CHAT) if m.text.startswith(f"🎫 #{number}"))
    assert it_card.button_texts[0] == "✋ Claim"
    assert any("history:" in m.text and "screenshot" in m.text for m in desk.tg.chat_messages(IT_CHAT))
    assert any("transferred to IT" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    assert "handed to our IT team" in desk.tg.last_bot_message(5018).text
    assert await desk.scalar("SELECT department FROM tickets") == "it"
    # an IT agent answers from the IT chat
    it_agent = desk.tg.staff(800020, "Vusi", IT_CHAT)
    await it_agent.send("Fixed in the latest version", chat_id=IT_CHAT, reply_to=it_card)
    assert "Fixed in the latest version" in desk.tg.last_bot_message(5018).text
