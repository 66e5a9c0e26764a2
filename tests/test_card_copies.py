"""Earlier copies of a staff card, after it was posted again (by the sweep or /repost).

In a staff chat without topics, staff answer a case by replying to its card. A card
posted again becomes the tracked one, but the earlier copies stay in the chat and say
"Reply to this message to answer the user": a reply to any of them still reaches the
case (the copies the bot knows are kept in ``ticket_card_copies``; a copy whose post
timed out is known by its own buttons, and kept once a button on it is pressed). Only
in the ticket's own chat: a card left behind by a transfer does not talk to the user,
and the copies in a chat that became a supergroup are forgotten (the new chat numbers
its messages afresh). Erasing the user redraws every known copy without their name.

An ad's moderation (or Take down) card goes after the ad's photos. Posted again, it
does not bring the photos again when they are known to be in the chat: it replies to
them (``ads.album_chat_id``, ``album_message_id``, recorded as soon as Telegram confirmed
the album). Photos never confirmed (their post timed out or was refused), posted in a
chat that has since moved, or of an earlier submission are posted with the card;
photos deleted from the chat meanwhile are posted again under the card.
"""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import moderators, post_ad
from tests.test_card_retries import ticket_cards, refusals
from tests.test_escalation import IT_CHAT, open_ticket, staff_pair
from tests.test_repair import sweep
from tests.test_send_errors import MOVED, NEW_CHAT, OLD_CHAT

USER = 6601


def out_messages(desk):
    return desk.rows("SELECT text FROM ticket_messages WHERE direction = 'out' ORDER BY id")


# ------------------------------------------------------------------ replies to earlier copies


async def test_a_reply_to_the_card_known_before_a_repost_still_reaches_the_user(desk):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    old, new = ticket_cards(desk, number)
    assert old.reply_markup is None and await desk.scalar("SELECT card_message_id FROM tickets") == new.message_id
    await thandi.send("Which card did you pay with?", chat_id=STAFF_CHAT, reply_to=old)
    assert "Which card did you pay with?" in desk.tg.last_bot_message(USER).text
    assert [r[0] for r in await out_messages(desk)] == ["Which card did you pay with?"]
    # the reply counts as any reply: Thandi has the case, shown on the tracked card only
    old, new = ticket_cards(desk, number)
    assert "✋ Thandi" in new.text and "✋ Thandi" not in old.text
    # a note on the old copy stays a note; the user's answer comes under the tracked card
    await thandi.send("!asked about the card", chat_id=STAFF_CHAT, reply_to=old)
    assert await desk.scalar("SELECT count(*) FROM ticket_messages WHERE direction = 'note'") == 1
    await user.send("The Visa one")
    assert desk.tg.last_bot_message(STAFF_CHAT).reply_to == new.message_id
    assert refusals(desk) == []


async def test_a_reply_to_the_first_copy_of_a_card_the_sweep_posted_again_reaches_the_user(desk):
    """The first post timed out but arrived: the bot never learnt its message id. The copy
    is known by its buttons (a ticket's card buttons), and kept once one is pressed (which
    takes them off): replies to it count before and after."""
    thandi, sipho = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=True)
    number = await open_ticket(desk, user)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    first, tracked = ticket_cards(desk, number)
    assert first.button_texts[0] == "✋ Claim" and await desk.scalar("SELECT card_message_id FROM tickets") == tracked.message_id
    await thandi.send("Hello Naledi, I am looking at it.", chat_id=STAFF_CHAT, reply_to=first)
    assert "Hello Naledi, I am looking at it." in desk.tg.last_bot_message(USER).text
    assert await desk.scalar("SELECT assignee_id FROM tickets") == thandi.id
    # Sipho presses Claim on the copy: refused (Thandi has it), the copy loses its buttons
    await sipho.press("Claim", first)
    first, tracked = ticket_cards(desk, number)
    assert first.reply_markup is None
    await sipho.send("Sipho here: the refund is approved.", chat_id=STAFF_CHAT, reply_to=first)
    assert "the refund is approved." in desk.tg.last_bot_message(USER).text
    assert len(await out_messages(desk)) == 2
    assert refusals(desk) == []


async def test_only_a_card_of_the_case_is_taken_for_one_by_its_buttons(desk):
    """The buttons tell which case a copy belongs to only on the bot's own card: a
    message of somebody else quoting them, or another of the bot's messages, is not."""
    thandi, sipho = staff_pair(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    await thandi.press("Resolve", ticket_cards(desk, number)[0])
    offer = next(m for m in desk.tg.chat_messages(STAFF_CHAT) if "Did one of these FAQ entries answer it?" in m.text)
    assert offer.reply_markup is not None
    before = len(desk.tg.chat_messages(USER))
    await sipho.send("Replying to the learning offer", chat_id=STAFF_CHAT, reply_to=offer)
    assert len(desk.tg.chat_messages(USER)) == before and await out_messages(desk) == []


@pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", False)]])
@pytest.mark.parametrize("settings_overrides", [{"support": {"departments": {
    "general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}}}])
async def test_the_card_left_behind_by_a_transfer_does_not_talk_to_the_user(desk):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Tumi")
    number = await open_ticket(desk, user)
    [old] = ticket_cards(desk, number)
    await thandi.send(f"/transfer {number} it", chat_id=STAFF_CHAT)
    before = len(desk.tg.chat_messages(USER))
    await thandi.send("Still here from general", chat_id=STAFF_CHAT, reply_to=old)
    assert len(desk.tg.chat_messages(USER)) == before and await out_messages(desk) == []
    it_card = next(m for m in desk.tg.chat_messages(IT_CHAT) if m.text.startswith(f"🎫 #{number}"))
    vusi = desk.tg.staff(800020, "Vusi", IT_CHAT)
    await vusi.send("IT here", chat_id=IT_CHAT, reply_to=it_card)
    assert "IT here" in desk.tg.last_bot_message(USER).text


# ------------------------------------------------------------------ a staff chat that became a supergroup


@pytest.mark.parametrize("extra_chats", [[(OLD_CHAT, "Support staff (group)", False)]])
@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_the_copies_in_a_chat_that_became_a_supergroup_are_forgotten(desk):
    """The supergroup numbers its messages afresh: a copy kept under its old number would
    catch a reply to an unrelated message there."""
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    thandi = desk.tg.staff(800011, "Thandi", OLD_CHAT)
    sipho = desk.tg.staff(800012, "Sipho", OLD_CHAT)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    await thandi.send(f"/repost ticket {number}", chat_id=OLD_CHAT)
    old = next(m for m in desk.tg.chat_messages(OLD_CHAT) if m.text.startswith(f"🎫 #{number} "))
    assert await desk.scalar("SELECT count(*) FROM ticket_card_copies") == 1
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    await desk.tg.announce_migration(OLD_CHAT, NEW_CHAT, by=thandi.data)
    assert await desk.scalar("SELECT count(*) FROM ticket_card_copies") == 0
    desk.clock.advance(minutes=3)
    await sweep(desk)
    fresh = next(m for m in desk.tg.chat_messages(NEW_CHAT) if m.text.startswith(f"🎫 #{number} "))
    # a message of the new chat that has the old copy's number: a reply to it is no reply to the case
    while (NEW_CHAT, old.message_id) not in desk.tg.messages:
        await sipho.send("morning all", chat_id=NEW_CHAT)
    chatter = desk.tg.messages[(NEW_CHAT, old.message_id)]
    assert chatter.message_id != fresh.message_id
    await thandi.send("agreed", chat_id=NEW_CHAT, reply_to=chatter)
    assert await out_messages(desk) == []
    await thandi.send("Which card did you pay with?", chat_id=NEW_CHAT, reply_to=fresh)
    assert "Which card did you pay with?" in desk.tg.last_bot_message(USER).text


# ------------------------------------------------------------------ erasure


async def test_erasure_redraws_every_known_copy_of_the_card_without_the_user(desk):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Nomvula", last_name="Dlamini", username="nomvula_d")
    number = await open_ticket(desk, user)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    assert all("Nomvula" in c.text for c in ticket_cards(desk, number))
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    cards = ticket_cards(desk, number)
    assert len(cards) == 3
    for card in cards:
        assert "Nomvula" not in card.text and "nomvula_d" not in card.text and "Dlamini" not in card.text, card.text
        assert "closed" in card.text
    assert [c.reply_markup is None for c in cards] == [True, True, False]  # the tracked card keeps Reopen
    assert refusals(desk) == []
    # a reply to an earlier copy now gets what a reply to the card gets: the case is closed
    await thandi.send("Are you still there?", chat_id=STAFF_CHAT, reply_to=cards[0])
    assert "closed" in desk.tg.last_bot_message(STAFF_CHAT).text and await out_messages(desk) == []


@pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", False)]])
@pytest.mark.parametrize("settings_overrides", [{"support": {"departments": {
    "general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}}}])
async def test_erasure_redraws_the_card_a_transfer_left_behind(desk):
    thandi, _ = staff_pair(desk)
    user = desk.tg.user(USER, "Nomvula", last_name="Dlamini")
    number = await open_ticket(desk, user)
    await thandi.send(f"/transfer {number} it", chat_id=STAFF_CHAT)
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    for chat in (STAFF_CHAT, IT_CHAT):
        [card] = [m for m in desk.tg.chat_messages(chat) if m.from_bot and m.text.startswith(f"🎫 #{number} ")]
        assert "Nomvula" not in card.text and "Dlamini" not in card.text, (chat, card.text)


# ------------------------------------------------------------------ an ad's photos


def mod_cards(desk, ad_id, chat=STAFF_CHAT):
    return [m for m in desk.tg.chat_messages(chat) if m.from_bot and m.text.startswith(f"📋 Ad #{ad_id} ")]


def photos(desk, chat=STAFF_CHAT):
    return [m for m in desk.tg.chat_messages(chat) if m.from_bot and m.kind == "photo"]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_a_moderation_card_posted_again_by_hand_replies_to_the_photos_and_its_buttons_act(desk, staff_forum):
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    album = photos(desk)
    assert len(album) == 2
    assert tuple((await desk.rows("SELECT album_chat_id, album_message_id FROM ads"))[0]) == (STAFF_CHAT, album[0].message_id)
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    cards = mod_cards(desk, ad_id)
    assert len(cards) == 3 and len(photos(desk)) == 2
    assert [c.reply_to for c in cards[1:]] == [album[0].message_id] * 2
    if staff_forum:
        assert {c.thread_id for c in cards} == {album[0].thread_id} == {desk.tg.topic_named(STAFF_CHAT, "Moderation")}
    await mo.press("Approve", cards[-1])
    assert await desk.scalar("SELECT status FROM ads") == "approved"
    assert "✅ Approved by Moderator Mo" in mod_cards(desk, ad_id)[-1].text
    assert refusals(desk) == []


async def test_photos_never_confirmed_come_with_the_card_posted_again(desk):
    """The album's post timed out (nothing arrived) and so did the card's: the sweep's
    card brings the photos."""
    desk.tg.fail("sendMediaGroup", "timeout", chat_id=STAFF_CHAT)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    assert photos(desk) == [] and mod_cards(desk, ad_id) == []
    assert await desk.scalar("SELECT album_message_id FROM ads") is None
    desk.clock.advance(minutes=3)
    await sweep(desk)
    album, [card] = photos(desk), mod_cards(desk, ad_id)
    assert len(album) == 2 and card.reply_to is None and album[-1].message_id < card.message_id
    assert await desk.scalar("SELECT album_message_id FROM ads") == album[0].message_id


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_photos_deleted_from_the_chat_are_posted_again_under_the_card(desk, staff_forum):
    """Also in a forum, where Telegram answers a message in a topic that replies to nothing
    with the topic's own service message as ``reply_to_message``."""
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, desk.tg.user(USER, "Sello"))
    for photo in photos(desk):  # somebody tidied the chat
        photo.deleted = True
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    card = mod_cards(desk, ad_id)[-1]
    album = photos(desk)
    assert len(album) == 2 and card.reply_to is None and album[0].reply_to == card.message_id
    assert await desk.scalar("SELECT album_message_id FROM ads") == album[0].message_id
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    assert len(photos(desk)) == 2 and mod_cards(desk, ad_id)[-1].reply_to == album[0].message_id


async def test_a_resubmitted_ad_brings_its_photos_with_its_new_card(desk):
    mo, _ = moderators(desk)
    seller = desk.tg.user(USER, "Sello")
    ad_id = await post_ad(desk, seller)
    await mo.press("Request changes", mod_cards(desk, ad_id)[-1])
    await mo.press("Unrealistic price", mod_cards(desk, ad_id)[-1])
    await seller.press("Change it", desk.tg.last_bot_message(USER))
    await seller.send("R 95 000")
    await seller.press("Submit")
    album, card = photos(desk), mod_cards(desk, ad_id)[-1]
    assert len(album) == 4 and "⏳ pending" in card.text and card.reply_to is None
    assert await desk.scalar("SELECT album_message_id FROM ads") == album[2].message_id
    await mo.send(f"/repost ad {ad_id}", chat_id=STAFF_CHAT)
    assert len(photos(desk)) == 4 and mod_cards(desk, ad_id)[-1].reply_to == album[2].message_id
