"""Posting an ad step by step, the pre-check, and moderation in the staff chat."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import STAFF_CHAT

DESCRIPTION = "2015 VW Polo 1.2 TSI, 98 000 km, full service history, new tyres, one owner."


async def post_ad(desk, user, *, description=DESCRIPTION, photos=2, submit=True):
    await user.send("/newad")
    await user.press("Vehicles")
    await user.press("Cars")
    await user.send("VW Polo 1.2 TSI 2015")
    await user.send(description)
    await user.send("R 85 000")
    await user.send("Soweto, Johannesburg")
    for i in range(photos):
        await user.send_photo()
    await user.press("Done" if photos else "Skip photos")
    await user.send("💬 Through the bot")
    if submit:
        await user.press("Submit")
    return await desk.scalar("SELECT max(id) FROM ads")


def moderators(desk):
    return (
        desk.tg.staff(810001, "Moderator Mo", STAFF_CHAT, status="administrator"),
        desk.tg.staff(810002, "Moderator Lee", STAFF_CHAT, status="administrator"),
    )


def mod_card(desk, ad_id):
    return next(m for m in reversed(desk.tg.chat_messages(STAFF_CHAT)) if m.from_bot and m.text.startswith(f"📋 Ad #{ad_id} "))


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_complete_posting_with_photos_and_approval(desk, staff_forum):
    user = desk.tg.user(6001, "Sello", username="sello")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    texts = [m.text for m in desk.tg.chat_messages(6001) if m.from_bot]
    assert any(t.startswith("📝 New ad, step 1 of 7") for t in texts)
    assert any("Step 2 of 7: the title" in t for t in texts)
    preview = next(t for t in texts if t.startswith("👀 Preview"))
    assert "VW Polo 1.2 TSI 2015" in preview and "R 85 000" in preview and "Vehicles › Cars" in preview and "(with 2 photos)" in preview
    assert f"Your ad #{ad_id} is with our moderators" in texts[-1]
    row = (await desk.rows("SELECT status, category, subcategory, price_kind, price_amount, location, contact FROM ads"))[0]
    assert tuple(row[:4]) == ("submitted", "vehicles", "cars", "fixed") and float(row[4]) == 85000 and row[5] == "Soweto, Johannesburg"
    assert await desk.scalar("SELECT count(*) FROM ad_photos") == 2
    # the moderator sees the photos as an album, then the card
    staff_side = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot]
    assert [m.kind for m in staff_side[-3:]] == ["photo", "photo", "text"]
    card = mod_card(desk, ad_id)
    if staff_forum:
        assert card.thread_id == desk.tg.topic_named(STAFF_CHAT, "Moderation")
    assert "Sello (@sello)" in card.text and "approved 0, rejected 0, strikes 0" in card.text and "⏳ pending" in card.text
    await mo.press("Approve", card)
    assert "✅ Approved by Moderator Mo" in mod_card(desk, ad_id).text
    assert mod_card(desk, ad_id).reply_markup is None
    assert f"Your ad #{ad_id} is live" in desk.tg.last_bot_message(6001).text
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    assert await desk.scalar("SELECT expires_at IS NOT NULL FROM ads") in (1, True)
    assert desk.tg.errors() == []


async def test_every_validation_failure_is_explained(desk):
    user = desk.tg.user(6002, "Palesa")
    await user.send("/newad")
    await user.press("Vehicles")
    await user.press("Cars")
    await user.send("VW")
    assert "That title is too short (2 characters)" in desk.tg.last_bot_message(6002).text
    await user.send("V" * 80)
    assert "That title is too long (80 characters). Keep it to 70" in desk.tg.last_bot_message(6002).text
    await user.send_photo()
    assert "Please type your answer as text" in desk.tg.last_bot_message(6002).text
    await user.send("VW Polo 2015")
    await user.send("Nice car")
    assert "That description is too short (8 characters)" in desk.tg.last_bot_message(6002).text
    await user.send(DESCRIPTION)
    for bad, message in (("abc", "I could not read that as a price"), ("-5000", "A price can't be negative")):
        await user.send(bad)
        assert message in desk.tg.last_bot_message(6002).text
    await user.send("85000")
    await user.send("x")
    assert "Please type the suburb and city" in desk.tg.last_bot_message(6002).text
    await user.send("Pretoria")
    await user.press("Done")
    assert "Ads in Vehicles need at least one photo" in desk.tg.last_bot_message(6002).text
    await user.send("here is text instead of a photo")
    assert "Please send a photo" in desk.tg.last_bot_message(6002).text
    await user.send_photo()
    await user.press("Done")
    await user.send("I'd rather not say")
    assert "Please use the buttons below" in desk.tg.last_bot_message(6002).text
    await user.send("💬 Through the bot")
    assert desk.tg.last_bot_message(6002).text.startswith("👀 Preview")
    assert await desk.scalar("SELECT step FROM ads") == "preview"


@pytest.mark.parametrize("settings_overrides", [{"ads": {"max_photos": 2}}])
async def test_photo_limit(desk):
    user = desk.tg.user(6003, "Ntombi")
    await post_ad(desk, user, photos=2, submit=False)
    # already at the preview: go back to photos and send three
    await user.press("Edit a field")
    await user.press("Photos")
    for _ in range(3):
        await user.send_photo()
    assert "That's the maximum of 2 photos" in desk.tg.last_bot_message(6003).text
    assert await desk.scalar("SELECT count(*) FROM ad_photos") == 2


async def test_phone_contact_shared_with_telegram_button(desk):
    user = desk.tg.user(6004, "Lwazi")
    await post_ad(desk, user, submit=False)
    await user.press("Edit a field")
    await user.press("Contact")
    contact = {"phone_number": "+27821234567", "first_name": "Lwazi", "user_id": 6004}
    await desk.tg.feed({"message": user._message(contact=contact)})
    assert desk.tg.last_bot_message(6004).text.startswith("👀 Preview")
    assert "📱 +27821234567" in desk.tg.last_bot_message(6004).text
    # someone else's contact card is refused
    await user.press("Edit a field")
    await user.press("Contact")
    await desk.tg.feed({"message": user._message(contact={**contact, "user_id": 999})})
    assert "Please use the buttons below" in desk.tg.last_bot_message(6004).text


async def test_resume_after_a_restart(database):
    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import FakeClock, make_settings, wipe

    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    user = tg.user(6005, "Kagiso")
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await user.send("/newad")
        await user.press("Home and garden")
        await user.press("Furniture")
        await user.send("Oak dining table, seats six")
    clock.advance(days=1)  # the user comes back tomorrow, to a restarted bot
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await user.send("is it safe to meet a buyer")  # an old draft does not swallow questions
        assert tg.last_bot_message(6005).text.startswith("How do I meet")
        await user.send("/newad")
        assert "You have an unfinished ad: Oak dining table, seats six" in tg.last_bot_message(6005).text
        await user.press("Continue")
        assert "Step 3 of 7: the description" in tg.last_bot_message(6005).text
        await user.send("Solid oak table with six chairs, some scratches on the top, very sturdy.")
        assert "Step 4 of 7: the price" in tg.last_bot_message(6005).text


async def test_cancel_at_any_step(desk):
    user = desk.tg.user(6006, "Themba")
    await user.send("/newad")
    await user.press("Electronics")
    await user.press("Phones")
    await user.send("iPhone 12 64GB")
    await user.send("/cancel")
    assert "Your draft ad is deleted" in desk.tg.last_bot_message(6006).text
    assert await desk.scalar("SELECT count(*) FROM ads") == 0
    await user.send("/cancel")
    assert "There is nothing to cancel" in desk.tg.last_bot_message(6006).text


async def test_precheck_blocks_then_user_fixes(desk):
    user = desk.tg.user(6007, "Vusi")
    ad_id = await post_ad(desk, user, description="Great car, also selling v1agra cheap, ask me for details please.")
    blocked = desk.tg.last_bot_message(6007)
    assert "can't be submitted yet" in blocked.text and "viagra" in blocked.text
    assert await desk.scalar("SELECT status FROM ads") == "draft"
    assert not [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot]
    await user.press("Edit a field", blocked)
    await user.press("Description")
    await user.send(DESCRIPTION)
    assert desk.tg.last_bot_message(6007).text.startswith("👀 Preview")
    await user.press("Submit")
    assert f"Your ad #{ad_id} is with our moderators" in desk.tg.last_bot_message(6007).text


async def test_phone_number_is_flagged_for_the_moderator(desk):
    user = desk.tg.user(6008, "Anele")
    ad_id = await post_ad(desk, user, description=DESCRIPTION + " Call 082 123 4567 after five.")
    card = mod_card(desk, ad_id)
    assert "⚠️ Pre-check" in card.text and "It contains a phone number (082 123 4567)" in card.text
    assert await desk.scalar("SELECT code FROM ad_checks") == "phone_number"


async def test_reject_with_reason_then_edit_and_resubmit(desk):
    user = desk.tg.user(6009, "Zanele")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user, description=DESCRIPTION + " WhatsApp 082 123 4567.")
    await mo.press("Reject", mod_card(desk, ad_id))
    await mo.press("Contact details in text", mod_card(desk, ad_id))
    rejected = desk.tg.last_bot_message(6009)
    assert "was not approved" in rejected.text and "Contact details in text" in rejected.text
    assert "belong in the contact step" in rejected.text and "How to fix it" in rejected.text
    assert "❌ Rejected by Moderator Mo" in mod_card(desk, ad_id).text and "Contact details in text" in mod_card(desk, ad_id).text
    await user.press("Edit and resubmit", rejected)
    assert "Step 3 of 7: the description" in desk.tg.last_bot_message(6009).text
    await user.send(DESCRIPTION)
    await user.press("Submit")
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    assert await desk.scalar("SELECT resubmissions FROM ads") == 1
    card = mod_card(desk, ad_id)
    # the first round's rejection counts although the ad is waiting again (from ad_events)
    assert "⏳ pending" in card.text and "resubmitted 1×" in card.text and "approved 0, rejected 1, strikes" in card.text
    await mo.press("Approve", card)
    assert "is live" in desk.tg.last_bot_message(6009).text


async def test_the_card_history_counts_every_rejection_and_every_ad_ever_approved(desk):
    """From ad_events: the same ad rejected twice is two rejections, and an ad approved
    and then sold still counts as approved (the ads table keeps only the latest state)."""
    user = desk.tg.user(6019, "Lwazi")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    for round_ in (1, 2):
        await mo.press("Reject", mod_card(desk, ad_id))
        await mo.press("Contact details in text", mod_card(desk, ad_id))
        await user.press("Edit and resubmit", desk.tg.last_bot_message(6019))
        await user.send(DESCRIPTION + " Second owner." * round_)
        await user.press("Submit")
        assert f"approved 0, rejected {round_}, strikes 0" in mod_card(desk, ad_id).text
    await mo.press("Approve", mod_card(desk, ad_id))
    await user.send("/myads")
    await user.press(f"Sold #{ad_id}", desk.tg.last_bot_message(6019))
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "sold"
    second = await post_ad(desk, user, description="Mountain bike, 29 inch wheels, hydraulic brakes, ridden twice, like new.")
    assert second != ad_id and "approved 1, rejected 2, strikes 0" in mod_card(desk, second).text


async def test_request_changes_reopens_the_draft_at_the_field(desk):
    user = desk.tg.user(6010, "Bheki")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Request changes", mod_card(desk, ad_id))
    await mo.press("Unrealistic price", mod_card(desk, ad_id))
    notice = desk.tg.last_bot_message(6010)
    assert "needs a change" in notice.text and "Unrealistic price" in notice.text
    await user.press("Change it", notice)
    assert "Step 4 of 7: the price" in desk.tg.last_bot_message(6010).text
    await user.send("R 95 000")
    assert "R 95 000" in desk.tg.last_bot_message(6010).text  # straight back to the preview
    await user.press("Submit")
    assert await desk.scalar("SELECT status FROM ads") == "submitted"


async def test_moderator_race_exactly_one_decision(desk):
    user = desk.tg.user(6011, "Kabelo")
    mo, lee = moderators(desk)
    ad_id = await post_ad(desk, user)
    card = mod_card(desk, ad_id)
    start = len(desk.tg.events)
    await asyncio.gather(desk.tg.feed(mo.callback_update(f"m:ok:{ad_id}", card)), desk.tg.feed(lee.callback_update(f"m:r:{ad_id}:duplicate", card)))
    status = await desk.scalar("SELECT status FROM ads")
    assert status in ("approved", "rejected")
    toasts = [e.text for e in desk.tg.events[start:] if e.who == "toast"]
    assert "Done." in toasts and any(t.startswith("Already decided") for t in toasts)
    owner_notices = [m for m in desk.tg.chat_messages(6011) if f"Your ad #{ad_id} is live" in m.text or "was not approved" in m.text]
    assert len(owner_notices) == 1


async def test_non_moderators_are_refused(desk, caplog):
    user = desk.tg.user(6012, "Mpho")
    ad_id = await post_ad(desk, user)
    agent = desk.tg.staff(810009, "Agent (not admin)", STAFF_CHAT)
    await agent.press("Approve", mod_card(desk, ad_id))
    assert desk.tg.events[-1].text == "Only moderators can do that."
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    assert any("refused a moderation action" in r.getMessage() for r in caplog.records)


CHANNEL = -1003000000003


@pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]])
@pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}])
async def test_approved_ads_are_published_to_the_channel(desk):
    user = desk.tg.user(6013, "Lindo")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, ad_id))
    posted = [m for m in desk.tg.chat_messages(CHANNEL) if m.from_bot]
    assert [m.kind for m in posted] == ["photo", "text"] and "VW Polo 1.2 TSI 2015" in posted[1].text
    assert await desk.scalar("SELECT published_message_id FROM ads") == posted[1].message_id


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_other_reason_typed_by_the_moderator(desk, staff_forum):
    user = desk.tg.user(6014, "Nomvula")
    mo, lee = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Request changes", mod_card(desk, ad_id))
    await mo.press("Other", mod_card(desk, ad_id))
    prompt = desk.tg.last_bot_message(STAFF_CHAT)
    assert f"type the reason for ad #{ad_id}" in prompt.text
    await lee.send("unrelated chatter", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)  # only Mo's message counts
    assert await desk.scalar("SELECT status FROM ads") == "submitted"
    await mo.send("Please show the <odometer> in a photo & the licence disc", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert await desk.scalar("SELECT status FROM ads") == "changes_requested"
    assert "Please show the <odometer> in a photo & the licence disc" in desk.tg.last_bot_message(6014).text
    assert "✏️ Changes requested by Moderator Mo" in mod_card(desk, ad_id).text
    await mo.send("a later message is just chatter", chat_id=STAFF_CHAT, thread_id=prompt.thread_id)
    assert await desk.scalar("SELECT decision_note FROM ads") == "Please show the <odometer> in a photo & the licence disc"


async def test_emoji_count_twice_towards_the_description_limit(desk):
    user = desk.tg.user(6015, "Emoji")
    await user.send("/newad")
    await user.press("Vehicles")
    await user.press("Cars")
    await user.send("VW Polo 1.2 TSI 2015")
    await user.send("Nice car, works well. " + "🚗" * 1000)  # 1,022 characters, 2,022 as Telegram counts
    assert "That description is too long (2022 characters). Keep it to 2000" in desk.tg.last_bot_message(6015).text
