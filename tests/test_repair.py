"""What a crash between a commit and its sends leaves unsent, the sweep sends: once.

Each test performs the database part of an update through the services (as the
handler's transaction would) and skips the handler's sends, as if the bot was killed
right after the commit; the re-delivered update would be dropped as a duplicate. The
next sweep must post exactly one card or send exactly one relay, and a second sweep
nothing; a normal flow must never trigger a repair.
"""

from __future__ import annotations

import logging

import pytest

from bot.db import unit_of_work
from escalation import service
from tests.support import STAFF_CHAT
from tests.test_escalation import card, open_ticket, staff_pair

USER = 6101
NO_RETRIES = {"telegram": {"max_retries": 0}}  # a 429 reaches the bot at once (no waiting in tests)
SUBJECT = "the refund for my featured ad never came"


async def sweep(desk):
    await desk.app.job_queue.get_jobs_by_name("sla_sweep")[0].run(desk.app)


def bot_calls(desk, chat_id):
    """Successful sends of the bot to ``chat_id`` so far."""
    return [
        c for c in desk.tg.calls
        if c.method in ("sendMessage", "copyMessage", "sendPhoto") and c.ok and int(c.params["chat_id"]) == chat_id
    ]


def cards(desk, number):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"🎫 #{number} ")]


async def crashed_intake(desk, user_id=USER, name="Naledi"):
    """A ticket created by the service in its own transaction; the bot 'died' before
    telling anyone (no card, no topic, no notice)."""
    user = desk.tg.user(user_id, name)
    await user.send("hello")  # the user is known to the bot
    helpdesk = desk.app.bot_data["desk"]
    async with unit_of_work(desk.sessions) as session:
        intake = await service.open_request(
            session, helpdesk.policy, user_id=user_id, category="payments", question_id=None, now=desk.clock.now, subject=SUBJECT
        )
    return user, intake.ticket.id


async def crashed_user_message(desk, number, text, user_message_id):
    helpdesk = desk.app.bot_data["desk"]
    async with unit_of_work(desk.sessions) as session:
        ticket = await service.get_ticket(session, number)
        relay = await service.user_message(
            session, helpdesk.policy, ticket=ticket, user_id=ticket.user_id, kind="text", text=text,
            file_id=None, user_message_id=user_message_id, now=desk.clock.now,
        )
    return relay.message.id


async def crashed_staff_reply(desk, number, staff_id, text):
    helpdesk = desk.app.bot_data["desk"]
    async with unit_of_work(desk.sessions) as session:
        ticket = await service.get_ticket(session, number, lock=True)
        post = await service.staff_message(
            session, helpdesk.policy, ticket=ticket, staff_id=staff_id, kind="text", text=text, file_id=None,
            chat_id=STAFF_CHAT, staff_message_id=900_000 + number, note=False, now=desk.clock.now,
        )
    return post.message.id


# ------------------------------------------------------------------ the staff card


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_ticket_without_card_gets_exactly_one_after_the_grace_period(desk, staff_forum):
    user, number = await crashed_intake(desk)
    thandi, _ = staff_pair(desk)
    assert cards(desk, number) == []
    await sweep(desk)  # too fresh: the handler may be posting it right now
    assert cards(desk, number) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    posted = cards(desk, number)
    assert len(posted) == 1 and SUBJECT in posted[0].text and posted[0].button_texts[0] == "✋ Claim"
    row = (await desk.rows("SELECT card_message_id, topic_id, card_claimed_at FROM tickets WHERE id = :n", n=number))[0]
    assert row[0] == posted[0].message_id and row[2] is not None
    if staff_forum:
        assert row[1] == desk.tg.topic_named(STAFF_CHAT, f"#{number} · Naledi") and posted[0].thread_id == row[1]
    before = len(desk.tg.calls)
    await sweep(desk)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(cards(desk, number)) == 1
    assert not [c for c in desk.tg.calls[before:] if c.method in ("sendMessage", "createForumTopic")]
    # the repaired card works: a staff reply to it reaches the user
    where = {"thread_id": row[1]} if staff_forum else {"reply_to": posted[0]}
    await thandi.send("We are checking the refund now.", chat_id=STAFF_CHAT, **where)
    assert "We are checking the refund now." in desk.tg.last_bot_message(USER).text


async def test_card_claim_is_won_once(desk):
    _, number = await crashed_intake(desk)
    async with unit_of_work(desk.sessions) as session:
        first = await service.claim_card(session, ticket_id=number, now=desk.clock.now)
    async with unit_of_work(desk.sessions) as session:
        second = await service.claim_card(session, ticket_id=number, now=desk.clock.now)
    assert (first, second) == (True, False)
    desk.clock.advance(minutes=3)
    await sweep(desk)  # claimed (maybe being posted, maybe posted): never posted by the sweep
    assert cards(desk, number) == []


async def test_card_that_telegram_refused_is_posted_by_the_sweep_and_a_timed_out_one_once_more(desk):
    desk.tg.staff(800001, "Thandi", STAFF_CHAT, username="thandi_support")
    refused = desk.tg.user(6102, "Refilwe")
    desk.tg.fail("sendMessage", "too_long", chat_id=STAFF_CHAT)
    first = await open_ticket(desk, refused)
    assert cards(desk, first) == []
    timed = desk.tg.user(6103, "Tumi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    second = await open_ticket(desk, timed)
    assert len(cards(desk, second)) == 1  # it arrived, but the bot does not know its id
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(cards(desk, first)) == 1  # surely not there before: posted now
    # maybe there (it was): posted once more, saying so (tests/test_card_retries.py)
    assert len(cards(desk, second)) == 2 and "Posted again" in cards(desk, second)[1].text


# ------------------------------------------------------------------ relays


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_user_messages_stored_but_not_relayed_are_sent_once_in_order(desk, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    alert = card(desk, number)
    staff_before = len(bot_calls(desk, STAFF_CHAT))
    ids = [await crashed_user_message(desk, number, f"detail {i}: reference AB{i}", 5000 + i) for i in (1, 2)]
    states = await desk.rows("SELECT send_state FROM ticket_messages WHERE id IN (:a, :b)", a=ids[0], b=ids[1])
    assert [r[0] for r in states] == ["pending", "pending"]
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    assert "reference AB1 ⏳ not sent yet" in desk.tg.last_bot_message(STAFF_CHAT).text
    staff_before = len(bot_calls(desk, STAFF_CHAT))
    await sweep(desk)
    assert len(bot_calls(desk, STAFF_CHAT)) == staff_before  # within the grace period
    desk.clock.advance(minutes=3)
    await sweep(desk)
    relayed = [m for m in desk.tg.chat_messages(STAFF_CHAT)[-2:] if m.from_bot]
    assert [("reference AB1" in m.text, "reference AB2" in m.text) for m in relayed] == [(True, False), (False, True)]
    if staff_forum:
        assert all(m.thread_id == alert.thread_id for m in relayed)
    else:
        assert all(m.reply_to == alert.message_id for m in relayed)
    rows = await desk.rows("SELECT send_state, delivered, staff_message_id FROM ticket_messages WHERE id IN (:a, :b) ORDER BY id", a=ids[0], b=ids[1])
    assert [tuple(r) for r in rows] == [("sent", True, relayed[0].message_id), ("sent", True, relayed[1].message_id)]
    count = len(bot_calls(desk, STAFF_CHAT))
    await sweep(desk)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(bot_calls(desk, STAFF_CHAT)) == count
    # the relayed copy is linked: a staff reply to it reaches the user
    await thandi.send("Thanks, found it.", chat_id=STAFF_CHAT, reply_to=relayed[1])
    assert "Thanks, found it." in desk.tg.last_bot_message(USER).text


async def test_staff_reply_stored_but_not_sent_reaches_the_user_once(desk):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    message_id = await crashed_staff_reply(desk, number, thandi.id, "Your refund is on its way.")
    assert not any("refund is on its way" in m.text for m in desk.tg.chat_messages(USER))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    got = [m for m in desk.tg.chat_messages(USER) if "refund is on its way" in m.text]
    assert len(got) == 1 and "Thandi (support, case #" in got[0].text
    row = (await desk.rows("SELECT send_state, delivered, user_message_id FROM ticket_messages WHERE id = :i", i=message_id))[0]
    assert tuple(row) == ("sent", True, got[0].message_id)
    # the user's reply to it goes to the case
    await user.send("Great, thank you", reply_to=got[0])
    assert any("Great, thank you" in m.text for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot)


async def test_relay_claimed_by_another_sender_is_not_sent(desk):
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    message_id = await crashed_user_message(desk, number, "claimed elsewhere XY9", 5009)
    async with unit_of_work(desk.sessions) as session:
        assert await service.claim_relay(session, message_id=message_id)
    async with unit_of_work(desk.sessions) as session:
        assert not await service.claim_relay(session, message_id=message_id)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert not any("XY9" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    assert "XY9 ❔ maybe not delivered (the bot stopped while sending)" in desk.tg.last_bot_message(STAFF_CHAT).text


# ------------------------------------------------------------------ a normal flow repairs nothing


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_normal_flow_never_triggers_a_repair(desk, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    await user.send("Here is the reference: AB12")
    alert = card(desk, number)
    where = {"thread_id": alert.thread_id} if staff_forum else {"reply_to": alert}
    await thandi.send("Thanks, checking.", chat_id=STAFF_CHAT, **where)
    await user.send("Any news?")
    before = len(desk.tg.calls)
    for _ in range(3):
        desk.clock.advance(minutes=2)
        await sweep(desk)
    assert [c.method for c in desk.tg.calls[before:] if c.method not in ("getUpdates",)] == []
    assert len(cards(desk, number)) == 1
    states = await desk.rows(
        "SELECT direction, send_state FROM ticket_messages WHERE ticket_id = :n AND direction != 'bot' ORDER BY id", n=number
    )
    assert [tuple(r) for r in states] == [("in", None), ("in", "sent"), ("out", "sent"), ("in", "sent")]


async def test_relays_not_sent_before_an_erasure_are_never_sent(desk):
    """/deleteme blanks the case's texts: a relay still waiting must not be posted blank
    (or to the anonymous id) by the sweep."""
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    waiting = await crashed_user_message(desk, number, "my ID number is 8001015009087", 5101)
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    staff_before = len(bot_calls(desk, STAFF_CHAT))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(bot_calls(desk, STAFF_CHAT)) == staff_before
    row = (await desk.rows("SELECT send_state, delivered, text FROM ticket_messages WHERE id = :i", i=waiting))[0]
    assert tuple(row) == ("sent", False, "")


# ------------------------------------------------------------------ a send interrupted mid-way


async def crashed_mid_send(desk, message_id):
    """The sender claimed the relay (pending -> sending) and the bot died before it
    recorded whether Telegram took it: it may or may not have arrived."""
    async with unit_of_work(desk.sessions) as session:
        assert await service.claim_relay(session, message_id=message_id, now=desk.clock.now)


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_staff_reply_interrupted_mid_send_is_reported_to_staff_once_and_never_resent(desk, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    alert = card(desk, number)
    await thandi.press("Claim", alert)
    message_id = await crashed_staff_reply(desk, number, thandi.id, "Your refund RF-77 is on its way.")
    await crashed_mid_send(desk, message_id)
    staff_before = len(bot_calls(desk, STAFF_CHAT))
    desk.clock.advance(minutes=3)
    await sweep(desk)  # claimed 3 minutes ago: maybe still being sent (telegram.stuck_send_minutes = 10)
    assert len(bot_calls(desk, STAFF_CHAT)) == staff_before
    desk.clock.advance(minutes=8)
    await sweep(desk)
    told = [m for m in desk.tg.chat_messages(STAFF_CHAT)[-1:] if m.from_bot]
    assert len(told) == 1 and "Maybe not delivered to the user (#%d)" % number in told[0].text
    assert "the bot stopped while sending this reply by Thandi" in told[0].text and "RF-77 is on its way" in told[0].text
    if staff_forum:
        assert told[0].thread_id == alert.thread_id
    else:
        assert told[0].reply_to == alert.message_id
    assert not any("RF-77" in m.text for m in desk.tg.chat_messages(USER))  # never sent again automatically
    row = (await desk.rows("SELECT send_state, delivered, error FROM ticket_messages WHERE id = :i", i=message_id))[0]
    assert tuple(row) == ("sent", None, service.STUCK_ERROR)
    assert await desk.scalar(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = :n AND note LIKE 'maybe not delivered to the user: the bot stopped%'", n=number
    ) == 1
    count = len(bot_calls(desk, STAFF_CHAT))
    for _ in range(2):
        desk.clock.advance(minutes=11)
        await sweep(desk)
    assert len(bot_calls(desk, STAFF_CHAT)) == count  # reported once
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    assert "RF-77 is on its way. ❔ maybe not delivered (the bot stopped while sending)" in desk.tg.last_bot_message(STAFF_CHAT).text


@pytest.mark.parametrize("settings_overrides", [{"telegram": {"stuck_send_minutes": 30}}])
async def test_user_message_interrupted_mid_relay_reaches_staff_as_a_flagged_copy_after_the_configured_grace(desk):
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    alert = card(desk, number)
    message_id = await crashed_user_message(desk, number, "my order number is ON-5521", 5201)
    await crashed_mid_send(desk, message_id)
    desk.clock.advance(minutes=20)
    await sweep(desk)
    assert not any("ON-5521" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))  # 20 < 30 minutes
    desk.clock.advance(minutes=11)
    await sweep(desk)
    told = [m for m in desk.tg.chat_messages(STAFF_CHAT) if "ON-5521" in m.text]
    assert len(told) == 1 and told[0].reply_to == alert.message_id
    assert f"A message from Naledi (#{number}) may not have reached this chat" in told[0].text
    row = (await desk.rows("SELECT send_state, delivered FROM ticket_messages WHERE id = :i", i=message_id))[0]
    assert tuple(row) == ("sent", None)
    assert "may not have arrived" not in desk.tg.last_bot_message(USER).text  # the user is not bothered
    desk.clock.advance(minutes=31)
    await sweep(desk)
    assert len([m for m in desk.tg.chat_messages(STAFF_CHAT) if "ON-5521" in m.text]) == 1


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_the_line_about_an_interrupted_relay_survives_a_crash_after_its_commit_and_is_sent_once(desk, staff_forum):
    """The sweep that marks the relay maybe delivered dies right after its commit: the line
    to staff was queued in that transaction (the outbox), so a later sweep posts it in the
    ticket's place, once, and the relay is never sent again."""
    from tests.test_notices import Killed, killed_after_commit

    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    alert = card(desk, number)
    message_id = await crashed_user_message(desk, number, "serial number SN-3141", 5207)
    await crashed_mid_send(desk, message_id)
    desk.clock.advance(minutes=11)
    with killed_after_commit("send_interrupted"), pytest.raises(Killed):
        await sweep(desk)
    row = (await desk.rows("SELECT send_state, delivered, error FROM ticket_messages WHERE id = :i", i=message_id))[0]
    assert tuple(row) == ("sent", None, service.STUCK_ERROR)
    assert not any("SN-3141" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    rows = await desk.rows("SELECT kind, ref, audience, state FROM notices WHERE kind = 'send_interrupted'")
    assert [tuple(r) for r in rows] == [("send_interrupted", f"ticket:{number}", "ticket", "pending")]
    await sweep(desk)  # too fresh: the sweep that queued it may be sending it right now
    assert not any("SN-3141" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    for _ in range(4):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    [told] = [m for m in desk.tg.chat_messages(STAFF_CHAT) if "SN-3141" in m.text]
    assert f"A message from Naledi (#{number}) may not have reached this chat" in told.text
    if staff_forum:
        assert told.thread_id == alert.thread_id
    else:
        assert told.reply_to == alert.message_id
    assert len([c for c in desk.tg.calls if "SN-3141" in str(c.params.get("text", ""))]) == 1
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'send_interrupted'") == "sent"
    assert await desk.scalar(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = :n AND note LIKE 'maybe not delivered%'", n=number
    ) == 1


async def test_a_relay_finished_meanwhile_is_not_reported(desk):
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    message_id = await crashed_user_message(desk, number, "slow but fine QZ3", 5202)
    await crashed_mid_send(desk, message_id)
    async with unit_of_work(desk.sessions) as session:  # the slow sender records its outcome at last
        await service.set_staff_copy(session, message_id=message_id, chat_id=STAFF_CHAT, staff_message_id=990_001)
    desk.clock.advance(minutes=11)
    await sweep(desk)
    assert not any("QZ3" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    row = (await desk.rows("SELECT send_state, delivered FROM ticket_messages WHERE id = :i", i=message_id))[0]
    assert tuple(row) == ("sent", True)


# ------------------------------------------------------------------ feedback cards


def feedback_cards(desk, number):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"✍️ Feedback #{number} ")]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_feedback_stored_but_not_posted_gets_exactly_one_card_after_the_grace_period(desk, staff_forum):
    from escalation import feedback

    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    await user.send("/feedback")
    async with unit_of_work(desk.sessions) as session:  # the handler's transaction; the bot died after it
        item = await feedback.take_text(session, user_id=USER, text="Please add a dark mode FB-42", now=desk.clock.now)
    assert feedback_cards(desk, item.id) == []
    await sweep(desk)  # too fresh: the handler may be posting it right now
    assert feedback_cards(desk, item.id) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    posted = feedback_cards(desk, item.id)
    assert len(posted) == 1 and "dark mode FB-42" in posted[0].text and posted[0].button_texts == ["✍️ Answer"]
    if staff_forum:
        assert posted[0].thread_id == desk.tg.topic_named(STAFF_CHAT, "Feedback")
    row = (await desk.rows("SELECT staff_chat_id, staff_message_id, card_claimed_at FROM feedback WHERE id = :i", i=item.id))[0]
    assert (row[0], row[1]) == (STAFF_CHAT, posted[0].message_id) and row[2] is not None
    for _ in range(2):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(feedback_cards(desk, item.id)) == 1
    # the repaired card works: a reply to it answers the feedback
    await thandi.send("Dark mode is planned for March.", chat_id=STAFF_CHAT, reply_to=posted[0])
    assert "Dark mode is planned for March." in desk.tg.last_bot_message(USER).text


async def test_feedback_card_telegram_refused_is_posted_by_the_sweep_and_a_timed_out_one_once_more(desk):
    staff_pair(desk)
    refused, timed = desk.tg.user(6111, "Refilwe"), desk.tg.user(6112, "Tumi")
    desk.tg.fail("sendMessage", "too_long", chat_id=STAFF_CHAT)
    await refused.send("/feedback")
    await refused.send("The search is slow FB-1")
    first = await desk.scalar("SELECT max(id) FROM feedback")
    assert feedback_cards(desk, first) == []
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    await timed.send("/feedback")
    await timed.send("Love the guides FB-2")
    second = await desk.scalar("SELECT max(id) FROM feedback")
    assert len(feedback_cards(desk, second)) == 1  # it arrived, but the bot does not know its id
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(feedback_cards(desk, first)) == 1  # surely not there before: posted now
    # maybe there (it was): posted once more, saying so (tests/test_card_retries.py)
    assert len(feedback_cards(desk, second)) == 2 and "Posted again" in feedback_cards(desk, second)[1].text


async def test_answered_feedback_without_card_is_not_posted(desk):
    from escalation import feedback

    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    await user.send("/feedback")
    async with unit_of_work(desk.sessions) as session:
        item = await feedback.take_text(session, user_id=USER, text="old feedback FB-9", now=desk.clock.now)
        await feedback.answer(session, feedback_id=item.id, chat_id=STAFF_CHAT, staff_id=800001, text="done", now=desk.clock.now)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert feedback_cards(desk, item.id) == []


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_interrupted_relay_whose_notice_was_refused_for_the_flood_limit_is_reported_by_the_next_sweep(desk, settings_overrides):
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    message_id = await crashed_user_message(desk, number, "invoice INV-808 attached", 5203)
    await crashed_mid_send(desk, message_id)
    desk.clock.advance(minutes=11)
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, retry_after=30)
    await sweep(desk)
    assert not any("INV-808" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE id = :i", i=message_id) == "sent"  # maybe delivered
    row = (await desk.rows("SELECT state, error FROM notices WHERE kind = 'send_interrupted'"))[0]
    assert row[0] == "pending" and "flood limit" in row[1]  # the line waits in the outbox
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len([m for m in desk.tg.chat_messages(STAFF_CHAT) if "INV-808" in m.text]) == 1
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'send_interrupted'") == "sent"


async def test_interrupted_relay_of_a_ticket_without_a_place_in_the_staff_chat_is_reported_in_the_chat(desk):
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    message_id = await crashed_user_message(desk, number, "card ending 4242", 5204)
    await crashed_mid_send(desk, message_id)
    async with unit_of_work(desk.sessions) as session:  # e.g. the alert was being posted when the bot died
        await service.attach_card(session, ticket_id=number, chat_id=None, topic_id=None, card_message_id=None)
    desk.clock.advance(minutes=11)
    await sweep(desk)
    told = [m for m in desk.tg.chat_messages(STAFF_CHAT) if "card ending 4242" in m.text]
    assert len(told) == 1 and f"(#{number}) may not have reached this chat" in told[0].text


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_an_interrupted_relay_whose_notice_keeps_being_refused_for_the_flood_limit_records_its_event_once(desk, settings_overrides):
    """Each sweep that could not tell staff for Telegram's flood limit leaves the line in
    the outbox for the next one; the ticket's history must say 'maybe not delivered' once,
    not once per sweep, and the line arrives once."""
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    message_id = await crashed_user_message(desk, number, "receipt RC-19 attached", 5205)
    await crashed_mid_send(desk, message_id)
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, times=3, retry_after=30)
    for _ in range(3):
        desk.clock.advance(minutes=11)
        await sweep(desk)
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'send_interrupted'") == "pending"
    assert not any("RC-19" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len([m for m in desk.tg.chat_messages(STAFF_CHAT) if "RC-19" in m.text]) == 1
    assert await desk.scalar("SELECT count(*) FROM notices WHERE kind = 'send_interrupted'") == 1
    assert await desk.scalar(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = :n AND note LIKE 'maybe not delivered%'", n=number
    ) == 1


@pytest.mark.parametrize("refusal", ["kicked", "parse"])
async def test_an_interrupted_relay_whose_notice_telegram_refuses_is_recorded_once_not_tried_every_minute(desk, refusal, caplog):
    """The bot was removed from the staff chat (403), or Telegram cannot take the line
    (400; before, a topic staff deleted made that a try a minute, forever): the relay stays
    recorded as maybe delivered, with its event once, the refusal is logged, and no sweep
    tries the line again."""
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    message_id = await crashed_user_message(desk, number, "receipt RC-20 attached", 5206)
    await crashed_mid_send(desk, message_id)
    desk.tg.fail("sendMessage", refusal, chat_id=STAFF_CHAT, times=100)
    desk.clock.advance(minutes=11)
    with caplog.at_level(logging.ERROR):
        await sweep(desk)
    refused = [r for r in caplog.records if r.levelno >= logging.ERROR and "send_interrupted" in r.getMessage() and "recorded failed" in r.getMessage()]
    assert len(refused) == 1
    row = (await desk.rows("SELECT state, error FROM notices WHERE kind = 'send_interrupted'"))[0]
    assert row[0] == "failed" and row[1]
    tries = [c for c in desk.tg.calls if c.method == "sendMessage" and "RC-20" in str(c.params.get("text", ""))]
    assert len(tries) == 1 and not tries[0].ok
    for _ in range(4):
        desk.clock.advance(minutes=11)
        await sweep(desk)
    assert len([c for c in desk.tg.calls if c.method == "sendMessage" and "RC-20" in str(c.params.get("text", ""))]) == 1
    row = (await desk.rows("SELECT send_state, delivered, error FROM ticket_messages WHERE id = :i", i=message_id))[0]
    assert tuple(row) == ("sent", None, service.STUCK_ERROR)
    assert await desk.scalar(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = :n AND note LIKE 'maybe not delivered%'", n=number
    ) == 1


async def test_one_item_that_fails_oddly_does_not_hold_back_the_rest_of_the_sweep(desk, caplog):
    """A card post answered with something the bot cannot read (a broken proxy or Bot API
    server: not a Telegram error) is not confirmed, like a timeout: that ticket's card is
    counted and logged (with what PTB could not read), the next ticket still gets its card
    in the same sweep, and a later sweep posts the first one again."""
    _, first = await crashed_intake(desk)
    _, second = await crashed_intake(desk, user_id=USER + 1, name="Sipho")
    staff_pair(desk)
    desk.clock.advance(minutes=3)
    desk.tg.fail("sendMessage", "garbage", chat_id=STAFF_CHAT)
    await sweep(desk)
    assert cards(desk, first) == [] and len(cards(desk, second)) == 1
    assert await desk.scalar("SELECT card_message_id FROM tickets WHERE id = :n", n=second) == cards(desk, second)[0].message_id
    assert await desk.scalar("SELECT card_timeouts FROM tickets WHERE id = :n", n=first) == 1
    assert any(f"ticket #{first}" in r.getMessage() and r.exc_info for r in caplog.records if r.levelname == "ERROR")
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(cards(desk, first)) == 1


async def test_an_sla_alert_that_fails_oddly_does_not_cost_the_next_ticket_its_alert(desk):
    """Two cases breach their first-reply target in the same sweep; the first alert gets an
    answer the bot cannot read (not a Telegram error): the second alert still goes out."""
    from tests.test_escalation import open_ticket as open_case

    staff_pair(desk)
    first = await open_case(desk, desk.tg.user(5301, "Thabo"))
    second = await open_case(desk, desk.tg.user(5302, "Ayanda"))
    desk.clock.advance(minutes=61)
    desk.tg.fail("sendMessage", "garbage", chat_id=STAFF_CHAT)
    await sweep(desk)
    alerts = [m.text for m in desk.tg.chat_messages(STAFF_CHAT) if "⏰" in m.text]
    assert [a for a in alerts if f"#{second} has waited" in a] and not [a for a in alerts if f"#{first} has waited" in a]


async def test_a_notice_that_fails_oddly_does_not_hold_back_other_users_notices(desk):
    """The sweep sends two users' notices left by a crash; the first send gets an answer the
    bot cannot read: the second user still gets theirs in the same sweep."""
    from bot import outbox

    async with desk.sessions() as session, session.begin():
        for chat in (5311, 5312):
            desk.tg.user(chat, f"User {chat}")
            await outbox.queue(session, chat_id=chat, kind="test", text=f"Hello {chat}", now=desk.clock.now)
    desk.clock.advance(minutes=3)
    desk.tg.fail("sendMessage", "garbage", chat_id=5311)
    await sweep(desk)
    assert [m.text for m in desk.tg.chat_messages(5312) if m.from_bot] == ["Hello 5312"]
    assert await desk.scalar("SELECT state FROM notices WHERE chat_id = 5312") == "sent"
