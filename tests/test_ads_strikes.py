"""Strikes and penalties: warning, posting blocked, banned; appeals; moderator commands."""

from __future__ import annotations

from tests.support import STAFF_CHAT
from tests.test_ads_flow import DESCRIPTION, mod_card, moderators, post_ad


async def reject(desk, mo, ad_id, reason="Prohibited item"):
    await mo.press("Reject", mod_card(desk, ad_id))
    await mo.press(reason, mod_card(desk, ad_id))


async def test_strikes_reach_each_step_and_the_appeal_opens_a_ticket(desk):
    user = desk.tg.user(8001, "Offender", username="offender")
    mo, _ = moderators(desk)
    # 1st strike: a warning
    ad1 = await post_ad(desk, user)
    await reject(desk, mo, ad1)
    assert "⚠️ Warning: this counts as a strike on your account (1 active)" in desk.tg.last_bot_message(8001).text
    assert await desk.scalar("SELECT status FROM users WHERE id = 8001") == "warned"
    # a rejection that is not a strike (wrong category) changes nothing
    ad2 = await post_ad(desk, user, description=DESCRIPTION + " Second one.")
    await reject(desk, mo, ad2, "Wrong category")
    assert await desk.scalar("SELECT count(*) FROM strikes") == 1
    # 2nd strike: posting blocked for 7 days
    ad3 = await post_ad(desk, user, description=DESCRIPTION + " Third one, different.")
    await reject(desk, mo, ad3, "Duplicate ad")
    assert "You can't post ads until" in desk.tg.last_bot_message(8001).text
    assert await desk.scalar("SELECT status FROM users WHERE id = 8001") == "blocked"
    await user.send("/newad")
    blocked = desk.tg.last_bot_message(8001)
    assert "You can't post ads until" in blocked.text and "Appeal" in blocked.button_texts[0]
    await user.send("is it safe to meet a buyer")  # questions still work while blocked
    assert desk.tg.last_bot_message(8001).text.startswith("How do I meet")
    # 3rd strike (given by hand): banned; the bot answers only with the appeal
    await mo.send("/warn @offender abusive messages to buyers", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT status FROM users WHERE id = 8001") == "banned"
    await user.send("is it safe to meet a buyer")
    notice = desk.tg.last_bot_message(8001)
    assert "Your account is banned" in notice.text and notice.button_texts == ["📣 Appeal"]
    await user.press("Appeal", notice)
    assert "Please describe the problem" in desk.tg.last_bot_message(8001).text
    await user.send("I sold a kitchen knife set, not a weapon. Please check again.")
    ticket = (await desk.rows("SELECT category, status, subject FROM tickets"))[0]
    assert tuple(ticket[:2]) == ("appeal", "new") and "kitchen knife" in ticket[2]
    assert any(m.text.startswith("🎫 #") and "Appeal against a penalty" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))
    # staff answer the appeal and the banned user can talk to them
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    card = next(m for m in desk.tg.chat_messages(STAFF_CHAT) if m.text.startswith("🎫 #"))
    await thandi.send("We are reviewing your ads.", chat_id=STAFF_CHAT, reply_to=card)
    assert "We are reviewing your ads." in desk.tg.last_bot_message(8001).text
    await user.send("Thank you")
    assert "Thank you" in [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-1].text
    # the moderator lifts the ban and pardons a strike
    await mo.send("/strikes @offender", chat_id=STAFF_CHAT)
    ledger = desk.tg.last_bot_message(STAFF_CHAT).text
    assert "Strikes of Offender" in ledger and "status banned" in ledger and ledger.count("✅") == 3
    first_strike = await desk.scalar("SELECT min(id) FROM strikes")
    await mo.send(f"/pardon {first_strike}", chat_id=STAFF_CHAT)
    assert "pardoned; 2 active, block" in desk.tg.last_bot_message(STAFF_CHAT).text
    await mo.send("/unban @offender", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT status FROM users WHERE id = 8001") == "active"
    await user.send("/newad")  # posting again; (messages still go to the open appeal case)
    assert desk.tg.last_bot_message(8001).text.startswith("📝 New ad, step 1 of 7")


async def test_ban_button_needs_confirmation(desk):
    user = desk.tg.user(8002, "Scammer")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Ban user", mod_card(desk, ad_id))
    assert await desk.scalar("SELECT status FROM users WHERE id = 8002") == "active"
    await mo.press("Yes, ban this user", mod_card(desk, ad_id))
    assert await desk.scalar("SELECT status FROM users WHERE id = 8002") == "banned"
    assert await desk.scalar("SELECT status FROM ads") == "rejected"
    assert "⛔ User banned by Moderator Mo" in mod_card(desk, ad_id).text
    assert "Your account is banned" in desk.tg.last_bot_message(8002).text


async def test_strikes_expire(desk):
    user = desk.tg.user(8003, "Reformed")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await reject(desk, mo, ad_id)
    desk.clock.advance(days=91)
    ad2 = await post_ad(desk, user, description=DESCRIPTION + " A new car.")
    await reject(desk, mo, ad2)
    assert "(1 active)" in desk.tg.last_bot_message(8003).text  # the old strike expired


async def test_pattern_alert_on_repeated_rejections_for_the_same_reason(desk):
    user = desk.tg.user(8004, "Repeat")
    mo, _ = moderators(desk)
    for i in range(3):
        ad_id = await post_ad(desk, user, description=DESCRIPTION + f" Version {i} with different words {'x' * i}.")
        await reject(desk, mo, ad_id, "Unrealistic price")
    alerts = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.text.startswith("⚠️ Pattern")]
    assert len(alerts) == 1 and "3 rejections for “Unrealistic price”" in alerts[0].text


async def test_pattern_alert_counts_each_rejection_of_the_same_ad(desk):
    """One ad rejected, "fixed", resubmitted and rejected again for the same reason: every
    rejection counts (ad_events), not just the ad's latest decision (the ads table)."""
    user = desk.tg.user(8007, "Stubborn")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    for round_ in range(3):
        if round_:
            await user.press("Edit and resubmit", desk.tg.last_bot_message(8007))
            assert "the price" in desk.tg.last_bot_message(8007).text
            await user.send(f"R {90 + round_} 000")
            await user.press("Submit")
            assert await desk.scalar("SELECT status FROM ads") == "submitted"
        await reject(desk, mo, ad_id, "Unrealistic price")
        alerts = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.text.startswith("⚠️ Pattern")]
        assert len(alerts) == (1 if round_ == 2 else 0), round_
    assert await desk.scalar("SELECT count(*) FROM ads") == 1
    assert "has had 3 rejections for “Unrealistic price” in the last 7 days" in alerts[0].text
    # a week later the old rejections no longer make a pattern
    desk.clock.advance(days=8)
    await user.press("Edit and resubmit", desk.tg.last_bot_message(8007))
    await user.send("R 99 000")
    await user.press("Submit")
    await reject(desk, mo, ad_id, "Unrealistic price")
    assert len([m for m in desk.tg.chat_messages(STAFF_CHAT) if m.text.startswith("⚠️ Pattern")]) == 1


async def test_moderator_commands_are_for_moderators(desk):
    desk.tg.user(8005, "Target", username="target_user")
    agent = desk.tg.staff(810009, "Agent", STAFF_CHAT)
    await agent.send("/warn @target_user spam", chat_id=STAFF_CHAT)
    assert "Only moderators can do that" in desk.tg.last_bot_message(STAFF_CHAT).text
    mo, _ = moderators(desk)
    await mo.send("/strikes @nobody", chat_id=STAFF_CHAT)
    assert "I don't know the user @nobody" in desk.tg.last_bot_message(STAFF_CHAT).text
    await mo.send("/pardon 99", chat_id=STAFF_CHAT)
    assert "No active strike #99" in desk.tg.last_bot_message(STAFF_CHAT).text


async def test_a_blocked_user_cannot_submit_a_waiting_draft_or_edit(desk):
    user = desk.tg.user(8006, "Sneaky", username="sneaky")
    mo, _ = moderators(desk)
    live = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, live))
    await post_ad(desk, user, description=DESCRIPTION + " The second car.", submit=False)  # waits at the preview
    await mo.send("/warn @sneaky spam", chat_id=STAFF_CHAT)
    await mo.send("/warn @sneaky spam again", chat_id=STAFF_CHAT)
    await user.press("Submit")
    assert "You can't post ads until" in desk.tg.last_bot_message(8006).text
    await user.send("/myads")
    await user.press(f"Edit #{live}")
    assert "You can't post ads until" in desk.tg.last_bot_message(8006).text
    statuses = dict(await desk.rows("SELECT id, status FROM ads"))
    assert statuses[live] == "approved" and sorted(statuses.values()) == ["approved", "draft"]


async def test_strikes_reach_an_erased_sellers_anonymous_id(desk):
    """An erased person's strikes stay with their anonymous id (negative, often 19 digits):
    moderators can still look them up by that id."""
    user = desk.tg.user(8011, "Gone")
    mo, _ = moderators(desk)
    await user.send("/start")
    await mo.send("/warn 8011 spam in titles", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT count(*) FROM strikes WHERE user_id = 8011") == 1
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    anonymous = await desk.scalar("SELECT min(id) FROM users WHERE deleted_at IS NOT NULL AND id < 0")
    assert anonymous is not None and await desk.scalar("SELECT count(*) FROM strikes WHERE user_id = :a", a=anonymous) == 1
    await mo.send(f"/strikes {anonymous}", chat_id=STAFF_CHAT)
    ledger = desk.tg.last_bot_message(STAFF_CHAT).text
    assert "Strikes of" in ledger and "spam in titles" in ledger
    # a number beyond 64 bits is nobody, not an error
    await mo.send("/strikes -99999999999999999999", chat_id=STAFF_CHAT)
    assert desk.tg.errors() == [] and "Strikes of" not in desk.tg.last_bot_message(STAFF_CHAT).text
