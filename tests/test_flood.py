"""Flood from users: a per-user limit per minute with one notice, nobody else slowed,
staff chats exempt; open tickets per user capped."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT

SAFE_MEET = "is it safe to meet a buyer"  # answered from the knowledge base
NOTICE = "You are sending messages faster than I can read them"
DEFAULT = 20  # limits.messages_per_minute when config.toml does not say


@pytest.fixture
def settings_overrides():
    return {"limits": {"messages_per_minute": DEFAULT}}


def test_the_default_limits():
    from bot.config import parse_settings

    limits = parse_settings({}).limits
    assert (limits.messages_per_minute, limits.open_tickets_per_user) == (DEFAULT, 3)


def _bot_texts(desk, chat_id):
    return [m.text for m in desk.tg.chat_messages(chat_id) if m.from_bot]


async def test_a_flooding_user_gets_20_answers_and_one_notice_and_nobody_else_is_slowed(desk):
    flooder = desk.tg.user(6101, "Spammy")
    for _ in range(25):
        await flooder.send(SAFE_MEET)
    texts = _bot_texts(desk, 6101)
    assert len(texts) == 21
    assert sum(t.startswith("How do I meet") for t in texts) == 20
    assert sum(NOTICE in t for t in texts) == 1 and NOTICE in texts[-1] and "20 a minute" in texts[-1]
    # what was dropped never reached the handlers or the database
    assert await desk.scalar("SELECT count(*) FROM questions WHERE user_id = 6101") == 20
    # another user, at the same moment, is answered at once
    other = desk.tg.user(6102, "Patient")
    await other.send(SAFE_MEET)
    assert _bot_texts(desk, 6102)[-1].startswith("How do I meet")
    # button presses count too; a dropped press is still answered (no endless spinner)
    answer = desk.tg.chat_messages(6101)[1]
    calls = await flooder.press("Helpful", answer)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert await desk.scalar("SELECT count(*) FROM questions WHERE user_id = 6101 AND vote IS NOT NULL") == 0
    # a minute later the flooder is answered again
    desk.clock.advance(minutes=1)
    await flooder.send(SAFE_MEET)
    assert _bot_texts(desk, 6101)[-1].startswith("How do I meet")
    assert await desk.scalar("SELECT count(*) FROM questions WHERE user_id = 6101") == 21


async def test_one_notice_per_window_while_the_flood_goes_on(desk):
    flooder = desk.tg.user(6103, "Steady")
    for _ in range(40):  # 40 at once: 20 pass, one notice
        await flooder.send("hello?")
    desk.clock.advance(seconds=30)  # half a minute: 10 tokens back, no second notice yet
    for _ in range(15):
        await flooder.send("hello?")
    texts = _bot_texts(desk, 6103)
    assert sum(NOTICE in t for t in texts) == 1 and len(texts) == 20 + 1 + 10
    desk.clock.advance(seconds=31)  # a minute after the notice: a flood earns one more
    for _ in range(20):
        await flooder.send("hello?")
    assert sum(NOTICE in t for t in _bot_texts(desk, 6103)) == 2


async def test_staff_chats_are_exempt(desk):
    thandi = desk.tg.staff(800021, "Thandi", STAFF_CHAT)
    before = len(_bot_texts(desk, STAFF_CHAT))
    for _ in range(25):
        await thandi.send("/queue", chat_id=STAFF_CHAT)
    assert len(_bot_texts(desk, STAFF_CHAT)) - before == 25
    assert not any(NOTICE in t for t in _bot_texts(desk, STAFF_CHAT))


@pytest.mark.parametrize("settings_overrides", [{"limits": {"messages_per_minute": 0}}])
async def test_zero_turns_the_limit_off(desk):
    user = desk.tg.user(6104, "Chatty")
    for _ in range(30):
        await user.send(SAFE_MEET)
    assert await desk.scalar("SELECT count(*) FROM questions WHERE user_id = 6104") == 30


async def _open(desk, user, category, text):
    await user.send("/support")
    await user.press(category)
    await user.send(text)


async def test_open_tickets_per_user_are_capped_with_a_clear_message(desk):
    user = desk.tg.user(6105, "Busy")
    await _open(desk, user, "Payments and featured ads", "charged twice")
    await _open(desk, user, "Account and login", "cannot log in")
    await _open(desk, user, "Something is broken", "the app crashes")
    assert await desk.scalar("SELECT count(*) FROM tickets WHERE user_id = 6105 AND status = 'new'") == 3
    await user.send("/support")
    await user.press("Something else")
    refused = _bot_texts(desk, 6105)[-1]
    assert "You already have 3 open cases" in refused and "/mytickets" in refused
    assert await desk.scalar("SELECT count(*) FROM tickets WHERE user_id = 6105") == 3  # not even a draft
    # asking again in a category with an open case still joins it
    await user.send("/support")
    await user.press("Payments and featured ads")
    assert "You already have an open case" in _bot_texts(desk, 6105)[-1]
    # closing one makes room
    desk.clock.advance(minutes=1)
    await user.send("/mytickets")
    await user.press("Close case #1")
    await _open(desk, user, "Something else", "one more thing")
    assert await desk.scalar("SELECT count(*) FROM tickets WHERE user_id = 6105 AND status = 'new'") == 3
    assert await desk.scalar("SELECT category FROM tickets WHERE user_id = 6105 ORDER BY id DESC LIMIT 1") == "other"


@pytest.mark.parametrize("settings_overrides", [{"limits": {"open_tickets_per_user": 1}}])
async def test_appeals_are_never_capped(desk):
    user = desk.tg.user(6106, "Penalised")
    await _open(desk, user, "Payments and featured ads", "charged twice")
    await user.send("/support")
    await user.press("Something else")
    assert "You already have 1 open case with our team" in _bot_texts(desk, 6106)[-1]
    # the Appeal button (under a penalty notice) opens a case all the same
    await user.press_data("ap:new", desk.tg.last_bot_message(6106))
    assert await desk.scalar("SELECT count(*) FROM tickets WHERE user_id = 6106 AND category = 'appeal' AND status IN ('draft', 'new')") == 1


async def test_an_album_counts_once(desk):
    """Telegram delivers each photo of an album as its own message; the album costs one."""
    seller = desk.tg.user(6111, "Photographer")
    for album in ("a1", "a2", "a3"):
        for _ in range(10):  # 30 photos in three albums: 3 of the 20 a minute
            await seller.send_photo(media_group_id=album)
    texts = _bot_texts(desk, 6111)
    assert len(texts) == 30 and not any(NOTICE in t for t in texts)
    for _ in range(17):  # 17 more messages are still allowed, the 18th is not
        await seller.send(SAFE_MEET)
    await seller.send(SAFE_MEET)
    assert NOTICE in _bot_texts(desk, 6111)[-1]
