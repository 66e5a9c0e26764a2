"""Guides (/guide), the first-time welcome after /start, and /language."""

from __future__ import annotations

import pytest

from bot.templates import Templates
from handlers.guides import GUIDES


def bot_messages(desk, chat_id):
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot]


async def test_guide_pages_with_next_back_and_menu_edit_one_message(desk):
    user = desk.tg.user(9001, "Ayanda")
    await user.send("/guide")
    menu = desk.tg.last_bot_message(9001)
    assert "Guides" in menu.text
    assert menu.button_texts == [
        "📝 How to post a good ad", "📷 Photo tips", "💰 Pricing", "🛡 Staying safe", "🔎 What moderation checks", "💬 How support works",
    ]
    await user.press("How to post a good ad", menu)
    shown = desk.tg.messages[(9001, menu.message_id)]
    assert "How to post a good ad · 1/3" in shown.text and "Seven short steps" in shown.text
    assert shown.button_texts == ["Next ➡️", "📚 All guides"]
    await user.press("Next", shown)
    shown = desk.tg.messages[(9001, menu.message_id)]
    assert "· 2/3" in shown.text and shown.button_texts == ["⬅️ Back", "Next ➡️", "📚 All guides"]
    await user.press("Next", shown)
    shown = desk.tg.messages[(9001, menu.message_id)]
    assert "· 3/3" in shown.text and shown.button_texts == ["⬅️ Back", "📚 All guides"]
    await user.press("Back", shown)
    assert "· 2/3" in desk.tg.messages[(9001, menu.message_id)].text
    await user.press("All guides", desk.tg.messages[(9001, menu.message_id)])
    shown = desk.tg.messages[(9001, menu.message_id)]
    assert shown.button_texts == menu.button_texts
    # all of it happened in one message, edited in place
    assert len(bot_messages(desk, 9001)) == 1 and shown.edits == 5
    # the menu item opens the guides too
    await user.send("📚 Guides")
    assert desk.tg.last_bot_message(9001).button_texts == menu.button_texts
    assert desk.tg.errors() == []


async def test_stale_and_forged_guide_buttons_change_nothing(desk):
    user = desk.tg.user(9002, "Zanele")
    await user.send("/guide")
    menu = desk.tg.last_bot_message(9002)
    for data in ("g:post:4", "g:post:0", "g:nosuch:1", "g:photos:99", "g:../x", "g:post:1:2", "g:" + "a" * 60):
        await user.press_data(data, menu)
        assert desk.tg.events[-1].who == "toast" and "older message" in desk.tg.events[-1].text, data
    assert desk.tg.messages[(9002, menu.message_id)].edits == 0
    assert desk.tg.errors() == []


@pytest.mark.parametrize("settings_overrides", [{"ads": {"max_photos": 6, "expiry_days": 45}}])
async def test_guides_say_what_the_bot_really_does(desk):
    user = desk.tg.user(9003, "Pieter")
    await user.send("/guide")
    menu = desk.tg.last_bot_message(9003)

    async def read(guide, page):
        await user.press_data(f"g:{guide}:{page}", menu)
        return desk.tg.messages[(9003, menu.message_id)].text

    steps = await read("post", 1)
    assert "Title: 5-70 characters" in steps and "at least 30 and at most 2000 characters" in steps
    assert "up to 6; at least one for Vehicles, Property, Pets" in steps
    assert "stays up for 45 days" in await read("post", 3)
    assert "Up to 6 photos per ad" in await read("photos", 1)
    prices = await read("price", 2)
    assert "Vehicles: R 1 000 to R 5 000 000" in prices and "Pets: R 0 to R 50 000" in prices
    check = await read("moderation", 1)  # grouped by the severities of ads/data/policy.toml
    must_fix, flagged = check.split("You must fix first")[1].split("Shown to the moderator")
    assert "banned words" in must_fix and "shorter than 30 characters" in must_fix and "more than 5 ads in 24 hours" in must_fix
    assert "phone numbers" in flagged and "a price outside" in flagged and "CAPITALS" in check.split("Tips for you only")[1]
    strikes = await read("moderation", 3)
    assert "active for 90 days" in strikes and "2 active strikes: no new ads for 7 days" in strikes and "the account is banned" in strikes
    assert "within 7 days" in await read("support", 3)
    assert desk.tg.errors() == []


def test_every_guide_page_exists_in_the_default_locale_and_renders_everywhere():
    t = Templates("en")
    for guide, pages in GUIDES.items():
        for number in range(1, pages + 2):
            exists = (t.dirs[-1] / "en" / "guides" / guide / f"{number}.html").exists()
            assert exists == (number <= pages), (guide, number)
        for locale in t.locales:
            assert t.label(locale, f"guide_{guide}")


async def test_onboarding_only_the_first_time(desk):
    user = desk.tg.user(9004, "Thabo")
    await user.send("/start")
    greeting, welcome = bot_messages(desk, 9004)
    assert "Hello, Thabo" in greeting.text and greeting.reply_markup["keyboard"]
    assert "New here? Here is what I can do" in welcome.text
    assert welcome.button_texts == ["📚 Read the guides", "📝 Post an ad", "❓ Ask a question", "🌐 Choose your language"]
    assert await desk.scalar("SELECT onboarded_at IS NOT NULL FROM users WHERE id = 9004")
    # the buttons lead where they say
    await user.press("Read the guides", welcome)
    assert desk.tg.last_bot_message(9004).button_texts[0] == "📝 How to post a good ad"
    await user.press("Ask a question", welcome)
    assert "Type your question" in desk.tg.last_bot_message(9004).text
    await user.press("Post an ad", welcome)
    assert "step 1 of 7" in desk.tg.last_bot_message(9004).text
    await user.send("/cancel")
    # a returning user gets the normal start, also after a restart (the database decides)
    count = len(bot_messages(desk, 9004))
    await user.send("/start")
    assert len(bot_messages(desk, 9004)) == count + 1
    assert "Hello, Thabo" in desk.tg.last_bot_message(9004).text
    desk.app.bot_data["desk"].accounts.clear()
    await user.send("/start")
    assert "New here" not in desk.tg.last_bot_message(9004).text
    assert desk.tg.errors() == []


async def test_language_switch_changes_the_next_reply(desk):
    user = desk.tg.user(9005, "Annelie", language_code="en")
    await user.send("/help")
    assert "How I can help" in desk.tg.last_bot_message(9005).text
    await user.send("/language")
    choose = desk.tg.last_bot_message(9005)
    assert choose.button_texts == ["Afrikaans", "✅ English"]
    await user.press("Afrikaans", choose)
    assert await desk.scalar("SELECT locale FROM users WHERE id = 9005") == "af"
    chosen = desk.tg.last_bot_message(9005)
    assert "Van nou af skryf ek in Afrikaans" in chosen.text
    assert "📝 Plaas 'n advertensie" in chosen.button_texts  # the menu in the new language
    # from the next message on, Afrikaans
    await user.send("/help")
    assert "Hoe ek kan help" in desk.tg.last_bot_message(9005).text
    await user.send("ℹ️ Hulp")  # the Afrikaans menu item works, it is not a question
    assert "Hoe ek kan help" in desk.tg.last_bot_message(9005).text
    assert await desk.scalar("SELECT count(*) FROM questions") == 0
    await user.send("how do I renew my ad")  # the answer frame is translated, the article is not
    answer = desk.tg.last_bot_message(9005)
    assert "Het dit jou vraag beantwoord?" in answer.text and "👍 Nuttig" in answer.button_texts
    # a text Afrikaans does not ship falls back to English
    await user.send("/newad")
    assert "step 1 of 7" in desk.tg.last_bot_message(9005).text
    await user.send("/cancel")
    # and back to English; a forged locale changes nothing
    await user.send("/language")
    choose = desk.tg.last_bot_message(9005)
    assert choose.button_texts == ["✅ Afrikaans", "English"]
    await user.press_data("lang:xx", choose)
    assert await desk.scalar("SELECT locale FROM users WHERE id = 9005") == "af"
    await user.press("English", choose)
    await user.send("/help")
    assert "How I can help" in desk.tg.last_bot_message(9005).text
    assert desk.tg.errors() == []


async def test_telegram_language_picks_afrikaans_for_a_new_user(desk):
    user = desk.tg.user(9006, "Marietjie", language_code="af")
    await user.send("/start")
    greeting, welcome = bot_messages(desk, 9006)
    assert "Ek is die <b>SayPro Classified</b>-hulplyn" in greeting.html
    assert "Nuut hier?" in welcome.text and welcome.button_texts[0] == "📚 Lees die gidse"
    await user.send("✍️ Terugvoer")
    assert "Jou terugvoer" in desk.tg.last_bot_message(9006).text


async def test_command_menu_is_published_per_shipped_locale(desk):
    menus = {key[-2:]: {c["command"]: c["description"] for c in cmds} for key, cmds in desk.tg.commands.items() if "all_private_chats" in key}
    assert menus["af"]["language"] == "Kies jou taal" and menus["af"]["feedback"] == "Sê vir ons wat jy dink"
    english = next(m for key, m in menus.items() if key != "af")
    assert english["guide"].startswith("Guides") and english["language"] == "Choose your language"


def test_users_from_before_onboarding_count_as_onboarded(tmp_path):
    """Migration 0011 marks existing users as onboarded: no tour for people who know the bot."""
    import asyncio

    from sqlalchemy import text

    from bot.db import make_engine
    from bot.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    upgrade(url, revision="0007")

    async def run(sql):
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                return (await conn.execute(text(sql))).all() if sql.startswith("SELECT") else await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(run("INSERT INTO users (id, first_name, status, first_seen, last_seen) VALUES (1, 'Old', 'active', '2026-01-01 10:00:00', '2026-01-02 10:00:00')"))
    upgrade(url, revision="0011")
    rows = asyncio.run(run("SELECT onboarded_at FROM users"))
    assert [str(r[0])[:19] for r in rows] == ["2026-01-01 10:00:00"]
