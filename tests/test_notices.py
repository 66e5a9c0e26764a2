"""The user-notice outbox: a crash at any point loses no notice and sends none twice.

Notices to users (ad decisions, penalties, a ticket's claim / solution and survey, the
answer to a feedback) are written in the transaction of the decision (``notices``),
then claimed and sent after the commit. The bot is "killed" by making the fake Bot API
raise an exception no handler catches (:class:`Killed`, a ``BaseException`` as a dying
process would leave it): at the first call after the commit (the moderator's or
agent's button answer), the notice was stored but never claimed; at the notice's own
``sendMessage``, it was claimed but its outcome never recorded. The re-delivered update
is dropped as a duplicate; the sweep sends what was never claimed, exactly once, and
marks what was being sent as maybe delivered without sending it again.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from bot.outbox import STUCK_ERROR
from tests.support import STAFF_CHAT
from tests.test_ads_flow import mod_card, moderators, post_ad
from tests.test_escalation import UNKNOWN, card, open_ticket, staff_pair
from tests.test_feedback import feedback_card, give_feedback
from tests.test_repair import sweep

OWNER = 6301


class Killed(BaseException):
    """The bot process died here (no handler, no error handler runs after it)."""


def kill_at(desk, method, chat_id=None):
    """The bot dies at the next call of ``method`` (to ``chat_id`` only, if given)."""
    desk.tg.fail_next.append((method, Killed()) if chat_id is None else (method, Killed(), chat_id))


@contextmanager
def killed_after_commit(kind):
    """The bot dies right after the commit of the transaction that queued a notice of
    ``kind``, before anything else happens (no Bot API call in between to kill it at):
    SQLAlchemy's session events, raised from once, then removed."""
    from bot.outbox import Notice

    def flushed(session, flush_context):
        if any(isinstance(item, Notice) and item.kind == kind for item in session.new):
            session.info["kill_after_commit"] = True

    def committed(session):
        if session.info.pop("kill_after_commit", False):
            raise Killed()

    event.listen(Session, "after_flush", flushed)
    event.listen(Session, "after_commit", committed)
    try:
        yield
    finally:
        event.remove(Session, "after_flush", flushed)
        event.remove(Session, "after_commit", committed)


async def notices(desk, chat_id, *, submitted=False):
    """The chat's notices (kind, ref, state, has a message id, error); the seller's "with
    our moderators" only when ``submitted`` (most tests are about what comes after it)."""
    skip = "" if submitted else " AND kind != 'ad_submitted'"
    return [
        tuple(r) for r in await desk.rows(
            f"SELECT kind, ref, state, message_id IS NOT NULL, error FROM notices WHERE chat_id = :c{skip} ORDER BY id", c=chat_id
        )
    ]


def texts(desk, chat_id, needle):
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot and needle in m.text]


async def press_once(desk, person, data, message):
    """A button press as one update (with a fixed id, so that it can be delivered again)."""
    update = {"update_id": next(desk.tg._update_ids), **person.callback_update(data, message)}
    return update, await desk.tg.feed(update)


# ------------------------------------------------------------------ ad decisions


async def test_ad_decision_crash_after_commit_the_sweep_sends_the_notice_once(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    kill_at(desk, "answerCallbackQuery")  # the first call after the decision's commit
    update = {"update_id": next(desk.tg._update_ids), **mo.callback_update(f"m:ok:{ad_id}", mod_card(desk, ad_id))}
    with pytest.raises(Killed):
        await desk.tg.feed(update)
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    assert await notices(desk, OWNER) == [("ad_approved", f"ad:{ad_id}", "pending", False, None)]
    assert texts(desk, OWNER, "🎉 Your ad") == []
    # Telegram delivers the press again after the restart: a duplicate, no second notice
    await desk.tg.feed(update)
    assert await desk.scalar("SELECT count(*) FROM notices WHERE kind = 'ad_approved'") == 1
    await sweep(desk)  # too fresh: the handler may be sending it right now
    assert texts(desk, OWNER, "🎉 Your ad") == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    live = texts(desk, OWNER, f"Your ad #{ad_id} is live")
    assert len(live) == 1
    row = (await desk.rows("SELECT state, message_id, sent_at IS NOT NULL FROM notices WHERE kind = 'ad_approved'"))[0]
    assert tuple(row) == ("sent", live[0].message_id, True)
    desk.clock.advance(minutes=30)
    await sweep(desk)
    await sweep(desk)
    assert len(texts(desk, OWNER, "🎉 Your ad")) == 1


async def test_rejection_with_a_strike_crash_after_commit_both_notices_arrive_once_in_order(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Reject", mod_card(desk, ad_id))
    kill_at(desk, "answerCallbackQuery")
    with pytest.raises(Killed):
        await mo.press("Prohibited item", mod_card(desk, ad_id))
    assert [n[:3] for n in await notices(desk, OWNER)] == [
        ("ad_rejected", f"ad:{ad_id}", "pending"), ("penalty_warn", f"strike:{await desk.scalar('SELECT id FROM strikes')}", "pending"),
    ]
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    mine = [m for m in desk.tg.chat_messages(OWNER) if m.from_bot]
    assert "was not approved" in mine[-2].text and mine[-2].button_texts == ["✏️ Edit and resubmit"]
    assert "⚠️ Warning: this counts as a strike" in mine[-1].text and mine[-1].button_texts == ["📣 Appeal"]
    assert len(texts(desk, OWNER, "was not approved")) == 1 and len(texts(desk, OWNER, "counts as a strike")) == 1
    # the buttons stored as data work: the draft reopens
    await user.press("Edit and resubmit", mine[-2])
    assert "Preview" in desk.tg.last_bot_message(OWNER).text


async def test_ad_notice_that_timed_out_is_recorded_maybe_delivered_and_never_sent_again(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    desk.tg.fail("sendMessage", "timeout", chat_id=OWNER, delivered=True)
    await mo.press("Approve", mod_card(desk, ad_id))
    assert await notices(desk, OWNER) == [("ad_approved", f"ad:{ad_id}", "maybe", False, "the request timed out; it may have arrived")]
    for _ in range(3):
        desk.clock.advance(minutes=20)
        await sweep(desk)
    assert len(texts(desk, OWNER, "🎉 Your ad")) == 1  # it did arrive; never a second time
    assert (await notices(desk, OWNER))[0][2] == "maybe"


async def test_owner_who_blocked_the_bot_is_recorded_failed_and_the_ad_goes_live(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    desk.tg.blocked_by.add(OWNER)
    await mo.press("Approve", mod_card(desk, ad_id))
    [(kind, _, state, has_id, error)] = await notices(desk, OWNER)
    assert (kind, state, has_id) == ("ad_approved", "failed", False) and "blocked" in error
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    assert "✅ Approved by Moderator Mo" in mod_card(desk, ad_id).text
    desk.clock.advance(minutes=20)
    await sweep(desk)
    assert (await notices(desk, OWNER))[0][2] == "failed"  # not retried: it surely did not arrive, and never will


async def test_notice_being_sent_when_the_bot_died_is_marked_maybe_delivered_not_resent(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    sends = len(desk.tg.sent("sendMessage", OWNER))
    kill_at(desk, "sendMessage")  # the notice's own send: claimed, outcome never recorded
    with pytest.raises(Killed):
        await mo.press("Approve", mod_card(desk, ad_id))
    assert (await notices(desk, OWNER))[0][2] == "sending"
    desk.clock.advance(minutes=3)
    await sweep(desk)  # claimed recently: maybe still being sent
    assert (await notices(desk, OWNER))[0][2] == "sending"
    desk.clock.advance(minutes=10)  # telegram.stuck_send_minutes
    await sweep(desk)
    assert await notices(desk, OWNER) == [("ad_approved", f"ad:{ad_id}", "maybe", False, STUCK_ERROR)]
    desk.clock.advance(minutes=20)
    await sweep(desk)
    assert len(desk.tg.sent("sendMessage", OWNER)) == sends + 1  # only the killed try: never sent again
    assert texts(desk, OWNER, "🎉 Your ad") == []


# ------------------------------------------------------------------ tickets


async def test_resolution_crash_after_commit_sends_notice_and_survey_once_and_the_survey_works(desk):
    user = desk.tg.user(5101, "Lerato")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    update = {"update_id": next(desk.tg._update_ids), **thandi.callback_update(f"t:resolve:{number}", card(desk, number))}
    kill_at(desk, "answerCallbackQuery")
    with pytest.raises(Killed):
        await desk.tg.feed(update)
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"
    assert [n[:3] for n in await notices(desk, 5101)] == [
        ("ticket_created", f"ticket:{number}", "sent"), ("ticket_claimed", f"ticket:{number}", "sent"), ("ticket_resolved", f"ticket:{number}", "pending"), ("csat", f"ticket:{number}", "pending"),
    ]
    await desk.tg.feed(update)  # re-delivered: dropped
    assert await desk.scalar("SELECT count(*) FROM notices") == 4
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(texts(desk, 5101, "has been marked as solved")) == 1
    [survey] = [m for m in desk.tg.chat_messages(5101) if m.from_bot and m.button_texts and m.button_texts[0].startswith("⭐")]
    assert await desk.scalar("SELECT survey_message_id FROM ratings") == survey.message_id
    assert [n[2] for n in await notices(desk, 5101)] == ["sent"] * 4
    await user.press("5⭐", survey)
    assert await desk.scalar("SELECT stars FROM ratings") == 5
    # a reply to the repaired "solved" notice still reaches the case (it reopens it)
    solved = texts(desk, 5101, "has been marked as solved")[0]
    await user.send("It happened again", reply_to=solved)
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"


async def test_user_who_blocked_the_bot_gets_failed_notices_the_ticket_records_it_once(desk):
    user = desk.tg.user(5102, "Gone")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    desk.tg.blocked_by.add(5102)
    await thandi.press("Claim", card(desk, number))
    await thandi.press("Resolve", card(desk, number))
    assert await desk.scalar("SELECT status FROM tickets") == "resolved"  # the case goes on
    assert [n[:3] for n in await notices(desk, 5102)] == [
        ("ticket_created", f"ticket:{number}", "sent"), ("ticket_claimed", f"ticket:{number}", "failed"),
        ("ticket_resolved", f"ticket:{number}", "failed"), ("csat", f"ticket:{number}", "failed"),
    ]
    assert all("blocked" in n[4] for n in (await notices(desk, 5102))[1:])
    assert await desk.scalar("SELECT user_blocked_bot FROM tickets") in (1, True)
    told = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and "Not delivered to the user" in m.text]
    assert len(told) == 1  # once per ticket, not once per notice


async def test_notice_refused_for_the_flood_limit_goes_back_to_the_outbox_and_the_sweep_sends_it(desk):
    user = desk.tg.user(5103, "Busi")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    desk.tg.fail("sendMessage", "flood", chat_id=5103, times=10)
    await thandi.press("Claim", card(desk, number))
    [_, (kind, _, state, _, error)] = await notices(desk, 5103)
    assert (kind, state) == ("ticket_claimed", "pending") and "flood" in error
    desk.tg.faults.clear()
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(texts(desk, 5103, "Thandi")) == 1
    assert [n[2] for n in await notices(desk, 5103)] == ["sent", "sent"]


async def test_notice_refused_for_the_flood_limit_keeps_the_next_ones_back_so_they_arrive_in_order(desk):
    """"Solved" refused for the flood limit: the survey queued after it is not sent before
    it; the sweep sends both, in the order they were queued."""
    user = desk.tg.user(5104, "Naledi")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    desk.tg.fail("sendMessage", "flood", chat_id=5104, times=4)  # the first send and its 3 retries
    await thandi.press("Resolve", card(desk, number))
    assert [n[2] for n in await notices(desk, 5104)] == ["sent", "sent", "pending", "pending"]
    desk.clock.advance(minutes=3)
    await sweep(desk)
    mine = [m for m in desk.tg.chat_messages(5104) if m.from_bot]
    assert "has been marked as solved" in mine[-2].text and mine[-1].button_texts[0].startswith("⭐")
    assert [n[2] for n in await notices(desk, 5104)] == ["sent"] * 4


# ------------------------------------------------------------------ feedback answers


async def test_feedback_answer_being_sent_when_the_bot_died_is_maybe_delivered_and_answered_once(desk):
    user = desk.tg.user(7101, "Lerato")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    number = await give_feedback(desk, user)
    kill_at(desk, "sendMessage")
    with pytest.raises(Killed):
        await thandi.send("Search by town is coming.", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    assert await desk.scalar("SELECT answer FROM feedback") == "Search by town is coming."
    assert await notices(desk, 7101) == [
        ("feedback_thanks", f"feedback:{number}", "sent", True, None), ("feedback_answer", f"feedback:{number}", "sending", False, None),
    ]
    desk.clock.advance(minutes=15)
    await sweep(desk)
    assert (await notices(desk, 7101))[1][2:] == ("maybe", False, STUCK_ERROR)
    assert texts(desk, 7101, "Our team answered your feedback") == []


async def test_feedback_answer_is_a_sent_notice_with_its_message_id(desk):
    user = desk.tg.user(7102, "Lerato")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    number = await give_feedback(desk, user)
    await thandi.send("Thanks!", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    answer = desk.tg.last_bot_message(7102)
    assert await notices(desk, 7102) == [
        ("feedback_thanks", f"feedback:{number}", "sent", True, None), ("feedback_answer", f"feedback:{number}", "sent", True, None),
    ]
    assert await desk.scalar("SELECT message_id FROM notices WHERE kind = 'feedback_answer'") == answer.message_id


async def test_feedback_thanks_crash_after_commit_the_sweep_sends_it_once_and_the_rating_works(desk):
    """The thank-you carries the rating buttons: the user's only way to rate. A crash
    after the feedback's commit must not lose it (the message is not delivered again)."""
    user = desk.tg.user(7103, "Lerato")
    await user.send("/feedback")
    update = {"update_id": next(desk.tg._update_ids), "message": user._message(text="Please add a dark mode")}
    with killed_after_commit("feedback_thanks"), pytest.raises(Killed):
        await desk.tg.feed(update)
    number = await desk.scalar("SELECT max(id) FROM feedback")
    assert await notices(desk, 7103) == [("feedback_thanks", f"feedback:{number}", "pending", False, None)]
    assert texts(desk, 7103, "Thank you") == []
    await desk.tg.feed(update)  # Telegram delivers it again after the restart: a duplicate
    assert await desk.scalar("SELECT count(*) FROM feedback") == 1
    await sweep(desk)  # too fresh: the handler may be sending it right now
    assert texts(desk, 7103, "Thank you") == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    [thanks] = texts(desk, 7103, f"Your feedback #{number} is with our team")
    assert thanks.button_texts == ["1⭐", "2⭐", "3⭐", "4⭐", "5⭐", "Skip"]
    assert await notices(desk, 7103) == [("feedback_thanks", f"feedback:{number}", "sent", True, None)]
    assert feedback_card(desk, number).text.startswith(f"✍️ Feedback #{number} ")  # the sweep posts the card too
    await user.press("4⭐", thanks)  # the buttons stored as JSON work
    assert await desk.scalar("SELECT rating FROM feedback") == 4
    assert "You rated the help desk ⭐⭐⭐⭐ (4/5)" in thanks.text  # edited in place
    desk.clock.advance(minutes=30)
    await sweep(desk)
    assert len(texts(desk, 7103, "Thank you")) == 1


async def test_feedback_thanks_arrives_at_once_as_a_sent_notice(desk):
    user = desk.tg.user(7104, "Lerato")
    number = await give_feedback(desk, user)
    thanks = desk.tg.last_bot_message(7104)
    assert f"Your feedback #{number} is with our team" in thanks.text and "5⭐" in thanks.button_texts
    assert await notices(desk, 7104) == [("feedback_thanks", f"feedback:{number}", "sent", True, None)]
    assert await desk.scalar("SELECT message_id FROM notices") == thanks.message_id


# ------------------------------------------------------------------ privacy


async def test_deleteme_erases_the_users_notices(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, ad_id))
    assert await desk.scalar("SELECT count(*) FROM notices WHERE chat_id = :c", c=OWNER) == 2  # "with our moderators" and "live"
    await user.send("/deleteme")
    confirm = desk.tg.last_bot_message(OWNER)
    await user.press(confirm.button_texts[0], confirm)
    assert await desk.scalar("SELECT count(*) FROM notices WHERE chat_id = :c", c=OWNER) == 0


async def test_new_case_crash_after_commit_the_sweep_posts_the_card_and_tells_the_user_once(desk):
    user = desk.tg.user(5104, "Naledi")
    staff_pair(desk)
    await user.send(UNKNOWN)
    if any("Not helpful" in b for b in desk.tg.last_bot_message(5104).button_texts[:2]):
        await user.press("Not helpful")
    await user.press("Talk to a person")
    kill_at(desk, "answerCallbackQuery")  # the category press: the ticket is committed, nothing sent
    with pytest.raises(Killed):
        await user.press("Payments")
    number = await desk.scalar("SELECT max(id) FROM tickets")
    assert [n[:3] for n in await notices(desk, 5104)] == [("ticket_created", f"ticket:{number}", "pending")]
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(texts(desk, 5104, f"Your case #{number}")) == 1
    assert card(desk, number).text.startswith(f"🎫 #{number} ")
    # the case works: a staff reply reaches the user, the user's reply to the notice reaches staff
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    await thandi.send("Looking into it.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert "Looking into it." in desk.tg.last_bot_message(5104).text


# ------------------------------------------------------------------ retention


async def test_finished_notices_are_forgotten_after_30_days_pending_ones_are_kept(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    first = await post_ad(desk, user)
    await press_once(desk, mo, f"m:ok:{first}", mod_card(desk, first))
    assert await notices(desk, OWNER) == [("ad_approved", f"ad:{first}", "sent", True, None)]
    [job] = desk.app.job_queue.get_jobs_by_name("prune_notices")
    await job.run(desk.app)
    assert len(await notices(desk, OWNER)) == 1  # recent: kept
    desk.clock.advance(days=20)
    second = await post_ad(desk, user)
    kill_at(desk, "answerCallbackQuery")  # the second approval's notice stays pending
    with pytest.raises(Killed):
        await press_once(desk, mo, f"m:ok:{second}", mod_card(desk, second))
    desk.clock.advance(days=11)
    await job.run(desk.app)
    # the sent one (31 days old) is gone; the pending one is left for the sweep
    assert await notices(desk, OWNER) == [("ad_approved", f"ad:{second}", "pending", False, None)]
    await sweep(desk)
    assert len(texts(desk, OWNER, f"Your ad #{second} is live")) == 1


# ------------------------------------------------------------------ what the seller hears about their own ad


async def test_submission_crash_after_commit_the_sweep_tells_the_seller_once(desk):
    """Submit is a durable change the seller hears of only by the "with our moderators"
    notice: a crash after the commit must not lose it (a second press is refused as stale)."""
    user = desk.tg.user(OWNER, "Sello")
    moderators(desk)
    await post_ad(desk, user, submit=False)
    ad_id = await desk.scalar("SELECT max(id) FROM ads")
    kill_at(desk, "answerCallbackQuery")  # the Submit press: the ad is submitted, nothing sent yet
    with pytest.raises(Killed):
        update, _ = await press_once(desk, user, "ad:submit", desk.tg.last_bot_message(OWNER))
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    assert await notices(desk, OWNER, submitted=True) == [("ad_submitted", f"ad:{ad_id}", "pending", False, None)]
    assert texts(desk, OWNER, "is with our moderators") == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(texts(desk, OWNER, f"Your ad #{ad_id} is with our moderators")) == 1
    assert await notices(desk, OWNER, submitted=True) == [("ad_submitted", f"ad:{ad_id}", "sent", True, None)]
    assert mod_card(desk, ad_id).text.startswith(f"📋 Ad #{ad_id} ")  # and the moderators got the card


async def test_submission_notice_arrives_at_once_as_a_sent_notice(desk):
    user = desk.tg.user(OWNER, "Sello")
    moderators(desk)
    ad_id = await post_ad(desk, user)
    assert f"Your ad #{ad_id} is with our moderators" in desk.tg.last_bot_message(OWNER).text
    assert await notices(desk, OWNER, submitted=True) == [("ad_submitted", f"ad:{ad_id}", "sent", True, None)]


async def test_marked_sold_crash_after_commit_the_sweep_tells_the_owner_once(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, ad_id))
    await user.send("/myads")
    kill_at(desk, "answerCallbackQuery")
    with pytest.raises(Killed):
        await user.press(f"Sold #{ad_id}")
    assert await desk.scalar("SELECT status FROM ads") == "sold"
    assert (await notices(desk, OWNER))[-1] == ("ad_sold", f"ad:{ad_id}", "pending", False, None)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(texts(desk, OWNER, f"Ad #{ad_id} is marked as sold")) == 1
    assert (await notices(desk, OWNER))[-1][2] == "sent"


# ------------------------------------------------------------------ the pattern alert to the moderators


async def third_rejection_killed(desk, user, mo, reason="Unrealistic price"):
    """Three rejections of the user's ads for the same reason; the bot dies right after
    the third decision's commit."""
    from tests.test_ads_flow import DESCRIPTION
    from tests.test_ads_strikes import reject

    for i in range(3):
        ad_id = await post_ad(desk, user, description=DESCRIPTION + f" Version {i} with different words {'x' * i}.")
        if i < 2:
            await reject(desk, mo, ad_id, reason)
    await mo.press("Reject", mod_card(desk, ad_id))
    kill_at(desk, "answerCallbackQuery")
    with pytest.raises(Killed):
        await mo.press(reason, mod_card(desk, ad_id))
    return ad_id


def pattern_alerts(desk):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith("⚠️ Pattern")]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_pattern_alert_crash_after_commit_the_sweep_posts_it_once(desk, staff_forum):
    user = desk.tg.user(OWNER, "Repeat")
    mo, _ = moderators(desk)
    await third_rejection_killed(desk, user, mo)
    assert pattern_alerts(desk) == []
    [(kind, ref, state)] = [tuple(r) for r in await desk.rows("SELECT kind, ref, state FROM notices WHERE audience = 'moderators'")]
    assert (kind, ref, state) == ("pattern_alert", f"user:{OWNER}", "pending")
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    [alert] = pattern_alerts(desk)
    assert "Repeat (id 6301) has had 3 rejections for “Unrealistic price”" in alert.text
    if staff_forum:
        assert alert.thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    assert await desk.scalar("SELECT state FROM notices WHERE audience = 'moderators'") == "sent"
    assert len(texts(desk, OWNER, "was not approved")) == 3  # the third rejection reached the seller too


async def test_pattern_alert_follows_a_staff_chat_that_moved(desk):
    user = desk.tg.user(OWNER, "Repeat")
    mo, _ = moderators(desk)
    await third_rejection_killed(desk, user, mo)
    new_chat = -1009000000777
    desk.tg.migrate_chat(STAFF_CHAT, new_chat)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    alerts = [m for m in desk.tg.chat_messages(new_chat) if m.from_bot and m.text.startswith("⚠️ Pattern")]
    assert len(alerts) == 1 and pattern_alerts(desk) == []


async def test_erasure_drops_a_pending_pattern_alert_that_names_the_user(desk):
    user = desk.tg.user(OWNER, "Repeat")
    mo, _ = moderators(desk)
    await third_rejection_killed(desk, user, mo)
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    assert await desk.scalar("SELECT count(*) FROM notices WHERE text LIKE '%Repeat%'") == 0
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert pattern_alerts(desk) == []


# ------------------------------------------------------------------ the flood limit for one user


NO_RETRIES = {"telegram": {"max_retries": 0}}  # the 429 reaches the bot at once (no waiting in tests)


def retry_jobs(desk):
    return desk.app.job_queue.get_jobs_by_name("notice_retry")


async def run_retry_jobs(desk):
    for job in retry_jobs(desk):
        job.schedule_removal()
        await job.run(desk.app)


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_flood_for_one_user_in_the_sweep_does_not_hold_back_the_others(desk, settings_overrides):
    mo, _ = moderators(desk)
    people = [desk.tg.user(6401 + i, name) for i, name in enumerate(("Ayanda", "Bongani", "Chipo"))]
    ads = []
    for person in people:  # three approvals, each left unsent by a crash after its commit
        ad_id = await post_ad(desk, person)
        kill_at(desk, "answerCallbackQuery")
        with pytest.raises(Killed):
            await press_once(desk, mo, f"m:ok:{ad_id}", mod_card(desk, ad_id))
        ads.append(ad_id)
    desk.tg.fail("sendMessage", "flood", chat_id=6401, retry_after=30)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    # Bongani and Chipo hear it in this sweep; Ayanda's waits out her retry_after
    assert len(texts(desk, 6402, f"Your ad #{ads[1]} is live")) == 1
    assert len(texts(desk, 6403, f"Your ad #{ads[2]} is live")) == 1
    assert texts(desk, 6401, "🎉") == []
    [(state, error, retry_at)] = await desk.rows("SELECT state, error, retry_at IS NOT NULL FROM notices WHERE chat_id = 6401 AND kind = 'ad_approved'")
    assert (state, retry_at) == ("pending", True) and "flood" in error
    [job] = retry_jobs(desk)
    assert 25 <= (job.next_t - datetime.now(timezone.utc)).total_seconds() <= 31  # Telegram's retry_after, in real time
    desk.clock.advance(seconds=10)  # a sweep before her retry_after does not try again
    await sweep(desk)
    assert texts(desk, 6401, "🎉") == []
    await run_retry_jobs(desk)  # PTB's JobQueue, retry_after seconds later
    assert len(texts(desk, 6401, f"Your ad #{ads[0]} is live")) == 1
    desk.clock.advance(minutes=5)
    await sweep(desk)
    await run_retry_jobs(desk)
    assert [len(texts(desk, p.id, "🎉")) for p in people] == [1, 1, 1]
    assert {r[0] for r in await desk.rows("SELECT state FROM notices WHERE kind = 'ad_approved'")} == {"sent"}


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_flood_for_the_reporter_does_not_hold_back_the_sellers_notices(desk, settings_overrides):
    from tests.test_ads_reports import report_card

    seller = desk.tg.user(9111, "Seller")
    buyer = desk.tg.user(9112, "Buyer")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, ad_id))
    await buyer.send(f"/report {ad_id}")
    await buyer.press("Prohibited item")
    report_id = await desk.scalar("SELECT id FROM ad_reports")
    desk.tg.fail("sendMessage", "flood", chat_id=9112, retry_after=30)
    await mo.press("Uphold", report_card(desk, report_id))
    # the reporter's notice is queued first; the seller's come after it and still go out now
    seller_texts = [m.text for m in desk.tg.chat_messages(9111) if m.from_bot]
    assert any("was taken down by a moderator" in t for t in seller_texts) and any("Warning" in t for t in seller_texts)
    assert texts(desk, 9112, "has been taken down") == []
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'report_outcome'") == "pending"
    await run_retry_jobs(desk)
    assert len(texts(desk, 9112, "has been taken down")) == 1
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'report_outcome'") == "sent"


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_flood_for_the_solved_notice_keeps_the_survey_behind_it_and_the_job_sends_both_in_order(desk, settings_overrides):
    user = desk.tg.user(5105, "Naledi")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    desk.tg.fail("sendMessage", "flood", chat_id=5105, retry_after=30)
    await thandi.press("Resolve", card(desk, number))
    assert [n[2] for n in await notices(desk, 5105)] == ["sent", "sent", "pending", "pending"]
    desk.clock.advance(minutes=3)  # a sweep meanwhile keeps the survey behind the refused "solved" too
    desk.tg.fail("sendMessage", "flood", chat_id=5105, retry_after=30)
    await sweep(desk)
    assert [n[2] for n in await notices(desk, 5105)] == ["sent", "sent", "pending", "pending"]
    await run_retry_jobs(desk)
    mine = [m for m in desk.tg.chat_messages(5105) if m.from_bot]
    assert "has been marked as solved" in mine[-2].text and mine[-1].button_texts[0].startswith("⭐")
    assert [n[2] for n in await notices(desk, 5105)] == ["sent"] * 4


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_flood_for_a_second_user_in_one_sweep_stops_it_the_job_sends_the_rest(desk, settings_overrides):
    """Refused for two different chats in one run: the limit is the bot's, not one chat's;
    the sweep stops (its SLA work goes on) and the job sends the rest after retry_after."""
    mo, _ = moderators(desk)
    people = [desk.tg.user(6411 + i, name) for i, name in enumerate(("Ayanda", "Bongani", "Chipo"))]
    for person in people:
        ad_id = await post_ad(desk, person)
        kill_at(desk, "answerCallbackQuery")
        with pytest.raises(Killed):
            await press_once(desk, mo, f"m:ok:{ad_id}", mod_card(desk, ad_id))
    desk.tg.fail("sendMessage", "flood", retry_after=30, times=2)  # every chat
    desk.clock.advance(minutes=3)
    calls = len(desk.tg.calls)
    await sweep(desk)
    assert len([c for c in desk.tg.calls[calls:] if c.method == "sendMessage"]) == 2  # refused twice; the third not tried
    assert [len(texts(desk, p.id, "🎉")) for p in people] == [0, 0, 0]
    await run_retry_jobs(desk)
    assert [len(texts(desk, p.id, "🎉")) for p in people] == [1, 1, 1]


# ------------------------------------------------------------------ erased users


async def erased(desk, person):
    await person.send("/deleteme")
    await person.press("Yes, erase my data")
    return await desk.scalar("SELECT min(id) FROM users WHERE deleted_at IS NOT NULL AND id < 0")


def sends_to_anonymous_ids(desk):
    return [c for c in desk.tg.calls if c.method == "sendMessage" and int(c.params["chat_id"]) < 0 and int(c.params["chat_id"]) != STAFF_CHAT]


async def test_staff_reopening_an_erased_users_solved_case_queues_and_sends_nothing(desk):
    user = desk.tg.user(5106, "Lerato")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    await thandi.press("Resolve", card(desk, number))
    anonymous = await erased(desk, user)
    assert await desk.scalar("SELECT user_id FROM tickets") == anonymous
    await thandi.send(f"/reopen {number}", chat_id=STAFF_CHAT)
    assert "reopened" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert await desk.scalar("SELECT status FROM tickets") in ("new", "claimed")  # the case reopens; nobody to tell
    assert await desk.scalar("SELECT count(*) FROM notices WHERE chat_id = :a", a=anonymous) == 0
    assert sends_to_anonymous_ids(desk) == [] and desk.tg.errors() == []


async def test_a_stored_notice_to_an_anonymous_id_is_never_sent(desk):
    """A notice row addressed to an anonymous id (stored before the outbox refused them):
    the sweep records it failed without calling Telegram."""
    from datetime import timedelta

    from bot.db import unit_of_work
    from bot.outbox import Notice

    async with unit_of_work(desk.sessions, effect=False) as session:
        session.add(Notice(chat_id=-4242424242, kind="ad_approved", ref="ad:1", text="hello", state="pending",
                           created_at=desk.clock.now - timedelta(minutes=5)))
    await sweep(desk)
    assert tuple((await desk.rows("SELECT state, error FROM notices"))[0]) == ("failed", "an erased user's anonymous id: nobody to tell")
    assert sends_to_anonymous_ids(desk) == [] and desk.tg.errors() == []


# ------------------------------------------------------------------ review: due, races, retry jobs


async def test_a_chat_held_behind_many_notices_does_not_starve_other_chats_due_notices(desk):
    """More unfinished notices held behind one chat's flood refusal than ``due`` used to
    read (``limit * 2`` rows): another chat's notice, due and queued after them, is sent."""
    from datetime import timedelta

    from bot.db import unit_of_work
    from bot.outbox import Notice

    desk.tg.user(6501, "Ayanda")
    desk.tg.user(6502, "Bongani")
    old = desk.clock.now - timedelta(minutes=5)
    async with unit_of_work(desk.sessions, effect=False) as session:
        session.add(Notice(chat_id=6501, kind="ad_approved", ref="ad:1", text="held", state="pending", created_at=old,
                           retry_at=desk.clock.now + timedelta(hours=1)))
        for i in range(250):
            session.add(Notice(chat_id=6501, kind="ad_approved", ref=f"ad:{i + 2}", text="held", state="pending", created_at=old))
        session.add(Notice(chat_id=6502, kind="ad_approved", ref="ad:999", text="due for the other chat", state="pending", created_at=old))
    await sweep(desk)
    assert len(texts(desk, 6502, "due for the other chat")) == 1
    assert texts(desk, 6501, "held") == []


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_retry_job_leaves_a_chat_alone_while_another_sender_has_its_earlier_notice(desk, settings_overrides):
    """The retry job and the sweep race for the same refused notices: the sweep has the
    "solved" notice (claimed, being sent); the job must not send the survey behind it
    first (the survey never before its "solved")."""
    user = desk.tg.user(5107, "Naledi")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    desk.tg.fail("sendMessage", "flood", chat_id=5107, retry_after=30)
    await thandi.press("Resolve", card(desk, number))
    assert [n[2] for n in await notices(desk, 5107)] == ["sent", "sent", "pending", "pending"]
    solved_id = await desk.scalar("SELECT id FROM notices WHERE chat_id = 5107 AND kind = 'ticket_resolved'")
    # another sender (the sweep) claimed "solved" and is sending it right now
    from sqlalchemy import text

    from bot.db import unit_of_work

    async with unit_of_work(desk.sessions, effect=False) as session:
        await session.execute(text("UPDATE notices SET state = 'sending', claimed_at = retry_at WHERE id = :i"), {"i": solved_id})
    await run_retry_jobs(desk)
    assert [n[2] for n in await notices(desk, 5107)] == ["sent", "sent", "sending", "pending"]
    assert [m for m in desk.tg.chat_messages(5107) if m.from_bot and m.button_texts and m.button_texts[0].startswith("⭐")] == []


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_repeated_flood_refusals_in_sweeps_keep_one_retry_job(desk, settings_overrides):
    """Every sweep that meets the bot-wide flood limit used to add one more retry job
    (each holding the rest of the notices): they piled up for as long as the limit lasted."""
    mo, _ = moderators(desk)
    people = [desk.tg.user(6421 + i, name) for i, name in enumerate(("Ayanda", "Bongani", "Chipo", "Dumi"))]
    for person in people:
        ad_id = await post_ad(desk, person)
        kill_at(desk, "answerCallbackQuery")
        with pytest.raises(Killed):
            await press_once(desk, mo, f"m:ok:{ad_id}", mod_card(desk, ad_id))
    desk.clock.advance(minutes=3)
    for _ in range(2):  # two sweeps, each refused for two chats (the bot's own limit)
        desk.tg.fail("sendMessage", "flood", retry_after=30, times=2)
        await sweep(desk)
    assert len(retry_jobs(desk)) == 1
    await run_retry_jobs(desk)
    assert [len(texts(desk, p.id, "🎉")) for p in people] == [1, 1, 1, 1]


async def test_a_notice_taken_for_stuck_while_the_rate_limiter_waited_is_sent_after_its_flood_refusal(desk):
    """The sweep marks a send that outlasts the stuck grace *maybe delivered*; when that send
    ends in a flood refusal after all (surely not delivered), the notice goes back to
    pending and is sent later, not left as 'maybe'."""
    from datetime import timedelta

    from bot import outbox

    now = desk.clock.now
    async with desk.sessions() as session, session.begin():
        queued = await outbox.queue(session, chat_id=5301, kind="test", text="Your ad #1 is live.", now=now)
    async with desk.sessions() as session, session.begin():
        assert await outbox.claim(session, notice_id=queued.id, now=now) is not None
    async with desk.sessions() as session, session.begin():
        stuck = await outbox.give_up_stuck(session, before=now + timedelta(minutes=11))
        assert [n.id for n in stuck] == [queued.id]
    async with desk.sessions() as session, session.begin():
        await outbox.release(session, notice_id=queued.id, error="flood", retry_at=now + timedelta(seconds=30))
    row = (await desk.rows("SELECT state, retry_at IS NOT NULL FROM notices"))[0]
    assert tuple(row) == ("pending", True)
    # a notice marked maybe for a timeout (it may have arrived) is never put back
    async with desk.sessions() as session, session.begin():
        other = await outbox.queue(session, chat_id=5302, kind="test", text="Hello", now=now)
        await session.execute(
            outbox.update(outbox.Notice).where(outbox.Notice.id == other.id).values(state="maybe", error="timed out")
        )
        await outbox.release(session, notice_id=other.id, error="flood", retry_at=now)
    assert await desk.scalar("SELECT state FROM notices WHERE chat_id = 5302") == "maybe"


# ------------------------------------------------------------------ the Bot API out of reach


async def test_notice_that_found_the_bot_api_out_of_reach_is_sent_once_it_is_back(desk):
    """The connection refused (a Bot API server restarting, a network outage): nothing was
    sent, so the notice goes back to the outbox and is sent when the Bot API is back,
    once; a notice recorded failed would have been lost for good."""
    user = desk.tg.user(5111, "Palesa")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    desk.tg.fail("sendMessage", "unreachable", chat_id=5111, times=5)
    await thandi.press("Claim", card(desk, number))
    [_, (kind, _, state, _, error)] = await notices(desk, 5111)
    assert (kind, state) == ("ticket_claimed", "pending") and "out of reach" in error
    assert texts(desk, 5111, "Thandi") == []
    desk.tg.faults.clear()
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(texts(desk, 5111, "Thandi")) == 1
    assert [n[2] for n in await notices(desk, 5111)] == ["sent", "sent"]


async def test_notice_answered_with_a_bad_gateway_may_have_arrived_and_is_not_sent_again(desk):
    user = desk.tg.user(5112, "Kagiso")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    desk.tg.fail("sendMessage", "bad_gateway", chat_id=5112, times=5)
    await thandi.press("Claim", card(desk, number))
    [_, (kind, _, state, _, error)] = await notices(desk, 5112)
    assert (kind, state) == ("ticket_claimed", "maybe") and "Bad Gateway" in error
    desk.tg.faults.clear()
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert texts(desk, 5112, "Thandi") == []
