"""Support tickets end to end: one user, two staff members, the staff chat (forum or not)."""

from __future__ import annotations

import asyncio

import pytest
from telegram import Update

from tests.support import STAFF_CHAT

UNKNOWN = "my payment went through twice and I was charged R98"


async def open_ticket(desk, user, text=UNKNOWN, category="Payments"):
    """The bot answers, the answer does not help, the user asks for a person."""
    await user.send(text)
    if any("Not helpful" in b for b in desk.tg.last_bot_message(user.id).button_texts[:2]):
        await user.press("Not helpful")
    await user.press("Talk to a person")
    await user.press(category)
    return await desk.scalar("SELECT max(id) FROM tickets")


def staff_pair(desk):
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT, username="thandi_support")
    sipho = desk.tg.staff(800002, "Sipho", STAFF_CHAT, username="sipho_support")
    return thandi, sipho


def card(desk, number):
    for msg in desk.tg.chat_messages(STAFF_CHAT):
        if msg.from_bot and msg.text.startswith(f"🎫 #{number} "):
            return msg
    raise LookupError(f"no card for #{number}")


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_full_case_from_failed_answer_to_rating(desk, staff_forum):
    user = desk.tg.user(5001, "Lerato", username="lerato")
    thandi, sipho = staff_pair(desk)
    number = await open_ticket(desk, user)
    created = desk.tg.last_bot_message(5001).text
    assert f"Your case #{number} (Payments and featured ads) is with our support team" in created
    alert = card(desk, number)
    assert UNKNOWN in alert.text and "Lerato (@lerato)" in alert.text and "🆕 new" in alert.text
    assert alert.button_texts[0] == "✋ Claim"
    if staff_forum:
        assert alert.thread_id == desk.tg.topic_named(STAFF_CHAT, f"#{number} · Lerato")
    # Thandi claims: the card changes in place, the user is told
    await thandi.press("Claim", alert)
    alert = card(desk, number)
    assert "✋ claimed" in alert.text and "✋ Thandi" in alert.text
    assert "Thandi from support is on your case" in desk.tg.last_bot_message(5001).text
    # Thandi answers: in the topic (forum) or as a reply to the card
    where = {"thread_id": alert.thread_id} if staff_forum else {"reply_to": alert}
    await thandi.send("Sorry about that! Which card did you use?", chat_id=STAFF_CHAT, **where)
    reply = desk.tg.last_bot_message(5001)
    assert "Thandi (support, case #" in reply.text and "Which card did you use?" in reply.text
    # an internal note is not relayed
    await sipho.send("!refund limit is R500, fine", chat_id=STAFF_CHAT, **where)
    assert desk.tg.last_bot_message(5001).message_id == reply.message_id
    # the user answers with text and a photo; both reach the staff chat
    await user.send("The Visa ending 1234")
    await user.send_photo("bank statement")
    staff_side = [m for m in desk.tg.chat_messages(STAFF_CHAT) if m.from_bot][-2:]
    assert "Visa ending 1234" in staff_side[0].text
    assert staff_side[1].kind == "photo" and "bank statement" in staff_side[1].text
    # and staff send a document back
    await thandi.send_document("refund confirmation", chat_id=STAFF_CHAT, **where)
    doc = desk.tg.last_bot_message(5001)
    assert doc.kind == "document" and "refund confirmation" in doc.text
    # resolve: user told, survey sent
    await thandi.press("Resolve", card(desk, number))
    resolved, survey = [m for m in desk.tg.chat_messages(5001) if m.from_bot][-2:]
    assert f"case #{number} has been marked as solved" in resolved.text
    assert survey.button_texts[0].startswith("⭐")
    await user.press("5⭐", survey)
    assert "You rated ⭐⭐⭐⭐⭐ (5/5)" in desk.tg.messages[(5001, survey.message_id)].text
    row = (await desk.rows("SELECT status, assignee_id, first_response_at IS NOT NULL FROM tickets"))[0]
    assert tuple(row) == ("resolved", 800001, True)
    kinds = await desk.rows("SELECT direction, kind FROM ticket_messages ORDER BY id")
    assert [tuple(k) for k in kinds] == [
        ("in", "text"), ("out", "text"), ("note", "text"), ("in", "text"), ("in", "photo"), ("out", "document"), ("bot", "text"),
    ]
    assert await desk.scalar("SELECT stars FROM ratings") == 5
    events = [r[0] for r in await desk.rows("SELECT to_status FROM ticket_events ORDER BY id")]
    assert events[:2] == ["new", "claimed"] and events[-1] == "resolved"
    assert desk.tg.errors() == []
