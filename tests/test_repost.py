"""/repost <kind> <number>: a staff card posted again by hand, and tracked from then on.

A card is claimed before it is posted; a bot killed in the middle of the send leaves
the claim without a message id, and the sweep never posts such a card again (it may
have arrived). Staff post it again with /repost (tickets and feedback: staff; ads and
reports: moderators), in the place the normal card goes (its topic in a forum); the new
message becomes the tracked card: its buttons act, replies to it count, and the edits
after a decision go to it. The card known before loses its buttons. Everything else (an
unknown kind, a bad number, an item that does not exist or is finished, the wrong
people) gets a clear answer and changes nothing.
"""

from __future__ import annotations

import pytest

from bot import card_retries
from tests.support import STAFF_CHAT
from tests.test_ads_flow import moderators, post_ad
from tests.test_card_retries import (
    TRUSTED, AGAIN, auto_approved_ad, feedback_cards, give_feedback, later_sweeps, lost_lines, mod_cards, refusals, report_cards,
    reported_ad, ticket_cards, trusted_seller,
)
from tests.test_escalation import open_ticket, staff_pair
from tests.test_notices import Killed, kill_at

USER = 6501


def said(desk):
    """The bot's last line in the staff chat (the answer to the command)."""
    return desk.tg.last_bot_message(STAFF_CHAT).text


def album(desk):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.kind == "photo"]


# ------------------------------------------------------------------ tickets


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_ticket_card_cut_off_mid_send_is_posted_by_repost_and_tracked(desk, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    kill_at(desk, "sendMessage", STAFF_CHAT)  # the bot dies while posting the card
    with pytest.raises(Killed):
        await open_ticket(desk, user)
    number = await desk.scalar("SELECT max(id) FROM tickets")
    row = "SELECT card_message_id, card_claimed_at IS NOT NULL, topic_id FROM tickets WHERE id = :n"
    assert ticket_cards(desk, number) == [] and tuple((await desk.rows(row, n=number))[0])[:2] == (None, True)
    await later_sweeps(desk)  # claimed, never recorded: the sweep does not post it again
    assert ticket_cards(desk, number) == []
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    [card] = ticket_cards(desk, number)
    assert card.button_texts[0] == "✋ Claim" and AGAIN not in card.text
    message_id, _, topic = (await desk.rows(row, n=number))[0]
    assert message_id == card.message_id
    if staff_forum:  # in the ticket's own topic (made before the crash): one topic
        assert card.thread_id == topic == desk.tg.topic_named(STAFF_CHAT, f"#{number} · Naledi")
        assert said(desk) == f"🔁 The card of ticket #{number} is posted again in its topic: the bot keeps that one up to date from now on, and replies to it count."
    else:
        assert said(desk) == f"🔁 The card of ticket #{number} is posted again: the bot keeps that one up to date from now on, and replies to it count."
    # its buttons act, replies to it reach the user, and the card follows the case
    await thandi.press("Claim", card)
    assert await desk.scalar("SELECT assignee_id FROM tickets") == thandi.id
    assert "✋ Thandi" in ticket_cards(desk, number)[0].text
    where = {"thread_id": card.thread_id} if staff_forum else {"reply_to": card}
    await thandi.send("We are looking into the double charge.", chat_id=STAFF_CHAT, **where)
    assert "We are looking into the double charge." in desk.tg.last_bot_message(USER).text
    await thandi.send(f"/resolve {number}", chat_id=STAFF_CHAT)
    [card] = ticket_cards(desk, number)
    assert "Reopen" in " ".join(card.button_texts)
    await later_sweeps(desk)
    assert len(ticket_cards(desk, number)) == 1 and refusals(desk) == []


async def test_repost_of_a_ticket_card_that_is_there_moves_the_tracking_to_the_new_card(desk):
    thandi, sipho = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    [old] = ticket_cards(desk, number)
    await thandi.send(f"/repost ticket #{number}", chat_id=STAFF_CHAT)
    old, new = ticket_cards(desk, number)
    assert old.reply_markup is None and new.button_texts[0] == "✋ Claim"  # one card with buttons
    assert await desk.scalar("SELECT card_message_id FROM tickets") == new.message_id
    await sipho.press("Claim", new)
    old, new = ticket_cards(desk, number)
    assert "✋ Sipho" in new.text and "✋ Sipho" not in old.text  # the edit goes to the new card
    await sipho.send("Refund is on its way.", chat_id=STAFF_CHAT, reply_to=new)
    assert "Refund is on its way." in desk.tg.last_bot_message(USER).text
    # an old client still showing the first card's buttons: authorised against the ticket
    await thandi.press_data(f"t:claim:{number}", old)
    assert await desk.scalar("SELECT assignee_id FROM tickets") == sipho.id
    assert refusals(desk) == []


async def test_repost_of_a_ticket_refused_or_unconfirmed_by_telegram_keeps_the_card_it_had(desk):
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    [card] = ticket_cards(desk, number)
    desk.tg.fail("sendMessage", "parse", chat_id=STAFF_CHAT)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    assert said(desk).startswith(f"⚠️ Telegram refused the card of ticket #{number}: “Can't parse entities")
    assert await desk.scalar("SELECT card_message_id FROM tickets") == card.message_id
    assert ticket_cards(desk, number)[0].reply_markup is not None  # still the card, with its buttons
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    assert said(desk) == (
        f"⚠️ Telegram did not confirm the card of ticket #{number}: it may have arrived or not."
        f" If it is not here, /repost ticket {number} again in a minute."
    )
    assert await desk.scalar("SELECT card_message_id FROM tickets") == card.message_id  # the one the bot knows
    await later_sweeps(desk)
    assert len(ticket_cards(desk, number)) == 2  # the unconfirmed copy arrived; nothing more


# ------------------------------------------------------------------ feedback


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_feedback_card_cut_off_mid_send_is_posted_by_repost_and_answered_through_it(desk, staff_forum):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    await user.send("/feedback")
    kill_at(desk, "sendMessage", STAFF_CHAT)
    with pytest.raises(Killed):
        await user.send("Please add a dark mode FB-88")
    number = await desk.scalar("SELECT max(id) FROM feedback")
    assert "is with our team" in desk.tg.last_bot_message(USER).text  # the thanks went out first
    await later_sweeps(desk)
    assert feedback_cards(desk, number) == []
    await thandi.send(f"/repost feedback {number}", chat_id=STAFF_CHAT)
    [card] = feedback_cards(desk, number)
    assert card.button_texts == ["✍️ Answer"]
    assert await desk.scalar("SELECT staff_message_id FROM feedback") == card.message_id
    if staff_forum:
        assert card.thread_id == desk.tg.topic_named(STAFF_CHAT, "Feedback") and "in its topic" in said(desk)
    await thandi.press("Answer", card)
    await thandi.send("Dark mode comes in March.", chat_id=STAFF_CHAT, thread_id=card.thread_id)
    assert "Dark mode comes in March." in desk.tg.last_bot_message(USER).text
    [card] = feedback_cards(desk, number)
    assert "✅ Answered by Thandi" in card.text and card.reply_markup is None
    await thandi.send(f"/repost feedback {number}", chat_id=STAFF_CHAT)
    assert said(desk) == f"⚠️ Feedback #{number} was answered already: its card has nothing left to act on."
    assert len(feedback_cards(desk, number)) == 1 and refusals(desk) == []


async def test_a_reply_to_a_reposted_feedback_card_answers_it(desk):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await give_feedback(desk, user)
    await thandi.send(f"/repost feedback {number}", chat_id=STAFF_CHAT)
    old, new = feedback_cards(desk, number)
    assert old.reply_markup is None and new.button_texts == ["✍️ Answer"]
    await thandi.send("Thanks, noted!", chat_id=STAFF_CHAT, reply_to=new)
    assert "Thanks, noted!" in desk.tg.last_bot_message(USER).text
    assert "✅ Answered by Thandi" in feedback_cards(desk, number)[1].text


# ------------------------------------------------------------------ ads: moderation and Take down cards


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_moderation_card_cut_off_mid_send_is_posted_by_repost_as_a_reply_to_its_photos(desk, staff_forum):
    mo, _ = moderators(desk)
    seller = desk.tg.user(USER, "Sello")
    await post_ad(desk, seller, submit=False)
    kill_at(desk, "sendMessage", STAFF_CHAT)  # after the album, while posting the card
    with pytest.raises(Killed):
        await seller.press("Submit")
    ad_id = await desk.scalar("SELECT max(id) FROM ads")
    assert mod_cards(desk, ad_id) == [] and len(album(desk)) == 2
    await later_sweeps(desk)
    assert mod_cards(desk, ad_id) == []
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    [card] = mod_cards(desk, ad_id)
    assert "⏳ pending" in card.text and "Approve" in " ".join(card.button_texts)
    photos = album(desk)  # posted before the crash, and confirmed: not posted again
    assert len(photos) == 2 and card.reply_to == photos[0].message_id
    assert await desk.scalar("SELECT mod_message_id FROM ads") == card.message_id
    if staff_forum:
        assert card.thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    assert f"The moderation card of ad #{ad_id} is posted again" in said(desk)
    await mo.press("Approve", card)
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    [card] = mod_cards(desk, ad_id)
    assert "✅ Approved by Moderator Mo" in card.text and card.reply_markup is None
    assert sum(f"Your ad #{ad_id} is live" in m.text for m in desk.tg.chat_messages(USER)) == 1
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    assert said(desk) == (
        f"⚠️ Ad #{ad_id} has no card to show: it is live, approved by a moderator. Only an ad waiting for review"
        " (its moderation card) or a live auto-approved ad (its Take down card) has one."
    )
    assert refusals(desk) == []


async def test_a_decision_on_the_earlier_moderation_card_redraws_the_reposted_one(desk):
    mo, lee = moderators(desk)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    await lee.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    old, new = mod_cards(desk, ad_id)
    assert old.reply_markup is None and await desk.scalar("SELECT mod_message_id FROM ads") == new.message_id
    await mo.press_data(f"m:r:{ad_id}:prohibited", old)  # an old client still shows the buttons
    assert await desk.scalar("SELECT status FROM ads") == "rejected"
    old, new = mod_cards(desk, ad_id)
    assert "❌ Rejected by Moderator Mo" in new.text and new.reply_markup is None
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    assert said(desk).startswith(f"⚠️ Ad #{ad_id} has no card to show: it is rejected.")
    assert len(mod_cards(desk, ad_id)) == 2


@pytest.mark.parametrize("settings_overrides", [TRUSTED])
async def test_take_down_card_of_an_auto_approved_ad_is_posted_by_repost_and_acts(desk):
    mo, _ = moderators(desk)
    seller = await trusted_seller(desk, mo)
    ad_id = await auto_approved_ad(desk, seller)
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    old, new = mod_cards(desk, ad_id)
    assert new.button_texts == ["🚫 Take down"] and "🤖 auto-approved" in new.text and old.reply_markup is None
    assert said(desk).startswith(f"🔁 The Take down card of ad #{ad_id} is posted again")
    assert await desk.scalar("SELECT mod_message_id FROM ads WHERE id = :i", i=ad_id) == new.message_id
    await mo.press("Take down", new)
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "taken_down"
    assert "🚫 Taken down by Moderator Mo" in mod_cards(desk, ad_id)[1].text
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    assert said(desk).startswith(f"⚠️ Ad #{ad_id} has no card to show: it is taken down.")
    assert refusals(desk) == []


# ------------------------------------------------------------------ ad reports


async def test_report_card_whose_posts_all_timed_out_is_posted_by_the_repost_the_line_names(desk):
    mo, _ = moderators(desk)
    ad_id, report_id = await reported_ad(desk, mo, fault="timeout", times=card_retries.ATTEMPTS)
    await later_sweeps(desk, card_retries.ATTEMPTS + 2)
    [line] = lost_lines(desk)
    assert line.text.endswith(f"/repost report {report_id} posts it again.")
    await mo.send(f"/repost report {report_id}", chat_id=STAFF_CHAT)
    [card] = report_cards(desk, report_id)
    assert AGAIN in card.text and card.button_texts == ["✅ Uphold: take down", "✖️ Dismiss"]
    assert await desk.scalar("SELECT card_message_id FROM ad_reports") == card.message_id
    await later_sweeps(desk)
    assert len(report_cards(desk, report_id)) == 1 and len(lost_lines(desk)) == 1
    await mo.press("Dismiss", card)
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    [card] = report_cards(desk, report_id)
    assert "✖️ Dismissed by Moderator Mo" in card.text and card.reply_markup is None
    await mo.send(f"/repost report {report_id}", chat_id=STAFF_CHAT)
    assert said(desk) == f"⚠️ Report #{report_id} was dismissed already: nothing is left to decide."
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "approved"


async def test_repost_of_an_open_report_card_moves_the_tracking_and_the_verdict_goes_to_the_new_card(desk):
    mo, _ = moderators(desk)
    ad_id, report_id = await reported_ad(desk, mo)
    await mo.send(f"/repost report {report_id}", chat_id=STAFF_CHAT)
    old, new = report_cards(desk, report_id)
    assert old.reply_markup is None and await desk.scalar("SELECT card_message_id FROM ad_reports") == new.message_id
    await mo.press("Uphold", new)
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "taken_down"
    assert "✅ Upheld by Moderator Mo" in report_cards(desk, report_id)[1].text


# ------------------------------------------------------------------ refusals


async def test_repost_refusals_say_what_is_wrong_and_change_nothing(desk):
    thandi, _ = staff_pair(desk)
    mo, _ = moderators(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    ad_id = await post_ad(desk, desk.tg.user(6502, "Sello"))
    draft_ad = await post_ad(desk, desk.tg.user(6503, "Zodwa"), submit=False)
    usage = "⚠️ Usage: /repost ticket N, /repost ad N, /repost report N or /repost feedback N"
    cases = [
        (thandi, "/repost", usage),
        (thandi, "/repost ticket", usage),
        (thandi, "/repost ticket twelve", usage),
        (thandi, "/repost ticket ²", usage),
        (thandi, "/repost ticket 999999999999999999", usage),
        (thandi, f"/repost tickets {number}", f"⚠️ There is no kind of card “tickets”. {usage[3:]}"),
        (thandi, "/repost ticket 4242", "⚠️ There is no ticket #4242."),
        (thandi, "/repost feedback 4242", "⚠️ There is no feedback #4242."),
        (mo, "/repost report 4242", "⚠️ There is no report #4242."),
        (mo, "/repost ad 4242", "⚠️ There is no ad #4242."),
        (mo, f"/repost ad {draft_ad}", f"⚠️ There is no ad #{draft_ad}."),  # a draft is its owner's alone
        (thandi, f"/repost ad {ad_id}", "⚠️ Only moderators can do that."),
        (thandi, "/repost report 1", "⚠️ Only moderators can do that."),
    ]
    cards = len([m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot])
    for person, command, answer in cases:
        await person.send(command, chat_id=STAFF_CHAT)
        assert said(desk).startswith(answer), (command, said(desk))
    assert len([m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot]) == cards + len(cases)  # only the answers
    # a closed ticket: nothing to act on, nothing changes
    await thandi.press_data(f"t:spam:{number}", ticket_cards(desk, number)[0])
    assert await desk.scalar("SELECT status FROM tickets") == "closed"
    row = "SELECT card_message_id, card_claimed_at, card_timeouts FROM tickets"
    before = await desk.rows(row)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    assert said(desk) == f"⚠️ Ticket #{number} is closed: its card has nothing left to act on. /ticket {number} shows the case."
    assert await desk.rows(row) == before and len(ticket_cards(desk, number)) == 1


async def test_people_who_are_not_staff_cannot_repost(desk, caplog):
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    stranger = desk.tg.user(7001, "Stranger")
    former = desk.tg.staff(7002, "Former agent", STAFF_CHAT, status="left")
    before = await desk.rows("SELECT card_message_id, card_claimed_at FROM tickets")
    for person in (stranger, former):
        await person.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
        assert said(desk) == "⚠️ Only staff can do that."
    assert len(ticket_cards(desk, number)) == 1
    assert await desk.rows("SELECT card_message_id, card_claimed_at FROM tickets") == before
    assert any("refused a staff action by non-staff user 7001" in r.getMessage() for r in caplog.records)
