"""Edge cases of support tickets: long texts, races, stale buttons, departments, SLA corners."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import STAFF_CHAT
from tests.test_escalation import card, open_ticket, staff_pair


async def test_a_long_description_still_reaches_staff(desk):
    user = desk.tg.user(7001, "Long")
    await user.send("/support")
    await user.press("Something is broken")
    await user.send("The app crashes. " * 250)  # about 4,250 characters
    number = await desk.scalar("SELECT id FROM tickets")
    assert len(card(desk, number).text) < 1500  # shortened on the card, kept whole in the case
    assert len(await desk.scalar("SELECT text FROM ticket_messages WHERE direction = 'in'")) > 4000
    thandi, _ = staff_pair(desk)
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    assert desk.tg.last_bot_message(STAFF_CHAT).text.startswith(f"🎫 #{number}")
    assert desk.tg.errors() == []


async def test_long_messages_are_split_both_ways(desk):
    user = desk.tg.user(7002, "Chatty")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    before = len(desk.tg.chat_messages(STAFF_CHAT))
    await user.send("x" * 4090)
    parts = [m for m in desk.tg.chat_messages(STAFF_CHAT)[before:] if m.from_bot]
    assert len(parts) == 2 and sum(m.text.count("x") for m in parts) == 4090
    before = len(desk.tg.chat_messages(7002))
    await thandi.send("y" * 4090, chat_id=STAFF_CHAT, reply_to=card(desk, number))
    got = [m for m in desk.tg.chat_messages(7002)[before:] if m.from_bot and m.text.startswith("💬")]
    assert sum(m.text.count("y") for m in got) == 4090
    assert desk.tg.errors() == []


async def test_captions_full_of_html_characters(desk):
    user = desk.tg.user(7003, "Angle")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    for n in range(998, 1002):
        await user.send_photo("<" * n + "\nsecond line")
        await thandi.send_document("&" * n, chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert desk.tg.errors() == []
    photos = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.kind == "photo"]
    assert len(photos) == 4 and all("<<<" in m.text for m in photos)


async def test_a_stale_ticket_is_read_again_before_a_user_message(desk):
    """Staff resolved the case while the user's message was on its way: it reopens it."""
    from bot.db import unit_of_work
    from escalation import service

    user = desk.tg.user(7004, "Racer")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.send("Which card?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    core = desk.app.bot_data["desk"]
    async with unit_of_work(core.sessions) as session:
        stale = await service.get_ticket(session, number)  # seen as 'waiting'
    async with unit_of_work(core.sessions) as session:
        await service.resolve(session, core.policy, ticket_id=number, staff_id=800001, now=desk.clock())
    async with unit_of_work(core.sessions) as session:
        relay = await service.user_message(
            session, core.policy, ticket=stale, user_id=7004, kind="text", text="Visa", file_id=None, user_message_id=99, now=desk.clock()
        )
    assert relay is not None and relay.reopened
    row = (await desk.rows("SELECT status, resolved_at FROM tickets"))[0]
    assert row[0] == "claimed" and row[1] is None


async def test_a_reply_to_a_case_wins_over_a_new_draft(desk):
    user = desk.tg.user(7005, "Busy")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.send("Which card did you use?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    question = desk.tg.last_bot_message(7005)
    await user.send("/support")
    await user.press("Something is broken")  # a draft waits for a description...
    await user.send("The Visa ending 1234", reply_to=question)  # ...but this answers Thandi
    assert await desk.scalar("SELECT count(*) FROM tickets WHERE status != 'draft'") == 1
    assert "The Visa ending 1234" in [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-1].text


async def test_an_abandoned_draft_does_not_swallow_later_questions(desk):
    user = desk.tg.user(7006, "Forgetful")
    await user.send("/support")
    await user.press("Something else")
    desk.clock.advance(minutes=31)
    await user.send("is it safe to meet a buyer")
    assert desk.tg.last_bot_message(7006).text.startswith("How do I meet")
    assert await desk.scalar("SELECT subject FROM tickets") == ""
    desk.clock.advance(days=1)
    await desk.app.job_queue.get_jobs_by_name("sla_sweep")[0].run(desk.app)
    assert await desk.scalar("SELECT status FROM tickets") == "closed"


async def test_a_reply_to_reopen_is_not_taken_as_a_rating_comment(desk):
    user = desk.tg.user(7007, "Unhappy")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Resolve", card(desk, number))
    notice = next(m for m in desk.tg.chat_messages(7007) if "marked as solved" in m.text)
    await user.press_data(f"r:{number}:1", next(m for m in desk.tg.chat_messages(7007) if "How happy" in m.text))
    await user.send("The refund has NOT arrived", reply_to=notice)
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"
    assert await desk.scalar("SELECT comment FROM ratings") is None


async def test_without_a_reply_the_message_goes_to_the_case_waiting_on_the_user(desk):
    user = desk.tg.user(7008, "Two cases")
    thandi, _ = staff_pair(desk)
    first = await open_ticket(desk, user)
    await user.send("/support")
    await user.press("Something is broken")
    await user.send("Also the app crashes on start")
    await thandi.send("Which card?", chat_id=STAFF_CHAT, reply_to=card(desk, first))
    await user.send("The Visa ending 1234")
    assert await desk.scalar("SELECT ticket_id FROM ticket_messages WHERE text = 'The Visa ending 1234'") == first


async def test_an_old_cancel_button_cancels_nothing(desk):
    user = desk.tg.user(7009, "Clicker")
    await user.send("/support")
    await user.press("Something else")
    prompt = desk.tg.last_bot_message(7009)
    await user.send("My problem is this")
    await user.press("Cancel", prompt)
    assert [e for e in desk.tg.events if e.who == "toast"][-1].text.startswith("This button belongs to an older message")
    assert await desk.scalar("SELECT status FROM tickets") == "new"


IT_CHAT = -1002000000002


@pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", False)]])
@pytest.mark.parametrize("settings_overrides", [{"support": {"departments": {
    "general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}}}])
async def test_departments_are_kept_apart(desk):
    user = desk.tg.user(7010, "Gen")
    number = await open_ticket(desk, user)  # payments: general department
    it_agent = desk.tg.staff(800020, "Vusi", IT_CHAT)
    await it_agent.send("/queue", chat_id=IT_CHAT)
    assert "No open tickets" in desk.tg.last_bot_message(IT_CHAT).text
    await it_agent.send(f"/ticket {number}", chat_id=IT_CHAT)
    assert "belongs to another department's chat" in desk.tg.last_bot_message(IT_CHAT).text
    await it_agent.send(f"/resolve {number}", chat_id=IT_CHAT)
    forged = desk.tg.last_bot_message(IT_CHAT)
    await it_agent.press_data(f"t:claim:{number}", forged)
    assert (await desk.rows("SELECT status, assignee_id FROM tickets"))[0] == ("new", None)


@pytest.mark.parametrize("staff_forum", [True])
async def test_service_messages_in_a_topic_are_not_relayed(desk, staff_forum):
    user = desk.tg.user(7011, "Quiet")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    topic = card(desk, number).thread_id
    before = len(desk.tg.chat_messages(7011))
    message = thandi._message(STAFF_CHAT, thread_id=topic, pinned_message=desk.tg._message_json(card(desk, number)))
    await desk.tg.feed({"message": message})
    await thandi.send("!", chat_id=STAFF_CHAT, thread_id=topic)
    assert len(desk.tg.chat_messages(7011)) == before
    assert await desk.scalar("SELECT first_response_at FROM tickets") is None


async def test_released_and_reopened_tickets_are_watched_again(desk):
    user = desk.tg.user(7012, "Waiting")
    thandi, _ = staff_pair(desk)
    sweep = desk.app.job_queue.get_jobs_by_name("sla_sweep")[0]
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    await thandi.send("Looking into it", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.press("Release", card(desk, number))
    desk.clock.advance(hours=2)
    await sweep.run(desk.app)
    assert [m for m in desk.tg.chat_messages(STAFF_CHAT) if "without an agent" in m.text]
    await thandi.press("Claim", card(desk, number))
    await thandi.press("Resolve", card(desk, number))
    notice = next(m for m in desk.tg.chat_messages(7012) if "marked as solved" in m.text)
    await user.send("Still broken", reply_to=notice)
    desk.clock.advance(hours=2)
    await sweep.run(desk.app)
    assert [m for m in desk.tg.chat_messages(STAFF_CHAT) if "has no reply yet" in m.text]


async def test_resolution_target_alert_once(desk):
    user = desk.tg.user(7013, "Slow")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)  # high: resolution within 1 day
    await thandi.press("Claim", card(desk, number))
    sweep = desk.app.job_queue.get_jobs_by_name("sla_sweep")[0]
    desk.clock.advance(hours=25)
    await sweep.run(desk.app)
    await sweep.run(desk.app)
    alerts = [m for m in desk.tg.chat_messages(STAFF_CHAT) if "past its resolution target" in m.text]
    assert len(alerts) == 1 and "Thandi" in alerts[0].text


async def test_waiting_counts_from_the_latest_staff_message_and_release_keeps_the_pause(desk):
    user = desk.tg.user(7014, "Pending")
    thandi, _ = staff_pair(desk)
    sweep = desk.app.job_queue.get_jobs_by_name("sla_sweep")[0]
    number = await open_ticket(desk, user)
    await thandi.send("Can you send the receipt?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    desk.clock.advance(days=2, hours=22)
    await thandi.send("Here is the form you need", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    desk.clock.advance(hours=3)
    await sweep.run(desk.app)
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"
    due_before = await desk.scalar("SELECT resolve_due_at FROM tickets")
    await thandi.press("Release", card(desk, number))
    due_after = await desk.scalar("SELECT resolve_due_at FROM tickets")
    assert str(due_after) > str(due_before)  # the waiting time was added


async def test_a_double_tap_on_a_category_opens_one_ticket(desk):
    user = desk.tg.user(7015, "Double")
    await user.send("/support")
    menu = desk.tg.last_bot_message(7015)
    data = menu.button("Something else")["callback_data"]
    await asyncio.gather(desk.tg.feed(user.callback_update(data, menu)), desk.tg.feed(user.callback_update(data, menu)))
    await user.send("Help me please")
    assert await desk.scalar("SELECT count(*) FROM tickets WHERE status != 'closed'") == 1


@pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", True)]])
@pytest.mark.parametrize("staff_forum", [True])
@pytest.mark.parametrize("settings_overrides", [{"support": {"departments": {
    "general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}}}])
async def test_transfer_tidies_the_old_topic_and_splits_long_history(desk, staff_forum):
    user = desk.tg.user(7016, "Tom & Jerry's <shop>")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    assert desk.tg.topic_named(STAFF_CHAT, f"#{number} · Tom & Jerry's <shop>")
    for i in range(12):
        await user.send(f"part {i} " + "z" * 500)
    old_card = card(desk, number)
    await thandi.send(f"/transfer {number} it", chat_id=STAFF_CHAT)
    assert desk.tg.topics[(STAFF_CHAT, old_card.thread_id)]["closed"] is True
    assert desk.tg.messages[(STAFF_CHAT, old_card.message_id)].reply_markup is None
    history = [m for m in desk.tg.chat_messages(IT_CHAT) if "history:" in m.text]
    assert len(history) >= 2
    assert desk.tg.errors() == []


async def test_a_button_for_an_unknown_ticket(desk):
    thandi, _ = staff_pair(desk)
    await thandi.send("/queue", chat_id=STAFF_CHAT)
    await thandi.press_data("t:claim:999", desk.tg.last_bot_message(STAFF_CHAT))
    assert desk.tg.events[-1].text == "There is no ticket #999."
    assert not [m for m in desk.tg.chat_messages(STAFF_CHAT) if "Sorry, something went wrong" in m.text]
