"""Which handler a message goes to when several are waiting for one: a ticket reply
is never taken by a moderator's "Other…" reason or an open /kb draft, and a button
press ends the /feedback prompt (reproductions of reviewed routing defects)."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import moderators, mod_card, post_ad
from tests.test_escalation import card as ticket_card, open_ticket

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
