"""After approval: /myads, sold, delete, edit (back through moderation), expiry and renewal."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import DESCRIPTION, mod_card, moderators, post_ad

CHANNEL = -1003000000003


async def approved_ad(desk, user, mo, **kw):
    ad_id = await post_ad(desk, user, **kw)
    await mo.press("Approve", mod_card(desk, ad_id))
    return ad_id


async def test_myads_sold_and_delete(desk):
    user = desk.tg.user(9001, "Owner")
    mo, _ = moderators(desk)
    first = await approved_ad(desk, user, mo)
    second = await approved_ad(desk, user, mo, description=DESCRIPTION + " Another one, silver.")
    await user.send("/myads")
    listing = desk.tg.last_bot_message(9001)
    assert f"#{first} VW Polo 1.2 TSI 2015: live" in listing.text and f"#{second}" in listing.text
    await user.press(f"Sold #{first}", listing)
    assert f"Ad #{first} is marked as sold" in desk.tg.last_bot_message(9001).text
    await user.send("🗂 My ads")
    await user.press(f"Delete #{second}")
    statuses = dict(await desk.rows("SELECT id, status FROM ads"))
    assert statuses == {first: "sold", second: "deleted"}
    # someone else's button does nothing
    other = desk.tg.user(9002, "Stranger")
    await other.press_data(f"my:delete:{first}", listing)
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=first) == "sold"


@pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]])
@pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}])
async def test_editing_a_live_ad_goes_back_through_moderation(desk):
    user = desk.tg.user(9003, "Editor")
    mo, _ = moderators(desk)
    ad_id = await approved_ad(desk, user, mo)
    post = [m for m in desk.tg.chat_messages(CHANNEL) if m.kind == "text"][-1]
    await user.send("/myads")
    await user.press(f"Edit #{ad_id}")
    assert desk.tg.last_bot_message(9003).text.startswith("👀 Preview")
    assert desk.tg.messages[(CHANNEL, post.message_id)].deleted  # off the channel while edited
    await user.press("Edit a field")
    await user.press("Price")
    await user.send("R 80 000")
    await user.press("Submit")
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    await mo.press("Approve", mod_card(desk, ad_id))
    assert "R 80 000" in [m for m in desk.tg.chat_messages(CHANNEL) if m.kind == "text" and not m.deleted][-1].text


async def test_expiry_reminder_then_expiry_then_renewal(desk):
    user = desk.tg.user(9004, "Forgetful seller")
    mo, _ = moderators(desk)
    ad_id = await approved_ad(desk, user, mo)
    job = desk.app.job_queue.get_jobs_by_name("ad_expiry")[0]
    desk.clock.advance(days=26)
    await job.run(desk.app)
    assert not [m for m in desk.tg.chat_messages(9004) if "expires on" in m.text]
    desk.clock.advance(days=1, hours=1)  # 3 days before expiry
    await job.run(desk.app)
    await job.run(desk.app)
    reminders = [m for m in desk.tg.chat_messages(9004) if "expires on" in m.text]
    assert len(reminders) == 1 and reminders[0].button_texts == ["🔁 Renew"]
    desk.clock.advance(days=3)
    await job.run(desk.app)
    assert await desk.scalar("SELECT status FROM ads") == "expired"
    expired = desk.tg.last_bot_message(9004)
    assert "has expired" in expired.text
    await user.press("Renew", expired)
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    assert f"Ad #{ad_id} is renewed until" in desk.tg.last_bot_message(9004).text
    # the renewal counts from now: the next reminder comes 27 days later, not at once
    await job.run(desk.app)
    assert len([m for m in desk.tg.chat_messages(9004) if "expires on" in m.text]) == 1


async def test_modqueue_lists_pending_ads_oldest_first(desk):
    mo, _ = moderators(desk)
    a = desk.tg.user(9005, "First")
    b = desk.tg.user(9006, "Second")
    first = await post_ad(desk, a, description=DESCRIPTION + " Call 082 123 4567.")
    desk.clock.advance(minutes=45)
    second = await post_ad(desk, b, description=DESCRIPTION + " Blue, very clean.")
    await mo.send("/modqueue", chat_id=STAFF_CHAT)
    text = desk.tg.last_bot_message(STAFF_CHAT).text
    assert text.index(f"#{first}") < text.index(f"#{second}")
    assert "waiting 45 min · ⚠️ phone_number" in text
