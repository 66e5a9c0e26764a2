"""The Telegram side of an erasure is owed work, recorded with the erasure: nothing lost through crashes.

An erasure (``/deleteme``, ``/forget``) commits in the database, then redraws the staff
chat's cards that showed the person (cases and their earlier copies, moderation,
report and feedback cards), renames and closes their cases' topics and tells staff
which cases were closed or released. Each of those is recorded in the erasure's
transaction (``redraws`` for the edits, the outbox for the lines to staff), done right
after the commit, and marked done once it succeeded; the sweep finishes what a crash,
Telegram's flood limit or a timeout left, a bounded number of times, and never posts a
line twice. A card Telegram no longer has is done, not retried.
"""

from __future__ import annotations

import logging

import pytest

from tests.support import STAFF_CHAT
from tests.test_ads_flow import mod_card
from tests.test_escalation import card, open_ticket, staff_pair
from tests.test_feedback import feedback_card, give_feedback
from tests.test_notices import Killed, kill_at
from tests.test_privacy import ADMIN_ID, CHANNEL, a_full_history
from tests.test_repair import sweep

NO_RETRIES = {"telegram": {"max_retries": 0}}  # a 429 reaches the bot at once (no waiting in tests)
NAMES = ("Lerato", "Mokoena", "lerato_m")


def ticket_cards(desk, number):
    """Every copy of the case's card in the staff chat (the tracked one last)."""
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and m.text.startswith(f"🎫 #{number} ")]


def lines(desk, needle):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and needle in m.text]


def edits_of(desk, message):
    return [
        c for c in desk.tg.calls
        if c.method == "editMessageText" and int(c.params["chat_id"]) == message.chat_id and int(c.params["message_id"]) == message.message_id
    ]


async def owed(desk):
    """The redraws not done yet."""
    return await desk.scalar("SELECT count(*) FROM redraws WHERE done_at IS NULL")


async def crashed_erasure(desk, person, confirm):
    """``person`` presses Erase on ``confirm``; the bot dies right after the erasure's
    commit (at the answer to the press, its first call after it). Telegram delivers the
    press again after the restart: a duplicate, dropped."""
    kill_at(desk, "answerCallbackQuery")
    data = confirm.buttons[0][0]["callback_data"]  # Erase
    update = {"update_id": next(desk.tg._update_ids), **person.callback_update(data, confirm)}
    with pytest.raises(Killed):
        await desk.tg.feed(update)
    await desk.tg.feed(update)


@pytest.mark.parametrize("staff_forum", [False, True])
@pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]])
@pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}])
async def test_crash_after_the_erasure_commit_the_sweep_redraws_every_card_and_topic_and_tells_staff_once(
    desk, staff_forum, extra_chats, settings_overrides
):
    h = await a_full_history(desk)
    user, thandi = h["user"], h["thandi"]
    await thandi.send(f"/repost ticket {h['open']}", chat_id=STAFF_CHAT)  # an earlier copy of the open case's card
    number = await give_feedback(desk, user, "Lerato here: the search is slow")
    report = tuple((await desk.rows("SELECT card_chat_id, card_message_id FROM ad_reports"))[0])
    live = mod_card(desk, h["live"])
    post = await desk.scalar("SELECT published_message_id FROM ads WHERE id = :i", i=h["live"])
    shown = [*ticket_cards(desk, h["solved"]), *ticket_cards(desk, h["open"]), feedback_card(desk, number), live, desk.tg.messages[report]]
    assert len(ticket_cards(desk, h["open"])) == 2
    photos = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.kind == "photo"]  # her ads' albums (the other seller's too)
    theirs = {m.message_id for m in photos if m.file_id.startswith("photo-5001")}
    assert len(theirs) == 2
    assert all("Lerato" in m.text for m in shown)
    topics = {}
    if staff_forum:
        topics = {n: desk.tg.topic_named(STAFF_CHAT, f"#{n} · Lerato") for n in (h["solved"], h["open"])}
    await user.send("/deleteme")
    await crashed_erasure(desk, user, desk.tg.last_bot_message(5001))
    # committed: the account is gone; the staff chat still shows her
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5001") == 0
    assert "Lerato" in card(desk, h["open"]).text
    await sweep(desk)  # too fresh: the handler may be doing it right now
    assert "Lerato" in card(desk, h["open"]).text
    desk.clock.advance(minutes=3)
    await sweep(desk)
    for message in shown:
        text = desk.tg.messages[(message.chat_id, message.message_id)].text
        for name in NAMES:
            assert name not in text, (name, text)
    assert "closed" in card(desk, h["open"]).text
    assert all("👤 (erased user)" in m.text for m in [*ticket_cards(desk, h["solved"]), *ticket_cards(desk, h["open"])])
    for m in photos:  # her photos deleted by the sweep, nobody else's
        assert desk.tg.messages[(m.chat_id, m.message_id)].deleted == (m.message_id in theirs)
    assert ticket_cards(desk, h["open"])[0].reply_markup is None  # the earlier copy: no buttons
    assert desk.tg.messages[(live.chat_id, live.message_id)].text == f"🗑 Ad #{h['live']} was withdrawn: its owner's personal data was erased."
    assert "reported by (erased user)" in desk.tg.messages[report].text
    assert "(erased user)" in feedback_card(desk, number).text
    assert desk.tg.messages[(CHANNEL, post)].deleted
    if staff_forum:
        for n, topic in topics.items():
            assert desk.tg.topics[(STAFF_CHAT, topic)]["name"].startswith(f"#{n} · (erased user) · ")
        assert desk.tg.topics[(STAFF_CHAT, topics[h["open"]])]["closed"]
    assert len(lines(desk, f"#{h['open']} closed: the user's personal data was erased")) == 1
    assert lines(desk, f"#{h['solved']} closed") == []  # solved before: not closed by the erasure
    assert await owed(desk) == 0
    # later sweeps: nothing again
    calls = len(desk.tg.calls)
    for _ in range(2):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert [c.method for c in desk.tg.calls[calls:] if c.method in (
        "editMessageText", "editForumTopic", "closeForumTopic", "sendMessage", "deleteMessage", "editMessageCaption"
    )] == []
    assert len(lines(desk, f"#{h['open']} closed: the user's personal data was erased")) == 1
    assert desk.tg.errors() == []


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_crash_after_forgetting_a_staff_member_the_sweep_redraws_their_cases_and_tells_staff_once(desk, staff_forum):
    thandi, sipho = staff_pair(desk)
    admin = desk.tg.user(ADMIN_ID, "Admin")
    held = await open_ticket(desk, desk.tg.user(5401, "Musa"))
    await thandi.press("Claim", card(desk, held))
    done = await open_ticket(desk, desk.tg.user(5402, "Dineo"), text="where is my refund for the featured ad")
    await thandi.press("Claim", card(desk, done))
    await thandi.send(f"/resolve {done}", chat_id=STAFF_CHAT)
    number = await give_feedback(desk, desk.tg.user(5403, "Ayanda"), "Nice bot")
    await thandi.send("Thank you Ayanda", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    assert all("Thandi" in m.text for m in (card(desk, held), card(desk, done), feedback_card(desk, number)))
    await admin.send("/forget @thandi_support", chat_id=STAFF_CHAT)
    await crashed_erasure(desk, admin, desk.tg.last_bot_message(STAFF_CHAT))
    assert await desk.scalar("SELECT count(*) FROM staff_members WHERE id = 800001") == 0
    assert "Thandi" in card(desk, held).text
    desk.clock.advance(minutes=3)
    await sweep(desk)
    for shown in (card(desk, held), card(desk, done), feedback_card(desk, number)):
        assert "Thandi" not in shown.text, shown.text
    assert "🆕 new" in card(desk, held).text and "✋ Claim" in card(desk, held).button_texts
    assert "Answered by (a staff member whose data was erased)" in feedback_card(desk, number).text
    assert len(lines(desk, f"Case #{held} is back in the queue")) == 1
    assert lines(desk, f"Case #{done} is back in the queue") == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert len(lines(desk, f"Case #{held} is back in the queue")) == 1
    assert await owed(desk) == 0
    await sipho.press("Claim", card(desk, held))  # the case is Sipho's to take
    assert await desk.scalar("SELECT assignee_id FROM tickets WHERE id = :i", i=held) == 800002
    assert desk.tg.errors() == []


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
@pytest.mark.parametrize(
    ("staff_forum", "method", "kind"),
    [(False, "editMessageText", "flood"), (False, "editMessageText", "timeout"), (True, "editForumTopic", "timeout"),
     (True, "editForumTopic", "flood"), (False, "editMessageText", "unreachable")],
)
async def test_a_redraw_refused_for_now_is_done_by_a_later_sweep(desk, staff_forum, settings_overrides, method, kind):
    user = desk.tg.user(5404, "Lerato", last_name="Mokoena")
    thandi, _ = staff_pair(desk)
    earlier = await open_ticket(desk, user, text="my featured ad payment failed again")
    await thandi.press("Resolve", card(desk, earlier))
    number = await open_ticket(desk, user)
    desk.tg.fail(method, kind, chat_id=STAFF_CHAT, retry_after=30)
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    # the user's side as always: the confirmation, then the goodbye
    said = [m.text for m in desk.tg.chat_messages(5404) if m.from_bot][-2:]
    assert "Your personal data has been erased" in said[0] and "clean slate" in said[1]
    assert await desk.scalar("SELECT count(*) FROM users WHERE id = 5404") == 0
    if method == "editMessageText":  # the first edit in the staff chat: the earlier case's card
        assert "Lerato" in card(desk, earlier).text
    else:
        assert desk.tg.topic_named(STAFF_CHAT, f"#{earlier} · Lerato")
    assert len(lines(desk, f"#{number} closed: the user's personal data was erased")) == 1
    desk.clock.advance(minutes=3)
    await sweep(desk)
    for n in (number, earlier):
        assert "Lerato" not in card(desk, n).text and "Mokoena" not in card(desk, n).text
    if staff_forum:
        for n in (number, earlier):
            assert desk.tg.topic_named(STAFF_CHAT, f"#{n} · (erased user)")
        assert desk.tg.topics[(STAFF_CHAT, desk.tg.topic_named(STAFF_CHAT, f"#{number} · "))]["closed"]
    assert len(lines(desk, f"#{number} closed: the user's personal data was erased")) == 1
    assert await owed(desk) == 0
    assert [c.method for c in desk.tg.errors()] == ([] if kind == "unreachable" else [method])  # refused once, done once


async def test_a_card_staff_deleted_is_done_at_once_and_never_tried_again(desk, caplog):
    user = desk.tg.user(5405, "Lerato")
    number = await open_ticket(desk, user)
    gone = card(desk, number)
    desk.tg.messages[(STAFF_CHAT, gone.message_id)].deleted = True  # someone deleted it in Telegram
    await user.send("/deleteme")
    with caplog.at_level(logging.INFO):
        await user.press("Yes, erase my data")
    assert "clean slate" in desk.tg.last_bot_message(5405).text
    assert [c.error.description for c in desk.tg.errors()] == ["Bad Request: message to edit not found"]
    assert await owed(desk) == 0
    row = (await desk.rows("SELECT kind, attempts, error FROM redraws WHERE kind = 'ticket_card'"))[0]
    assert tuple(row) == ("ticket_card", 1, "Message to edit not found")
    assert "the card of ticket #%d" % number in caplog.text and "not tried again" in caplog.text
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(edits_of(desk, gone)) == 1
    assert len(lines(desk, f"#{number} closed: the user's personal data was erased")) == 1  # the line still goes


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_a_redraw_that_keeps_failing_is_given_up_after_a_bounded_number_of_tries(desk, settings_overrides, caplog):
    from bot.redraws import ATTEMPTS

    user = desk.tg.user(5406, "Lerato")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    await thandi.send(f"/repost ticket {number}", chat_id=STAFF_CHAT)
    copy = ticket_cards(desk, number)[0]
    desk.tg.fail("editMessageText", "timeout", chat_id=STAFF_CHAT, times=1000)
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    with caplog.at_level(logging.WARNING):
        for _ in range(ATTEMPTS + 3):
            desk.clock.advance(minutes=3)
            await sweep(desk)
    assert len(edits_of(desk, copy)) == ATTEMPTS
    assert await owed(desk) == 0
    assert await desk.scalar("SELECT count(*) FROM redraws WHERE error LIKE 'given up%'") == 2  # the card and its copy
    given_up = [r for r in caplog.records if r.levelno == logging.ERROR and "given up" in r.getMessage()]
    assert len(given_up) == 2
    assert len(lines(desk, f"#{number} closed: the user's personal data was erased")) == 1


async def test_a_normal_erasure_does_everything_at_once_and_leaves_nothing_owed(desk):
    user = desk.tg.user(5407, "Lerato")
    number = await open_ticket(desk, user)
    fb = await give_feedback(desk, user, "Lerato likes the bot")
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    assert "Lerato" not in card(desk, number).text and "Lerato" not in feedback_card(desk, fb).text
    assert await owed(desk) == 0
    assert await desk.scalar("SELECT count(*) FROM redraws") >= 2
    assert await desk.scalar("SELECT count(*) FROM notices WHERE kind = 'erasure_closed' AND state = 'sent'") == 1
    calls = len(desk.tg.calls)
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert [c.method for c in desk.tg.calls[calls:]] == []
    assert desk.tg.errors() == []
