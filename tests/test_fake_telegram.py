"""The fake Bot API refuses what Telegram refuses, so tests catch what production would."""

from __future__ import annotations

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden


async def test_telegram_style_refusals_reach_the_bot_as_ptb_errors(desk):
    bot = desk.app.bot
    desk.tg.user(301, "Refilwe")
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(301, "   ")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(301, "x" * 4097)
    await bot.send_message(301, "x" * 4096)  # exactly the limit is fine
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(301, "😀" * 2049)  # Telegram counts UTF-16 units
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(301, "1 < 2 & <b>bold")
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(301, "hi", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="x" * 65)]]))
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(999999, "hello")
    desk.tg.blocked_by.add(301)
    with pytest.raises(Forbidden, match="(?i)blocked by the user"):
        await bot.send_message(301, "hello")


async def test_edit_rules(desk):
    bot = desk.app.bot
    desk.tg.user(302, "Vusi")
    msg = await bot.send_message(302, "<b>one</b>")
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("<b>one</b>", chat_id=302, message_id=msg.message_id)
    await bot.edit_message_text("two", chat_id=302, message_id=msg.message_id)
    assert desk.tg.messages[(302, msg.message_id)].text == "two"
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=302, message_id=12345)


async def test_a_kb_import_reaches_the_running_bot_without_restart(desk):
    """`helpdesk kb import` while the bot runs: the refresh job swaps the matcher."""
    import dataclasses

    from bot.db import unit_of_work
    from kb.kbfile import load_kb
    from kb.service import import_kb

    user = desk.tg.user(303, "Nomsa")
    core = desk.app.bot_data["desk"]
    doc, _ = load_kb(core.settings.kb.path)
    target = doc.entries[0]
    doc.entries[0] = dataclasses.replace(target, phrasings=(*target.phrasings, "zorblax quixotic flumph"))
    desk.clock.advance(minutes=1)
    async with unit_of_work(core.sessions) as session:
        await import_kb(session, doc, desk.clock())
    await user.send("zorblax quixotic flumph")
    assert "I don't know" in desk.tg.last_bot_message(303).text  # not yet: old snapshot
    [job] = desk.app.job_queue.get_jobs_by_name("refresh_kb")
    await job.run(desk.app)
    await user.send("zorblax quixotic flumph")
    assert desk.tg.last_bot_message(303).text.startswith(target.title)
