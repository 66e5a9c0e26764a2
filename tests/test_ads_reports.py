"""Reports of published ads, disputes between buyers and sellers, auto-approval spot checks."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import DESCRIPTION, mod_card, moderators, post_ad

CHANNEL = -1003000000003


def report_card(desk, report_id):
    return next(m for m in reversed(desk.tg.chat_messages(STAFF_CHAT)) if m.text.startswith(f"🚩 Report #{report_id} "))


@pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]])
@pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}])
async def test_report_from_the_channel_link_upheld(desk):
    seller = desk.tg.user(9101, "Seller")
    buyer = desk.tg.user(9102, "Buyer")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, ad_id))
    post = [m for m in desk.tg.chat_messages(CHANNEL) if m.kind == "text"][-1]
    link = post.button("Report this ad")["url"]
    assert link == f"https://t.me/saypro_helpdesk_bot?start=report-{ad_id}"
    await buyer.send(f"/start report-{ad_id}")  # what Telegram sends when the link is opened
    assert f"What is wrong with ad #{ad_id}" in desk.tg.last_bot_message(9102).text
    await buyer.press("Prohibited item")
    assert "A moderator will look at ad" in desk.tg.last_bot_message(9102).text
    report_id = await desk.scalar("SELECT id FROM ad_reports")
    card = report_card(desk, report_id)
    assert "reported by Buyer" in card.text and "Prohibited item" in card.text
    await mo.press("Uphold", card)
    assert await desk.scalar("SELECT status FROM ads") == "taken_down"
    assert desk.tg.messages[(CHANNEL, post.message_id)].deleted
    assert "has been taken down" in desk.tg.last_bot_message(9102).text
    seller_texts = [m.text for m in desk.tg.chat_messages(9101) if m.from_bot]
    assert any("was taken down by a moderator" in t for t in seller_texts)
    assert any("Warning" in t for t in seller_texts)  # an upheld report counts against the poster
    assert await desk.scalar("SELECT count(*) FROM strikes WHERE user_id = 9101") == 1
    await mo.press_data(f"rep:up:{report_id}", card)  # a second decision is refused
    assert await desk.scalar("SELECT count(*) FROM strikes") == 1


async def test_report_dismissed_and_reporting_rules(desk):
    seller = desk.tg.user(9103, "Honest seller")
    buyer = desk.tg.user(9104, "Suspicious buyer")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, seller)
    await buyer.send(f"/report {ad_id}")
    assert "can't find a live ad" in desk.tg.last_bot_message(9104).text  # not approved yet
    await mo.press("Approve", mod_card(desk, ad_id))
    await seller.send(f"/report {ad_id}")
    await seller.press("Offensive")
    assert desk.tg.events[-1].text.startswith("This button belongs")  # not one's own ad
    await buyer.send(f"/report #{ad_id}")
    await buyer.press("Wrong category")
    await buyer.send(f"/report {ad_id}")
    await buyer.press("Wrong category")  # the same report again: one open report
    assert await desk.scalar("SELECT count(*) FROM ad_reports") == 1
    await mo.press("Dismiss", report_card(desk, await desk.scalar("SELECT id FROM ad_reports")))
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    assert "found no breach" in desk.tg.last_bot_message(9104).text
    await buyer.send("/report abc")
    assert "can't find a live ad" in desk.tg.last_bot_message(9104).text


async def test_scam_report_opens_a_dispute_ticket(desk):
    seller = desk.tg.user(9105, "Fraudster")
    buyer = desk.tg.user(9106, "Victim")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, ad_id))
    await buyer.send(f"/report {ad_id}")
    await buyer.press("Scam or fraud")
    thanks = desk.tg.last_bot_message(9106)
    assert "open a dispute case" in thanks.text
    await buyer.press("open a dispute case", thanks)
    ticket = (await desk.rows("SELECT category, status, subject, user_id FROM tickets"))[0]
    assert ticket[0] == "dispute" and ticket[1] == "new" and f"ad #{ad_id}" in ticket[2] and "id 9105" in ticket[2]
    assert "is with our support team" in desk.tg.last_bot_message(9106).text
    assert any(m.text.startswith("🎫 #") and "Dispute with a buyer or seller" in m.text for m in desk.tg.chat_messages(STAFF_CHAT))


@pytest.mark.parametrize("settings_overrides", [{"ads": {"auto_approve_trusted": True, "trusted_min_approved": 2}}])
async def test_trusted_users_are_auto_approved_with_a_take_down_button(desk):
    user = desk.tg.user(9107, "Regular")
    mo, _ = moderators(desk)
    for i in range(2):
        ad_id = await post_ad(desk, user, description=DESCRIPTION + f" Car number {i}, {'blue' if i else 'red'}.")
        await mo.press("Approve", mod_card(desk, ad_id))
    ad_id = await post_ad(desk, user, description="Well kept Toyota Corolla 2018, 60 000 km, one owner, service book.")
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "approved"
    assert f"Your ad #{ad_id} is live" in desk.tg.last_bot_message(9107).text
    card = mod_card(desk, ad_id)
    assert "🤖 auto-approved" in card.text and card.button_texts == ["🚫 Take down"]
    # a flagged ad of a trusted user still waits for a moderator
    flagged = await post_ad(desk, user, description="Nissan Almera 2016, 90 000 km. Call 082 123 4567.")
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=flagged) == "submitted"
    await mo.press("Take down", card)
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "taken_down"
    assert "was taken down" in [m.text for m in desk.tg.chat_messages(9107) if m.from_bot][-1]


async def test_cancelling_an_edit_keeps_the_ad_and_its_reports(desk):
    seller = desk.tg.user(9108, "Evader")
    buyer = desk.tg.user(9109, "Watcher")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, ad_id))
    await buyer.send(f"/report {ad_id}")
    await buyer.press("Prohibited item")
    await seller.send("/myads")
    await seller.press(f"Edit #{ad_id}")
    await seller.send("/cancel")
    assert await desk.scalar("SELECT status FROM ads") == "deleted"  # withdrawn, not erased
    assert await desk.scalar("SELECT count(*) FROM ad_reports") == 1


async def test_a_dispute_needs_ones_own_scam_report(desk):
    seller = desk.tg.user(9110, "Seller two")
    stranger = desk.tg.user(9111, "Stranger")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, ad_id))
    await stranger.send("/help")
    await stranger.press_data(f"rp:dispute:{ad_id}", desk.tg.last_bot_message(9111))
    assert await desk.scalar("SELECT count(*) FROM tickets") == 0
