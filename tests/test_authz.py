"""Authorisation of every staff and moderator action, on every press and command.

For each staff/moderator button pattern and staff command registered in
``bot/app.register_handlers``, the test sends it (a) from people who are not staff, in
the staff chat, (b) from staff and moderators outside a staff chat (their private chat,
another group), (c) from real staff with forged ids (another department's ticket, a
draft, objects that do not exist, huge numbers), and asserts that the bot refuses
(a pop-up or a reply where it came from), reaches no error handler, tells nobody else,
and leaves the database exactly as it was.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text
from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.schema import metadata
from handlers import ads, staff
from tests.support import STAFF_CHAT
from tests.test_ads_flow import mod_card, post_ad
from tests.test_escalation import card, open_ticket

IT_CHAT = -1002000000002
OTHER_GROUP = -1004000000004
ADMIN_ID = 900001  # staff.admin_ids in tests.support
MOD_ID = 810077  # ads.moderator_ids below
HUGE = "999999999999999999"  # 18 digits: the most the patterns accept

pytestmark = [
    pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", False), (OTHER_GROUP, "Some other group", False)]]),
    pytest.mark.parametrize("settings_overrides", [{
        "support": {"departments": {"general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}},
        "ads": {"moderator_ids": [MOD_ID]},
    }]),
]

# Every staff-side button: (callback data with {placeholders}, who may press it).
STAFF_BUTTONS = [
    ("t:claim:{open}", "staff"),
    ("t:release:{open}", "staff"),
    ("t:resolve:{open}", "staff"),
    ("t:spam:{open}", "staff"),
    ("t:reopen:{resolved}", "staff"),
    ("t:learn:{resolved}:0", "staff"),
    ("t:learn:{resolved}:n", "staff"),
    ("kb:ok:{phrasing}", "staff"),
    ("kb:drop:{phrasing}", "staff"),
    ("m:ok:{pending_ad}", "moderator"),
    ("m:rej:{pending_ad}", "moderator"),
    ("m:chg:{pending_ad}", "moderator"),
    ("m:back:{pending_ad}", "moderator"),
    ("m:ban:{pending_ad}", "moderator"),
    ("m:banok:{pending_ad}", "moderator"),
    ("m:ro:{pending_ad}", "moderator"),
    ("m:co:{pending_ad}", "moderator"),
    ("m:r:{pending_ad}:prohibited", "moderator"),
    ("m:c:{pending_ad}:prohibited", "moderator"),
    ("rep:up:{report}", "moderator"),
    ("rep:no:{report}", "moderator"),
    ("m:down:{live_ad}", "moderator"),
    ("fb:a:{open}", "staff"),
    ("kbd:save", "staff"),
    ("kbd:cancel", "staff"),
    ("kbd:cat:payments", "staff"),
    ("kbe:title:post-an-ad", "staff"),
    ("kbx:yes:post-an-ad", "staff"),
    ("kbx:no:post-an-ad", "staff"),
    ("pv:forget:{user}", "admin"),
    ("pv:spare:{user}", "admin"),
]

# Every staff-chat command with arguments that would act if allowed.
STAFF_COMMANDS = [
    ("/queue", "staff"),
    ("/ticket {open}", "staff"),
    ("/assign {open} @thandi_support", "staff"),
    ("/resolve {open}", "staff"),
    ("/reopen {resolved}", "staff"),
    ("/note secret internal note", "staff"),
    ("/canned add greet Hello there", "staff"),
    ("/transfer {open} it", "staff"),
    ("/repost ticket {open}", "staff"),
    ("/repost feedback {feedback}", "staff"),
    ("/repost ad {pending_ad}", "moderator"),
    ("/repost report {report}", "moderator"),
    ("/kb review", "staff"),
    ("/kb delete post-an-ad", "staff"),
    ("/cancel", "staff"),
    ("/report 2026-10", "staff"),
    ("/help", "staff"),
    ("/modqueue", "moderator"),
    ("/strikes @seller_a", "moderator"),
    ("/warn @seller_a spamming", "moderator"),
    ("/unban @seller_a", "moderator"),
    ("/pardon {strike}", "moderator"),
    ("/userdata @lerato", "admin"),
    ("/forget @lerato", "admin"),
]

REFUSAL = {"staff": "Only staff can do that.", "moderator": "Only moderators can do that.", "admin": "Only admins can do that."}
# commands whose refusal has words of its own
OWN_REFUSAL = {"/report": "Only staff can ask for the report."}


def refusal_of(text: str, who: str) -> str:
    return OWN_REFUSAL.get(text.split()[0], REFUSAL[who])

# Button handlers that belong to users (their own tickets, ads, votes): not staff actions.
USER_BUTTON_HANDLERS = {
    "on_vote", "on_choose", "on_followup", "on_talk", "on_category", "on_cancel", "on_close", "on_reopen", "on_rate",
    "on_appeal", "on_owner_button", "on_report_button", "on_ad_button", "stale_button", "on_user_button",
    "on_guide_button", "on_onboarding_button", "on_language_button",
}


async def world(desk) -> dict[str, Any]:
    """Something to act on for every button: tickets in each state, ads, a report, a
    pending learned phrasing, a strike."""
    tg = desk.tg
    thandi = tg.staff(800001, "Thandi", STAFF_CHAT, username="thandi_support")
    mo = tg.staff(810001, "Moderator Mo", STAFF_CHAT, status="administrator")
    lerato = tg.user(5001, "Lerato", username="lerato")
    resolved = await open_ticket(desk, lerato)
    await thandi.send(f"/resolve {resolved} faq:post-an-ad", chat_id=STAFF_CHAT)
    kabelo = tg.user(5002, "Kabelo")
    await kabelo.send("/support")
    await kabelo.press("Payments")
    await kabelo.send("The refund for my featured listing never arrived")
    open_ = await desk.scalar("SELECT max(id) FROM tickets")
    zanele = tg.user(5003, "Zanele")
    await zanele.send("/support")
    await zanele.press("Something is broken")  # a draft: staff do not see it
    draft = await desk.scalar("SELECT max(id) FROM tickets")
    seller_a = tg.user(6001, "Seller A", username="seller_a")
    live_ad = await post_ad(desk, seller_a)
    await mo.press("Approve", mod_card(desk, live_ad))
    buyer = tg.user(6002, "Buyer")
    await buyer.send(f"/report {live_ad}")
    await buyer.press("Wrong category")
    seller_b = tg.user(6003, "Seller B", username="seller_b")
    pending_ad = await post_ad(desk, seller_b)
    seller_c = tg.user(6004, "Seller C")
    draft_ad = await post_ad(desk, seller_c, submit=False)
    await mo.send("/warn @seller_a testing", chat_id=STAFF_CHAT)
    writer = tg.user(5004, "Writer")
    await writer.send("/feedback")
    await writer.send("Please add a dark mode")
    ids = {
        "open": open_, "resolved": resolved, "draft": draft,
        "live_ad": live_ad, "pending_ad": pending_ad, "draft_ad": draft_ad,
        "report": await desk.scalar("SELECT max(id) FROM ad_reports"),
        "phrasing": await desk.scalar("SELECT max(id) FROM kb_phrasings WHERE status = 'pending'"),
        "strike": await desk.scalar("SELECT max(id) FROM strikes"),
        "feedback": await desk.scalar("SELECT max(id) FROM feedback"),
        "user": lerato.id,
    }
    assert all(ids.values()), ids
    assert await desk.scalar("SELECT status FROM tickets WHERE id = :i", i=draft) == "draft"
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=draft_ad) == "draft"
    return {"ids": ids, "thandi": thandi, "mo": mo, "card": card(desk, open_)}


async def snapshot(desk) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (staff_members only records who was seen acting)."""
    # processed_updates only records which updates were seen (handlers.dedupe), like
    # staff_members records who was seen acting: neither is an effect of the action
    queries = {t.name: f'SELECT * FROM "{t.name}"' for t in metadata.sorted_tables if t.name not in ("staff_members", "processed_updates")}
    # the knowledge base is large and only changes through these columns
    queries["kb_entries"] = "SELECT id, updated_at FROM kb_entries"
    queries["kb_phrasings"] = "SELECT id, entry_id, status FROM kb_phrasings"
    async with desk.sessions() as session:  # one read transaction: a consistent picture
        return {name: sorted(map(tuple, (await session.execute(text(sql))).all()), key=repr) for name, sql in queries.items()}


def _changed(before, after):
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}


async def expect_refusal(
    desk, caplog, actor, what: str, *, chat_id: int, message=None, refusal: str | None = None, may_edit: bool = False,
    check_db: bool = True,
) -> list[str]:
    """Send ``what`` (a command or callback data) from ``actor`` in ``chat_id``; return
    the problems found (empty: refused cleanly). ``may_edit``: staff pressing a forged
    button may see the pressed message itself change (e.g. its buttons go)."""
    problems = []
    before = await snapshot(desk) if check_db else None
    caplog.clear()
    if what.startswith("/"):
        calls = await actor.send(what, chat_id=chat_id)
    else:
        calls = await actor.press_data(what, message)
    label = f"{actor.name} in {chat_id}: {what}"
    if check_db and (changed := _changed(before, await snapshot(desk))):
        problems.append(f"{label}: database changed: {changed}")
    if errors := [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]:
        problems.append(f"{label}: error logged: {errors}")
    said = []
    for call in calls:
        if call.method == "answerCallbackQuery":
            said.append(call.params.get("text") or "")
            continue
        target = int(call.params.get("chat_id") or 0)
        if call.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup", "copyMessage", "sendPhoto", "sendDocument",
                           "sendMediaGroup", "deleteMessage", "createForumTopic", "closeForumTopic", "reopenForumTopic"):
            pressed = message is not None and int(call.params.get("message_id") or 0) == message.message_id
            if may_edit and target == chat_id and pressed and call.method.startswith("edit"):
                continue
            if target != chat_id or call.method != "sendMessage":
                problems.append(f"{label}: {call.method} to {target}")
            else:
                said.append(call.params.get("text") or "")
    if not any(said):
        problems.append(f"{label}: no refusal was shown")
    elif refusal is not None and not any(refusal in s for s in said):
        problems.append(f"{label}: expected {refusal!r}, got {said}")
    return problems


def fill(template: str, ids: dict[str, Any]) -> str:
    return template.format(**ids)


# ------------------------------------------------------------------ coverage of the table


async def test_every_staff_button_and_command_registered_is_in_the_table(desk):
    app = desk.app
    samples = [fill(data, {k: 1 for k in ("open", "resolved", "phrasing", "pending_ad", "report", "live_ad", "user", "feedback")}) for data, _ in STAFF_BUTTONS]
    staff_handlers, commands = [], set()
    for handler in app.handlers[0]:
        if isinstance(handler, CallbackQueryHandler):
            name = handler.callback.__name__
            if name in USER_BUTTON_HANDLERS:
                continue
            staff_handlers.append(name)
            assert any(handler.check_update(_callback(app, s)) for s in samples), f"staff button handler {name} has no case here"
        if isinstance(handler, CommandHandler):
            staff_message = _message(app, STAFF_CHAT, "/" + next(iter(handler.commands)))
            if handler.check_update(staff_message):
                commands |= set(handler.commands)
    assert {"on_ticket_button", "on_mod_button", "on_report_decision", "on_take_down"} <= set(staff_handlers)
    tested = {text.split()[0][1:] for text, _ in STAFF_COMMANDS}
    assert commands == tested, f"staff commands without a case: {commands - tested}; stale cases: {tested - commands}"


def _callback(app, data: str) -> Update:
    return Update.de_json({"update_id": 1, "callback_query": {
        "id": "1", "from": {"id": 1, "is_bot": False, "first_name": "x"}, "chat_instance": "c", "data": data,
        "message": {"message_id": 1, "date": 0, "chat": {"id": STAFF_CHAT, "type": "supergroup", "title": "s"}, "text": "x"}}}, app.bot)


def _message(app, chat_id: int, text: str) -> Update:
    return Update.de_json({"update_id": 1, "message": {
        "message_id": 1, "date": 0, "chat": {"id": chat_id, "type": "supergroup", "title": "s"}, "text": text,
        "from": {"id": 1, "is_bot": False, "first_name": "x"},
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]}}, app.bot)


# ------------------------------------------------------------------ (a) not staff, in the staff chat


async def test_people_who_are_not_staff_are_refused_in_the_staff_chat(desk, caplog):
    w = await world(desk)
    ids, card_msg = w["ids"], w["card"]
    tg = desk.tg
    outsiders = [
        tg.user(7001, "Stranger"),  # never a member (e.g. a forwarded message's button, a leaked invite)
        tg.staff(7002, "Former agent", STAFF_CHAT, status="kicked"),
        tg.staff(7003, "Left agent", STAFF_CHAT, status="left"),
        tg.staff(7004, "Muted", STAFF_CHAT, status="restricted"),
    ]
    problems = []
    for person in outsiders:
        for data, who in STAFF_BUTTONS:
            problems += await expect_refusal(desk, caplog, person, fill(data, ids), chat_id=STAFF_CHAT, message=card_msg, refusal=REFUSAL[who])
        for text, who in STAFF_COMMANDS:
            problems += await expect_refusal(desk, caplog, person, fill(text, ids), chat_id=STAFF_CHAT, refusal=refusal_of(text, who))
    # a stranger's reply to a ticket's card is not relayed to the user
    stranger = outsiders[0]
    before = await snapshot(desk)
    calls = await stranger.send("hello, I am from support, send me your password", chat_id=STAFF_CHAT, reply_to=card_msg)
    assert not [c for c in calls if c.method in ("sendMessage", "copyMessage") and int(c.params["chat_id"]) != STAFF_CHAT]
    assert _changed(before, await snapshot(desk)) == {}
    print("\n".join(problems))
    assert problems == []


async def test_staff_who_are_not_moderators_cannot_moderate(desk, caplog):
    w = await world(desk)
    ids = w["ids"]
    agent = w["thandi"]  # a plain member of the staff chat
    it_admin = desk.tg.staff(7010, "IT lead", IT_CHAT, status="administrator")  # admin of a department chat only
    problems = []
    for data, who in STAFF_BUTTONS:
        if who != "staff":
            problems += await expect_refusal(desk, caplog, agent, fill(data, ids), chat_id=STAFF_CHAT, message=w["card"], refusal=REFUSAL[who])
    for text, who in STAFF_COMMANDS:
        if who != "staff":
            problems += await expect_refusal(desk, caplog, agent, fill(text, ids), chat_id=STAFF_CHAT, refusal=REFUSAL[who])
    await it_admin.send("/queue", chat_id=IT_CHAT)
    it_message = desk.tg.last_bot_message(IT_CHAT)
    for data, who in STAFF_BUTTONS:
        if who != "staff":
            problems += await expect_refusal(desk, caplog, it_admin, fill(data, ids), chat_id=IT_CHAT, message=it_message)
        elif "{open}" in data or "{resolved}" in data:  # general tickets are not the IT desk's
            problems += await expect_refusal(desk, caplog, it_admin, fill(data, ids), chat_id=IT_CHAT, message=it_message)
    for text, who in STAFF_COMMANDS:
        if who != "staff" or "{" in text:
            problems += await expect_refusal(desk, caplog, it_admin, fill(text, ids), chat_id=IT_CHAT)
    print("\n".join(problems))
    assert problems == []


# ------------------------------------------------------------------ (b) staff outside a staff chat


async def test_staff_and_moderators_are_refused_outside_a_staff_chat(desk, caplog):
    w = await world(desk)
    ids = w["ids"]
    tg = desk.tg
    people = [
        w["thandi"],  # staff chat member
        w["mo"],  # staff chat administrator (moderator)
        tg.user(ADMIN_ID, "Admin"),  # staff.admin_ids
        tg.user(MOD_ID, "Listed moderator"),  # ads.moderator_ids
    ]
    problems = []
    for person in people:
        await person.send("/start")  # a message of the bot in their private chat to press on
        private_message = tg.last_bot_message(person.id)
        await person.send("hello", chat_id=OTHER_GROUP)
        group_message = tg.chat_messages(OTHER_GROUP)[-1]
        before = await snapshot(desk)  # nothing below may change anything: one comparison per person
        for data, _ in STAFF_BUTTONS:
            problems += await expect_refusal(desk, caplog, person, fill(data, ids), chat_id=person.id, message=private_message, check_db=False)
            problems += await expect_refusal(desk, caplog, person, fill(data, ids), chat_id=OTHER_GROUP, message=group_message, check_db=False)
        for text, _ in STAFF_COMMANDS:
            # in a private chat the staff commands do not exist (user-side /help answers as for any user)
            calls = await person.send(fill(text, ids), chat_id=person.id)
            sent = [c for c in calls if c.method == "sendMessage"]
            if any(int(c.params["chat_id"]) != person.id for c in sent):
                problems.append(f"{person.name} privately: {text} sent elsewhere")
            if any("#" + str(ids["open"]) in (c.params.get("text") or "") for c in sent):
                problems.append(f"{person.name} privately: {text} showed a ticket")
            # in another group they do nothing at all
            calls = await person.send(fill(text, ids), chat_id=OTHER_GROUP)
            if [c for c in calls if c.method != "answerCallbackQuery"]:
                problems.append(f"{person.name} in another group: {text} answered")
        if changed := _changed(before, await snapshot(desk)):
            problems.append(f"{person.name} outside the staff chat changed the database: {changed}")
    print("\n".join(problems))
    assert problems == []


# ------------------------------------------------------------------ (c) forged ids


FORGED_BUTTONS = [
    # another department's ticket is covered above; here: drafts, nothing, huge
    "t:claim:{draft}", "t:resolve:{draft}", "t:spam:{draft}", "t:release:{draft}", "t:reopen:{draft}",
    "t:claim:424242", f"t:claim:{HUGE}", f"t:resolve:{HUGE}", f"t:reopen:{HUGE}", f"t:release:{HUGE}", f"t:spam:{HUGE}",
    "t:learn:{open}:0", "t:learn:{resolved}:7", f"t:learn:{HUGE}:0", f"t:learn:{HUGE}:n",
    "kb:ok:1", f"kb:ok:{HUGE}", f"kb:drop:{HUGE}",
    "m:ok:{draft_ad}", "m:r:{draft_ad}:prohibited", "m:c:{draft_ad}:prohibited", "m:banok:{draft_ad}",
    "m:ro:{draft_ad}", "m:co:{draft_ad}", "m:rej:{draft_ad}", "m:ban:{draft_ad}",
    f"m:ok:{HUGE}", f"m:rej:{HUGE}", f"m:chg:{HUGE}", f"m:back:{HUGE}", f"m:ban:{HUGE}", f"m:banok:{HUGE}",
    f"m:ro:{HUGE}", f"m:co:{HUGE}", f"m:r:{HUGE}:prohibited", f"m:c:{HUGE}:prohibited", "m:r:{pending_ad}:no-such-reason",
    f"rep:up:{HUGE}", f"rep:no:{HUGE}", "m:down:{pending_ad}", "m:down:{draft_ad}", f"m:down:{HUGE}",
    f"pv:forget:{HUGE}", "pv:forget:424242",
]

FORGED_COMMANDS = [
    "/ticket {draft}", "/ticket 424242", f"/ticket {HUGE}", "/resolve {draft}", f"/resolve {HUGE}", "/reopen {draft}",
    f"/reopen {HUGE}", "/assign {draft} @thandi_support", f"/assign {HUGE} @thandi_support", "/transfer {draft} it",
    f"/transfer {HUGE} it", "/transfer {open} nowhere", f"/pardon {HUGE}", "/pardon 424242", f"/strikes {HUGE}",
    f"/warn {HUGE} x", f"/unban {HUGE}", "/strikes @nobody_here", f"/strikes {HUGE}99", f"/warn -{HUGE}99 x", f"/unban {HUGE}99",
    f"/userdata {HUGE}", "/userdata @nobody_here", "/userdata", f"/forget {HUGE}9999", "/forget -5", "/forget @nobody_here",
    "/repost", "/repost ticket", "/repost nothing 1", "/repost ticket x", "/repost ticket -5", "/repost ticket {draft}",
    "/repost ticket 424242", f"/repost ticket {HUGE}", f"/repost ticket {HUGE}99", "/repost feedback 424242", f"/repost feedback {HUGE}",
    "/repost ad {draft_ad}", "/repost ad {live_ad}", "/repost ad 424242", f"/repost ad {HUGE}", "/repost report 424242",
    f"/repost report {HUGE}",
]


async def test_forged_ids_from_real_staff_are_refused(desk, caplog):
    w = await world(desk)
    ids = w["ids"]
    admin = desk.tg.user(ADMIN_ID, "Admin")  # may do everything, from the staff chat
    problems = []
    for data in FORGED_BUTTONS:
        problems += await expect_refusal(desk, caplog, admin, fill(data, ids), chat_id=STAFF_CHAT, message=w["card"], may_edit=True)
    for text in FORGED_COMMANDS:
        problems += await expect_refusal(desk, caplog, admin, fill(text, ids), chat_id=STAFF_CHAT)
    print("\n".join(problems))
    assert problems == []


async def test_the_same_presses_from_the_right_people_do_act(desk):
    """The refusals above are not the bot refusing everything."""
    w = await world(desk)
    ids = w["ids"]
    admin = desk.tg.user(ADMIN_ID, "Admin")
    await admin.press_data(f"t:claim:{ids['open']}", w["card"])
    assert await desk.scalar("SELECT assignee_id FROM tickets WHERE id = :i", i=ids["open"]) == ADMIN_ID
    listed = desk.tg.user(MOD_ID, "Listed moderator")
    await listed.press_data(f"m:ok:{ids['pending_ad']}", mod_card(desk, ids["pending_ad"]))
    assert await desk.scalar("SELECT status FROM ads WHERE id = :i", i=ids["pending_ad"]) == "approved"
    await w["mo"].press_data(f"rep:no:{ids['report']}", w["card"])
    assert await desk.scalar("SELECT status FROM ad_reports") == "dismissed"
    await w["thandi"].press_data(f"kb:ok:{ids['phrasing']}", w["card"])
    assert await desk.scalar("SELECT status FROM kb_phrasings WHERE id = :i", i=ids["phrasing"]) == "active"
    before = await desk.scalar("SELECT card_message_id FROM tickets WHERE id = :i", i=ids["open"])
    await w["thandi"].send(f"/repost ticket {ids['open']}", chat_id=STAFF_CHAT)
    assert await desk.scalar("SELECT card_message_id FROM tickets WHERE id = :i", i=ids["open"]) not in (None, before)
    await w["mo"].send(f"/repost ad {ids['live_ad']}", chat_id=STAFF_CHAT)  # moderated: no card, an answer
    assert "has no card to show" in desk.tg.last_bot_message(STAFF_CHAT).text


# ------------------------------------------------------------------ users' own buttons, forged


USER_BUTTONS_OF_OTHERS = [
    "tk:close:{open}", "tk:reopen:{resolved}", "tk:cancel:{draft}", "r:{resolved}:5", "r:{resolved}:skip",
    "my:edit:{live_ad}", "my:sold:{live_ad}", "my:delete:{live_ad}", "my:renew:{live_ad}", "my:delete:{pending_ad}",
    "v:{question}:1", "v:{question}:0", "c:{question}:0", "c:{question}:n", "tk:new:{question}",
    "ad:reedit:{pending_ad}:title", "ad:reedit:{draft_ad}:preview", "rp:dispute:{live_ad}",
    f"tk:close:{HUGE}", f"r:{HUGE}:5", f"my:delete:{HUGE}", f"v:{HUGE}:1", f"tk:new:{HUGE}", f"rp:{HUGE}:scam",
]


async def test_users_cannot_press_other_peoples_buttons(desk, caplog):
    """The user-side buttons carry ids too: another user's ticket, ad, question or
    rating, pressed with forged data, is refused and changes nothing."""
    w = await world(desk)
    ids = {**w["ids"], "question": await desk.scalar("SELECT min(id) FROM questions WHERE user_id = 5001")}
    mallory = desk.tg.user(7666, "Mallory")
    await mallory.send("/start")
    mine = desk.tg.last_bot_message(mallory.id)
    problems = []
    for data in USER_BUTTONS_OF_OTHERS:
        problems += await expect_refusal(desk, caplog, mallory, fill(data, ids), chat_id=mallory.id, message=mine, may_edit=True)
    print("\n".join(problems))
    assert problems == []
    # a category pressed with someone else's question id is a plain request of one's own:
    # the other person's question is not copied into it
    await mallory.press_data(f"tk:cat:{ids['question']}:payments", mine)
    mine_now = (await desk.rows("SELECT subject, question_id FROM tickets WHERE user_id = 7666"))[0]
    assert tuple(mine_now) == ("", None)
