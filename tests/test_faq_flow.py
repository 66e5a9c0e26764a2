"""The user's side of the FAQ, end to end through the fake Telegram, on both databases."""

from __future__ import annotations

import pytest

from bot.fake_telegram import ApiError

SAFE_MEET = "is it safe to meet a buyer"  # an authored phrasing of entry meet-safely


async def question_rows(desk):
    return await desk.rows(
        "SELECT text, outcome, answer_entry_id, vote, none_of_these, source FROM questions ORDER BY id"
    )


async def test_start_shows_greeting_and_only_built_menu_items(desk):
    user = desk.tg.user(101, "Thandi", username="thandi")
    await user.send("/start")
    msg = [m for m in desk.tg.chat_messages(101) if m.from_bot][0]  # then, the first time, a short tour
    assert "Hello, Thandi" in msg.text
    assert msg.reply_markup["keyboard"]
    assert msg.button_texts == [
        "❓ Ask a question", "📝 Post an ad", "🗂 My ads", "💬 Contact support", "📚 Guides", "✍️ Feedback", "ℹ️ Help", "🌐 Language",
    ]
    # the user row exists with what Telegram told us
    row = (await desk.rows("SELECT first_name, username, language_code, status FROM users WHERE id = 101"))[0]
    assert tuple(row) == ("Thandi", "thandi", "en", "active")
    # the command menu was published at start-up
    assert any(c["command"] == "help" for cmds in desk.tg.commands.values() for c in cmds)


async def test_help_and_menu_items(desk):
    user = desk.tg.user(102, "Sipho")
    await user.send("/help")
    assert "/start" in desk.tg.last_bot_message(102).text
    await user.send("❓ Ask a question")
    assert "Type your question" in desk.tg.last_bot_message(102).text
    await user.send("ℹ️ Help")
    assert "How I can help" in desk.tg.last_bot_message(102).text
    assert await desk.scalar("SELECT count(*) FROM questions") == 0


async def test_confident_answer_then_helpful_vote(desk):
    user = desk.tg.user(103, "Lerato")
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(103)
    assert answer.text.startswith("How do I meet a buyer or seller safely?")
    assert "Did this answer your question?" in answer.text
    assert answer.button_texts[:2] == ["👍 Helpful", "👎 Not helpful"]
    await user.press("Helpful")
    # the vote buttons are gone, follow-ups stay; the pop-up thanks the user
    voted = desk.tg.messages[(103, answer.message_id)]
    assert "👍 Helpful" not in voted.button_texts and "👎 Not helpful" not in voted.button_texts
    assert voted.button_texts == [t for t in answer.button_texts if t.startswith(("➡️", "🔗"))]  # follow-ups stay
    assert voted.button_texts
    assert any(e.who == "toast" and "Glad it helped" in e.text for e in desk.tg.events)
    rows = await question_rows(desk)
    assert [tuple(r) for r in rows] == [(SAFE_MEET, "answered", "meet-safely", "helpful", False, "text")]


async def test_not_helpful_vote_and_repeated_press(desk):
    user = desk.tg.user(104, "Anele")
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(104)
    await user.press("Not helpful", answer)
    assert "Sorry that did not help" in desk.tg.last_bot_message(104).text
    # an old client presses the same button again: politely refused, not stored twice
    await user.press_data("v:1:1", answer)
    assert any(e.who == "toast" and "already rated" in e.text for e in desk.tg.events)
    rows = await question_rows(desk)
    assert len(rows) == 1 and rows[0].vote == "not_helpful"


@pytest.mark.parametrize("settings_overrides", [{"kb": {"answer_threshold": 0.999, "suggest_threshold": 0.01}}])
async def test_did_you_mean_then_choose(desk):
    user = desk.tg.user(105, "Bongani")
    await user.send("selling my car safely")
    suggest = desk.tg.last_bot_message(105)
    assert "Is it one of these?" in suggest.text
    assert suggest.button_texts[-1] == "None of these"
    assert 2 <= len(suggest.button_texts) <= 4
    first_title = suggest.button_texts[0].removeprefix("1. ")
    await user.press("1.")
    # the suggestion buttons are removed and the chosen answer arrives with vote buttons
    assert desk.tg.messages[(105, suggest.message_id)].reply_markup is None
    answer = desk.tg.last_bot_message(105)
    assert answer.text.startswith(first_title.rstrip("…"))
    await user.press("Helpful")
    rows = await question_rows(desk)
    assert len(rows) == 1
    assert rows[0].outcome == "suggested" and rows[0].answer_entry_id and rows[0].vote == "helpful"
    offered = await desk.scalar("SELECT offered FROM questions")
    assert "entry_id" in str(offered)
    # pressing another suggestion of the same message later is refused
    await user.press_data(f"c:{(await desk.scalar('SELECT id FROM questions'))}:1", suggest)
    assert any(e.who == "toast" and "already picked" in e.text for e in desk.tg.events)
    assert desk.tg.last_bot_message(105).text.startswith(first_title.rstrip("…"))  # the same answer again


@pytest.mark.parametrize("settings_overrides", [{"kb": {"answer_threshold": 0.999, "suggest_threshold": 0.01}}])
async def test_none_of_these(desk):
    user = desk.tg.user(106, "Zanele")
    await user.send("selling my car safely")
    await user.press("None of these")
    assert "none of these was what you needed" in desk.tg.last_bot_message(106).text
    rows = await question_rows(desk)
    assert rows[0].outcome == "suggested" and bool(rows[0].none_of_these) and rows[0].answer_entry_id is None


async def test_unknown_question_is_honest_and_logged(desk):
    user = desk.tg.user(107, "Pieter")
    await user.send("qwzx vbnmk plorf")
    assert "I don't know that one yet" in desk.tg.last_bot_message(107).text
    rows = await question_rows(desk)
    assert rows[0].outcome == "no_match" and rows[0].answer_entry_id is None


async def test_followup_button_opens_linked_entry(desk):
    user = desk.tg.user(108, "Naledi")
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(108)
    followups = [t for t in answer.button_texts if t.startswith("➡️")]
    assert followups, "meet-safely links to other entries"
    await user.press(followups[0], answer)
    second = desk.tg.last_bot_message(108)
    assert second.message_id != answer.message_id
    assert second.text.startswith(followups[0].removeprefix("➡️ ").rstrip("…"))
    rows = await question_rows(desk)
    assert rows[1].source == "followup" and rows[1].outcome == "answered"


async def test_non_text_messages_get_a_clear_answer(desk):
    user = desk.tg.user(109, "Kagiso")
    await user.send_sticker()
    await user.send_voice()
    await user.send_photo()
    texts = [m.text for m in desk.tg.chat_messages(109) if m.from_bot]
    assert len(texts) == 3 and all("only read text" in t for t in texts)
    assert await desk.scalar("SELECT count(*) FROM questions") == 0


async def test_very_long_text_is_refused_politely(desk):
    user = desk.tg.user(110, "Ayanda")
    await user.send("how do I post an ad " * 200)
    assert "That is a long message" in desk.tg.last_bot_message(110).text
    assert await desk.scalar("SELECT count(*) FROM questions") == 0


async def test_html_in_user_names_and_commands_is_escaped(desk):
    user = desk.tg.user(111, "<b>Eve</b> & co")
    nasty = "<script>alert(1)</script> & <b>price</b> {{7*7}}"
    await user.send(nasty)
    await user.send("/<i>oops</i>")
    await user.send("/start")
    assert desk.tg.errors() == []  # Telegram accepted every message: the HTML was valid
    assert "<b>Eve</b> & co" in desk.tg.chat_messages(111)[-2].text  # the greeting, before the first-time tour
    assert "/<i>oops</i>" in desk.tg.chat_messages(111)[-4].text
    assert (await question_rows(desk))[0].text == nasty


async def test_unknown_command(desk):
    user = desk.tg.user(112, "Musa")
    await user.send("/frobnicate now")
    msg = desk.tg.last_bot_message(112)
    assert "I don't know the command /frobnicate" in msg.text


async def test_stale_and_forged_buttons(desk):
    user = desk.tg.user(113, "Lindiwe")
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(113)
    # a question id that does not exist (e.g. from before a database reset)
    await user.press_data("v:999999:1", answer)
    # data we never produce
    await user.press_data("zz:garbage", answer)
    # a follow-up to an entry that no longer exists
    await user.press_data("f:no-such-entry", answer)
    toasts = [e.text for e in desk.tg.events if e.who == "toast"]
    assert toasts.count("This button belongs to an older message. Please ask your question again.") == 3
    # someone else's question
    other = desk.tg.user(114, "Mallory")
    await other.press_data("v:1:1", answer)
    assert desk.tg.events[-1].text == "This button belongs to someone else's question."
    assert (await question_rows(desk))[0].vote is None
    assert desk.tg.errors() == []


async def test_buttons_after_the_kb_changed(desk, tmp_path):
    """An entry removed from the KB: its old answer's buttons explain, nothing crashes."""
    from bot.db import unit_of_work
    from kb.kbfile import load_kb
    from kb.service import import_kb, load_snapshot

    user = desk.tg.user(115, "Tumi")
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(115)
    core = desk.app.bot_data["desk"]
    doc, _ = load_kb(core.settings.kb.path)
    doc.entries = [e for e in doc.entries if e.id != "meet-safely"]
    async with unit_of_work(core.sessions) as session:
        report = await import_kb(session, doc, desk.clock())
        core.kb = await load_snapshot(session)
    assert report.removed == ["meet-safely"]
    await user.press("Helpful", answer)
    # the vote is still recorded (the question exists); the entry is gone, so are its buttons
    assert desk.tg.errors() == []
    assert (await question_rows(desk))[0].vote == "helpful"
    assert desk.tg.messages[(115, answer.message_id)].reply_markup is None
    # a follow-up button to the removed entry explains instead of failing
    await user.press_data("f:meet-safely", answer)
    assert desk.tg.events[-1].text == "This button belongs to an older message. Please ask your question again."


async def test_messages_in_groups_are_not_questions(desk):
    desk.tg.add_group(-100777, "Some group")
    member = desk.tg.user(116, "Group member")
    await member.send("how do I post an ad", chat_id=-100777)
    await member.send("/start", chat_id=-100777)
    assert desk.tg.sent("sendMessage") == []
    assert await desk.scalar("SELECT count(*) FROM questions") == 0


async def test_handler_error_gives_an_apology_not_silence(desk, caplog):
    user = desk.tg.user(117, "Kabelo")
    # Telegram refuses the answer once (e.g. a transient 400): the update fails, the
    # error handler logs it with the update id and apologises.
    desk.tg.fail_next.append(("sendMessage", ApiError(400, "Bad Request: something odd")))
    await user.send(SAFE_MEET)
    assert "Sorry, something went wrong" in desk.tg.last_bot_message(117).text
    assert any("error while handling update" in r.getMessage() for r in caplog.records)


async def test_user_who_blocked_the_bot_does_not_break_anything(desk, caplog):
    user = desk.tg.user(118, "Gone")
    desk.tg.blocked_by.add(118)
    await user.send(SAFE_MEET)
    assert [c.error.code for c in desk.tg.errors()] == [403, 403]  # the answer, then the apology
    # the question was still recorded, and other users are served
    assert await desk.scalar("SELECT count(*) FROM questions WHERE user_id = 118") == 1
    other = desk.tg.user(119, "Still here")
    await other.send(SAFE_MEET)
    assert desk.tg.last_bot_message(119).text.startswith("How do I meet")


@pytest.mark.parametrize("settings_overrides", [{"kb": {"path": "tests/data/kb_html.yaml", "answer_threshold": 0.999, "suggest_threshold": 0.01}}])
async def test_html_characters_in_kb_titles_and_answers(desk):
    """Titles with < and & in a "did you mean", and an answer with raw HTML, reach Telegram valid."""
    user = desk.tg.user(120, "Ruth")
    await user.send("what prices are cheap")
    suggest = desk.tg.last_bot_message(120)
    assert "Prices < R100 & free stuff" in suggest.text
    await user.press("1.")
    answer = desk.tg.last_bot_message(120)
    assert "<script>alert(1)</script> is shown as text" in answer.text
    assert desk.tg.errors() == []
