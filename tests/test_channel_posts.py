"""The ads channel: a crash or a refusal at any point loses no post and posts none twice.

An approved ad is claimed before it is posted (photo, then text, each recorded); a
refusal releases the claim for the sweep, a timeout leaves it claimed (it may have
arrived). An ad leaving the approved state keeps its post ids until the post is deleted
after the commit; what a crash or a refusal leaves, the sweep removes. The bot is
"killed" as in tests/test_notices.py: an exception no handler catches, at the first
Bot API call after the decision's commit.
"""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import mod_card, moderators, post_ad
from tests.test_notices import Killed, kill_at, killed_after_commit
from tests.test_repair import sweep

CHANNEL = -1003000000003
OWNER = 6401

pytestmark = [
    pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]]),
    pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}]),
]


def posts(desk, kind=None):
    """What the bot posted in the channel and is still there."""
    return [m for m in desk.tg.chat_messages(CHANNEL) if m.from_bot and not m.deleted and (kind is None or m.kind == kind)]


def sends(desk, method):
    return [c for c in desk.tg.calls if c.method == method and int(c.params.get("chat_id") or 0) == CHANNEL]


async def post_row(desk):
    return tuple(await desk.rows("SELECT published_chat_id, published_message_id, published_photo_id, publish_claimed_at IS NOT NULL, status FROM ads"))[0]


async def approved(desk, user, mo):
    ad_id = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, ad_id))
    return ad_id


async def test_approval_crash_after_commit_the_sweep_posts_the_ad_exactly_once(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    kill_at(desk, "answerCallbackQuery")  # the first call after the approval's commit
    with pytest.raises(Killed):
        await mo.press("Approve", mod_card(desk, ad_id))
    assert await desk.scalar("SELECT status FROM ads") == "approved" and posts(desk) == []
    await sweep(desk)  # too fresh: the handler may be posting it right now
    assert posts(desk) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert [m.kind for m in posts(desk)] == ["photo", "text"] and "VW Polo" in posts(desk, "text")[0].text
    text, photo = posts(desk, "text")[0], posts(desk, "photo")[0]
    assert tuple(await post_row(desk)) == (CHANNEL, text.message_id, photo.message_id, True, "approved")
    for _ in range(3):
        desk.clock.advance(minutes=10)
        await sweep(desk)
    assert len(sends(desk, "sendMessage")) == 1 and len(sends(desk, "sendPhoto")) == 1


async def test_refused_post_is_retried_by_a_later_sweep_and_staff_are_told_once(desk, caplog):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    desk.tg.fail("sendPhoto", "not_admin", chat_id=CHANNEL, times=3)
    ad_id = await approved(desk, user, mo)
    assert posts(desk) == [] and tuple(await post_row(desk)) == (None, None, None, False, "approved")
    told = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and "refuses the bot's posts" in m.text]
    assert len(told) == 1 and f"ad #{ad_id}" in told[0].text and "not a member" in told[0].text
    await sweep(desk)  # within the grace: not tried
    assert len(sends(desk, "sendPhoto")) == 1
    for _ in range(2):  # still refused: one try per sweep, staff not told again
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(sends(desk, "sendPhoto")) == 3 and posts(desk) == []
    assert len([m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and "refuses the bot's posts" in m.text]) == 1
    warned = [r for r in caplog.records if "refused ad" in r.getMessage() and r.levelname == "WARNING"]
    assert len(warned) == 1  # the 2nd and 3rd refusals in a row are quiet
    assert await desk.scalar("SELECT channel_failures FROM ads") == 3
    desk.clock.advance(minutes=3)
    await sweep(desk)  # the channel accepts again
    assert [m.kind for m in posts(desk)] == ["photo", "text"]
    assert await desk.scalar("SELECT channel_failures FROM ads") == 0
    assert await desk.scalar("SELECT count(*) FROM app_state WHERE key = 'ads_channel_refused'") == 0
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(posts(desk)) == 2


def refusal_alerts(desk):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and "refuses the bot's posts" in m.text]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_channel_refusal_crash_after_commit_the_sweep_tells_the_moderators_once(desk, staff_forum):
    """"The channel refuses posts" is said once: its flag is committed with the refusal.
    A crash right after that commit must not lose the alert (the flag would keep it
    from ever being said): it is queued with the flag, and the sweep posts it, once."""
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    desk.tg.fail("sendPhoto", "not_admin", chat_id=CHANNEL, times=4)
    ad_id = await post_ad(desk, user)
    with killed_after_commit("channel_refused"), pytest.raises(Killed):
        await mo.press("Approve", mod_card(desk, ad_id))
    assert await desk.scalar("SELECT count(*) FROM app_state WHERE key = 'ads_channel_refused'") == 1
    assert refusal_alerts(desk) == []
    alert = "SELECT kind, ref, state FROM notices WHERE audience = 'moderators'"
    assert [tuple(r) for r in await desk.rows(alert)] == [("channel_refused", f"ad:{ad_id}", "pending")]
    await sweep(desk)  # too fresh: the handler may be sending it right now
    assert refusal_alerts(desk) == []
    for _ in range(3):  # the channel still refuses: tried again, the moderators are not told twice
        desk.clock.advance(minutes=3)
        await sweep(desk)
    [told] = refusal_alerts(desk)
    assert f"ad #{ad_id}" in told.text and "not a member" in told.text
    if staff_forum:
        assert told.thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    assert [tuple(r) for r in await desk.rows(alert)] == [("channel_refused", f"ad:{ad_id}", "sent")]
    assert len(sends(desk, "sendPhoto")) == 4 and posts(desk) == []


async def test_text_refused_after_the_photo_the_retry_does_not_post_the_photo_again(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    desk.tg.fail("sendMessage", "not_admin", chat_id=CHANNEL)
    await approved(desk, user, mo)
    assert [m.kind for m in posts(desk)] == ["photo"]
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert [m.kind for m in posts(desk)] == ["photo", "text"] and len(sends(desk, "sendPhoto")) == 1


async def test_timed_out_post_is_never_posted_again(desk, caplog):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=CHANNEL, delivered=True)
    await approved(desk, user, mo)
    assert any("timed out" in r.getMessage() and "never posted again" in r.getMessage() for r in caplog.records)
    for _ in range(3):
        desk.clock.advance(minutes=20)
        await sweep(desk)
    assert [m.kind for m in posts(desk)] == ["photo", "text"]  # it did arrive; never a second time
    assert len(sends(desk, "sendMessage")) == 1
    assert (await post_row(desk))[1:4] == (None, posts(desk, "photo")[0].message_id, True)  # left claimed


async def test_sold_crash_after_commit_the_sweep_deletes_the_post_and_clears_the_ids(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    assert len(posts(desk)) == 2
    await user.send("/myads")
    kill_at(desk, "answerCallbackQuery")
    with pytest.raises(Killed):
        await user.press(f"Sold #{ad_id}")
    assert await desk.scalar("SELECT status FROM ads") == "sold" and len(posts(desk)) == 2
    assert (await post_row(desk))[1] is not None  # the post to remove is still known
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert posts(desk) == []  # the text and its photo
    assert tuple(await post_row(desk)) == (None, None, None, False, "sold")
    await sweep(desk)
    assert len(sends(desk, "deleteMessage")) == 2


async def test_take_down_refused_delete_is_retried_by_the_sweep(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    desk.tg.fail("deleteMessage", "not_admin", chat_id=CHANNEL, times=2)
    await user.send("/myads")
    await user.press(f"Delete #{ad_id}")
    assert await desk.scalar("SELECT status FROM ads") == "deleted" and len(posts(desk)) == 2
    assert await desk.scalar("SELECT channel_failures FROM ads") == 1
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert posts(desk) == [] and tuple(await post_row(desk)) == (None, None, None, False, "deleted")


async def test_post_already_gone_counts_as_removed(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    for m in posts(desk):  # someone deleted the post in the channel by hand
        desk.tg.messages[(CHANNEL, m.message_id)].deleted = True
    await user.send("/myads")
    await user.press(f"Sold #{ad_id}")
    assert tuple(await post_row(desk)) == (None, None, None, False, "sold")
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(sends(desk, "deleteMessage")) == 2  # not tried again


def live(desk):
    """The channel's posts that still show an ad (not withdrawn)."""
    return [m for m in posts(desk) if "no longer available" not in m.text]


async def test_renewal_of_an_expired_ad_posts_it_again_once(desk):
    """Telegram lets a bot delete a message only within 48 hours: the post of an ad that
    expires after 30 days is edited to "no longer available" (no Report button) instead,
    and renewing the ad posts it afresh, once."""
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    first = [m.message_id for m in posts(desk)]
    job = desk.app.job_queue.get_jobs_by_name("ad_expiry")[0]
    desk.clock.advance(days=31)
    await job.run(desk.app)
    assert await desk.scalar("SELECT status FROM ads") == "expired" and live(desk) == []
    withdrawn = posts(desk)
    assert [m.message_id for m in withdrawn] == first  # too old to delete: edited instead
    assert all(m.text == f"🚫 Ad #{ad_id} is no longer available." and not m.buttons for m in withdrawn)
    assert tuple(await post_row(desk)) == (None, None, None, False, "expired")
    expired = desk.tg.last_bot_message(OWNER)
    await user.press("Renew", expired)
    assert [m.kind for m in live(desk)] == ["photo", "text"]
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(live(desk)) == 2 and len(sends(desk, "deleteMessage")) == 2  # nothing retried
    assert [c.method for c in desk.tg.errors()] == ["deleteMessage", "deleteMessage"]  # the two too old to delete


async def test_a_post_whose_withdrawal_edit_is_refused_is_retried_by_the_sweep(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    desk.clock.advance(days=3)  # too old to delete
    desk.tg.fail("editMessageText", "not_admin", chat_id=CHANNEL, times=1)
    await user.send("/myads")
    await user.press(f"Sold #{ad_id}")
    assert await desk.scalar("SELECT status FROM ads") == "sold"
    assert (await post_row(desk))[1] is not None  # the text's edit was refused: kept for the sweep
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert live(desk) == [] and tuple(await post_row(desk))[:3] == (None, None, None)


async def test_post_being_sent_when_the_bot_died_is_marked_uncertain_never_posted_again(desk, caplog):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    kill_at(desk, "sendPhoto")  # claimed, then the bot died while posting
    with pytest.raises(Killed):
        await mo.press("Approve", mod_card(desk, ad_id))
    desk.clock.advance(minutes=3)
    await sweep(desk)  # claimed: not posted by the sweep
    assert posts(desk) == []
    desk.clock.advance(hours=2)
    await sweep(desk)
    await sweep(desk)
    stuck = [r for r in caplog.records if "was being posted to the channel when the bot stopped" in r.getMessage()]
    assert len(stuck) == 1 and posts(desk) == []
    assert await desk.scalar("SELECT publish_uncertain FROM ads") in (True, 1)
    # taken back to edit and approved again: a fresh post
    await user.send("/myads")
    await user.press(f"Edit #{ad_id}")
    await user.press("Submit")
    await mo.press("Approve", mod_card(desk, ad_id))
    assert [m.kind for m in posts(desk)] == ["photo", "text"]


async def test_erasure_keeps_a_post_to_remove_until_the_sweep_deletes_it(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    desk.tg.fail("deleteMessage", "not_admin", chat_id=CHANNEL, times=4)
    await user.send("/myads")
    await user.press(f"Edit #{ad_id}")  # back to a draft: the post is to remove, but Telegram refuses
    assert await desk.scalar("SELECT status FROM ads") == "draft" and len(posts(desk)) == 2
    await user.send("/deleteme")
    await user.press("Yes, erase my data")  # refused again
    # the draft with a post still in the channel is kept (anonymous, deleted) until it is off
    assert tuple(await desk.rows("SELECT status, title, user_id < 0 FROM ads"))[0] == ("deleted", "", True)
    assert len(posts(desk)) == 2
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert posts(desk) == [] and (await post_row(desk))[:3] == (None, None, None)


async def test_approved_afresh_while_the_old_post_is_still_there_the_old_goes_first_then_the_new_once(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    old = [m.message_id for m in posts(desk)]
    desk.tg.fail("deleteMessage", "not_admin", chat_id=CHANNEL, times=4)
    await user.send("/myads")
    await user.press(f"Edit #{ad_id}")  # the old post's removal is refused
    await user.press("Edit a field")
    await user.press("Price")
    await user.send("R 80 000")
    await user.press("Submit")
    await mo.press("Approve", mod_card(desk, ad_id))  # refused again: the new post waits for the old one to go
    assert [m.message_id for m in posts(desk)] == old
    desk.clock.advance(minutes=3)
    await sweep(desk)
    live = posts(desk)
    assert [m.kind for m in live] == ["photo", "text"] and not set(old) & {m.message_id for m in live}
    assert "R 80 000" in live[1].text
    assert tuple(await post_row(desk)) == (CHANNEL, live[1].message_id, live[0].message_id, True, "approved")
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(posts(desk)) == 2


async def test_approved_afresh_the_old_post_is_replaced_at_once_when_telegram_allows(desk):
    user = desk.tg.user(OWNER, "Sello")
    mo, _ = moderators(desk)
    ad_id = await approved(desk, user, mo)
    old = [m.message_id for m in posts(desk)]
    desk.tg.fail("deleteMessage", "not_admin", chat_id=CHANNEL, times=2)
    await user.send("/myads")
    await user.press(f"Edit #{ad_id}")
    await user.press("Submit")
    await mo.press("Approve", mod_card(desk, ad_id))
    live = posts(desk)
    assert [m.kind for m in live] == ["photo", "text"] and not set(old) & {m.message_id for m in live}



async def test_one_ad_the_channel_keeps_refusing_does_not_keep_the_others_out(desk):
    """While the channel refuses, the sweep probes one ad per sweep: the one refused
    least often goes first, so an ad refused for good (say its photo) does not keep every
    other approved ad out of the channel forever."""
    mo, _ = moderators(desk)
    desk.tg.fail("sendPhoto", "not_admin", chat_id=CHANNEL, times=100)
    first = await approved(desk, desk.tg.user(OWNER, "Sello"), mo)
    second = await approved(desk, desk.tg.user(OWNER + 1, "Thandi"), mo)
    photo = {
        ad_id: await desk.scalar("SELECT file_id FROM ad_photos WHERE ad_id = :a AND position = 0", a=ad_id)
        for ad_id in (first, second)
    }
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    tried = [c.params.get("photo") for c in sends(desk, "sendPhoto")]
    assert tried.count(photo[first]) == 3 and tried.count(photo[second]) == 2  # approval, then taking turns
