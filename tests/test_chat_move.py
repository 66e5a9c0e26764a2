"""A staff chat upgraded to a supergroup (a new chat id): nothing waiting in it is lost.

Everything keyed by the old id moves in one transaction with the stored move: the
tickets, a staff member's pending "Answer" to a feedback, a moderator's pending typed
"Other…" reason, ``/kb`` drafts; the cards still waiting for someone (an ad to moderate,
unanswered feedback, open tickets) appear again in the new chat.
"""

from __future__ import annotations

import pytest

from tests.test_ads_flow import post_ad
from tests.test_escalation import open_ticket
from tests.test_feedback import give_feedback
from tests.test_repair import sweep
from tests.test_send_errors import MOVED, NEW_CHAT, OLD_CHAT

USER = 5401


@pytest.fixture
def extra_chats():
    return [(OLD_CHAT, "Support staff (group)", False)]


def bot_messages(desk, chat_id, start):
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot and m.text.startswith(start)]


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_everything_waiting_in_the_staff_chat_follows_it_to_the_supergroup(desk):
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    thandi = desk.tg.staff(800011, "Thandi", OLD_CHAT, username="thandi_support")
    sipho = desk.tg.staff(800012, "Sipho", OLD_CHAT, username="sipho_support")
    mo = desk.tg.staff(810001, "Moderator Mo", OLD_CHAT, status="administrator")
    # an open ticket, two feedback (Thandi pressed Answer on the first), an ad waiting
    # for moderation (Mo pressed Request changes -> Other…), Sipho's /kb add at its title
    naledi = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, naledi)
    lerato, ayanda = desk.tg.user(7001, "Lerato"), desk.tg.user(7002, "Ayanda")
    first = await give_feedback(desk, lerato, "Please add a dark mode")
    second = await give_feedback(desk, ayanda, "Search by town, please")
    await thandi.press("Answer", bot_messages(desk, OLD_CHAT, f"✍️ Feedback #{first} ")[0])
    seller = desk.tg.user(6014, "Nomvula")
    ad_id = await post_ad(desk, seller)
    await mo.press("Request changes", bot_messages(desk, OLD_CHAT, f"📋 Ad #{ad_id} ")[-1])
    await mo.press("Other", bot_messages(desk, OLD_CHAT, f"📋 Ad #{ad_id} ")[-1])
    await sipho.send("/kb add", chat_id=OLD_CHAT)
    assert "Send the title" in desk.tg.last_bot_message(OLD_CHAT).text

    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    await desk.tg.announce_migration(OLD_CHAT, NEW_CHAT, by=thandi.data)

    # one transaction moved every row keyed by the old id
    assert await desk.scalar("SELECT new_chat_id FROM chat_migrations") == NEW_CHAT
    assert await desk.scalar("SELECT staff_chat_id FROM tickets") == NEW_CHAT
    assert [tuple(r) for r in await desk.rows("SELECT chat_id, user_id, kind, ref_id FROM pending_inputs WHERE user_id = 800011")] == [
        (NEW_CHAT, 800011, "feedback_answer", first)
    ]
    assert [tuple(r) for r in await desk.rows("SELECT chat_id, staff_id, step FROM kb_drafts")] == [(NEW_CHAT, 800012, "title")]
    keys = [r[0] for r in await desk.rows("SELECT key FROM app_state WHERE key LIKE 'mod_other:%'")]
    assert keys == [f"mod_other:{NEW_CHAT}:810001"]
    assert await desk.scalar("SELECT count(*) FROM feedback WHERE staff_chat_id = :old", old=OLD_CHAT) == 0
    notice = bot_messages(desk, NEW_CHAT, "⚠️ This chat has a new id")
    assert len(notice) == 1 and "1 ticket(s) moved here" in notice[0].text and "3 card(s)" in notice[0].text
    assert "2 typed answer(s) the bot was waiting for and 1 /kb draft(s) carry on here" in notice[0].text
    # the ad's card is in the new chat at once, with its buttons
    ad_card = bot_messages(desk, NEW_CHAT, f"📋 Ad #{ad_id} ")
    assert len(ad_card) == 1 and "Approve" in " ".join(ad_card[0].button_texts)

    # what each of them types next, in the new chat, lands where it was meant to
    await mo.send("Show the odometer in a photo", chat_id=NEW_CHAT)
    assert await desk.scalar("SELECT status FROM ads") == "changes_requested"
    assert "Show the odometer in a photo" in desk.tg.last_bot_message(6014).text
    await thandi.send("Dark mode is coming in March.", chat_id=NEW_CHAT)
    assert "Dark mode is coming in March." in desk.tg.last_bot_message(7001).text
    assert await desk.scalar("SELECT answered_by FROM feedback WHERE id = :i", i=first) == 800011
    await sipho.send("Can I swap my bicycle for a laptop?", chat_id=NEW_CHAT)
    assert "Send the answer" in desk.tg.last_bot_message(NEW_CHAT).text

    # the sweep posts fresh cards: the open ticket's and the unanswered feedback's (once)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    await sweep(desk)
    ticket_cards = bot_messages(desk, NEW_CHAT, f"🎫 #{number} ")
    feedback_cards = bot_messages(desk, NEW_CHAT, f"✍️ Feedback #{second} ")
    assert len(ticket_cards) == 1 and len(feedback_cards) == 1
    assert bot_messages(desk, NEW_CHAT, f"✍️ Feedback #{first} ") == []  # answered meanwhile
    # and they work
    await thandi.send("Which card did you pay with?", chat_id=NEW_CHAT, reply_to=ticket_cards[0])
    assert "Which card did you pay with?" in desk.tg.last_bot_message(USER).text
    await thandi.send("Town search is planned.", chat_id=NEW_CHAT, reply_to=feedback_cards[0])
    assert "Town search is planned." in desk.tg.last_bot_message(7002).text
    assert desk.tg.errors() == []  # nothing was sent to the old id


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_a_silent_upgrade_found_by_posting_an_ad_moves_everything_and_posts_the_ad_once(desk):
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    mo = desk.tg.staff(810001, "Moderator Mo", OLD_CHAT, status="administrator")
    first_seller, second_seller = desk.tg.user(6015, "Sizwe"), desk.tg.user(6016, "Zanele")
    waiting = await post_ad(desk, first_seller)
    await mo.press("Request changes", bot_messages(desk, OLD_CHAT, f"📋 Ad #{waiting} ")[-1])
    await mo.press("Other", bot_messages(desk, OLD_CHAT, f"📋 Ad #{waiting} ")[-1])
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)  # no service message reached the bot
    newest = await post_ad(desk, second_seller)  # its card bounces off the old id: the bot moves
    assert await desk.scalar("SELECT mod_chat_id FROM ads WHERE id = :i", i=newest) == NEW_CHAT
    assert len(bot_messages(desk, NEW_CHAT, f"📋 Ad #{newest} ")) == 1
    assert len(bot_messages(desk, NEW_CHAT, f"📋 Ad #{waiting} ")) == 1  # the older card, posted again
    await mo.send("Add the service book", chat_id=NEW_CHAT)  # the "Other…" wait moved too
    assert await desk.scalar("SELECT decision_note FROM ads WHERE id = :i", i=waiting) == "Add the service book"


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_an_open_ad_report_gets_its_card_again_in_the_new_chat(desk):
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    mo = desk.tg.staff(810001, "Moderator Mo", OLD_CHAT, status="administrator")
    seller, buyer = desk.tg.user(9103, "Seller"), desk.tg.user(9104, "Buyer")
    ad_id = await post_ad(desk, seller)
    await mo.press("Approve", bot_messages(desk, OLD_CHAT, f"📋 Ad #{ad_id} ")[-1])
    await buyer.send(f"/report {ad_id}")
    await buyer.press("Wrong category")
    report_id = await desk.scalar("SELECT id FROM ad_reports")
    assert len(bot_messages(desk, OLD_CHAT, f"🚩 Report #{report_id} ")) == 1
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    await desk.tg.announce_migration(OLD_CHAT, NEW_CHAT, by=mo.data)
    cards = bot_messages(desk, NEW_CHAT, f"🚩 Report #{report_id} ")
    assert len(cards) == 1
    assert await desk.scalar("SELECT card_chat_id FROM ad_reports") == NEW_CHAT
    assert bot_messages(desk, NEW_CHAT, f"📋 Ad #{ad_id} ") == []  # decided: no card again
    await mo.press("Dismiss", cards[0])
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    assert desk.tg.errors() == []


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_an_ad_resubmitted_after_changes_gets_one_card_when_its_post_finds_the_upgrade(desk):
    """The resubmitted ad still names its first card's place (the old chat): the move
    posted its card again, and then the interrupted post of the resubmission posted it
    a second time."""
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    mo = desk.tg.staff(810001, "Moderator Mo", OLD_CHAT, status="administrator")
    seller = desk.tg.user(6017, "Lerato")
    ad_id = await post_ad(desk, seller)
    await mo.press("Request changes", bot_messages(desk, OLD_CHAT, f"📋 Ad #{ad_id} ")[-1])
    await mo.press("Unrealistic price", bot_messages(desk, OLD_CHAT, f"📋 Ad #{ad_id} ")[-1])
    await seller.press("Change it", desk.tg.last_bot_message(6017))
    await seller.send("R 95 000")
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)  # no service message reached the bot
    await seller.press("Submit")  # its card bounces off the old id: the bot moves
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ad_id) == "submitted"
    assert len(bot_messages(desk, NEW_CHAT, f"📋 Ad #{ad_id} ")) == 1
    assert await desk.scalar("SELECT mod_chat_id FROM ads WHERE id = :i", i=ad_id) == NEW_CHAT
