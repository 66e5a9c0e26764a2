"""Numbers typed by people: "²" and "³" are digits to str.isdigit() but not to int()."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT

ADMIN = 900001  # staff.admin_ids in tests.support: may moderate from the staff chat


@pytest.mark.parametrize("text", ["/report ²", "/report #³", "/start report-²"])
async def test_superscript_numbers_from_users_get_a_clear_answer(desk, text):
    user = desk.tg.user(5301, "Thabo")
    await user.send(text)
    reply = desk.tg.last_bot_message(5301).text
    assert "went wrong" not in reply.lower()
    assert desk.tg.errors() == []


@pytest.mark.parametrize("text", ["/pardon ²", "/ticket ²", "/strikes ²"])
async def test_superscript_numbers_from_staff_get_a_clear_answer(desk, text):
    admin = desk.tg.staff(ADMIN, "Admin", STAFF_CHAT, status="administrator")
    await admin.send(text, chat_id=STAFF_CHAT)
    reply = desk.tg.last_bot_message(STAFF_CHAT).text
    assert "went wrong" not in reply.lower()
    assert desk.tg.errors() == []
