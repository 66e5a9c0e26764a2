"""The ad event log: each state change of an ad, driven through the real bot, writes
exactly one ``ad_events`` row in the same transaction; penalties write ``user_events``;
migration 0016 backfills events from the ads rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from bot.db import make_engine
from bot.migrate import upgrade
from reports.build import collect
from reports.periods import parse_period
from tests.support import STAFF_CHAT
from tests.test_ads_flow import DESCRIPTION, mod_card, moderators, post_ad
from tests.test_ads_reports import report_card

CHANNEL = -1003000000003
MO, LEE = 810001, 810002


async def events(desk, ad_id):
    return [tuple(r) for r in await desk.rows("SELECT kind, actor_id, reason FROM ad_events WHERE ad_id = :i ORDER BY id", i=ad_id)]


async def test_reject_fix_resubmit_approve_sold_one_event_each(desk):
    user = desk.tg.user(7001, "Zanele")
    mo, lee = moderators(desk)
    ad_id = await post_ad(desk, user, description=DESCRIPTION + " WhatsApp 082 123 4567.")
    assert await events(desk, ad_id) == [("submitted", None, None)]  # the draft steps write none
    desk.clock.advance(minutes=40)
    await mo.press("Reject", mod_card(desk, ad_id))
    assert len(await events(desk, ad_id)) == 1  # choosing the reason is not yet a decision
    await mo.press("Contact details in text", mod_card(desk, ad_id))
    assert (await events(desk, ad_id))[1:] == [("rejected", MO, "contact-in-text")]
    await user.press("Edit and resubmit", desk.tg.last_bot_message(7001))
    assert (await events(desk, ad_id))[2:] == [("reopened", None, None)]
    await user.send(DESCRIPTION)
    desk.clock.advance(minutes=5)
    await user.press("Submit")
    assert (await events(desk, ad_id))[3:] == [("resubmitted", None, None)]
    desk.clock.advance(minutes=90)
    await lee.press("Approve", mod_card(desk, ad_id))
    assert (await events(desk, ad_id))[4:] == [("approved", LEE, None)]
    await user.send("/myads")
    await user.press(f"Sold #{ad_id}", desk.tg.last_bot_message(7001))
    assert (await events(desk, ad_id))[5:] == [("sold", None, None)]
    assert await desk.scalar("SELECT count(*) FROM ad_events") == 6
    # the report counts both rounds, each decision by its moderator, and times the
    # approval from the resubmission it answered (90 min, not 135 from the first)
    async with desk.sessions() as session:
        ads = (await collect(session, parse_period("2026-11", ZoneInfo("UTC")))).ads
    assert (ads["submitted"], ads["resubmitted"], ads["approved"], ads["rejected"], ads["pending_at_end"]) == (2, 1, 1, 1, 0)
    assert ads["approval_minutes_values"] == [90.0]
    assert ads["rejection_reasons"] == [{"reason": "contact-in-text", "count": 1}]
    # moderators acting on cards are recorded as staff: named, in the order of their names
    assert [(m["id"], m["name"], m["approved"], m["rejected"]) for m in ads["per_moderator"]] == [
        (LEE, "Moderator Lee", 1, 0), (MO, "Moderator Mo", 0, 1),
    ]


async def test_changes_requested_and_a_race_write_one_decision_each(desk):
    user = desk.tg.user(7002, "Bheki")
    mo, lee = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Request changes", mod_card(desk, ad_id))
    await mo.press("Unrealistic price", mod_card(desk, ad_id))
    await user.press("Change it", desk.tg.last_bot_message(7002))
    await user.send("R 95 000")
    await user.press("Submit")
    card = mod_card(desk, ad_id)
    await asyncio.gather(desk.tg.feed(mo.callback_update(f"m:ok:{ad_id}", card)), desk.tg.feed(lee.callback_update(f"m:r:{ad_id}:duplicate", card)))
    kinds = await events(desk, ad_id)
    assert kinds[:4] == [("submitted", None, None), ("changes_requested", MO, "price"), ("reopened", None, None), ("resubmitted", None, None)]
    assert kinds[4:] in ([("approved", MO, None)], [("rejected", LEE, "duplicate")])  # exactly one of the two


@pytest.mark.parametrize("extra_chats", [[(CHANNEL, "SayPro ads", False)]])
@pytest.mark.parametrize("settings_overrides", [{"ads": {"channel_id": CHANNEL}}])
async def test_expiry_renewal_edit_of_a_live_ad_and_withdrawal(desk):
    user = desk.tg.user(7003, "Forgetful seller")
    mo, _ = moderators(desk)
    ad_id = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, ad_id))
    job = desk.app.job_queue.get_jobs_by_name("ad_expiry")[0]
    desk.clock.advance(days=31)
    await job.run(desk.app)
    await job.run(desk.app)  # a second sweep changes nothing
    assert (await events(desk, ad_id))[2:] == [("expired", None, None)]
    await user.press("Renew", desk.tg.last_bot_message(7003))
    assert (await events(desk, ad_id))[3:] == [("renewed", None, None)]
    await user.send("/myads")
    await user.press(f"Edit #{ad_id}")
    assert (await events(desk, ad_id))[4:] == [("reopened", None, None)]
    await user.send("/cancel")  # withdrawn, not erased
    assert (await events(desk, ad_id))[5:] == [("deleted", None, None)]
    assert await desk.scalar("SELECT status FROM ads") == "deleted"
    other = await post_ad(desk, user, description=DESCRIPTION + " A second car, white.")
    await user.send("/myads")
    await user.press(f"Delete #{other}")
    assert await events(desk, other) == [("submitted", None, None), ("deleted", None, None)]


@pytest.mark.parametrize("settings_overrides", [{"ads": {"auto_approve_trusted": True, "trusted_min_approved": 1}}])
async def test_auto_approval_take_down_and_an_upheld_report(desk):
    user = desk.tg.user(7004, "Regular")
    buyer = desk.tg.user(7005, "Buyer")
    mo, _ = moderators(desk)
    first = await post_ad(desk, user)
    await mo.press("Approve", mod_card(desk, first))
    auto = await post_ad(desk, user, description="Well kept Toyota Corolla 2018, 60 000 km, one owner, service book.")
    assert await events(desk, auto) == [("submitted", None, None), ("auto_approved", None, None)]
    await mo.press("Take down", mod_card(desk, auto))
    assert (await events(desk, auto))[2:] == [("taken_down", MO, None)]
    await buyer.send(f"/report {first}")
    await buyer.press("Prohibited item")
    await mo.press("Uphold", report_card(desk, await desk.scalar("SELECT id FROM ad_reports")))
    assert await events(desk, first) == [("submitted", None, None), ("approved", MO, None), ("taken_down", MO, "prohibited")]
    # the upheld report is a strike: the owner's first is a warning, recorded as a user event
    assert [tuple(r) for r in await desk.rows("SELECT user_id, kind FROM user_events")] == [(7004, "warned")]


async def test_penalties_write_user_events(desk):
    user = desk.tg.user(7006, "Offender", username="offender")
    mo, _ = moderators(desk)
    await user.send("/start")
    for n in range(3):
        await mo.send(f"/warn @offender spam {n}", chat_id=STAFF_CHAT)
    await mo.send("/unban @offender", chat_id=STAFF_CHAT)
    rows = [tuple(r) for r in await desk.rows("SELECT kind, until IS NOT NULL FROM user_events WHERE user_id = 7006 ORDER BY id")]
    assert [(k, bool(u)) for k, u in rows] == [("warned", False), ("blocked", True), ("banned", False), ("lifted", False)]
    # the lifting is dated by the desk's clock and names the moderator who did it
    lifted = tuple((await desk.rows("SELECT at, actor_id FROM user_events WHERE user_id = 7006 AND kind = 'lifted'"))[0])
    assert lifted[1] == mo.id and str(lifted[0]).startswith(desk.clock.now.strftime("%Y-%m-%d %H:%M"))
    async with desk.sessions() as session:
        users = (await collect(session, parse_period("2026-11", ZoneInfo("UTC")))).users
    assert (users["warned"], users["blocked"], users["banned"]) == (1, 1, 1)


# ------------------------------------------------------------------ the backfill



def z(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


async def test_migration_backfills_one_submission_decision_and_ending_per_ad(empty_db):
    url, schema = empty_db
    await asyncio.to_thread(upgrade, url, schema, "0012")
    engine = make_engine(url, schema=schema)
    # (id, status, submitted, decided, by, reason, auto, resubmissions, updated)
    ads = [
        (1, "approved", z(2, 8), z(2, 9), MO, None, False, 0, z(2, 9)),
        (2, "rejected", z(3, 8), z(3, 10), LEE, "scam", False, 1, z(3, 10)),  # the second round: a resubmission
        (3, "taken_down", z(4, 8), z(6), MO, None, False, 0, z(6)),  # take-down overwrote the approval
        (4, "expired", z(5, 8), z(5, 8), None, None, True, 0, z(20)),
        (5, "deleted", z(7, 8), None, None, None, False, 0, z(8)),  # withdrawn while waiting
        (6, "submitted", z(9, 8), None, None, None, False, 0, z(9, 8)),
        (7, "draft", None, None, None, None, False, 0, z(9)),  # never submitted: nothing
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id, first_name, status, first_seen, last_seen) VALUES (1, 'U', 'active', :t, :t)"), {"t": z(1)})
            for ad_id, status, sub, dec, by, reason, auto, resub, upd in ads:
                await conn.execute(
                    text(
                        "INSERT INTO ads (id, user_id, status, category, editing, title, description, currency, location, created_at, updated_at,"
                        " submitted_at, decided_at, decided_by, decision_reason, auto_approved, resubmissions)"
                        " VALUES (:id, 1, :status, 'pets', false, 't', 'd', 'ZAR', '', :c, :u, :s, :d, :by, :r, :a, :n)"
                    ),
                    {"id": ad_id, "status": status, "c": z(1), "u": upd, "s": sub, "d": dec, "by": by, "r": reason, "a": auto, "n": resub},
                )
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, url, schema, "0016")
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT ad_id, kind, actor_id, reason FROM ad_events ORDER BY ad_id, id"))).all()
            owners = (await conn.execute(text("SELECT DISTINCT user_id, category FROM ad_events"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [
        (1, "submitted", None, None), (1, "approved", MO, None),
        (2, "resubmitted", None, None), (2, "rejected", LEE, "scam"),
        (3, "submitted", None, None), (3, "approved", None, None), (3, "taken_down", MO, None),
        (4, "submitted", None, None), (4, "auto_approved", None, None), (4, "expired", None, None),
        (5, "submitted", None, None), (5, "deleted", None, None),
        (6, "submitted", None, None),
    ]
    assert [tuple(r) for r in owners] == [(1, "pets")]
