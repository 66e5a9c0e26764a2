"""Re-delivered updates: the same Update processed twice has one effect and one answer.

Telegram delivers an update again when the bot did not confirm it (a crash, a restart).
Each test captures the update a user produces (as the fake Telegram builds it), runs it
through the real Application, then runs the identical update again, and checks the
database and what was sent.
"""

from __future__ import annotations

import asyncio
from telegram import Update

from tests.support import STAFF_CHAT
from tests.test_ads_flow import moderators, post_ad
from tests.test_escalation import UNKNOWN, card, open_ticket

QUESTION = "how do I post an ad"


async def capture(desk, action):
    """The update ``action`` (e.g. ``user.send(...)``) produces, not yet processed."""
    tg = desk.tg
    app, tg.app = tg.app, None  # without an application, the update waits for getUpdates
    try:
        await action
    finally:
        tg.app = app
    with tg.lock:
        return tg.pending.pop()


async def deliver(desk, update):
    """Run one delivery of ``update`` (the same JSON each time); the API calls it caused."""
    before = len(desk.tg.calls)
    await desk.app.process_update(Update.de_json(update, desk.app.bot))
    await asyncio.sleep(0)
    return desk.tg.calls[before:]


def sent(calls, method="sendMessage", chat_id=None):
    return [c for c in calls if c.method == method and c.ok and (chat_id is None or int(c.params["chat_id"]) == chat_id)]


async def markers(desk):
    return await desk.scalar("SELECT count(*) FROM processed_updates")


async def test_question_logged_and_answered_once(desk):
    user = desk.tg.user(7001, "Ayanda")
    update = await capture(desk, user.send(QUESTION))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert len(sent(first, chat_id=7001)) == 1 and "post an ad" in sent(first)[0].params["text"].lower()
    assert second == []  # dropped before any handler: no call to Telegram at all
    assert await desk.scalar("SELECT count(*) FROM questions") == 1
    row = (await desk.rows("SELECT update_id, chat_id, message_id FROM processed_updates"))[0]
    assert tuple(row) == (update["update_id"], 7001, update["message"]["message_id"])


async def test_ticket_created_once(desk):
    user = desk.tg.user(7002, "Bheki")
    await user.send(UNKNOWN)
    if any("Not helpful" in b for b in desk.tg.last_bot_message(7002).button_texts[:2]):
        await user.press("Not helpful")
    await user.press("Talk to a person")
    choose = desk.tg.last_bot_message(7002)
    update = await capture(desk, user.press("Payments", choose))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert await desk.scalar("SELECT count(*) FROM tickets") == 1
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE to_status = 'new'") == 1
    assert len(sent(first, chat_id=7002)) == 1 and "is with our support team" in sent(first, chat_id=7002)[0].params["text"]
    assert len(sent(first, chat_id=STAFF_CHAT)) == 1  # the card
    assert second == []


async def test_user_message_relayed_to_staff_once(desk):
    user = desk.tg.user(7003, "Chipo")
    number = await open_ticket(desk, user)
    update = await capture(desk, user.send("The reference is PAY-5521"))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE text = 'The reference is PAY-5521'") == 1
    relayed = sent(first, chat_id=STAFF_CHAT)
    assert len(relayed) == 1 and "PAY-5521" in relayed[0].params["text"] and f"#{number}" in relayed[0].params["text"]
    assert second == []


async def test_staff_reply_relayed_to_user_once(desk):
    user = desk.tg.user(7004, "Dumisani")
    agent = desk.tg.staff(800011, "Naledi", STAFF_CHAT)
    number = await open_ticket(desk, user)
    update = await capture(desk, agent.send("We refunded the second charge.", chat_id=STAFF_CHAT, reply_to=card(desk, number)))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE direction = 'out'") == 1
    replies = [c for c in sent(first, chat_id=7004) if "refunded the second charge" in c.params["text"]]
    assert len(replies) == 1
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"  # on the user
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE to_status = 'waiting'") == 1
    assert second == []


async def test_ad_submitted_once(desk):
    user = desk.tg.user(7005, "Esihle")
    moderators(desk)
    ad_id = await post_ad(desk, user, submit=False)
    preview = desk.tg.last_bot_message(7005)
    update = await capture(desk, user.press("Submit", preview))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert await desk.scalar("SELECT status FROM ads WHERE id = :id", id=ad_id) == "submitted"
    assert await desk.scalar("SELECT count(*) FROM ads") == 1
    assert len([c for c in sent(first, chat_id=7005) if "is with our moderators" in c.params["text"]]) == 1
    cards = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"📋 Ad #{ad_id} ")]
    assert len(cards) == 1
    assert second == []


async def test_vote_recorded_once(desk):
    user = desk.tg.user(7006, "Fikile")
    await user.send(QUESTION)
    answer = desk.tg.last_bot_message(7006)
    update = await capture(desk, user.press("Not helpful", answer))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert [tuple(r) for r in await desk.rows("SELECT vote FROM questions")] == [("not_helpful",)]
    assert len(sent(first, chat_id=7006)) == 1  # "sorry, want a person?"
    assert len(sent(first, "answerCallbackQuery")) == 1
    assert second == []


async def test_rating_recorded_once(desk):
    user = desk.tg.user(7007, "Gugu")
    agent = desk.tg.staff(800012, "Mpho", STAFF_CHAT)
    number = await open_ticket(desk, user)
    await agent.press("Resolve", card(desk, number))
    survey = desk.tg.last_bot_message(7007)
    update = await capture(desk, user.press("2⭐", survey))
    first = await deliver(desk, update)
    second = await deliver(desk, update)
    assert await desk.scalar("SELECT count(*) FROM ratings") == 1
    assert await desk.scalar("SELECT stars FROM ratings") == 2
    assert len(sent(first, "editMessageText", 7007)) == 1
    assert len(sent(first, chat_id=7007)) == 1  # a low rating asks for a comment, once
    assert second == []


async def test_same_message_under_another_update_id_is_refused(desk):
    """Telegram never does this on purpose; the (chat, message) record still holds."""
    user = desk.tg.user(7008, "Hlengiwe")
    update = await capture(desk, user.send(QUESTION))
    await deliver(desk, update)
    again = {**update, "update_id": update["update_id"] + 1000}
    calls = await deliver(desk, again)
    assert calls == []
    assert await desk.scalar("SELECT count(*) FROM questions") == 1


async def test_concurrent_deliveries_have_one_effect(desk):
    """Two deliveries at once (a webhook retry while the first still runs): the loser's
    transaction hits the marker and is rolled back, quietly."""
    user = desk.tg.user(7009, "Itumeleng")
    number = await open_ticket(desk, user)
    update = await capture(desk, user.send("Any news on my refund?"))
    before = len(desk.tg.calls)
    await asyncio.gather(*(desk.app.process_update(Update.de_json(update, desk.app.bot)) for _ in range(2)))
    calls = desk.tg.calls[before:]
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE text = 'Any news on my refund?'") == 1
    assert len([c for c in sent(calls, chat_id=STAFF_CHAT) if "Any news on my refund?" in c.params["text"]]) == 1
    assert not [c for c in sent(calls, chat_id=7009) if "went wrong" in c.params["text"].lower()]  # no apology
    assert number == await desk.scalar("SELECT max(id) FROM tickets")


async def test_updates_without_effect_leave_no_record_and_old_records_are_pruned(desk):
    user = desk.tg.user(7010, "Jabu")
    await user.send("/start")
    assert await markers(desk) == 1  # the first /start marks the user onboarded: an effect
    await user.send("/help")
    assert await markers(desk) == 1  # nothing written: nothing to record
    await user.send(QUESTION)
    assert await markers(desk) == 2
    [job] = desk.app.job_queue.get_jobs_by_name("prune_updates")
    await job.run(desk.app)
    assert await markers(desk) == 2  # recent: kept
    desk.clock.advance(days=3, hours=1)
    await job.run(desk.app)
    assert await markers(desk) == 0


async def test_a_restarted_bot_still_knows_what_it_handled(desk):
    """The in-memory shortcut (ids above the highest recorded one skip the lookup) is
    rebuilt from the database: a fresh bot drops a replay of an old update."""
    user = desk.tg.user(7011, "Kagiso")
    update = await capture(desk, user.send(QUESTION))
    await deliver(desk, update)
    desk.app.bot_data.pop("seen_updates")  # what a new process starts with
    assert await deliver(desk, update) == []
    later = await capture(desk, user.send("how do I delete my ad"))
    assert sent(await deliver(desk, later), chat_id=7011)
    assert await desk.scalar("SELECT count(*) FROM questions") == 2
