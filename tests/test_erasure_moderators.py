"""Erasing a moderator: the moderation and report cards that named them are redrawn.

A decided moderation card says "✅ Approved by Mo", "❌ Rejected by Mo", "⛔ User banned
by Mo"; a decided report card "✖️ Dismissed by Mo". When Mo is forgotten (or erases
their own data), the cards of their latest decided ads and reports are redrawn with the
erased label instead of the name (owed work: a crash mid-way is finished by the sweep).
"""

from __future__ import annotations

from tests.support import STAFF_CHAT
from tests.test_ads_flow import mod_card, moderators, post_ad
from tests.test_ads_reports import report_card
from tests.test_erasure_redraws import crashed_erasure, owed
from tests.test_erasure_remnants import forget, now_shown
from tests.test_privacy import ADMIN_ID, everything
from tests.test_repair import sweep

ERASED = "(a staff member whose data was erased)"


async def moderated(desk):
    """Mo approves an ad, rejects one, bans a seller and dismisses a report: the cards
    that name Mo."""
    seller = desk.tg.user(7701, "Seller")
    crook = desk.tg.user(7702, "Crook")
    buyer = desk.tg.user(7703, "Buyer")
    mo, lee = moderators(desk)
    approved = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, approved))
    rejected = await post_ad(desk, seller)
    await mo.press("Reject", mod_card(desk, rejected))
    await mo.press("Contact details in text", mod_card(desk, rejected))
    banned = await post_ad(desk, crook)
    await mo.press("Ban user", mod_card(desk, banned))
    await mo.press_data(f"m:banok:{banned}", mod_card(desk, banned))
    await buyer.send(f"/report {approved}")
    await buyer.press("Wrong category")
    report_id = await desk.scalar("SELECT id FROM ad_reports")
    await mo.press("Dismiss", report_card(desk, report_id))
    cards = [mod_card(desk, approved), mod_card(desk, rejected), mod_card(desk, banned), report_card(desk, report_id)]
    assert "✅ Approved by Moderator Mo" in cards[0].text
    assert "❌ Rejected by Moderator Mo" in cards[1].text
    assert "⛔ User banned by Moderator Mo" in cards[2].text
    assert "✖️ Dismissed by Moderator Mo" in cards[3].text
    return cards, lee


def check_redrawn(desk, cards):
    shown = [now_shown(desk, m).text for m in cards]
    for text in shown:
        assert "Moderator Mo" not in text, text
    assert f"✅ Approved by {ERASED}" in shown[0]
    assert f"❌ Rejected by {ERASED}" in shown[1] and "Contact details in text" in shown[1]
    assert f"⛔ User banned by {ERASED}" in shown[2]
    assert f"✖️ Dismissed by {ERASED}" in shown[3]
    assert all(now_shown(desk, m).reply_markup is None for m in cards)


async def test_forgetting_a_moderator_redraws_the_cards_they_decided(desk):
    cards, _ = await moderated(desk)
    admin = desk.tg.user(ADMIN_ID, "Admin")
    await forget(desk, admin, "810001")
    check_redrawn(desk, cards)
    assert "Moderator Mo" not in await everything(desk)
    assert await owed(desk) == 0
    assert desk.tg.errors() == []


async def test_a_crash_after_forgetting_a_moderator_leaves_the_cards_to_the_sweep(desk):
    cards, _ = await moderated(desk)
    admin = desk.tg.user(ADMIN_ID, "Admin")
    await admin.send("/forget 810001", chat_id=STAFF_CHAT)
    await crashed_erasure(desk, admin, desk.tg.last_bot_message(STAFF_CHAT))
    assert "Moderator Mo" in now_shown(desk, cards[0]).text  # committed, not drawn yet
    assert await owed(desk) >= 4
    desk.clock.advance(minutes=3)
    await sweep(desk)
    check_redrawn(desk, cards)
    assert await owed(desk) == 0


async def test_only_the_latest_decided_cards_are_redrawn(desk, monkeypatch):
    """Each edit counts against Telegram's 20 per minute in a group: the cards of the
    latest decided ads and reports only (``LATEST_REDRAWN`` of each), older ones keep the
    name as drawn."""
    import bot.privacy

    monkeypatch.setattr(bot.privacy, "LATEST_REDRAWN", 1)
    seller = desk.tg.user(7711, "Seller")
    mo, _ = moderators(desk)
    older = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, older))
    desk.clock.advance(minutes=1)
    latest = await post_ad(desk, seller)
    await mo.press("Approve", mod_card(desk, latest))
    cards = [mod_card(desk, older), mod_card(desk, latest)]
    await forget(desk, desk.tg.user(ADMIN_ID, "Admin"), "810001")
    assert "Moderator Mo" in now_shown(desk, cards[0]).text
    assert f"✅ Approved by {ERASED}" in now_shown(desk, cards[1]).text
    assert await desk.scalar("SELECT count(*) FROM redraws WHERE kind = 'ad_decided'") == 1


async def test_a_moderator_who_erases_their_own_data_is_erased_from_their_cards(desk):
    cards, _ = await moderated(desk)
    mo = desk.tg.user(810001, "Moderator Mo")
    await mo.send("/deleteme")
    await mo.press("Yes, erase my data")
    check_redrawn(desk, cards)
    assert "Moderator Mo" not in await everything(desk)
    assert await owed(desk) == 0
