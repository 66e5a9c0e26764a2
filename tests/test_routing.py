"""Which handler a message goes to when several are waiting for one: a ticket reply
is never taken by a moderator's "Other…" reason or an open /kb draft, and a button
press ends the /feedback prompt (reproductions of reviewed routing defects)."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import moderators, mod_card, post_ad
from tests.test_escalation import card as ticket_card, open_ticket
from tests.test_feedback import feedback_card, give_feedback

SECRET = "Your card number 4111 is blocked, Busi"


def bot_texts(desk, chat_id):
    return [m.text for m in desk.tg.chat_messages(chat_id) if m.from_bot]


async def other_pressed(desk, owner):
    """An ad waiting for moderation, and Mo has pressed Request changes -> Other…"""
    mo, lee = moderators(desk)
    ad_id = await post_ad(desk, owner)
    await mo.press("Request changes", mod_card(desk, ad_id))
    await mo.press("Other", mod_card(desk, ad_id))
    return mo, ad_id, desk.tg.last_bot_message(STAFF_CHAT)


async def test_a_ticket_reply_after_other_goes_to_the_ticket_not_the_ad_owner(desk):
    asker = desk.tg.user(7010, "Busi")
    owner = desk.tg.user(6014, "Nomvula")
    ticket = await open_ticket(desk, asker)
    mo, ad_id, prompt = await other_pressed(desk, owner)
    owner_before = len(bot_texts(desk, 6014))
    await mo.send(SECRET, chat_id=STAFF_CHAT, reply_to=ticket_card(desk, ticket))
    assert SECRET in desk.tg.last_bot_message(7010).text  # the ticket's user got the reply
    assert len(bot_texts(desk, 6014)) == owner_before  # the ad owner got nothing
    assert not any("4111" in t for t in bot_texts(desk, 6014))
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE text LIKE '%4111%'") == 1
    # the wait is still there: the reason typed in the card's place afterwards is taken
    await mo.send("Please add the licence disc photo", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert await desk.scalar("SELECT status FROM ads") == "changes_requested"
    assert "Please add the licence disc photo" in desk.tg.last_bot_message(6014).text
    assert await desk.scalar("SELECT count(*) FROM app_state WHERE key LIKE 'mod_other:%'") == 0


@pytest.mark.parametrize("staff_forum", [True])
async def test_other_reason_only_in_the_moderation_topic(desk, staff_forum):
    owner = desk.tg.user(6014, "Nomvula")
    mo, ad_id, prompt = await other_pressed(desk, owner)
    assert prompt.thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    owner_before = len(bot_texts(desk, 6014))
    await mo.send("lunch at one?", chat_id=STAFF_CHAT)  # the General topic: chatter, not the reason
    assert len(bot_texts(desk, 6014)) == owner_before
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    await mo.send("Show the odometer", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert await desk.scalar("SELECT status FROM ads") == "changes_requested"
    assert "Show the odometer" in desk.tg.last_bot_message(6014).text


async def test_an_expired_other_wait_is_dropped_and_nothing_is_sent(desk):
    owner = desk.tg.user(6014, "Nomvula")
    mo, ad_id, prompt = await other_pressed(desk, owner)
    assert "within 15 minutes" in prompt.text
    owner_before, staff_before = len(bot_texts(desk, 6014)), len(bot_texts(desk, STAFF_CHAT))
    desk.clock.advance(minutes=16)
    await mo.send("Your card number 4111 is blocked", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert len(bot_texts(desk, 6014)) == owner_before
    assert len(bot_texts(desk, STAFF_CHAT)) == staff_before
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    assert await desk.scalar("SELECT count(*) FROM app_state WHERE key LIKE 'mod_other:%'") == 0


async def test_staff_cancel_drops_the_other_wait(desk):
    owner = desk.tg.user(6014, "Nomvula")
    mo, ad_id, prompt = await other_pressed(desk, owner)
    await mo.send("/cancel", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert "Stopped" in desk.tg.last_bot_message(STAFF_CHAT).text
    owner_before = len(bot_texts(desk, 6014))
    await mo.send("just chatting now", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert len(bot_texts(desk, 6014)) == owner_before
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    assert await desk.scalar("SELECT count(*) FROM app_state WHERE key LIKE 'mod_other:%'") == 0


async def test_an_open_kb_draft_lets_ticket_replies_through(desk):
    asker = desk.tg.user(7010, "Busi")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    ticket = await open_ticket(desk, asker)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    await thandi.send("Which card did you use?", chat_id=STAFF_CHAT, reply_to=ticket_card(desk, ticket))
    assert "Which card did you use?" in desk.tg.last_bot_message(7010).text
    assert await desk.scalar("SELECT step FROM kb_drafts") == "title"  # the draft did not take it
    # the draft still takes a message that is not for a ticket
    await thandi.send("Can I pay for a featured ad with EFT?", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT step FROM kb_drafts") == "answer"
    assert "Can I pay for a featured ad with EFT?" not in desk.tg.last_bot_message(7010).text


@pytest.mark.parametrize("staff_forum", [True])
async def test_a_kb_draft_takes_messages_only_in_its_topic(desk, staff_forum):
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    owner = desk.tg.user(6014, "Nomvula")
    await post_ad(desk, owner)  # creates the Moderation topic
    topic = desk.tg.topic_named(STAFF_CHAT, "Moderation")
    await thandi.send("/kb add", chat_id=STAFF_CHAT, thread_id=topic)
    assert desk.tg.last_bot_message(STAFF_CHAT).thread_id == topic
    await thandi.send("anyone for coffee?", chat_id=STAFF_CHAT)  # General: not for the draft
    assert await desk.scalar("SELECT step FROM kb_drafts") == "title"
    await thandi.send("Can I pay for a featured ad with EFT?", chat_id=STAFF_CHAT, thread_id=topic)
    assert await desk.scalar("SELECT step FROM kb_drafts") == "answer"


async def test_a_kb_draft_idle_for_two_hours_no_longer_takes_messages(desk):
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    await thandi.send("/kb add", chat_id=STAFF_CHAT)
    assert "within 2 hours" in desk.tg.last_bot_message(STAFF_CHAT).text
    before = len(bot_texts(desk, STAFF_CHAT))
    desk.clock.advance(hours=2, minutes=1)
    await thandi.send("Can I pay for a featured ad with EFT?", chat_id=STAFF_CHAT)
    assert len(bot_texts(desk, STAFF_CHAT)) == before  # ordinary conversation: no answer
    assert await desk.scalar("SELECT count(*) FROM kb_drafts") == 0


async def test_a_button_press_ends_the_feedback_prompt(desk):
    user = desk.tg.user(7001, "Lerato")
    await user.send("my payment went through twice and I was charged R98")
    if any("Not helpful" in b for b in desk.tg.last_bot_message(7001).button_texts[:2]):
        await user.press("Not helpful")
    talk = desk.tg.last_bot_message(7001)
    await user.send("/feedback")
    assert "Your feedback" in desk.tg.last_bot_message(7001).text
    await user.press("Talk to a person", talk)
    await user.press("Payments")
    ticket = await desk.scalar("SELECT max(id) FROM tickets")
    await user.send("It was on Tuesday with my Visa card")
    assert await desk.scalar("SELECT count(*) FROM feedback") == 0
    assert await desk.scalar("SELECT count(*) FROM pending_inputs WHERE user_id = 7001") == 0
    assert await desk.scalar(
        f"SELECT count(*) FROM ticket_messages WHERE ticket_id = {ticket} AND text LIKE 'It was on Tuesday%'"
    ) == 1
    assert any("Tuesday with my Visa card" in t for t in bot_texts(desk, STAFF_CHAT))  # staff see the case's message


async def test_staff_bookkeeping_does_not_record_the_update(desk):
    """The duplicate-update marker goes with an update's effect: a staff member's
    ordinary message (the first update that loads the /feedback index) and a refused
    feedback answer (too long: touch_staff ran) record nothing."""
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    markers = "SELECT count(*) FROM processed_updates"
    desk.app.bot_data["desk"].pending = None  # as after a restart: the index loads on first use
    before = await desk.scalar(markers)
    await thandi.send("good morning all", chat_id=STAFF_CHAT)
    assert await desk.scalar(markers) == before
    user = desk.tg.user(7001, "Lerato")
    number = await give_feedback(desk, user)
    before = await desk.scalar(markers)
    await thandi.send("x" * 3500, chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    assert "at most 3000 fit" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert await desk.scalar(markers) == before
    await thandi.send("We will add it", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    assert await desk.scalar(markers) == before + 1
    assert await desk.scalar("SELECT answer FROM feedback") == "We will add it"
