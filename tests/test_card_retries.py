"""Staff-chat cards whose post timed out: posted again by the sweep, a bounded number of times.

A timeout means Telegram gave no answer: the card may have arrived (the fake API's
``delivered=True``: "it went through all the same") or not, and the bot does not know
its message id either way. For each kind of card (a ticket's, a feedback's, an ad's
moderation card, the Take down card of an auto-approved ad, a report's): after the repair
grace the sweep posts it once more, with a line saying so, and tracks the new message;
a card whose first post went through is never posted again; after
:data:`bot.card_retries.ATTEMPTS` posts timed out, staff get one line naming the item.
A button pressed on the first copy (it arrived after all) acts once, authorised against
the database, and the card that is redrawn is the tracked one.
"""

from __future__ import annotations

import logging

import pytest

from bot import card_retries
from tests.support import STAFF_CHAT
from tests.test_escalation import open_ticket, staff_pair
from tests.test_notices import Killed, killed_after_commit
from tests.test_repair import sweep

USER = 6401
NO_RETRIES = {"telegram": {"max_retries": 0}}  # a 429 reaches the bot at once (no waiting in tests)
AGAIN = "Posted again: Telegram did not confirm the first card. If you see two, use this one."


def ticket_cards(desk, number):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"🎫 #{number} ")]


def lost_lines(desk):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith("⚠️ Telegram did not confirm")]


def sends_to_staff(desk, start):
    return [c for c in desk.tg.calls[start:] if c.method == "sendMessage" and int(c.params["chat_id"]) == STAFF_CHAT]


def refusals(desk):
    """Calls Telegram refused (not the injected timeouts, nor an edit that changed nothing)."""
    return [c for c in desk.tg.errors() if not c.timed_out and "not modified" not in c.error.description]


def toasts(desk):
    return [e.text for e in desk.tg.events if e.who == "toast"]


async def later_sweeps(desk, times=3):
    for _ in range(times):
        desk.clock.advance(minutes=3)
        await sweep(desk)


# ------------------------------------------------------------------ ticket cards


@pytest.mark.parametrize("staff_forum", [False, True])
@pytest.mark.parametrize("arrived", [False, True])
async def test_ticket_card_that_timed_out_is_posted_again_once_and_tracked(desk, arrived, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=arrived)
    number = await open_ticket(desk, user)
    assert len(ticket_cards(desk, number)) == (1 if arrived else 0)
    row = (await desk.rows("SELECT card_message_id, card_timeouts FROM tickets WHERE id = :n", n=number))[0]
    assert tuple(row) == (None, 1)
    await sweep(desk)  # within the repair grace: not yet
    assert len(ticket_cards(desk, number)) == (1 if arrived else 0)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    cards = ticket_cards(desk, number)
    assert len(cards) == (2 if arrived else 1)
    again = cards[-1]
    assert AGAIN in again.text and (not arrived or AGAIN not in cards[0].text)
    assert again.button_texts[0] == "✋ Claim"
    row = (await desk.rows("SELECT card_message_id, card_timeouts, topic_id FROM tickets WHERE id = :n", n=number))[0]
    assert (row[0], row[1]) == (again.message_id, 1)
    if staff_forum:  # the topic of the first try is used again: one topic
        assert again.thread_id == row[2] == desk.tg.topic_named(STAFF_CHAT, f"#{number} · Naledi")
        assert len([c for c in desk.tg.calls if c.method == "createForumTopic" and c.ok]) == 1
    start = len(desk.tg.calls)
    await later_sweeps(desk)
    assert len(ticket_cards(desk, number)) == len(cards) and lost_lines(desk) == []
    assert not [c for c in sends_to_staff(desk, start) if "🎫" in c.params["text"]]
    # from now on the new card is the one the bot edits, and it keeps its line
    await thandi.press("Claim", again)
    tracked = ticket_cards(desk, number)[-1]
    assert "✋ Thandi" in tracked.text and AGAIN in tracked.text
    assert "Thandi from support is on your case" in desk.tg.last_bot_message(USER).text
    where = {"thread_id": again.thread_id} if staff_forum else {"reply_to": again}
    await thandi.send("We are on it.", chat_id=STAFF_CHAT, **where)
    assert "We are on it." in desk.tg.last_bot_message(USER).text
    assert refusals(desk) == []


async def test_ticket_card_whose_first_post_went_through_is_never_posted_again(desk):
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    await later_sweeps(desk)
    cards = ticket_cards(desk, number)
    assert len(cards) == 1 and AGAIN not in cards[0].text
    assert tuple((await desk.rows("SELECT card_message_id, card_timeouts FROM tickets"))[0]) == (cards[0].message_id, 0)


async def test_a_press_on_the_first_copy_of_a_ticket_card_acts_once_and_redraws_the_tracked_card(desk):
    thandi, sipho = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    number = await open_ticket(desk, user)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    first, tracked = ticket_cards(desk, number)
    # Thandi uses the first copy (it arrived): the case is hers, the tracked card shows it
    await thandi.press("Claim", first)
    assert await desk.scalar("SELECT assignee_id FROM tickets") == thandi.id
    first, tracked = ticket_cards(desk, number)
    assert "✋ Thandi" in tracked.text and "Release" in " ".join(tracked.button_texts)
    assert first.reply_markup is None and "✋ Thandi" not in first.text  # the copy: no buttons left
    # a client that still shows the copy's old buttons: refused by the database, no second claim
    await sipho.press_data(f"t:claim:{number}", first)
    assert "Thandi" in toasts(desk)[-1] and await desk.scalar("SELECT assignee_id FROM tickets") == thandi.id
    await sipho.press_data(f"t:resolve:{number}", first)  # authorised against the ticket: done once
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"
    await sipho.press_data(f"t:resolve:{number}", first)
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"
    assert sum("has been marked as solved" in m.text for m in desk.tg.chat_messages(USER)) == 1
    assert "Reopen" in " ".join(ticket_cards(desk, number)[-1].button_texts)
    assert refusals(desk) == []


async def test_ticket_card_that_keeps_timing_out_is_tried_three_times_then_staff_are_told_once(desk):
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    number = await open_ticket(desk, user)
    for tries in range(2, card_retries.ATTEMPTS + 1):
        desk.clock.advance(minutes=3)
        await sweep(desk)
        assert await desk.scalar("SELECT card_timeouts FROM tickets") in (tries, card_retries.TOLD)
    tries = [c for c in desk.tg.calls if c.method == "sendMessage" and str(c.params.get("text", "")).startswith(f"🎫 <b>#{number}</b>")]
    assert len(tries) == card_retries.ATTEMPTS and all(c.timed_out for c in tries)
    assert [m.text for m in lost_lines(desk)] == [
        f"⚠️ Telegram did not confirm the card of ticket #{number} after 3 tries: it may be missing here. /ticket {number} shows the case; /repost ticket {number} posts its card again."
    ]
    start = len(desk.tg.calls)
    await later_sweeps(desk)
    assert sends_to_staff(desk, start) == [] and len(lost_lines(desk)) == 1
    assert await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD
    # the user writes again: the case needs its card now, and gets it (with the line)
    await user.send("Any news?")
    cards = ticket_cards(desk, number)
    assert len(cards) == 1 and AGAIN in cards[0].text
    assert await desk.scalar("SELECT card_message_id FROM tickets") == cards[0].message_id


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_a_forced_post_timing_out_after_the_last_try_does_not_swallow_the_line_to_staff(desk, settings_overrides):
    """Three posts timed out and the line to staff was refused for the flood limit (it
    waits in the outbox); meanwhile the user writes and the relay's own post of the card
    times out too: staff stay told, and the next sweep still sends the line, once."""
    staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, retry_after=30)  # the line to staff: refused for now
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT)  # the relay's own post of the card
    number = await open_ticket(desk, user)
    for _ in range(2, card_retries.ATTEMPTS + 1):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD and lost_lines(desk) == []
    assert [n[:4] for n in await lost_card_notices(desk)] == [("card_lost", f"ticket:{number}", "ticket_general", "pending")]
    await user.send("Any news?")  # the relay posts the card itself: a fourth timeout
    assert await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(lost_lines(desk)) == 1
    await later_sweeps(desk)
    assert len(lost_lines(desk)) == 1
    assert [n[3] for n in await lost_card_notices(desk)] == ["sent"]


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_the_line_about_a_lost_card_refused_for_the_flood_limit_is_sent_by_the_next_sweep(desk, settings_overrides):
    staff_pair(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    desk.clock.advance(minutes=3)
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, retry_after=30)  # after the card's third timeout, the line is refused for now
    await sweep(desk)
    assert lost_lines(desk) == [] and await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD
    [(_, _, _, state, error)] = await lost_card_notices(desk)
    assert state == "pending" and "flood limit" in error
    await later_sweeps(desk)
    assert len(lost_lines(desk)) == 1 and f"/ticket {number}" in lost_lines(desk)[0].text
    assert [n[3] for n in await lost_card_notices(desk)] == ["sent"]


@pytest.mark.parametrize("refusal", ["kicked", "parse"])
async def test_the_line_about_a_lost_card_that_telegram_refuses_is_recorded_once_not_tried_every_minute(desk, refusal, caplog):
    """The bot was removed from the staff chat (403), or Telegram cannot take the line
    (400): trying again each minute changes nothing. The refusal is recorded on the line
    (the outbox: *failed*, with Telegram's reason) and logged, once."""
    staff_pair(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    desk.clock.advance(minutes=3)
    desk.tg.fail("sendMessage", refusal, chat_id=STAFF_CHAT, times=100)  # after the card's third timeout
    with caplog.at_level(logging.ERROR):
        await sweep(desk)
    assert lost_lines(desk) == [] and await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD
    [(_, _, _, state, error)] = await lost_card_notices(desk)
    assert state == "failed" and error
    refused = [r for r in caplog.records if r.levelno >= logging.ERROR and "card_lost" in r.getMessage() and "recorded failed" in r.getMessage()]
    assert len(refused) == 1
    start = len(desk.tg.calls)
    await later_sweeps(desk, times=5)
    assert sends_to_staff(desk, start) == []
    assert await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD
    assert [n[3] for n in await lost_card_notices(desk)] == ["failed"]


async def lost_card_notices(desk):
    """(kind, ref, audience, state, error) of the lines to staff about lost cards."""
    rows = await desk.rows("SELECT kind, ref, audience, state, error FROM notices WHERE kind = 'card_lost' ORDER BY id")
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_the_line_about_a_lost_card_survives_a_crash_after_its_commit_and_is_sent_once(desk, staff_forum):
    """The sweep that marks staff told (``card_timeouts``: TOLD) dies right after its
    commit: the line was queued in that transaction, so a later sweep sends it, once,
    in the chat's General topic (a forum) where everybody looks."""
    staff_pair(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    desk.clock.advance(minutes=3)
    with killed_after_commit("card_lost"), pytest.raises(Killed):
        await sweep(desk)  # the third post times out; staff are to be told: the bot dies after the commit
    assert await desk.scalar("SELECT card_timeouts FROM tickets") == card_retries.TOLD and lost_lines(desk) == []
    assert await lost_card_notices(desk) == [("card_lost", f"ticket:{number}", "ticket_general", "pending", None)]
    await sweep(desk)  # too fresh: the sweep that queued it may be sending it right now
    assert lost_lines(desk) == []
    await later_sweeps(desk, times=4)
    [line] = lost_lines(desk)
    assert f"card of ticket #{number} after 3 tries" in line.text and line.thread_id is None
    assert await lost_card_notices(desk) == [("card_lost", f"ticket:{number}", "ticket_general", "sent", None)]
    assert len([c for c in desk.tg.calls if c.method == "sendMessage" and "after 3 tries" in str(c.params.get("text"))]) == 1


@pytest.mark.parametrize("staff_forum", [True])
async def test_the_line_about_a_lost_feedback_card_left_by_a_crash_goes_to_the_feedback_topic_once(desk, staff_forum):
    staff_pair(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    number = await give_feedback(desk, desk.tg.user(USER, "Naledi"))
    for _ in range(card_retries.ATTEMPTS - 2):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    desk.clock.advance(minutes=3)
    with killed_after_commit("card_lost"), pytest.raises(Killed):
        await sweep(desk)
    assert lost_lines(desk) == []
    await later_sweeps(desk, times=4)
    [line] = lost_lines(desk)
    assert f"card of feedback #{number} from Naledi" in line.text
    assert line.thread_id == desk.tg.topic_named(STAFF_CHAT, "Feedback")
    assert [n[:4] for n in await lost_card_notices(desk)] == [("card_lost", f"feedback:{number}", "feedback", "sent")]


# ------------------------------------------------------------------ feedback cards


def feedback_cards(desk, number):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"✍️ Feedback #{number} ")]


async def give_feedback(desk, user, text="Please add a dark mode FB-77"):
    await user.send("/feedback")
    await user.send(text)
    return await desk.scalar("SELECT max(id) FROM feedback")


@pytest.mark.parametrize("staff_forum", [False, True])
@pytest.mark.parametrize("arrived", [False, True])
async def test_feedback_card_that_timed_out_is_posted_again_once_and_tracked(desk, arrived, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=arrived)
    number = await give_feedback(desk, user)
    assert len(feedback_cards(desk, number)) == (1 if arrived else 0)
    assert tuple((await desk.rows("SELECT staff_message_id, card_timeouts FROM feedback"))[0]) == (None, 1)
    await sweep(desk)  # within the repair grace
    assert len(feedback_cards(desk, number)) == (1 if arrived else 0)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    cards = feedback_cards(desk, number)
    assert len(cards) == (2 if arrived else 1)
    again = cards[-1]
    assert AGAIN in again.text and again.button_texts == ["✍️ Answer"]
    if staff_forum:
        assert again.thread_id == desk.tg.topic_named(STAFF_CHAT, "Feedback")
    assert tuple((await desk.rows("SELECT staff_message_id, card_timeouts FROM feedback"))[0]) == (again.message_id, 1)
    await later_sweeps(desk)
    assert len(feedback_cards(desk, number)) == len(cards) and lost_lines(desk) == []
    # the new card is the one that works and is edited: a reply to it answers
    await thandi.send("Dark mode is planned for March.", chat_id=STAFF_CHAT, reply_to=again)
    assert "Dark mode is planned for March." in desk.tg.last_bot_message(USER).text
    tracked = feedback_cards(desk, number)[-1]
    assert "✅ Answered by Thandi" in tracked.text and AGAIN in tracked.text and tracked.reply_markup is None
    assert refusals(desk) == []


async def test_feedback_card_whose_first_post_went_through_is_never_posted_again(desk):
    staff_pair(desk)
    number = await give_feedback(desk, desk.tg.user(USER, "Naledi"))
    await later_sweeps(desk)
    assert len(feedback_cards(desk, number)) == 1 and AGAIN not in feedback_cards(desk, number)[0].text
    assert await desk.scalar("SELECT card_timeouts FROM feedback") == 0


async def test_answer_pressed_on_the_first_copy_of_a_feedback_card_answers_once_and_redraws_the_tracked_card(desk):
    thandi, sipho = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    number = await give_feedback(desk, user)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    first, tracked = feedback_cards(desk, number)
    await thandi.press("Answer", first)
    assert "Thandi, type your answer to feedback" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert feedback_cards(desk, number)[0].reply_markup is None  # the copy: its button is gone
    await thandi.send("Thanks, noted!", chat_id=STAFF_CHAT)
    assert "Thanks, noted!" in desk.tg.last_bot_message(USER).text
    first, tracked = feedback_cards(desk, number)
    assert "✅ Answered by Thandi" in tracked.text and tracked.reply_markup is None
    # an old client still showing the copy's button: refused by the database, nothing sent twice
    await sipho.press_data(f"fb:a:{number}", first)
    assert "Thandi" in toasts(desk)[-1]
    assert sum("Thanks, noted!" in m.text for m in desk.tg.chat_messages(USER)) == 1
    assert refusals(desk) == []


async def test_feedback_card_that_keeps_timing_out_is_tried_three_times_then_staff_are_told_once(desk):
    staff_pair(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    number = await give_feedback(desk, desk.tg.user(USER, "Naledi"))
    await later_sweeps(desk, card_retries.ATTEMPTS + 2)
    tries = [c for c in desk.tg.calls if c.method == "sendMessage" and f"Feedback #{number}</b>" in str(c.params.get("text"))]
    assert len(tries) == card_retries.ATTEMPTS and all(c.timed_out for c in tries)
    assert [m.text for m in lost_lines(desk)] == [
        f"⚠️ Telegram did not confirm the card of feedback #{number} from Naledi after 3 tries: it may be missing here."
        f" /repost feedback {number} posts it again."
    ]
    assert await desk.scalar("SELECT card_timeouts FROM feedback") == card_retries.TOLD


# ------------------------------------------------------------------ moderation and Take down cards


def mod_cards(desk, ad_id):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"📋 Ad #{ad_id} ")]


def album_photos(desk):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.kind == "photo"]


@pytest.mark.parametrize("staff_forum", [False, True])
@pytest.mark.parametrize("arrived", [False, True])
async def test_moderation_card_that_timed_out_is_posted_again_once_and_tracked(desk, arrived, staff_forum):
    from tests.test_ads_flow import moderators, post_ad

    mo, _ = moderators(desk)
    seller = desk.tg.user(USER, "Sello")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=arrived)
    ad_id = await post_ad(desk, seller)
    assert len(mod_cards(desk, ad_id)) == (1 if arrived else 0) and len(album_photos(desk)) == 2
    assert tuple((await desk.rows("SELECT mod_message_id, card_timeouts FROM ads"))[0]) == (None, 1)
    await sweep(desk)  # within the repair grace
    assert len(mod_cards(desk, ad_id)) == (1 if arrived else 0)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    cards = mod_cards(desk, ad_id)
    assert len(cards) == (2 if arrived else 1)
    again = cards[-1]
    assert AGAIN in again.text and "⏳ pending" in again.text and "Approve" in " ".join(again.button_texts)
    photos = album_photos(desk)  # the photos posted with the first try: the card replies to them
    assert len(photos) == 2 and again.reply_to == photos[0].message_id
    if staff_forum:
        assert again.thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    assert tuple((await desk.rows("SELECT mod_message_id, card_timeouts FROM ads"))[0]) == (again.message_id, 1)
    await later_sweeps(desk)
    assert len(mod_cards(desk, ad_id)) == len(cards) and lost_lines(desk) == []
    await mo.press("Approve", again)
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    tracked = mod_cards(desk, ad_id)[-1]
    assert "✅ Approved by Moderator Mo" in tracked.text and AGAIN in tracked.text and tracked.reply_markup is None
    assert sum(f"Your ad #{ad_id} is live" in m.text for m in desk.tg.chat_messages(USER)) == 1
    assert refusals(desk) == []


async def test_moderation_card_whose_first_post_went_through_is_never_posted_again(desk):
    from tests.test_ads_flow import post_ad

    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    await later_sweeps(desk)
    assert len(mod_cards(desk, ad_id)) == 1 and AGAIN not in mod_cards(desk, ad_id)[0].text
    assert await desk.scalar("SELECT card_timeouts FROM ads") == 0


async def test_a_decision_on_the_first_copy_of_a_moderation_card_acts_once_and_redraws_the_tracked_card(desk):
    from tests.test_ads_flow import moderators, post_ad

    mo, lee = moderators(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    desk.clock.advance(minutes=3)
    await sweep(desk)
    first, tracked = mod_cards(desk, ad_id)
    await mo.press("Reject", first)  # the reasons open on the copy pressed
    await mo.press("Contact details in text", mod_cards(desk, ad_id)[0])
    assert await desk.scalar("SELECT status FROM ads") == "rejected"
    first, tracked = mod_cards(desk, ad_id)
    assert "❌ Rejected by Moderator Mo" in tracked.text and AGAIN in tracked.text and tracked.reply_markup is None
    assert "❌ Rejected by Moderator Mo" in first.text and AGAIN not in first.text and first.reply_markup is None
    # an old client still showing the copy's buttons: the database refuses a second decision
    await lee.press_data(f"m:ok:{ad_id}", first)
    assert "rejected" in toasts(desk)[-1] and await desk.scalar("SELECT status FROM ads") == "rejected"
    assert sum("was not approved" in m.text for m in desk.tg.chat_messages(USER)) == 1
    assert refusals(desk) == []


async def test_moderation_card_that_keeps_timing_out_is_tried_three_times_then_staff_are_told_once(desk):
    from tests.test_ads_flow import post_ad

    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    await later_sweeps(desk, card_retries.ATTEMPTS + 2)
    tries = [c for c in desk.tg.calls if c.method == "sendMessage" and f"Ad #{ad_id}</b>" in str(c.params.get("text"))]
    assert len(tries) == card_retries.ATTEMPTS and all(c.timed_out for c in tries)
    assert [m.text for m in lost_lines(desk)] == [
        f"⚠️ Telegram did not confirm the moderation card of ad #{ad_id} “VW Polo 1.2 TSI 2015” after 3 tries:"
        f" it may be missing here. /modqueue lists it; /repost ad {ad_id} posts its card again."
    ]
    assert await desk.scalar("SELECT card_timeouts FROM ads") == card_retries.TOLD


TRUSTED = {"ads": {"auto_approve_trusted": True, "trusted_min_approved": 1}}


async def trusted_seller(desk, moderator):
    """A seller with one approved ad: their next clean ad is approved at once, and its
    card is the Take down card."""
    from tests.test_ads_flow import DESCRIPTION, post_ad

    seller = desk.tg.user(USER, "Sello")
    first = await post_ad(desk, seller, description=DESCRIPTION + " Red, one owner.")
    await moderator.press("Approve", mod_cards(desk, first)[-1])
    return seller


async def auto_approved_ad(desk, seller):
    from tests.test_ads_flow import post_ad

    ad_id = await post_ad(desk, seller, description="Well kept Toyota Corolla 2018, 60 000 km, one owner, service book.")
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "approved"
    return ad_id


@pytest.mark.parametrize("settings_overrides", [TRUSTED])
async def test_take_down_card_refused_is_posted_by_the_sweep(desk):
    """Before, a refused Take down card was released, but no sweep ever posted it."""
    from tests.test_ads_flow import moderators

    mo, _ = moderators(desk)
    seller = await trusted_seller(desk, mo)
    desk.tg.fail("sendMessage", "parse", chat_id=STAFF_CHAT)
    ad_id = await auto_approved_ad(desk, seller)
    assert mod_cards(desk, ad_id) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    cards = mod_cards(desk, ad_id)
    assert len(cards) == 1 and "🤖 auto-approved" in cards[0].text and cards[0].button_texts == ["🚫 Take down"]
    assert AGAIN not in cards[0].text  # surely not there before: no copy to warn about
    await mo.press("Take down", cards[0])
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "taken_down"


@pytest.mark.parametrize("settings_overrides", [TRUSTED])
@pytest.mark.parametrize("arrived", [False, True])
async def test_take_down_card_that_timed_out_is_posted_again_once_and_tracked(desk, arrived):
    from tests.test_ads_flow import moderators

    mo, lee = moderators(desk)
    seller = await trusted_seller(desk, mo)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=arrived)
    ad_id = await auto_approved_ad(desk, seller)
    assert len(mod_cards(desk, ad_id)) == (1 if arrived else 0)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await later_sweeps(desk)
    cards = mod_cards(desk, ad_id)
    assert len(cards) == (2 if arrived else 1)
    again = cards[-1]
    assert AGAIN in again.text and "🤖 auto-approved" in again.text and again.button_texts == ["🚫 Take down"]
    assert await desk.scalar("SELECT mod_message_id FROM ads WHERE id = :i", i=ad_id) == again.message_id
    # Take down, pressed on the first copy when it arrived: done once, both copies show it
    await mo.press("Take down", cards[0])
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "taken_down"
    cards = mod_cards(desk, ad_id)
    assert all("🚫 Taken down by Moderator Mo" in c.text and c.reply_markup is None for c in cards)
    assert AGAIN in cards[-1].text
    await lee.press_data(f"m:down:{ad_id}", cards[0])  # an old client: refused, nothing twice
    assert await desk.scalar("SELECT decided_by FROM ads WHERE id = :i", i=ad_id) == mo.id
    assert sum("was taken down" in m.text for m in desk.tg.chat_messages(USER)) == 1
    assert refusals(desk) == []


@pytest.mark.parametrize("settings_overrides", [TRUSTED])
async def test_take_down_card_that_keeps_timing_out_is_tried_three_times_then_staff_are_told_once(desk):
    from tests.test_ads_flow import moderators

    mo, _ = moderators(desk)
    seller = await trusted_seller(desk, mo)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, times=card_retries.ATTEMPTS)
    ad_id = await auto_approved_ad(desk, seller)
    await later_sweeps(desk, card_retries.ATTEMPTS + 2)
    assert mod_cards(desk, ad_id) == []
    assert [m.text for m in lost_lines(desk)] == [
        f"⚠️ Telegram did not confirm the Take down card of the auto-approved ad #{ad_id} “VW Polo 1.2 TSI 2015” after 3 tries:"
        f" it may be missing here. /repost ad {ad_id} posts it again."
    ]


# ------------------------------------------------------------------ ad report cards


def report_cards(desk, report_id):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"🚩 Report #{report_id} ")]


async def reported_ad(desk, moderator, *, fault=None, **fault_args):
    """A live ad, reported by a buyer; ``fault``: how posting the report's card fails."""
    from tests.test_ads_flow import post_ad

    ad_id = await post_ad(desk, desk.tg.user(6402, "Sello"))
    await moderator.press("Approve", mod_cards(desk, ad_id)[-1])
    buyer = desk.tg.user(USER, "Buyer")
    await buyer.send(f"/report {ad_id}")
    if fault:
        desk.tg.fail("sendMessage", fault, chat_id=STAFF_CHAT, **fault_args)
    await buyer.press("Wrong category")
    return ad_id, await desk.scalar("SELECT max(id) FROM ad_reports")


@pytest.mark.parametrize("arrived", [False, True])
async def test_report_card_that_timed_out_is_posted_again_once_and_tracked(desk, arrived):
    from tests.test_ads_flow import moderators

    mo, _ = moderators(desk)
    ad_id, report_id = await reported_ad(desk, mo, fault="timeout", delivered=arrived)
    assert len(report_cards(desk, report_id)) == (1 if arrived else 0)
    assert tuple((await desk.rows("SELECT card_message_id, card_timeouts FROM ad_reports"))[0]) == (None, 1)
    await sweep(desk)  # within the repair grace
    assert len(report_cards(desk, report_id)) == (1 if arrived else 0)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    cards = report_cards(desk, report_id)
    assert len(cards) == (2 if arrived else 1)
    again = cards[-1]
    assert AGAIN in again.text and again.button_texts == ["✅ Uphold: take down", "✖️ Dismiss"]
    assert tuple((await desk.rows("SELECT card_message_id, card_timeouts FROM ad_reports"))[0]) == (again.message_id, 1)
    await later_sweeps(desk)
    assert len(report_cards(desk, report_id)) == len(cards) and lost_lines(desk) == []
    await mo.press("Uphold", again)
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "taken_down"
    tracked = report_cards(desk, report_id)[-1]
    assert "✅ Upheld by Moderator Mo" in tracked.text and AGAIN in tracked.text and tracked.reply_markup is None
    assert refusals(desk) == []


async def test_report_card_whose_first_post_went_through_is_never_posted_again(desk):
    from tests.test_ads_flow import moderators

    mo, _ = moderators(desk)
    _, report_id = await reported_ad(desk, mo)
    await later_sweeps(desk)
    assert len(report_cards(desk, report_id)) == 1 and AGAIN not in report_cards(desk, report_id)[0].text
    assert await desk.scalar("SELECT card_timeouts FROM ad_reports") == 0


async def test_a_verdict_on_the_first_copy_of_a_report_card_acts_once_and_redraws_the_tracked_card(desk):
    from tests.test_ads_flow import moderators

    mo, lee = moderators(desk)
    ad_id, report_id = await reported_ad(desk, mo, fault="timeout", delivered=True)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    first, tracked = report_cards(desk, report_id)
    await mo.press("Dismiss", first)
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    first, tracked = report_cards(desk, report_id)
    assert "✖️ Dismissed by Moderator Mo" in tracked.text and AGAIN in tracked.text and tracked.reply_markup is None
    assert "✖️ Dismissed by Moderator Mo" in first.text and AGAIN not in first.text and first.reply_markup is None
    await lee.press_data(f"rep:up:{report_id}", first)  # an old client: refused, the ad stays up
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "approved"
    assert sum("found no breach" in m.text for m in desk.tg.chat_messages(USER)) == 1  # the reporter is told once
    assert refusals(desk) == []


async def test_report_card_that_keeps_timing_out_is_tried_three_times_then_staff_are_told_once(desk):
    from tests.test_ads_flow import moderators

    mo, _ = moderators(desk)
    ad_id, report_id = await reported_ad(desk, mo, fault="timeout", times=card_retries.ATTEMPTS)
    await later_sweeps(desk, card_retries.ATTEMPTS + 2)
    assert report_cards(desk, report_id) == []
    assert [m.text for m in lost_lines(desk)] == [
        f"⚠️ Telegram did not confirm the card of report #{report_id} on ad #{ad_id} after 3 tries: it may be missing here."
        f" /repost report {report_id} posts it again."
    ]
    assert await desk.scalar("SELECT card_timeouts FROM ad_reports") == card_retries.TOLD


# ------------------------------------------------------------------ answers the bot cannot read

SORRY = "Sorry, something went wrong"


async def garbled_card(desk, kind, **fault):
    """An item of ``kind`` whose card's post Telegram answers with something PTB cannot
    read (a broken proxy or Bot API server: 200 with a result missing its fields).
    Returns (number, a function listing its cards, its table, its card column)."""
    from tests.test_ads_flow import moderators, post_ad

    mo, _ = moderators(desk)
    if kind == "report":
        _, number = await reported_ad(desk, mo, fault="garbage", **fault)
        return number, lambda: report_cards(desk, number), "ad_reports", "card_message_id"
    desk.tg.fail("sendMessage", "garbage", chat_id=STAFF_CHAT, **fault)
    user = desk.tg.user(USER, "Naledi")
    if kind == "ticket":
        number = await open_ticket(desk, user)
        return number, lambda: ticket_cards(desk, number), "tickets", "card_message_id"
    if kind == "feedback":
        number = await give_feedback(desk, user)
        return number, lambda: feedback_cards(desk, number), "feedback", "staff_message_id"
    number = await post_ad(desk, user)
    return number, lambda: mod_cards(desk, number), "ads", "mod_message_id"


@pytest.mark.parametrize("kind", ["ticket", "feedback", "ad", "report"])
async def test_a_card_answered_with_garbage_counts_like_a_timeout_and_is_posted_again(desk, kind):
    """It may have arrived: counted, the claim kept, posted again by the sweep after the
    repair grace (with the line), tracked; the person who caused it hears the usual."""
    staff_pair(desk)
    number, cards, table, column = await garbled_card(desk, kind)
    assert not any(SORRY in m.text for m in desk.tg.chat_messages(USER))
    assert cards() == []
    row = f"SELECT {column}, card_timeouts, card_claimed_at IS NOT NULL FROM {table}"
    assert tuple((await desk.rows(row))[0]) == (None, 1, True)
    await sweep(desk)  # within the repair grace
    assert cards() == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    [card] = cards()
    assert AGAIN in card.text and card.reply_markup is not None
    assert tuple((await desk.rows(row))[0]) == (card.message_id, 1, True)
    if kind == "ad":  # the photos went through the first time: the card replies to them
        assert len(album_photos(desk)) == 2 and card.reply_to == album_photos(desk)[0].message_id
    await later_sweeps(desk)
    assert len(cards()) == 1 and lost_lines(desk) == [] and refusals(desk) == []


@pytest.mark.parametrize("kind", ["ticket", "feedback", "ad", "report"])
async def test_a_card_answered_with_garbage_every_time_is_tried_three_times_then_staff_are_told(desk, kind):
    staff_pair(desk)
    number, cards, table, _ = await garbled_card(desk, kind, times=card_retries.ATTEMPTS)
    await later_sweeps(desk, card_retries.ATTEMPTS + 2)
    assert cards() == []
    [line] = lost_lines(desk)
    assert f"#{number}" in line.text and f"/repost {kind} {number}" in line.text
    assert await desk.scalar(f"SELECT card_timeouts FROM {table}") == card_retries.TOLD


async def test_repost_answered_with_garbage_says_it_is_not_confirmed(desk):
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    [card] = ticket_cards(desk, number)
    desk.tg.fail("sendMessage", "garbage", chat_id=STAFF_CHAT)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    assert desk.tg.last_bot_message(STAFF_CHAT).text.startswith(f"⚠️ Telegram did not confirm the card of ticket #{number}")
    assert await desk.scalar("SELECT card_message_id FROM tickets") == card.message_id


async def test_photos_answered_with_garbage_do_not_keep_the_card_back(desk):
    """The album's answer cannot be read: the photos count as not confirmed (best
    effort, like a timeout), the card follows."""
    from tests.test_ads_flow import post_ad

    desk.tg.fail("sendMediaGroup", "garbage", chat_id=STAFF_CHAT)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    assert len(mod_cards(desk, ad_id)) == 1 and album_photos(desk) == []
    assert not any(SORRY in m.text for m in desk.tg.chat_messages(USER))
    assert await desk.scalar("SELECT album_message_id FROM ads") is None
