"""SLA alerts to staff are durable: queued in the outbox with the SLA step they announce.

The sweep marks a ticket's SLA step done (``sla_level``, ``resolution_breached``, an
event) and, in the same transaction, queues the rendered alert as a notice to the
ticket's place in the staff chat (re-announce and resolution breach: the chat's General
topic in a forum; the assignee's reminder: the ticket's topic, or a reply to its card),
looked up when it is sent. After the commit it is claimed and sent; what a crash left
pending the next sweep sends, once; a timeout is *maybe delivered* and never sent again;
Telegram's flood limit holds that chat's alerts only, until retry_after; a refusal (the
bot was removed from the staff chat) is recorded failed and logged, once.

The bot is "killed" right after the commit (:func:`tests.test_notices.killed_after_commit`),
as a dying process would leave it: the step is marked done, the alert never sent.
"""

from __future__ import annotations

import logging

import pytest

from bot.outbox import STUCK_ERROR
from tests.support import STAFF_CHAT
from tests.test_escalation import card, open_ticket, staff_pair
from tests.test_notices import Killed, kill_at, killed_after_commit
from tests.test_repair import sweep

USER = 6701
IT_CHAT = -1002000000002
ADMIN_ID = 900001
NO_RETRIES = {"telegram": {"max_retries": 0}}  # a 429 reaches the bot at once (no waiting in tests)
CONTACTS = {"sla": {"escalation_contacts": ["@team_lead"]}}
IT_DESK = {"support": {"departments": {"general": {"label": "General support"}, "it": {"label": "IT", "chat_id": IT_CHAT}}}}
TIMEOUT_ERROR = "the request timed out; it may have arrived"


def alerts(desk, chat_id=STAFF_CHAT, needle="⏰"):
    """The alerts that arrived in ``chat_id``."""
    return [m for m in desk.tg.chat_messages(chat_id) if m.from_bot and needle in m.text]


def alert_sends(desk, needle="⏰"):
    """Every sendMessage of an alert the bot tried (also refused and timed-out ones)."""
    return [c for c in desk.tg.calls if c.method == "sendMessage" and needle in str(c.params.get("text", ""))]


async def staff_notices(desk):
    """(kind, ref, state, has a message id, error) of the notices that are not to users."""
    rows = await desk.rows(
        "SELECT kind, ref, state, message_id IS NOT NULL, error FROM notices WHERE audience != 'user' ORDER BY id"
    )
    return [tuple(r) for r in rows]


async def later_sweeps(desk, times=3, minutes=3):
    for _ in range(times):
        desk.clock.advance(minutes=minutes)
        await sweep(desk)


async def crashed_reannounce(desk):
    """A payments ticket (first reply within 1 hour) nobody claims; the sweep that marks
    it re-announced dies right after its commit."""
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(minutes=61)
    with killed_after_commit("sla_reannounce"), pytest.raises(Killed):
        await sweep(desk)
    assert await desk.scalar("SELECT sla_level FROM tickets WHERE id = :n", n=number) == 1
    assert alerts(desk) == []
    return number


# ------------------------------------------------------------------ a crash between the commit and the send


@pytest.mark.parametrize("staff_forum", [False, True])
@pytest.mark.parametrize("settings_overrides", [CONTACTS])
async def test_reannounce_crash_after_commit_the_next_sweep_posts_it_once(desk, staff_forum, settings_overrides):
    number = await crashed_reannounce(desk)
    assert await staff_notices(desk) == [("sla_reannounce", f"ticket:{number}", "pending", False, None)]
    await sweep(desk)  # too fresh: the sweep that queued it may be sending it right now
    assert alerts(desk) == []
    await later_sweeps(desk)
    [alert] = alerts(desk)
    assert f"#{number} has waited 1 hour without an agent (target 1 hour)" in alert.text and "@team_lead" in alert.text
    if staff_forum:  # the General topic, where everybody looks
        assert alert.thread_id is None and alert.reply_to is None
    else:
        assert alert.reply_to == card(desk, number).message_id
    assert await staff_notices(desk) == [("sla_reannounce", f"ticket:{number}", "sent", True, None)]
    assert await desk.scalar("SELECT message_id FROM notices WHERE kind = 'sla_reannounce'") == alert.message_id
    assert await desk.scalar("SELECT sla_level FROM tickets") == 1  # the step was not taken twice
    assert desk.tg.errors() == []


@pytest.mark.parametrize("staff_forum", [False, True])
async def test_assignee_reminder_crash_after_commit_goes_to_the_tickets_place_once(desk, staff_forum):
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    await thandi.press("Claim", card(desk, number))
    desk.clock.advance(minutes=61)
    with killed_after_commit("sla_ping"), pytest.raises(Killed):
        await sweep(desk)
    assert alerts(desk, needle="has no reply yet") == []
    assert await staff_notices(desk) == [("sla_ping", f"ticket:{number}", "pending", False, None)]
    await later_sweeps(desk)
    [ping] = alerts(desk, needle="has no reply yet")
    assert "Thandi" in ping.text and f"#{number} has no reply yet (target 1 hour)" in ping.text
    if staff_forum:
        assert ping.thread_id == card(desk, number).thread_id is not None
    else:
        assert ping.reply_to == card(desk, number).message_id
    assert [n[2] for n in await staff_notices(desk)] == ["sent"]


async def test_resolution_breach_crash_after_commit_is_posted_once_with_the_reannounce(desk):
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(days=1, minutes=1)  # past both targets of a high-priority case at once
    with killed_after_commit("sla_resolution"), pytest.raises(Killed):
        await sweep(desk)
    assert await desk.scalar("SELECT resolution_breached FROM tickets") in (1, True)
    assert [n[:3] for n in await staff_notices(desk)] == [
        ("sla_reannounce", f"ticket:{number}", "pending"), ("sla_resolution", f"ticket:{number}", "pending"),
    ]
    await later_sweeps(desk)
    assert len(alerts(desk, needle="has waited")) == 1
    [breach] = alerts(desk, needle="past its resolution target")
    assert f"#{number} is past its resolution target (24 hours)" in breach.text
    assert [n[2] for n in await staff_notices(desk)] == ["sent", "sent"]


async def test_alert_left_by_a_crash_follows_a_staff_chat_that_moved(desk):
    number = await crashed_reannounce(desk)
    new_chat = -1009000000888
    desk.tg.migrate_chat(STAFF_CHAT, new_chat)
    await later_sweeps(desk, times=2)
    assert alerts(desk) == []
    [alert] = alerts(desk, new_chat)
    assert f"#{number} has waited 1 hour" in alert.text
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'sla_reannounce'") == "sent"


async def test_alert_being_sent_when_the_bot_died_is_maybe_delivered_and_not_sent_again(desk):
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(minutes=61)
    kill_at(desk, "sendMessage", STAFF_CHAT)  # the alert's own send: claimed, outcome never recorded
    with pytest.raises(Killed):
        await sweep(desk)
    assert [n[2] for n in await staff_notices(desk)] == ["sending"]
    await later_sweeps(desk, times=2)
    assert [n[2] for n in await staff_notices(desk)] == ["sending"]  # the stuck grace is 10 minutes
    await later_sweeps(desk, times=3)
    assert await staff_notices(desk) == [("sla_reannounce", f"ticket:{number}", "maybe", False, STUCK_ERROR)]
    assert alerts(desk) == [] and len(alert_sends(desk)) == 1


# ------------------------------------------------------------------ Telegram's answers


@pytest.mark.parametrize("arrived", [False, True])
async def test_alert_that_timed_out_is_maybe_delivered_and_never_sent_twice(desk, arrived):
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.tg.fail("sendMessage", "timeout", chat_id=STAFF_CHAT, delivered=arrived)
    desk.clock.advance(minutes=61)
    await sweep(desk)
    assert await staff_notices(desk) == [("sla_reannounce", f"ticket:{number}", "maybe", False, TIMEOUT_ERROR)]
    await later_sweeps(desk, times=5, minutes=5)
    assert len(alert_sends(desk)) == 1
    assert len(alerts(desk)) == (1 if arrived else 0)
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'sla_reannounce'") == "maybe"


@pytest.mark.parametrize("extra_chats", [[(IT_CHAT, "IT desk", False)]])
@pytest.mark.parametrize("settings_overrides", [{**NO_RETRIES, **IT_DESK}])
async def test_flood_limit_for_the_staff_chat_holds_only_that_chats_alerts(desk, extra_chats, settings_overrides):
    staff_pair(desk)
    first = await open_ticket(desk, desk.tg.user(USER, "Naledi"))  # payments: the staff chat
    it = await open_ticket(desk, desk.tg.user(USER + 1, "Sipho"), category="Something is broken")  # the IT chat
    second = await open_ticket(desk, desk.tg.user(USER + 2, "Lwazi"))  # the staff chat
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, retry_after=30)
    desk.clock.advance(hours=4, minutes=1)  # every first-reply target missed
    await sweep(desk)
    # the IT chat hears it in this sweep; the staff chat's alerts wait out its retry_after, in order
    assert [m.text.split(" has")[0] for m in alerts(desk, IT_CHAT)] == [f"⏰ #{it}"]
    assert alerts(desk) == []
    rows = [tuple(r) for r in await desk.rows(
        "SELECT ref, state, retry_at IS NOT NULL, coalesce(error, '') LIKE '%flood%' FROM notices WHERE audience != 'user' ORDER BY id"
    )]
    assert rows == [
        (f"ticket:{first}", "pending", True, True), (f"ticket:{it}", "sent", False, False), (f"ticket:{second}", "pending", False, False),
    ]
    await sweep(desk)  # retry_after is not over: nothing is tried
    assert len(alert_sends(desk)) == 2
    desk.clock.advance(seconds=31)
    jobs = desk.app.job_queue.get_jobs_by_name("notice_retry")
    assert len(jobs) == 1
    jobs[0].schedule_removal()
    await jobs[0].run(desk.app)
    assert [m.text.split(" has")[0] for m in alerts(desk)] == [f"⏰ #{first}", f"⏰ #{second}"]
    await later_sweeps(desk)
    assert len(alerts(desk)) == 2 and len(alerts(desk, IT_CHAT)) == 1
    assert [r[1] for r in await desk.rows("SELECT ref, state FROM notices WHERE audience != 'user' ORDER BY id")] == ["sent"] * 3


async def test_alert_refused_because_the_bot_was_removed_from_the_staff_chat_is_recorded_once(desk, caplog):
    staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.tg.fail("sendMessage", "kicked", chat_id=STAFF_CHAT, times=100)
    desk.clock.advance(minutes=61)
    with caplog.at_level(logging.ERROR):
        await sweep(desk)
    [(kind, ref, state, has_id, error)] = await staff_notices(desk)
    assert (kind, ref, state, has_id) == ("sla_reannounce", f"ticket:{number}", "failed", False)
    assert "kicked" in error
    assert [r for r in caplog.records if r.levelno >= logging.ERROR and "sla_reannounce" in r.getMessage() and "kicked" in r.getMessage()]
    await later_sweeps(desk, times=5)
    assert len(alert_sends(desk)) == 1  # recorded once, not tried every minute
    # a refusal by the staff chat is not "the user blocked the bot"
    assert await desk.scalar("SELECT user_blocked_bot FROM tickets") in (0, False)
    assert await desk.scalar("SELECT count(*) FROM ticket_events WHERE note LIKE '%blocked the bot%'") == 0


# ------------------------------------------------------------------ erasure


async def test_deleteme_drops_the_alerts_about_the_users_cases(desk):
    number = await crashed_reannounce(desk)
    user = desk.tg.user(USER, "Naledi")
    await user.send("/deleteme")
    await user.press("Yes, erase my data")
    # the alert is gone; what is left about the case is the erasure's own line to staff
    rows = await desk.rows("SELECT kind, state FROM notices WHERE ref = :r", r=f"ticket:{number}")
    assert [tuple(r) for r in rows] == [("erasure_closed", "sent")]
    await later_sweeps(desk)
    assert alerts(desk) == []


async def test_forgetting_a_staff_member_drops_the_alerts_that_name_them(desk):
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    await thandi.press("Claim", card(desk, number))
    desk.clock.advance(minutes=61)
    await sweep(desk)  # the reminder names Thandi: sent
    desk.clock.advance(days=1)
    with killed_after_commit("sla_resolution"), pytest.raises(Killed):
        await sweep(desk)  # "it is with Thandi": left pending by a crash
    naming = "SELECT count(*) FROM notices WHERE audience != 'user' AND text LIKE '%Thandi%'"
    assert await desk.scalar(naming) == 2
    admin = desk.tg.user(ADMIN_ID, "Admin")
    await admin.send(f"/forget {thandi.id}", chat_id=STAFF_CHAT)
    await admin.press("Erase", desk.tg.last_bot_message(STAFF_CHAT))
    assert await desk.scalar("SELECT count(*) FROM staff_members WHERE id = :i", i=thandi.id) == 0
    assert await desk.scalar(naming) == 0
    await later_sweeps(desk)
    assert alerts(desk, needle="past its resolution target") == []


async def test_alert_with_an_answer_the_bot_cannot_read_is_maybe_delivered_and_the_next_goes_on(desk):
    """A broken proxy or Bot API server answers the first alert with something the bot
    cannot read: it may have arrived (maybe, never sent again), and the second ticket's
    alert to the same chat goes out in the same sweep, not behind it."""
    staff_pair(desk)
    first = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    second = await open_ticket(desk, desk.tg.user(USER + 1, "Sipho"))
    desk.clock.advance(minutes=61)
    desk.tg.fail("sendMessage", "garbage", chat_id=STAFF_CHAT)
    await sweep(desk)
    assert [m.text.split(" has")[0] for m in alerts(desk)] == [f"⏰ #{second}"]
    rows = await staff_notices(desk)
    assert [r[:3] for r in rows] == [("sla_reannounce", f"ticket:{first}", "maybe"), ("sla_reannounce", f"ticket:{second}", "sent")]
    assert "it may have arrived" in rows[0][4]
    await later_sweeps(desk, times=5, minutes=5)
    assert len(alert_sends(desk)) == 2


# ------------------------------------------------------------------ an alert sent late is checked against the ticket as it is now


async def dropped(desk):
    """(kind, error) of the staff notices the outbox dropped."""
    rows = await desk.rows("SELECT kind, error FROM notices WHERE audience != 'user' AND state = 'dropped' ORDER BY id")
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("change", ["claim", "resolve", "spam"])
async def test_reannounce_left_by_a_crash_is_dropped_when_the_ticket_was_taken_care_of_meanwhile(desk, change):
    """The re-announce ("please claim it") waits in the outbox after a crash; before a
    sweep sends it, an agent claims, resolves or closes the ticket: staff never see it,
    and the notice says why it was not sent."""
    number = await crashed_reannounce(desk)
    thandi = desk.tg.user(800001, "Thandi")
    if change == "claim":
        await thandi.press("Claim", card(desk, number))
    elif change == "resolve":
        await thandi.send(f"/resolve {number}", chat_id=STAFF_CHAT)
    else:
        await thandi.press("Close as spam", card(desk, number))
    await later_sweeps(desk)
    assert alerts(desk, needle="has waited") == []
    assert not [c for c in alert_sends(desk) if "has waited" in c.params["text"]]
    status = {"claim": "claimed", "resolve": "resolved", "spam": "closed"}[change]
    [(kind, error)] = [d for d in await dropped(desk) if d[0] == "sla_reannounce"]
    assert f"no longer applies: #{number} is {status} now" in error
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'sla_reannounce'") == "dropped"


async def test_reannounce_left_by_a_crash_still_goes_out_when_the_ticket_still_waits(desk):
    number = await crashed_reannounce(desk)
    desk.tg.user(800001, "Thandi")
    await later_sweeps(desk)
    assert len(alerts(desk, needle="has waited")) == 1 and await dropped(desk) == []
    assert f"#{number}" in alerts(desk)[0].text


async def test_reannounce_of_a_ticket_released_meanwhile_is_dropped_its_clock_started_again(desk):
    number = await crashed_reannounce(desk)
    thandi = desk.tg.user(800001, "Thandi")
    await thandi.press("Claim", card(desk, number))
    await thandi.press("Release", card(desk, number))  # new again, with a fresh reply target
    await later_sweeps(desk)
    assert alerts(desk, needle="has waited") == []
    assert await dropped(desk) == [("sla_reannounce", f"no longer applies: #{number} has a new target now")]


@pytest.mark.parametrize("change", ["reply", "reassign"])
async def test_assignee_reminder_left_by_a_crash_is_dropped_when_answered_or_reassigned_meanwhile(desk, change):
    thandi, sipho = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    await thandi.press("Claim", card(desk, number))
    desk.clock.advance(minutes=61)
    with killed_after_commit("sla_ping"), pytest.raises(Killed):
        await sweep(desk)
    if change == "reply":
        await thandi.send("We are looking at it.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
        reason = f"no longer applies: #{number} is waiting now"
    else:
        await sipho.send("/queue", chat_id=STAFF_CHAT)  # the bot knows Sipho
        await thandi.send(f"/assign {number} @sipho_support", chat_id=STAFF_CHAT)
        assert "assigned to Sipho" in desk.tg.last_bot_message(STAFF_CHAT).text
        reason = f"no longer applies: #{number} is with someone else now"
    await later_sweeps(desk)
    assert alerts(desk, needle="has no reply yet") == []
    assert await dropped(desk) == [("sla_ping", reason)]


async def test_a_ticket_reassigned_unanswered_reminds_the_new_assignee_one_reply_target_after_the_handover(desk):
    """/assign hands a case nobody answered yet to someone else: the reminder for the old
    assignee no longer applies (dropped), and the reply clock starts again for the new one,
    as after a release and a claim: one reply target (1 hour) after the handover, the new
    assignee is reminded, once, if the case is still unanswered."""
    thandi, sipho = staff_pair(desk)
    await sipho.send("/queue", chat_id=STAFF_CHAT)  # the bot knows Sipho
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    await thandi.press("Claim", card(desk, number))
    desk.clock.advance(minutes=61)
    await sweep(desk)
    [ping] = alerts(desk, needle="has no reply yet")
    assert "Thandi" in ping.text
    await thandi.send(f"/assign {number} @sipho_support", chat_id=STAFF_CHAT)
    desk.clock.advance(minutes=50)
    await sweep(desk)
    assert len(alerts(desk, needle="has no reply yet")) == 1  # within Sipho's reply target
    desk.clock.advance(minutes=11)
    await sweep(desk)
    await later_sweeps(desk)
    pings = alerts(desk, needle="has no reply yet")
    assert len(pings) == 2 and "Sipho" in pings[1].text and f"#{number} has no reply yet (target 1 hour)" in pings[1].text
    assert await desk.scalar("SELECT person_id FROM notices WHERE kind = 'sla_ping' ORDER BY id DESC LIMIT 1") == sipho.id
    # answered: nobody is reminded again
    await sipho.send("Looking into it now.", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await later_sweeps(desk, times=30)
    assert len(alerts(desk, needle="has no reply yet")) == 2


async def test_a_ticket_reassigned_while_waiting_on_the_user_reminds_nobody_until_the_user_writes(desk):
    """Handed over while staff wait for the user: no reply is owed, so no reminder; once
    the user writes, the new assignee has the reply target to answer, then is reminded."""
    thandi, sipho = staff_pair(desk)
    await sipho.send("/queue", chat_id=STAFF_CHAT)
    user = desk.tg.user(USER, "Naledi")
    number = await open_ticket(desk, user)
    await thandi.send("Which card did you use?", chat_id=STAFF_CHAT, reply_to=card(desk, number))
    await thandi.send(f"/assign {number} @sipho_support", chat_id=STAFF_CHAT)
    assert tuple((await desk.rows("SELECT status, assignee_id, reply_due_at FROM tickets"))[0]) == ("waiting", sipho.id, None)
    await later_sweeps(desk, times=30)
    assert alerts(desk, needle="has no reply yet") == []
    await user.send("The Visa ending 1234")
    desk.clock.advance(minutes=61)
    await sweep(desk)
    [ping] = alerts(desk, needle="has no reply yet")
    assert "Sipho" in ping.text


async def test_resolution_breach_and_reannounce_left_by_a_crash_are_both_dropped_once_the_ticket_is_resolved(desk):
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.clock.advance(days=1, minutes=1)
    with killed_after_commit("sla_resolution"), pytest.raises(Killed):
        await sweep(desk)
    await thandi.send(f"/resolve {number}", chat_id=STAFF_CHAT)
    await later_sweeps(desk)
    assert alerts(desk) == []
    reason = f"no longer applies: #{number} is resolved now"
    assert await dropped(desk) == [("sla_reannounce", reason), ("sla_resolution", reason)]


@pytest.mark.parametrize("settings_overrides", [NO_RETRIES])
async def test_alert_held_by_the_flood_limit_is_dropped_when_the_ticket_was_claimed_during_the_wait(desk, settings_overrides):
    thandi, _ = staff_pair(desk)
    number = await open_ticket(desk, desk.tg.user(USER, "Naledi"))
    desk.tg.fail("sendMessage", "flood", chat_id=STAFF_CHAT, retry_after=30)
    desk.clock.advance(minutes=61)
    await sweep(desk)
    assert await desk.scalar("SELECT state FROM notices WHERE kind = 'sla_reannounce'") == "pending"
    await thandi.press("Claim", card(desk, number))
    desk.clock.advance(seconds=31)
    [job] = desk.app.job_queue.get_jobs_by_name("notice_retry")
    job.schedule_removal()
    await job.run(desk.app)
    await later_sweeps(desk)
    assert alerts(desk, needle="has waited") == []
    assert len([c for c in alert_sends(desk) if "has waited" in c.params["text"]]) == 1  # the refused one only
    assert [d for d in await dropped(desk) if d[0] == "sla_reannounce"] == [("sla_reannounce", f"no longer applies: #{number} is claimed now")]
