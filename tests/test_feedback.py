"""Feedback end to end: the user writes it and rates, staff see a card and answer it."""

from __future__ import annotations

import pytest

from tests.support import STAFF_CHAT

IDEA = "The bot is great, but please let me search ads by town <i>too</i> & sort by price"


def feedback_card(desk, number):
    for msg in desk.tg.chat_messages(STAFF_CHAT):
        if msg.from_bot and msg.text.startswith(f"✍️ Feedback #{number} "):
            return msg
    raise LookupError(f"no card for feedback #{number}")


async def give_feedback(desk, user, text=IDEA):
    await user.send("/feedback")
    assert "Your feedback" in desk.tg.last_bot_message(user.id).text
    await user.send(text)
    return await desk.scalar("SELECT max(id) FROM feedback")


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_feedback_rated_reaches_staff_and_the_answer_reaches_the_user(desk, staff_forum):
    user = desk.tg.user(7001, "Lerato", username="lerato")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    number = await give_feedback(desk, user)
    # acknowledged, with the optional rating
    thanks = desk.tg.last_bot_message(7001)
    assert f"Your feedback #{number} is with our team" in thanks.text
    assert thanks.button_texts == ["1⭐", "2⭐", "3⭐", "4⭐", "5⭐", "Skip"]
    # stored as typed, not taken as a question
    row = (await desk.rows("SELECT user_id, text, rating, answer FROM feedback"))[0]
    assert tuple(row) == (7001, IDEA, None, None)
    assert await desk.scalar("SELECT count(*) FROM questions") == 0
    # the card in the staff chat (in a forum: in the Feedback topic), escaped as typed
    card = feedback_card(desk, number)
    assert IDEA in card.text and "Lerato (@lerato)" in card.text and "Rating: none" in card.text
    assert card.button_texts == ["✍️ Answer"]
    if staff_forum:
        assert card.thread_id == desk.tg.topic_named(STAFF_CHAT, "Feedback")
    # the rating: stored, the thank-you and the card change in place
    await user.press("4⭐", thanks)
    assert await desk.scalar("SELECT rating FROM feedback") == 4
    assert "You rated the help desk ⭐⭐⭐⭐ (4/5)" in desk.tg.messages[(7001, thanks.message_id)].text
    assert "Rating: ⭐⭐⭐⭐ (4/5)" in feedback_card(desk, number).text
    # rating again is refused (the first one stays)
    await user.press_data(f"fb:r:{number}:1", thanks)
    assert await desk.scalar("SELECT rating FROM feedback") == 4
    # Thandi replies to the card: the answer reaches the user and is stored
    await thandi.send("Thanks Lerato! Search by town is coming in January.", chat_id=STAFF_CHAT, reply_to=feedback_card(desk, number))
    answer = desk.tg.last_bot_message(7001)
    assert f"Our team answered your feedback #{number}" in answer.text
    assert "Search by town is coming in January." in answer.text and "sort by price" in answer.text
    row = (await desk.rows("SELECT answer, answered_by, answered_at IS NOT NULL FROM feedback"))[0]
    assert tuple(row) == ("Thanks Lerato! Search by town is coming in January.", 800001, True)
    card = feedback_card(desk, number)
    assert "✅ Answered by Thandi" in card.text and card.button_texts == []
    assert f"Answer to feedback #{number} sent to Lerato" in desk.tg.last_bot_message(STAFF_CHAT).text
    # it was not a ticket reply: no ticket, no ticket message
    assert await desk.scalar("SELECT count(*) FROM tickets") == 0
    assert await desk.scalar("SELECT count(*) FROM ticket_messages") == 0
    # a second answer is not sent
    await thandi.send("And another thing", chat_id=STAFF_CHAT, reply_to=card)
    assert desk.tg.last_bot_message(7001).message_id == answer.message_id
    assert "already answered by Thandi" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert desk.tg.errors() == []


async def test_after_answer_a_reply_to_a_ticket_still_goes_to_the_ticket(desk):
    from tests.test_escalation import card as ticket_card
    from tests.test_escalation import open_ticket

    asker = desk.tg.user(7010, "Busi")
    writer = desk.tg.user(7011, "Musa")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    ticket = await open_ticket(desk, asker)
    number = await give_feedback(desk, writer, "Make the menu bigger")
    await thandi.press("Answer", feedback_card(desk, number), chat_id=STAFF_CHAT)
    await thandi.send("Which card did you use?", chat_id=STAFF_CHAT, reply_to=ticket_card(desk, ticket))
    assert "Which card did you use?" in desk.tg.last_bot_message(7010).text
    assert await desk.scalar("SELECT answer FROM feedback") is None
    await thandi.send("Good idea, we'll look at it.", chat_id=STAFF_CHAT)
    assert "Good idea" in desk.tg.last_bot_message(7011).text
    assert await desk.scalar("SELECT answer FROM feedback") == "Good idea, we'll look at it."
    assert desk.tg.errors() == []


async def test_skip_the_rating_and_answer_with_the_button(desk):
    user = desk.tg.user(7002, "Sipho")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    sipho_staff = desk.tg.staff(800002, "Bongani", STAFF_CHAT)
    number = await give_feedback(desk, user, "Moderation took two days for my ad.")
    await user.press("Skip")
    assert await desk.scalar("SELECT rating FROM feedback") is None
    assert desk.tg.last_bot_message(7002).button_texts == []  # the rating buttons are gone
    # the next text is a question again
    await user.send("how do I renew my ad")
    assert await desk.scalar("SELECT count(*) FROM questions") == 1
    assert await desk.scalar("SELECT count(*) FROM feedback") == 1
    # Answer, then a typed message (other staff talking meanwhile are not taken)
    await thandi.press("Answer", feedback_card(desk, number), chat_id=STAFF_CHAT)
    assert "Thandi, type your answer to feedback" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert await desk.scalar("SELECT kind FROM pending_inputs WHERE user_id = 800001") == "feedback_answer"
    await sipho_staff.send("coffee anyone?", chat_id=STAFF_CHAT)
    await thandi.send_photo("a screenshot", chat_id=STAFF_CHAT)  # text only: still waiting
    assert "answered with text only" in desk.tg.last_bot_message(STAFF_CHAT).text
    await thandi.send("Sorry about that: we had a backlog; it is back to a few hours.", chat_id=STAFF_CHAT)
    assert "back to a few hours" in desk.tg.last_bot_message(7002).text
    assert await desk.scalar("SELECT answered_by FROM feedback") == 800001
    assert await desk.scalar("SELECT count(*) FROM pending_inputs") == 0
    # Thandi's next message is ordinary chat again
    sent = desk.tg.last_bot_message(STAFF_CHAT)
    assert f"Answer to feedback #{number} sent to Sipho" in sent.text
    await thandi.send("done with that one", chat_id=STAFF_CHAT)
    assert desk.tg.last_bot_message(STAFF_CHAT).message_id == sent.message_id  # no "already answered"
    assert desk.tg.errors() == []


@pytest.mark.parametrize("settings_overrides", [{"staff": {"membership": "admins"}}])
async def test_non_staff_cannot_answer(desk):
    user = desk.tg.user(7003, "Kabelo")
    member = desk.tg.staff(800003, "Intern", STAFF_CHAT)  # a member, but only admins are staff here
    number = await give_feedback(desk, user, "Please add a dark mode.")
    card = feedback_card(desk, number)
    await member.press("Answer", card, chat_id=STAFF_CHAT)
    assert desk.tg.events[-1].text == "Only staff can do that."
    assert await desk.scalar("SELECT count(*) FROM pending_inputs") == 0
    await member.send("Sure, we will!", chat_id=STAFF_CHAT, reply_to=card)
    assert "Only staff can do that." in desk.tg.last_bot_message(STAFF_CHAT).text
    assert await desk.scalar("SELECT answer FROM feedback") is None
    assert "Sure, we will" not in desk.tg.last_bot_message(7003).text
    # a forged press from a private chat does not reach the staff action either
    await user.press_data(f"fb:a:{number}", desk.tg.last_bot_message(7003))
    assert await desk.scalar("SELECT count(*) FROM pending_inputs") == 0


async def test_feedback_text_is_not_a_question_an_ad_step_or_a_case_message(desk):
    from tests.test_escalation import open_ticket

    user = desk.tg.user(7004, "Naledi")
    await open_ticket(desk, user)
    relayed = await desk.scalar("SELECT count(*) FROM ticket_messages")
    number = await give_feedback(desk, user, "Support was quick, thank you")
    assert await desk.scalar("SELECT text FROM feedback") == "Support was quick, thank you"
    assert await desk.scalar("SELECT count(*) FROM ticket_messages") == relayed
    feedback_card(desk, number)
    # a command (or a menu item) in between: the prompt no longer applies
    await user.send("/feedback")
    await user.send("/mytickets")
    await user.send("my second payment also failed")
    assert await desk.scalar("SELECT count(*) FROM feedback") == 1
    assert await desk.scalar("SELECT count(*) FROM ticket_messages") == relayed + 1
    await user.send("/feedback")
    await user.send("📝 Post an ad")
    assert await desk.scalar("SELECT count(*) FROM pending_inputs") == 0
    # Cancel under the prompt
    await user.send("/feedback")
    await user.press("Cancel")
    assert "no feedback sent" in desk.tg.last_bot_message(7004).text
    assert await desk.scalar("SELECT count(*) FROM pending_inputs") == 0
    # too long: refused, still waiting; a sticker: asked for text
    await user.send("/feedback")
    await user.send("x" * 2001)
    assert "please keep your feedback under 2000" in desk.tg.last_bot_message(7004).text
    await user.send_sticker()
    assert "Please write your feedback as a text message" in desk.tg.last_bot_message(7004).text
    await user.send("Short and sweet")
    assert await desk.scalar("SELECT count(*) FROM feedback") == 2
    # an old prompt expires: the text is a question again
    await user.send("/feedback")
    desk.clock.advance(hours=1)
    await user.send("how do I renew my ad")
    assert await desk.scalar("SELECT count(*) FROM feedback") == 2
    assert desk.tg.errors() == []


async def test_waiting_states_survive_a_restart(database):
    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import FakeClock, make_settings, wipe

    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    user = tg.user(7005, "Kagiso")
    thandi = tg.staff(800001, "Thandi", STAFF_CHAT)
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await user.send("/feedback")
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await user.send("The photo upload step is confusing")  # after the restart: still feedback
        card = [m for m in tg.chat_messages(STAFF_CHAT) if m.from_bot][-1]
        assert "The photo upload step is confusing" in card.text
        await thandi.press("Answer", card, chat_id=STAFF_CHAT)
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await thandi.send("We'll make it clearer, thanks!", chat_id=STAFF_CHAT)  # still the answer
        assert "We'll make it clearer, thanks!" in tg.last_bot_message(7005).text
        async with app.bot_data["desk"].sessions() as session:
            from sqlalchemy import text

            row = (await session.execute(text("SELECT text, answer, answered_by FROM feedback"))).one()
        assert tuple(row) == ("The photo upload step is confusing", "We'll make it clearer, thanks!", 800001)


async def test_expired_waits_are_dropped_when_the_bot_starts(database):
    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import FakeClock, make_settings, wipe

    await wipe(database)
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    early, late = tg.user(7020, "Early"), tg.user(7021, "Late")
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await early.send("/feedback")
        clock.advance(minutes=40)
        await late.send("/feedback")
    app = build_app(make_settings(database), request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await late.send("Nice bot")  # loads the waits: the expired one goes, the live one stays
        assert tg.last_bot_message(7021).button_texts[0] == "1⭐"
        async with app.bot_data["desk"].sessions() as session:
            from sqlalchemy import text

            assert (await session.execute(text("SELECT count(*) FROM pending_inputs"))).scalar() == 0
            assert (await session.execute(text("SELECT user_id FROM feedback"))).scalars().all() == [7021]
