"""Telegram refusing or losing what the bot sends: 429, timeouts, 403, 400, a staff chat
upgraded to a supergroup. Injected through the fake API, answered exactly like Telegram
answers, so PTB raises its real exceptions (RetryAfter, TimedOut, Forbidden, BadRequest,
ChatMigrated) and its real AIORateLimiter retries."""

from __future__ import annotations

import json
import logging
import random
import time

import pytest
import regex

from bot.app import build_app, running
from bot.telegram_html import utf16_length
from handlers.casework import clip, split_text
from tests.support import STAFF_CHAT, make_settings
from tests.test_escalation import card, open_ticket, staff_pair

USER = 5301


async def _case(desk, user_id=USER, *, claim=True):
    user = desk.tg.user(user_id, "Naledi")
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, user)
    if claim:
        await thandi.press("Claim", card(desk, number))
    return user, thandi, number


def _user_texts(desk, user_id=USER):
    return [m.text for m in desk.tg.chat_messages(user_id) if m.from_bot]


def _staff_texts(desk, chat_id=STAFF_CHAT):
    return [m.text for m in desk.tg.chat_messages(chat_id) if m.from_bot]


# ------------------------------------------------------------------ 429 Too Many Requests


async def test_429_is_waited_out_and_retried_by_the_rate_limiter(desk):
    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", "flood", chat_id=USER, retry_after=1)
    before = len(desk.tg.calls)
    started = time.monotonic()
    await thandi.send("Your refund is on its way", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert time.monotonic() - started >= 1.0  # retry_after honoured
    calls = [c for c in desk.tg.calls[before:] if c.method == "sendMessage" and c.params.get("chat_id") == USER]
    assert [c.error.code if c.error else "ok" for c in calls] == [429, "ok"]
    assert sum("Your refund is on its way" in t for t in _user_texts(desk)) == 1
    assert await desk.scalar("SELECT delivered FROM ticket_messages WHERE direction = 'out'") in (1, True)


NO_RETRIES = {"telegram": {"max_retries": 0}}  # a 429 reaches the bot at once (no waiting in tests)


@pytest.mark.parametrize("settings_overrides", [{"telegram": {"max_retries": 1}}])
async def test_429_after_every_retry_keeps_the_reply_queued_and_the_sweep_sends_it_once_before_the_next(desk):
    """Telegram's flood limit after every retry of the rate limiter: surely not sent, so
    the reply is not "not delivered" and staff are not told; it stays queued, and the
    sweep sends it once retry_after is over. A reply written meanwhile waits behind it:
    the user gets both, in the order staff wrote them, once each."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", "flood", chat_id=USER, times=2, retry_after=1)
    await thandi.send("Please send the receipt", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert not any("Please send the receipt" in t for t in _user_texts(desk))
    row = (await desk.rows("SELECT send_state, delivered, error FROM ticket_messages WHERE text = 'Please send the receipt'"))[0]
    assert (row[0], row[2]) == ("pending", None) and row[1] is not False
    assert not any("Not delivered" in t for t in _staff_texts(desk))
    await thandi.send("Second try", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert not any("Second try" in t for t in _user_texts(desk))  # not before the first
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"
    desk.clock.advance(minutes=3)
    await sweep(desk)
    got = [t for t in _user_texts(desk) if "Please send the receipt" in t or "Second try" in t]
    assert len(got) == 2 and "Please send the receipt" in got[0] and "Second try" in got[1]
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len([t for t in _user_texts(desk) if "Please send the receipt" in t or "Second try" in t]) == 2
    rows = await desk.rows("SELECT send_state, delivered FROM ticket_messages WHERE direction = 'out' ORDER BY id")
    assert [tuple(r) for r in rows] == [("sent", True), ("sent", True)]
    assert not any("Not delivered" in t for t in _staff_texts(desk))
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE note LIKE '%not delivered%'") == 0


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
@pytest.mark.parametrize("direction", ["to_user", "to_staff"])
async def test_relay_refused_for_the_flood_limit_waits_for_retry_after_and_is_sent_once(desk, direction, settings_overrides):
    """A relay refused with 429 is sent by the sweep only once Telegram's retry_after
    (here 10 minutes) is over, then once; the user is not asked to resend, staff are not
    told it failed."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk)
    to = USER if direction == "to_user" else STAFF_CHAT
    desk.tg.fail("sendMessage", "flood", chat_id=to, retry_after=600)
    if direction == "to_user":
        await thandi.send("Your refund JK90 is on its way", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    else:
        await user.send("My reference is JK90")
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text LIKE '%JK90%'") == "pending"
    for _ in range(3):  # 9 minutes: retry_after is not over
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(_tries(desk, "JK90")) == 1
    desk.clock.advance(minutes=2)
    await sweep(desk)
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(_tries(desk, "JK90")) == 2
    arrived = [t for t in (_user_texts(desk) if direction == "to_user" else _staff_texts(desk)) if "JK90" in t]
    assert len(arrived) == 1
    assert tuple((await desk.rows("SELECT send_state, delivered FROM ticket_messages WHERE text LIKE '%JK90%'"))[0]) == ("sent", True)
    assert not any("could not reach the support team" in t for t in _user_texts(desk))
    assert not any("Not delivered" in t for t in _staff_texts(desk))


# ------------------------------------------------------------------ timeouts


async def test_staff_reply_that_timed_out_after_arriving_is_not_sent_twice(desk):
    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=USER, delivered=True)
    await thandi.send("We refunded R98", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert sum("We refunded R98" in t for t in _user_texts(desk)) == 1  # arrived once, never resent
    assert len([c for c in desk.tg.calls if c.method == "sendMessage" and c.params.get("chat_id") == USER and "R98" in c.params["text"]]) == 1
    delivered, error = (await desk.rows("SELECT delivered, error FROM ticket_messages WHERE direction = 'out'"))[0]
    assert delivered is None and "timed out" in error
    assert "Maybe not delivered" in _staff_texts(desk)[-1]
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    assert "We refunded R98 ❔ maybe not delivered" in _staff_texts(desk)[-1]


async def test_user_message_that_timed_out_is_recorded_as_maybe_and_the_user_not_asked_again(desk):
    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT)
    await user.send("Here is the reference: AB12")
    row = (await desk.rows("SELECT delivered, error FROM ticket_messages WHERE text = 'Here is the reference: AB12'"))[0]
    assert row[0] is None and "timed out" in row[1]
    assert not any("could not reach the support team" in t for t in _user_texts(desk))
    assert len([c for c in desk.tg.calls if c.method == "sendMessage" and "AB12" in str(c.params.get("text"))]) == 1


async def test_user_message_answered_with_a_bad_gateway_is_maybe_delivered_and_the_user_not_told_it_failed(desk):
    """A proxy in front of the Bot API answers 502: the message may have reached Telegram
    (handlers.delivery.failure: "it may have arrived"), like a timeout. It is recorded
    maybe delivered, not "not delivered", and the user is not asked to send it again
    (which would put it twice in front of staff)."""
    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", "bad_gateway", chat_id=STAFF_CHAT)
    await user.send("Here is the reference: CD34")
    row = (await desk.rows("SELECT delivered, error FROM ticket_messages WHERE text = 'Here is the reference: CD34'"))[0]
    assert row[0] is None and "may have arrived" in row[1]
    assert not any("could not reach the support team" in t for t in _user_texts(desk))
    await thandi.send(f"/ticket {number}", chat_id=STAFF_CHAT)
    assert "CD34 ❔ maybe not delivered" in _staff_texts(desk)[-1]


# ------------------------------------------------------------------ the Bot API out of reach


def _staff_copies(desk, needle):
    return [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and needle in (m.text or "")]


def _tries(desk, needle):
    return [c for c in desk.tg.calls if c.method in ("sendMessage", "copyMessage") and needle in str(c.params.get("text", c.params.get("caption", "")))]


@pytest.mark.parametrize("kind", ["text", "photo"])
async def test_user_message_that_found_the_bot_api_out_of_reach_stays_queued_and_the_sweep_sends_it_once(desk, kind):
    """The connection to the Bot API refused (a server restarting, a network outage):
    nothing was sent, so the message is not "not delivered" and the user is not asked to
    send it again; it stays queued, and the sweep sends it once the Bot API is back, once."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk)
    method = "sendMessage" if kind == "text" else "copyMessage"
    desk.tg.fail(method, "unreachable", chat_id=STAFF_CHAT, times=2)
    if kind == "text":
        await user.send("Here is the reference: EF56")
    else:
        await user.send_photo("Here is the receipt EF56")
    row = (await desk.rows("SELECT send_state, delivered, error FROM ticket_messages WHERE text LIKE '%EF56'"))[0]
    assert (row[0], row[2]) == ("pending", None) and row[1] is not False
    assert not any("could not reach the support team" in t for t in _user_texts(desk))
    assert _staff_copies(desk, "EF56") == []
    await sweep(desk)  # within the repair grace: the handler's turn
    assert len(_tries(desk, "EF56")) == 1
    desk.clock.advance(minutes=3)
    await sweep(desk)  # still out of reach: still queued
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text LIKE '%EF56'") == "pending"
    desk.clock.advance(minutes=3)
    await sweep(desk)
    [copy] = _staff_copies(desk, "EF56")
    assert copy.reply_to == card(desk, number).message_id
    row = (await desk.rows("SELECT send_state, delivered, staff_message_id FROM ticket_messages WHERE text LIKE '%EF56'"))[0]
    assert tuple(row) == ("sent", True, copy.message_id)
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(_staff_copies(desk, "EF56")) == 1 and len(_tries(desk, "EF56")) == 3
    assert not any("could not reach the support team" in t for t in _user_texts(desk))
    # a staff reply to the copy reaches the user
    await thandi.send("Thanks, found it.", chat_id=STAFF_CHAT, reply_to=copy)
    assert "Thanks, found it." in _user_texts(desk)[-1]


async def test_user_message_whose_ticket_card_found_the_bot_api_out_of_reach_waits_for_the_card_and_is_sent_once(desk):
    """A ticket without a card (the bot stopped before posting it): the user's message
    needs one first, and the Bot API is out of reach for both. The message stays queued;
    the sweep posts the card, then the message, once; the user is not asked to resend."""
    from tests.test_repair import cards, crashed_intake, sweep

    staff_pair(desk)
    user, number = await crashed_intake(desk, user_id=USER)
    desk.tg.fail("sendMessage", "unreachable", chat_id=STAFF_CHAT, times=3)
    await user.send("My order is GH78")
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text = 'My order is GH78'") == "pending"
    assert not any("could not reach the support team" in t for t in _user_texts(desk))
    desk.clock.advance(minutes=3)
    await sweep(desk)  # still out of reach: the sweep's card, then the message's own try at one
    assert cards(desk, number) == [] and _staff_copies(desk, "GH78") == []
    desk.clock.advance(minutes=3)
    await sweep(desk)
    [posted] = cards(desk, number)
    [copy] = _staff_copies(desk, "GH78")
    assert copy.reply_to == posted.message_id
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len(cards(desk, number)) == 1 and len(_staff_copies(desk, "GH78")) == 1
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text = 'My order is GH78'") == "sent"
    assert not any("could not reach the support team" in t for t in _user_texts(desk))


@pytest.mark.parametrize("kind", ["text", "photo"])
async def test_staff_reply_that_found_the_bot_api_out_of_reach_stays_queued_and_the_sweep_sends_it_once(desk, kind):
    """The user side of the same: a staff reply that finds the Bot API out of reach is
    not "not delivered" (nothing was sent) and staff are not told it failed (a line that
    would fail in the same outage); it stays queued and the sweep sends it once the Bot
    API is back, once."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk)
    method = "sendMessage" if kind == "text" else "copyMessage"
    desk.tg.fail(method, "unreachable", chat_id=USER, times=2)
    if kind == "text":
        await thandi.send("Your refund LM12 is on its way", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    else:
        await thandi.send_photo("The refund slip LM12", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    row = (await desk.rows("SELECT send_state, delivered, error FROM ticket_messages WHERE text LIKE '%LM12%'"))[0]
    assert (row[0], row[2]) == ("pending", None) and row[1] is not False
    assert not any("Not delivered" in t for t in _staff_texts(desk))
    assert not any("LM12" in (m.text or "") for m in desk.tg.chat_messages(USER) if m.from_bot)
    await sweep(desk)  # within the repair grace
    assert len(_tries(desk, "LM12")) == 1
    desk.clock.advance(minutes=3)
    await sweep(desk)  # still out of reach: still queued
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text LIKE '%LM12%'") == "pending"
    desk.clock.advance(minutes=3)
    await sweep(desk)
    [got] = [m for m in desk.tg.chat_messages(USER) if m.from_bot and "LM12" in (m.text or "")]
    assert "Thandi (support, case #" in got.text
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    assert len([m for m in desk.tg.chat_messages(USER) if m.from_bot and "LM12" in (m.text or "")]) == 1
    assert len(_tries(desk, "LM12")) == 3
    row = (await desk.rows("SELECT send_state, delivered, user_message_id FROM ticket_messages WHERE text LIKE '%LM12%'"))[0]
    assert tuple(row) == ("sent", True, got.message_id)
    assert not any("Not delivered" in t for t in _staff_texts(desk))
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE note LIKE '%not delivered%'") == 0
    # the user's reply to it reaches the case
    await user.send("Received, thanks", reply_to=got)
    assert "Received, thanks" in _staff_texts(desk)[-1]


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_a_message_that_reopened_the_case_in_an_outage_goes_into_the_reopened_topic_and_the_card_is_redrawn(desk, staff_forum):
    """The user's reply reopens a solved case while the Bot API is out of reach: neither
    the topic's reopening nor the message got through. The sweep that sends the message
    later does what the handler's relay does around it: the topic is opened again first
    (Telegram refuses a message in a closed topic), and the card shows the case open."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk)
    await thandi.send("Done, refunded.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.press("Resolve", card(desk, number))
    notice = next(m for m in desk.tg.chat_messages(USER) if "marked as solved" in m.text)
    assert "✅ resolved" in card(desk, number).text
    desk.tg.fail("sendMessage", "unreachable", chat_id=STAFF_CHAT)
    desk.tg.fail("reopenForumTopic", "unreachable", chat_id=STAFF_CHAT)
    desk.tg.fail("editMessageText", "unreachable", chat_id=STAFF_CHAT)  # the handler's redraw of the card
    await user.send("The refund has not arrived NP34", reply_to=notice)
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text LIKE '%NP34'") == "pending"
    assert _staff_copies(desk, "NP34") == [] and "✅ resolved" in card(desk, number).text
    desk.clock.advance(minutes=3)
    await sweep(desk)
    [copy] = _staff_copies(desk, "NP34")
    alert = card(desk, number)
    if staff_forum:
        assert copy.thread_id == alert.thread_id and not desk.tg.topics[(STAFF_CHAT, alert.thread_id)]["closed"]
    else:
        assert copy.reply_to == alert.message_id
    assert "✋ claimed" in alert.text and "✅ resolved" not in alert.text
    assert tuple((await desk.rows("SELECT send_state, delivered FROM ticket_messages WHERE text LIKE '%NP34'"))[0]) == ("sent", True)
    assert not any("could not reach the support team" in t for t in _user_texts(desk))


async def test_a_staff_reply_sent_by_the_sweep_after_an_outage_redraws_the_card(desk):
    """A first reply claims the case and leaves it waiting on the user; in an outage
    neither the reply nor the card's redraw got through. The sweep sends the reply, then
    redraws the card as the direct relay would have."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk, claim=False)
    desk.tg.fail("sendMessage", "unreachable", chat_id=USER, times=2)  # the "on your case" notice, the reply
    desk.tg.fail("editMessageText", "unreachable", chat_id=STAFF_CHAT)
    await thandi.send("Checking your refund PQ56", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"
    assert "🆕 new" in card(desk, number).text
    desk.clock.advance(minutes=3)
    await sweep(desk)
    assert sum("PQ56" in t for t in _user_texts(desk)) == 1
    alert = card(desk, number)
    assert "⏳ waiting on the user" in alert.text and "Thandi" in alert.text


# ------------------------------------------------------------------ 403: the user blocked the bot


async def test_blocked_user_is_recorded_once_staff_told_and_the_case_goes_on(desk):
    user, thandi, number = await _case(desk, claim=False)
    desk.tg.fail("sendMessage", "blocked", chat_id=USER, times=2)
    await thandi.press("Claim", card(desk, number))  # the "on your case" notice bounces
    assert await desk.scalar("SELECT user_blocked_bot FROM tickets") in (1, True)
    await thandi.send("Are you there?", chat_id=STAFF_CHAT, reply_to=card(desk, number))  # the reply bounces too
    told = [t for t in _staff_texts(desk) if "blocked the bot" in t and not t.startswith("🎫")]
    assert len(told) == 2 and "Are you there?" in told[1]  # the notice once, the reply with its text
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE note LIKE '%blocked the bot%'") == 1
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"
    # the user starts the bot again and writes: the flag goes, the case carries on
    await user.send("Sorry, I blocked you by mistake")
    assert await desk.scalar("SELECT user_blocked_bot FROM tickets") in (0, False)
    assert "blocked you by mistake" in _staff_texts(desk)[-1]
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"


# ------------------------------------------------------------------ 400: too long, can't parse

HOSTILE = "</a> & <b>bold?</b> &amp; <script>x</script> \"q\" 'a' > < "


def _payloads(texts: list[str], header: str) -> list[str]:
    out = []
    for text in texts:
        assert text.startswith(header), text[:80]
        out.append(text[len(header):].lstrip("\n"))
    return out


async def test_hostile_5000_character_reply_arrives_whole_in_valid_pieces(desk):
    user, thandi, number = await _case(desk)
    words = (HOSTILE * 100)[:5000]
    before = len(_user_texts(desk))
    await thandi.send(words, chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert desk.tg.errors() == []  # Telegram refused nothing: no parse error, nothing too long
    pieces = _payloads(_user_texts(desk)[before:], f"💬 Thandi (support, case #{number}):")
    assert len(pieces) == 2
    assert "".join(pieces).replace(" ", "") == words.replace(" ", "")
    assert await desk.scalar("SELECT delivered FROM ticket_messages WHERE direction = 'out'") in (1, True)


async def test_emoji_at_the_split_point_are_never_cut(desk):
    user, thandi, number = await _case(desk)
    family = "👨‍👩‍👧"  # 5 code points, 8 UTF-16 units: one grapheme
    text = "x" * 4001 + family * 20 + "👍🏽" * 300 + "🇿🇦" * 100
    before = len(_user_texts(desk))
    await thandi.send(text, chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert desk.tg.errors() == []
    pieces = _payloads(_user_texts(desk)[before:], f"💬 Thandi (support, case #{number}):")
    assert "".join(pieces) == text
    for piece in pieces:  # every piece is whole graphemes of the original
        assert regex.fullmatch(r"x*(?:👨‍👩‍👧)*(?:👍🏽)*(?:🇿🇦)*", piece), piece[-20:]


async def test_hostile_long_user_message_reaches_staff_in_valid_pieces(desk):
    user, thandi, number = await _case(desk)
    text = ("🙂" + HOSTILE) * 90
    before = len(_staff_texts(desk))
    await user.send(text)
    assert desk.tg.errors() == []
    pieces = _payloads(_staff_texts(desk)[before:], f"👤 Naledi (#{number}):")
    assert len(pieces) >= 2 and "".join(pieces).replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize("kind", ["too_long", "parse"])
async def test_a_reply_telegram_refuses_is_marked_and_staff_told(desk, kind):
    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", kind, chat_id=USER)
    await thandi.send("Refused by Telegram", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    delivered, error = (await desk.rows("SELECT delivered, error FROM ticket_messages WHERE direction = 'out'"))[0]
    assert not delivered and ("too long" in error if kind == "too_long" else "can't parse" in error.lower())
    told = _staff_texts(desk)[-1]
    assert "Not delivered to the user" in told and "Refused by Telegram" in told


@pytest.mark.parametrize("refusal", ["blocked", "parse"])
async def test_the_line_about_an_undelivered_reply_survives_an_outage_of_the_staff_chat_and_is_posted_once(desk, refusal):
    """The user's side refuses a reply for good, and the staff chat is out of reach when
    the bot tells staff: the line is queued in the outbox with the failure's record, so
    the sweep posts it (with the text) once the chat is back, once."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", refusal, chat_id=USER)
    desk.tg.fail("sendMessage", "unreachable", chat_id=STAFF_CHAT)
    await thandi.send("Refund RS78 approved", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert await desk.scalar("SELECT delivered FROM ticket_messages WHERE direction = 'out'") in (0, False)
    assert not any("Not delivered" in t for t in _staff_texts(desk))
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'not_delivered'") == "pending"
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    [told] = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and "Not delivered to the user" in m.text]
    assert "RS78" in told.text and told.reply_to == card(desk, number).message_id
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'not_delivered'") == "sent"


async def test_the_line_that_the_user_blocked_the_bot_survives_an_outage_of_the_staff_chat(desk):
    """A notice to the user bounces with 403 while the staff chat is out of reach: the
    line that tells staff (once per ticket) is queued with the record, and the sweep
    posts it once the chat is back."""
    from tests.test_repair import sweep

    user, thandi, number = await _case(desk, claim=False)
    desk.tg.fail("sendMessage", "blocked", chat_id=USER)
    desk.tg.fail("sendMessage", "unreachable", chat_id=STAFF_CHAT)
    await thandi.press("Claim", card(desk, number))  # the "on your case" notice bounces
    assert await desk.scalar("SELECT user_blocked_bot FROM tickets") in (1, True)
    assert not any("blocked the bot" in t for t in _staff_texts(desk) if not t.startswith("🎫"))
    for _ in range(3):
        desk.clock.advance(minutes=3)
        await sweep(desk)
    told = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot and "blocked the bot" in m.text and not m.text.startswith("🎫")]
    assert len(told) == 1 and told[0].reply_to == card(desk, number).message_id


def test_split_text_respects_utf16_limits_and_keeps_everything():
    rnd = random.Random(8)
    alphabet = ["a", " ", "\n", "&", "<", "é", "e\u0301", "👍🏽", "👨‍👩‍👧", "🇿🇦", "中", "\u200b"]
    for _ in range(200):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 700)))
        limit = rnd.randint(10, 300)
        pieces = split_text(text, limit)
        assert all(utf16_length(p) <= limit for p in pieces)
        assert "".join(pieces).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")
        for piece in pieces:  # no grapheme is cut: each piece's graphemes are the original's
            assert set(regex.findall(r"\X", piece)) <= set(regex.findall(r"\X", text)) | {""}
        clipped = clip(text, limit)
        assert utf16_length(clipped) <= limit


# ------------------------------------------------------------------ the staff chat becomes a supergroup

OLD_CHAT = -4000001  # a basic group's id
NEW_CHAT = -1002000000002
MOVED = {"staff": {"chat_id": OLD_CHAT, "admin_ids": [900001]}}


@pytest.fixture
def extra_chats():
    return [(OLD_CHAT, "Support staff (group)", False)]


def _staff_in_old_chat(desk):
    desk.tg.chats[OLD_CHAT]["type"] = "group"
    return desk.tg.staff(800011, "Thandi", OLD_CHAT, username="thandi_support")


def _card_in(desk, chat_id, number):
    return next(m for m in desk.tg.chat_messages(chat_id) if m.from_bot and m.text.startswith(f"🎫 #{number} "))


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_staff_chat_upgraded_to_supergroup_is_followed_and_remembered(desk, caplog):
    thandi = _staff_in_old_chat(desk)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    assert _card_in(desk, OLD_CHAT, number)
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    with caplog.at_level(logging.CRITICAL):
        await user.send("More details: order 77")
    # Telegram said "upgraded to a supergroup": the bot moved, and re-sent the message there
    assert any(c.error is not None and c.error.parameters == {"migrate_to_chat_id": NEW_CHAT} for c in desk.tg.calls)
    texts = _staff_texts(desk, NEW_CHAT)
    assert any("This chat has a new id" in t and f"staff.chat_id = {NEW_CHAT}" in t for t in texts)
    new_card = _card_in(desk, NEW_CHAT, number)  # a fresh card in the new chat
    assert "More details: order 77" in texts[-1]
    assert await desk.scalar("SELECT new_chat_id FROM chat_migrations WHERE old_chat_id = :old", old=OLD_CHAT) == NEW_CHAT
    assert await desk.scalar("SELECT staff_chat_id FROM tickets") == NEW_CHAT
    assert await desk.scalar("SELECT delivered FROM ticket_messages WHERE text LIKE 'More details%'") in (1, True)
    assert any("update staff.chat_id" in r.getMessage().lower() or "Update staff.chat_id" in r.getMessage() for r in caplog.records)
    # staff answer in the new chat, by replying to the new card
    await thandi.send("Thanks, found it", chat_id=NEW_CHAT, reply_to=new_card)
    assert "Thanks, found it" in _user_texts(desk)[-1]

    # a restart with config.toml still naming the old chat: the stored move wins
    errors_before, calls_before = len(desk.tg.errors()), len(desk.tg.calls)
    app = build_app(make_settings(desk.db, **MOVED), request=desk.tg, clock=desk.clock)
    desk.tg.attach(app)
    with caplog.at_level(logging.CRITICAL):
        async with running(app):
            other = desk.tg.user(5302, "Ayanda")
            second = await open_ticket(desk, other)
            assert _card_in(desk, NEW_CHAT, second)
    desk.tg.attach(desk.app)
    assert len(desk.tg.errors()) == errors_before  # nothing was sent to the old id again
    assert [c.method for c in desk.tg.calls[calls_before:] if c.params.get("chat_id") == OLD_CHAT] == []
    assert any("config.toml: staff.chat_id is" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_the_migration_service_message_moves_the_bot_before_any_send_fails(desk):
    thandi = _staff_in_old_chat(desk)
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)
    await desk.tg.announce_migration(OLD_CHAT, NEW_CHAT, by=thandi.data)
    assert await desk.scalar("SELECT new_chat_id FROM chat_migrations") == NEW_CHAT
    notices = [t for t in _staff_texts(desk, NEW_CHAT) if "This chat has a new id" in t]
    assert len(notices) == 1  # both service messages, one notice
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    assert _card_in(desk, NEW_CHAT, number)
    assert desk.tg.errors() == []


# ------------------------------------------------------------------ the fake answers like Telegram


async def test_injected_faults_raise_ptbs_real_exceptions():
    from telegram import Bot
    from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TimedOut

    from bot.app import OFFLINE_TOKEN
    from bot.fake_telegram import FakeTelegram

    tg = FakeTelegram()
    tg.user(77, "Somebody")
    expected = {
        "flood": RetryAfter, "timeout": TimedOut, "blocked": Forbidden, "too_long": BadRequest,
        "parse": BadRequest, "migrated": ChatMigrated,
    }
    async with Bot(OFFLINE_TOKEN, request=tg) as bot:  # no rate limiter: every fault reaches us
        for kind, exception in expected.items():
            tg.fail("sendMessage", kind, chat_id=77, retry_after=7, migrate_to=-100777)
            with pytest.raises(exception) as caught:
                await bot.send_message(77, "hi")
            if kind == "migrated":
                assert caught.value.new_chat_id == -100777
            if kind == "flood":
                assert "Retry in 7 seconds" in caught.value.message
        await bot.send_message(77, "hi")  # each fault was used up
        tg.fail("sendMessage", "blocked", chat_id=78)  # another chat's fault does not hit this one
        await bot.send_message(77, "hi")
    assert [m.text for m in tg.chat_messages(77)] == ["hi", "hi"]
    tg.fail("sendMessage", "flood", retry_after=3)
    status, body = tg.dispatch("sendMessage", {"chat_id": 77, "text": "x"})  # Telegram's exact answer
    assert status == 429 and json.loads(body) == {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}
    }


@pytest.mark.parametrize("settings_overrides", [MOVED])
async def test_a_new_ticket_alert_follows_a_silent_chat_upgrade(desk):
    _staff_in_old_chat(desk)
    desk.tg.migrate_chat(OLD_CHAT, NEW_CHAT)  # no service message reached the bot
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    assert _card_in(desk, NEW_CHAT, number)
    assert f"Your case #{number}" in _user_texts(desk)[-1]
    assert await desk.scalar("SELECT staff_chat_id FROM tickets") == NEW_CHAT
    assert [c.error.code for c in desk.tg.errors()] == [400]  # one bounce, then the new id only


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_a_staff_reply_that_waits_behind_a_queued_one_still_redraws_the_card(desk, settings_overrides):
    """A first reply is held by Telegram's flood limit (queued); the user writes again,
    the case is staff's turn; a second reply waits behind the first (order), but the
    case is waiting on the user again: the card says so at once, not only when the
    sweep sends the replies."""
    user, thandi, number = await _case(desk)
    desk.tg.fail("sendMessage", "flood", chat_id=USER, retry_after=600)
    await thandi.send("Please send the receipt", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await user.send("Which receipt?")
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"
    assert "⏳ waiting on the user" not in card(desk, number).text
    await thandi.send("The one from the shop", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text = 'The one from the shop'") == "pending"
    assert await desk.scalar("SELECT status FROM tickets") == "waiting"
    assert "⏳ waiting on the user" in card(desk, number).text


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_a_user_message_held_or_waiting_behind_a_queued_one_still_redraws_the_card(desk, settings_overrides):
    """A staff reply leaves the case waiting on the user. The user's answer is held by
    Telegram's flood limit in the staff chat (queued), a second one waits behind it:
    either way the case is staff's turn again, and the card says so at once, not only
    when the sweep sends the messages."""
    user, thandi, number = await _case(desk)
    await thandi.send("Please send the receipt", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert "⏳ waiting on the user" in card(desk, number).text
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, retry_after=600)
    await user.send("Here it is: RC77")
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text = 'Here it is: RC77'") == "pending"
    assert await desk.scalar("SELECT status FROM tickets") == "claimed"
    assert "⏳ waiting on the user" not in card(desk, number).text and "✋ claimed" in card(desk, number).text
    await thandi.send("Thanks, checking", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    assert "⏳ waiting on the user" in card(desk, number).text
    await user.send("And RC78")
    assert await desk.scalar("SELECT send_state FROM ticket_messages WHERE text = 'And RC78'") == "pending"
    assert "✋ claimed" in card(desk, number).text
    assert not any("RC7" in t for t in _staff_texts(desk))
