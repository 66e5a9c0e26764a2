"""What an erasure must not leave behind in the staff chat or the outbox.

- the photos of the erased user's ads in the staff chat (every round's album): deleted;
  a photo Telegram no longer has is done; one older than Telegram's 48 hours for
  deleting is marked "(erased)" in its caption (recorded and logged: an admin deletes it);
- their cases' cards say "(erased user)", never the internal anonymous id;
- the notices that named an erased staff member ("Thandi from support is on your case"),
  and their copies in the case's history, are erased or redacted with her;
- the earlier copies of the cards of the cases an erased staff member held are redrawn.
"""

from __future__ import annotations

import logging

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import DESCRIPTION, mod_card, moderators, post_ad
from tests.test_erasure_redraws import owed, ticket_cards
from tests.test_escalation import card, open_ticket, staff_pair
from tests.test_privacy import ADMIN_ID, everything
from tests.test_repair import sweep


async def erase(person):
    await person.send("/deleteme")
    await person.press("Yes, erase my data")


async def forget(desk, admin, ref):
    await admin.send(f"/forget {ref}", chat_id=STAFF_CHAT)
    await admin.press("Erase", desk.tg.last_bot_message(STAFF_CHAT))


def photos_in_staff_chat(desk):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.kind == "photo"]


def now_shown(desk, message):
    return desk.tg.messages[(message.chat_id, message.message_id)]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_the_photos_of_an_erased_users_ads_leave_the_staff_chat(desk, staff_forum, caplog):
    user = desk.tg.user(5501, "Lerato", username="lerato_m")
    mo, _ = moderators(desk)
    old = await post_ad(desk, user, photos=3)  # three days before the erasure: too old to delete
    old_photos = photos_in_staff_chat(desk)
    await mo.press("Approve", mod_card(desk, old))
    desk.clock.advance(hours=72)
    # another ad, rejected once and sent again: two rounds of photos, two cards
    again = await post_ad(desk, user, photos=2)
    first_round = mod_card(desk, again)
    await mo.press("Reject", first_round)
    await mo.press("Contact details in text", mod_card(desk, again))
    await user.press("Edit and resubmit", desk.tg.last_bot_message(5501))
    await user.send(DESCRIPTION + " Second owner.")
    await user.press("Submit")
    second_round = mod_card(desk, again)
    assert second_round.message_id != first_round.message_id
    fresh_photos = [m for m in photos_in_staff_chat(desk) if m not in old_photos]
    assert len(old_photos) == 3 and len(fresh_photos) == 4
    assert "Lerato" in now_shown(desk, first_round).text
    gone = fresh_photos[0]
    desk.tg.messages[(gone.chat_id, gone.message_id)].deleted = True  # someone deleted it by hand
    with caplog.at_level(logging.WARNING):
        await erase(user)
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5501") == 0
    assert "clean slate" in desk.tg.last_bot_message(5501).text
    # the photos of the last two days are gone; the older ones stay (Telegram refuses),
    # marked erased in their caption
    assert all(now_shown(desk, m).deleted for m in fresh_photos)
    for m in old_photos:
        shown = now_shown(desk, m)
        assert not shown.deleted and shown.text.startswith("(erased)"), shown.text
        assert f"ad #{old}" in shown.text
    # the card of the earlier round shows neither her name nor the ad any more
    assert now_shown(desk, first_round).text == f"🗑 Ad #{again}: its owner's personal data was erased."
    assert now_shown(desk, second_round).text == f"🗑 Ad #{again} was withdrawn: its owner's personal data was erased."
    # recorded: done, with the reason for the photos that stay; logged for the admins
    assert await owed(desk) == 0
    kept = await desk.rows("SELECT message_id, error FROM redraws WHERE kind = 'ad_photo' AND error IS NOT NULL ORDER BY message_id")
    assert [row[0] for row in kept] == [m.message_id for m in old_photos]
    assert all("48 hours" in row[1] for row in kept)
    warned = [r.getMessage() for r in caplog.records if "could not be deleted" in r.getMessage()]
    assert len(warned) == 3 and all(f"ad #{old}" in w for w in warned)
    assert await desk.scalar("SELECT count(*) FROM ad_staff_messages") == 0
    assert sorted(c.error.description for c in desk.tg.errors()) == (
        ["Bad Request: message can't be deleted"] * 3 + ["Bad Request: message to delete not found"]
    )


async def test_a_new_post_of_a_moderation_card_keeps_the_photos_known(desk):
    """Photos posted again under a card (the ones replied to were deleted) are known too."""
    user = desk.tg.user(5502, "Lerato")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user, photos=2)
    first = photos_in_staff_chat(desk)
    for m in first:
        desk.tg.messages[(m.chat_id, m.message_id)].deleted = True
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    second = photos_in_staff_chat(desk)
    assert len(second) == 2
    await erase(user)
    assert all(now_shown(desk, m).deleted for m in second)
    assert await owed(desk) == 0


async def test_the_cards_of_an_erased_user_say_erased_user_not_an_internal_id(desk):
    user = desk.tg.user(5503, "Lerato", last_name="Mokoena", username="lerato_m")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    await erase(user)
    anonymous = await desk.scalar("SELECT user_id FROM tickets WHERE id = :i", i=number)
    assert anonymous < 0
    shown = card(desk, number).text
    assert "👤 (erased user)\n" in shown, shown
    assert str(anonymous) not in shown and "5503" not in shown and "Lerato" not in shown
    # /ticket N shows the same card
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    answer = desk.tg.last_bot_message(STAFF_CHAT).text
    assert "👤 (erased user)" in answer and str(anonymous) not in answer
    assert desk.tg.errors() == []


@pytest.mark.parametrize("settings_overrides", [{"telegram": {"max_retries": 0}}])
async def test_forgetting_a_staff_member_erases_the_notices_that_named_them(desk, settings_overrides):
    thandi, sipho = staff_pair(desk)
    admin = desk.tg.user(ADMIN_ID, "Admin")
    user = desk.tg.user(5504, "Musa")
    number = await open_ticket(desk, user)
    await thandi.press("Claim", card(desk, number))
    told = desk.tg.last_bot_message(5504).text
    assert "Thandi from support is on your case" in told
    # another case, claimed with a reply, and by /assign while Telegram refuses for now
    # (the notice naming her waits in the outbox)
    other = await open_ticket(desk, desk.tg.user(5505, "Dineo"), text="where is my refund for the featured ad")
    await thandi.send("Looking into it", chat_id=STAFF_CHAT, reply_to=card(desk, other))
    third = await open_ticket(desk, desk.tg.user(5506, "Ayanda"))
    desk.tg.fail("sendMessage", "flood", chat_id=5506, retry_after=60)
    await sipho.send(f"/assign {third} @thandi_support", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT count(*) FROM notices WHERE text LIKE '%Thandi%'") == 3
    assert await desk.scalar("SELECT count(*) FROM notices WHERE text LIKE '%Thandi%' AND state = 'pending'") == 1
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE text LIKE '%Thandi%'") == 2  # the two sent
    await forget(desk, admin, "@thandi_support")
    dump = await everything(desk)
    assert "Thandi" not in dump and "thandi_support" not in dump
    # the case history keeps that a staff member took it, without her name
    kept = await desk.scalar("SELECT count(*) FROM ticket_messages WHERE direction = 'bot' AND text = '(erased)'")
    assert kept == 2
    # the held notice never goes out, after the flood limit either
    desk.clock.advance(minutes=5)

    await sweep(desk)
    assert not any("Thandi" in m.text for m in desk.tg.chat_messages(5506))
    # the user's own data file names no staff member
    await user.send("/mydata")
    assert b"Thandi" not in desk.tg.last_bot_message(5504).upload


async def test_forgetting_a_staff_member_redraws_the_earlier_copies_of_their_cases_cards(desk):
    thandi, sipho = staff_pair(desk)
    admin = desk.tg.user(ADMIN_ID, "Admin")
    held = await open_ticket(desk, desk.tg.user(5507, "Musa"))
    await thandi.press("Claim", card(desk, held))
    await sipho.send(f"/repost ticket {held}", chat_id=STAFF_CHAT)
    done = await open_ticket(desk, desk.tg.user(5508, "Dineo"), text="where is my refund for the featured ad")
    await thandi.press("Claim", card(desk, done))
    await sipho.send(f"/repost ticket {done}", chat_id=STAFF_CHAT)
    await thandi.send(f"/resolve {done}", chat_id=STAFF_CHAT)
    copies = [*ticket_cards(desk, held), *ticket_cards(desk, done)]
    assert len(copies) == 4 and all("Thandi" in m.text for m in copies)
    await forget(desk, admin, "@thandi_support")
    for m in copies:
        assert "Thandi" not in now_shown(desk, m).text, now_shown(desk, m).text
    assert ticket_cards(desk, held)[0].reply_markup is None  # the earlier copy: still no buttons
    assert "✋ Claim" in ticket_cards(desk, held)[-1].button_texts
    assert await owed(desk) == 0
    assert desk.tg.errors() == []


async def test_many_photos_are_left_to_the_sweep(desk, monkeypatch):
    """Each deletion counts against Telegram's 20 calls a minute in a group, and the bot's
    updates wait while the erasure's update waits: beyond an album, the sweep deletes them."""
    import handlers.privacy

    monkeypatch.setattr(handlers.privacy, "PHOTOS_AT_ONCE", 1)
    user = desk.tg.user(5509, "Lerato")
    await post_ad(desk, user, photos=3)
    photos = photos_in_staff_chat(desk)
    await erase(user)
    assert [now_shown(desk, m).deleted for m in photos] == [True, False, False]

    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert all(now_shown(desk, m).deleted for m in photos)
    assert await owed(desk) == 0
    assert desk.tg.errors() == []
