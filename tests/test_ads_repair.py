"""A crash between an ad's (or a report's) commit and its card: the sweep posts it, once.

As in tests/test_repair.py, each "crashed" test performs the database part of an update
through the service (as the handler's transaction would) and skips the handler's sends,
as if the bot was killed right after the commit. The next sweep after the repair grace
must post exactly one card, whose buttons work; later sweeps nothing. A card Telegram
refused is posted by the sweep; one that timed out may have arrived and is posted once
more, saying so (tests/test_card_retries.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from ads import service
from bot.chats import move_chat
from bot.db import make_engine, unit_of_work
from bot.migrate import upgrade
from handlers.delivery import apply_chat_moves
from tests.support import STAFF_CHAT
from tests.test_ads_flow import moderators, post_ad
from tests.test_repair import sweep
from tests.test_send_errors import MOVED, NEW_CHAT, OLD_CHAT

SELLER, BUYER = 6301, 6302


def mod_cards(desk, ad_id, chat_id=STAFF_CHAT):
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot and m.text.startswith(f"📋 Ad #{ad_id} ")]


def report_cards(desk, report_id, chat_id=STAFF_CHAT):
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot and m.text.startswith(f"🚩 Report #{report_id} ")]


def photos(desk, chat_id=STAFF_CHAT):
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot and m.kind == "photo"]


async def crashed_submit(desk, user):
    """The user filled in the ad and pressed Submit; the submission committed and the bot
    died before posting the moderation card (or telling the user)."""
    ad_id = await post_ad(desk, user, submit=False)
    helpdesk = desk.app.bot_data["desk"]
    async with unit_of_work(desk.sessions) as session:
        ad = await service.current_draft(session, user_id=user.id)
        result = await service.submit(session, helpdesk.ad_rules, ad=ad, now=desk.clock.now)
    assert result.outcome == service.SubmitOutcome.SUBMITTED and result.ad.id == ad_id
    return ad_id


async def live_ad(desk, seller, moderator):
    ad_id = await post_ad(desk, seller)
    await moderator.press("Approve", mod_cards(desk, ad_id)[-1])
    return ad_id


async def crashed_report(desk, ad_id, reporter_id, reason="prohibited"):
    """The buyer's report committed; the bot died before posting its card."""
    async with unit_of_work(desk.sessions) as session:
        report, new = await service.report_ad(session, ad_id=ad_id, reporter_id=reporter_id, reason=reason, now=desk.clock.now)
    assert new
    return report.id


# ------------------------------------------------------------------ moderation cards


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_ad_submitted_but_never_posted_gets_exactly_one_card_and_its_buttons_work(desk, staff_forum):
    mo, _ = moderators(desk)
    seller = desk.tg.user(SELLER, "Sello")
    ad_id = await crashed_submit(desk, seller)
    assert mod_cards(desk, ad_id) == [] and photos(desk) == []
    assert await desk.scalar("SELECT card_claimed_at FROM ads WHERE id = :i", i=ad_id) is None
    await sweep(desk)  # too fresh: the handler may be posting it right now
    assert mod_cards(desk, ad_id) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    posted = mod_cards(desk, ad_id)
    assert len(posted) == 1 and "⏳ pending" in posted[0].text and "Approve" in " ".join(posted[0].button_texts)
    assert len(photos(desk)) == 2  # the album came first, as from the handler
    if staff_forum:
        assert posted[0].thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    row = (await desk.rows("SELECT mod_chat_id, mod_message_id, card_claimed_at FROM ads WHERE id = :i", i=ad_id))[0]
    assert (row[0], row[1]) == (STAFF_CHAT, posted[0].message_id) and row[2] is not None
    before = len(desk.tg.calls)
    for _ in range(2):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(mod_cards(desk, ad_id)) == 1 and len(photos(desk)) == 2
    assert not [c for c in desk.tg.calls[before:] if c.method in ("sendMessage", "sendMediaGroup", "sendPhoto")]
    # the repaired card works: Approve decides, edits this card and tells the owner
    await mo.press("Approve", posted[0])
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "approved"
    assert "✅ Approved by Moderator Mo" in mod_cards(desk, ad_id)[0].text and mod_cards(desk, ad_id)[0].reply_markup is None
    assert f"Your ad #{ad_id} is live" in desk.tg.last_bot_message(SELLER).text
    assert desk.tg.errors() == []


async def test_moderation_card_claim_is_won_once(desk):
    seller = desk.tg.user(SELLER, "Sello")
    ad_id = await crashed_submit(desk, seller)
    async with unit_of_work(desk.sessions) as session:
        first = await service.claim_moderation_card(session, ad_id=ad_id, now=desk.clock.now)
    async with unit_of_work(desk.sessions) as session:
        second = await service.claim_moderation_card(session, ad_id=ad_id, now=desk.clock.now)
    assert (first, second) == (True, False)
    desk.clock.advance(minutes=3)
    await sweep(desk)  # claimed (being posted, or posted and the bot died): never by the sweep
    assert mod_cards(desk, ad_id) == []


async def test_moderation_card_refused_is_posted_by_the_sweep_and_a_timed_out_one_once_more(desk):
    mo, _ = moderators(desk)
    refused, timed = desk.tg.user(6303, "Refilwe"), desk.tg.user(6304, "Tumi")
    desk.tg.fail("sendMessage", "too_long", chat_id=STAFF_CHAT)
    first = await post_ad(desk, refused)
    assert mod_cards(desk, first) == []
    assert f"Your ad #{first} is with our moderators" in desk.tg.last_bot_message(6303).text
    assert await desk.scalar("SELECT card_claimed_at FROM ads WHERE id = :i", i=first) is None  # released
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    second = await post_ad(desk, timed)
    assert len(mod_cards(desk, second)) == 1  # it arrived, but the bot does not know its id
    assert await desk.scalar("SELECT mod_message_id FROM ads WHERE id = :i", i=second) is None
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(mod_cards(desk, first)) == 1  # surely not there before: posted now
    # maybe there (it was): posted once more, saying so (tests/test_card_retries.py)
    assert len(mod_cards(desk, second)) == 2 and "Posted again" in mod_cards(desk, second)[1].text
    # the cards work; those posted by the sweep are known and are edited in place
    await mo.press("Reject", mod_cards(desk, first)[0])
    await mo.press("Contact details in text", mod_cards(desk, first)[0])
    assert "❌ Rejected by Moderator Mo" in mod_cards(desk, first)[0].text
    assert "was not approved" in desk.tg.last_bot_message(6303).text
    await mo.press("Approve", mod_cards(desk, second)[0])  # the first copy: it acts, and both copies show it
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=second) == "approved"
    assert all("✅ Approved by Moderator Mo" in c.text and c.reply_markup is None for c in mod_cards(desk, second))


async def test_card_refused_after_its_photos_the_sweep_does_not_post_the_album_again(desk):
    """The photos went up, the card was refused: the photos are taken down again, so the
    sweep's retry (photos, then card) leaves one album in the staff chat, not one per try."""
    seller = desk.tg.user(SELLER, "Sello")
    desk.tg.fail("sendMessage", "too_long", chat_id=STAFF_CHAT, times=2)
    ad_id = await post_ad(desk, seller)
    assert mod_cards(desk, ad_id) == [] and photos(desk) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)  # refused again
    assert mod_cards(desk, ad_id) == [] and photos(desk) == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(mod_cards(desk, ad_id)) == 1 and len(photos(desk)) == 2


async def test_refused_photos_do_not_keep_the_card_back(desk):
    seller = desk.tg.user(SELLER, "Sello")
    desk.tg.fail("sendMediaGroup", "parse", chat_id=STAFF_CHAT)
    ad_id = await post_ad(desk, seller)
    assert len(mod_cards(desk, ad_id)) == 1 and photos(desk) == []
    assert await desk.scalar("SELECT mod_message_id FROM ads WHERE id = :i", i=ad_id) == mod_cards(desk, ad_id)[0].message_id


async def test_an_ad_decided_or_withdrawn_before_the_sweep_gets_no_card(desk):
    seller, other = desk.tg.user(SELLER, "Sello"), desk.tg.user(6305, "Bongani")
    decided = await crashed_submit(desk, seller)
    withdrawn = await crashed_submit(desk, other)
    helpdesk = desk.app.bot_data["desk"]
    async with unit_of_work(desk.sessions) as session:  # e.g. from a card that timed out but arrived
        await service.decide(
            session, helpdesk.ad_rules, ad_id=decided, moderator_id=810001, decision=service.Decision.APPROVE, reason=None, note=None,
            now=desk.clock.now,
        )
    await other.send("/deleteme")
    await other.press("Yes, erase my data")
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert mod_cards(desk, decided) == [] and mod_cards(desk, withdrawn) == []


async def test_a_resubmission_gets_its_own_card_after_a_crash(desk):
    """The first round's card (decided) is not the second round's: the sweep posts one."""
    mo, _ = moderators(desk)
    seller = desk.tg.user(SELLER, "Sello")
    ad_id = await post_ad(desk, seller)
    await mo.press("Request changes", mod_cards(desk, ad_id)[-1])
    await mo.press("Unrealistic price", mod_cards(desk, ad_id)[-1])
    await seller.press("Change it", desk.tg.last_bot_message(SELLER))
    await seller.send("R 95 000")
    helpdesk = desk.app.bot_data["desk"]
    async with unit_of_work(desk.sessions) as session:
        ad = await service.current_draft(session, user_id=SELLER)
        await service.submit(session, helpdesk.ad_rules, ad=ad, now=desk.clock.now)
    assert tuple((await desk.rows("SELECT mod_message_id, card_claimed_at FROM ads"))[0]) == (None, None)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    cards = mod_cards(desk, ad_id)
    assert len(cards) == 2 and "✏️ Changes requested" in cards[0].text and "resubmitted 1×" in cards[1].text
    await mo.press("Approve", cards[1])
    assert await desk.scalar("SELECT status FROM ads") == "approved"


# ------------------------------------------------------------------ report cards


async def test_report_stored_but_never_posted_gets_exactly_one_card_and_its_buttons_work(desk):
    mo, _ = moderators(desk)
    seller, buyer = desk.tg.user(SELLER, "Sello"), desk.tg.user(BUYER, "Buyer")
    ad_id = await live_ad(desk, seller, mo)
    await buyer.send("hello")  # the buyer is known to the bot
    report_id = await crashed_report(desk, ad_id, BUYER)
    await sweep(desk)
    assert report_cards(desk, report_id) == []  # too fresh
    desk.clock.advance(minutes=3)
    await sweep(desk)
    posted = report_cards(desk, report_id)
    assert len(posted) == 1 and "reported by Buyer" in posted[0].text and posted[0].button_texts == ["✅ Uphold: take down", "✖️ Dismiss"]
    assert "(id 6301)\n⏳ open" in posted[0].text
    row = (await desk.rows("SELECT card_chat_id, card_message_id, card_claimed_at FROM ad_reports WHERE id = :i", i=report_id))[0]
    assert (row[0], row[1]) == (STAFF_CHAT, posted[0].message_id) and row[2] is not None
    for _ in range(2):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(report_cards(desk, report_id)) == 1
    await mo.press("Dismiss", posted[0])
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    assert "Dismissed by Moderator Mo" in report_cards(desk, report_id)[0].text
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(report_cards(desk, report_id)) == 1
    assert desk.tg.errors() == []


async def test_report_card_refused_is_posted_by_the_sweep_and_a_timed_out_one_once_more(desk):
    mo, _ = moderators(desk)
    seller, refused, timed = desk.tg.user(SELLER, "Sello"), desk.tg.user(6306, "Refilwe"), desk.tg.user(6307, "Tumi")
    ad_id = await live_ad(desk, seller, mo)
    desk.tg.fail("sendMessage", "too_long", chat_id=STAFF_CHAT)
    await refused.send(f"/report {ad_id}")
    await refused.press("Wrong category")
    first = await desk.scalar("SELECT max(id) FROM ad_reports")
    assert report_cards(desk, first) == []
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    await timed.send(f"/report {ad_id}")
    await timed.press("Offensive")
    second = await desk.scalar("SELECT max(id) FROM ad_reports")
    assert len(report_cards(desk, second)) == 1
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    assert len(report_cards(desk, first)) == 1
    assert len(report_cards(desk, second)) == 2 and "Posted again" in report_cards(desk, second)[1].text
    await mo.press("Uphold", report_cards(desk, first)[0])
    assert await desk.scalar("SELECT status FROM ads") == "taken_down"


async def test_report_claim_is_won_once_and_a_decided_report_gets_no_card(desk):
    mo, _ = moderators(desk)
    seller = desk.tg.user(SELLER, "Sello")
    ad_id = await live_ad(desk, seller, mo)
    for user_id in (BUYER, 6308):
        await desk.tg.user(user_id, f"Buyer {user_id}").send("hello")
    claimed = await crashed_report(desk, ad_id, BUYER)
    decided = await crashed_report(desk, ad_id, 6308)
    async with unit_of_work(desk.sessions) as session:
        assert await service.claim_report_card(session, report_id=claimed, now=desk.clock.now)
    async with unit_of_work(desk.sessions) as session:
        assert not await service.claim_report_card(session, report_id=claimed, now=desk.clock.now)
        await service.decide_report(session, report_id=decided, moderator_id=810001, uphold=False, now=desk.clock.now)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert report_cards(desk, claimed) == [] and report_cards(desk, decided) == []


# ------------------------------------------------------------------ a staff chat that moved


@pytest.fixture
def extra_chats():
    return [(OLD_CHAT, "Support staff (group)", False)]


async def cards_in_the_old_chat(desk):  # type: ignore[no-untyped-def]
    """In a plain group that Telegram is about to upgrade: an ad waiting for moderation
    and an open report on a live ad, each with its card. (moderator, live ad, waiting ad, report)"""
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    mo = desk.tg.staff(810001, "Moderator Mo", OLD_CHAT, status="administrator")
    seller, other, buyer = desk.tg.user(SELLER, "Sello"), desk.tg.user(6309, "Nomvula"), desk.tg.user(BUYER, "Buyer")
    live = await post_ad(desk, seller)
    await mo.press("Approve", mod_cards(desk, live, OLD_CHAT)[-1])
    waiting = await post_ad(desk, other)
    await buyer.send(f"/report {live}")
    await buyer.press("Wrong category")
    report_id = await desk.scalar("SELECT id FROM ad_reports")
    return mo, live, waiting, report_id


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_cards_cleared_by_a_chat_move_are_posted_by_the_sweep_when_the_bot_died_before_reposting(desk):
    _, live, waiting, report_id = await cards_in_the_old_chat(desk)
    assert len(mod_cards(desk, waiting, OLD_CHAT)) == 1 and len(report_cards(desk, report_id, OLD_CHAT)) == 1
    # Telegram moves the chat; the bot records the move (the transaction commits) and dies
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    async with unit_of_work(desk.sessions) as session:
        moved = await move_chat(session, old_chat_id=OLD_CHAT, new_chat_id=NEW_CHAT, now=desk.clock.now)
    assert (moved.ads, moved.reports) == ([waiting], [report_id])
    assert [tuple(r) for r in await desk.rows("SELECT mod_message_id, card_claimed_at FROM ads WHERE id = :i", i=waiting)] == [(None, None)]
    apply_chat_moves(desk.app, {OLD_CHAT: NEW_CHAT})  # the restart reads the stored move
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    ad_cards, rep_cards = mod_cards(desk, waiting, NEW_CHAT), report_cards(desk, report_id, NEW_CHAT)
    assert len(ad_cards) == 1 and len(rep_cards) == 1
    assert mod_cards(desk, live, NEW_CHAT) == []  # decided: no card again
    mo_new = desk.tg.staff(810001, "Moderator Mo", NEW_CHAT, status="administrator")
    await mo_new.press("Approve", ad_cards[0])
    await mo_new.press("Dismiss", rep_cards[0])
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=waiting) == "approved"
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    assert desk.tg.errors() == []


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_cards_posted_again_at_once_after_a_chat_move_are_not_posted_again_by_the_sweep(desk):
    mo, _, waiting, report_id = await cards_in_the_old_chat(desk)
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    await desk.tg.announce_migration(OLD_CHAT, NEW_CHAT, by=mo.data)
    assert len(mod_cards(desk, waiting, NEW_CHAT)) == 1 and len(report_cards(desk, report_id, NEW_CHAT)) == 1
    for _ in range(2):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(mod_cards(desk, waiting, NEW_CHAT)) == 1 and len(report_cards(desk, report_id, NEW_CHAT)) == 1


# ------------------------------------------------------------------ the migration


async def test_migration_backfills_the_claims_of_cards_already_posted(empty_db):
    """0019: an ad or a report whose card is known counts as claimed (the sweep leaves
    it); one waiting without a card is not (the first sweep posts it)."""
    url, schema = empty_db
    await asyncio.to_thread(upgrade, url, schema, "0017")
    engine = make_engine(url, schema=schema)
    t1, t2 = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id, first_name, status, first_seen, last_seen) VALUES (1, 'U', 'active', :t, :t)"), {"t": t1})
            for ad_id, status, chat, message in ((1, "submitted", -100, 11), (2, "submitted", None, None), (3, "approved", -100, 12)):
                await conn.execute(
                    text(
                        "INSERT INTO ads (id, user_id, status, editing, title, description, currency, location, created_at, updated_at,"
                        " submitted_at, auto_approved, resubmissions, mod_chat_id, mod_message_id)"
                        " VALUES (:id, 1, :status, false, 't', 'd', 'ZAR', '', :t, :t, :s, false, 0, :chat, :message)"
                    ),
                    {"id": ad_id, "status": status, "t": t1, "s": t2, "chat": chat, "message": message},
                )
            for report_id, message in ((1, 21), (2, None)):
                await conn.execute(
                    text(
                        "INSERT INTO ad_reports (id, ad_id, reporter_id, reason, status, created_at, card_chat_id, card_message_id)"
                        " VALUES (:id, 3, 1, 'scam', 'open', :t, :chat, :message)"
                    ),
                    {"id": report_id, "t": t2, "chat": -100 if message else None, "message": message},
                )
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, url, schema)
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as conn:
            ads = (await conn.execute(text("SELECT id, card_claimed_at IS NOT NULL FROM ads ORDER BY id"))).all()
            reports = (await conn.execute(text("SELECT id, card_claimed_at IS NOT NULL FROM ad_reports ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert [(r[0], bool(r[1])) for r in ads] == [(1, True), (2, False), (3, True)]
    assert [(r[0], bool(r[1])) for r in reports] == [(1, True), (2, False)]
