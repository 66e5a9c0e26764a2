"""The report as staff get it: the HTML file (valid, self-contained, every chart), the
caption, /report in the staff chat, and the scheduled job (right local hour, once)."""

from __future__ import annotations

import base64
import csv
import io
import re
from datetime import UTC, datetime

import html5lib
import pytest

from bot.app import build_app, running
from bot.fake_telegram import ApiError, FakeTelegram
from bot.telegram_html import visible_length
from reports import build_report
from tests import report_seed as s
from tests.support import STAFF_CHAT, FakeClock, make_settings, wipe

CHARTS = ("chart-ads-per-day", "chart-approval-time", "chart-tickets", "chart-csat", "chart-top-categories")


def strict_parse(html: str):
    """html5lib in strict mode raises on any parse error (unclosed or stray tags, ...)."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)


def chart_pngs(html: str) -> dict[str, bytes]:
    found = {}
    for element_id, data in re.findall(r'<img class="chart" id="([a-z-]+)" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html):
        found[element_id] = base64.b64decode(data)
    return found


async def report_for(desk, label: str):
    settings = desk.app.bot_data["desk"].settings
    async with desk.sessions() as session:
        return await build_report(session, settings, label, now=desk.clock.now)


async def test_the_html_report_of_a_seeded_month_is_valid_self_contained_and_has_every_chart(desk):
    await s.seed(desk.sessions)
    report = await report_for(desk, "2026-10")
    tree = strict_parse(report.html)
    assert tree.find(".//title").text == "SayPro Help Desk report: October 2026"
    pngs = chart_pngs(report.html)
    assert sorted(pngs) == sorted(CHARTS)
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000 for png in pngs.values())
    assert "http://" not in report.html and "https://" not in report.html  # nothing to fetch
    text = " ".join(tree.itertext())
    assert "empty-period" not in report.html
    for shown in ("13", "submitted (+225%)", "Vehicles", "Scam or fraud", "Mo", "Thandi", "Sipho", "42.9%", "66.7%", "3.67",
                  "How can I change my phone number?", "Payments and featured ads"):
        assert shown in text, shown
    # user text is escaped, never markup
    assert "too slow &lt;b&gt;really&lt;/b&gt; &amp; late" in report.html and "<b>really</b>" not in report.html
    # the caption: Telegram HTML within the 1024-character caption limit
    assert visible_length(report.summary) <= 1024
    assert "October 2026" in report.summary and "13 submitted (+225%)" in report.summary and "CSAT 66.7%" in report.summary
    # the raw figures as CSV
    rows = list(csv.reader(io.StringIO(report.csv())))
    assert rows[0] == ["section", "metric", "key", "value"]
    assert ["ads", "submitted", "", "13"] in rows and ["tickets", "first_response_minutes.p90", "", "4320.0"] in rows
    assert ["ads", "per_day", "2026-10-31", "1"] in rows and ["satisfaction", "distribution.5", "", "1"] in rows


async def test_an_empty_period_renders_a_valid_report_that_says_so(desk):
    report = await report_for(desk, "2026-10")
    tree = strict_parse(report.html)
    assert tree.find(".//p[@id='empty-period']") is not None
    assert sorted(chart_pngs(report.html)) == sorted(CHARTS)
    assert "Nothing happened in this period" in report.summary and visible_length(report.summary) <= 1024


async def test_report_command_in_the_staff_chat_sends_the_document_with_the_summary(desk):
    staff_menu = next(v for k, v in desk.tg.commands.items() if str(STAFF_CHAT) in k)
    private_menu = next(v for k, v in desk.tg.commands.items() if "all_private_chats" in k)
    assert "report" in [c["command"] for c in staff_menu] and "report" not in [c["command"] for c in private_menu]
    await s.seed(desk.sessions)
    thandi = desk.tg.staff(s.THANDI, "Thandi", STAFF_CHAT)
    await thandi.send("/report 2026-10", chat_id=STAFF_CHAT)
    sent = desk.tg.last_bot_message(STAFF_CHAT)
    assert sent.kind == "document"
    assert "Help desk report: October 2026" in sent.text and "Tickets: 5 opened, 2 resolved" in sent.text
    name, content = desk.tg.uploads[sent.file_id]
    assert name == "report-2026-10.html"
    strict_parse(content.decode("utf-8"))
    assert b"Help desk report: October 2026" in content
    # a quarter, and last month by default (the desk's clock: 2 November 2026)
    await thandi.send("/report 2026-q4", chat_id=STAFF_CHAT)
    assert desk.tg.uploads[desk.tg.last_bot_message(STAFF_CHAT).file_id][0] == "report-2026-Q4.html"
    await thandi.send("/report", chat_id=STAFF_CHAT)
    assert desk.tg.uploads[desk.tg.last_bot_message(STAFF_CHAT).file_id][0] == "report-2026-10.html"


async def test_report_command_refuses_non_staff_bad_periods_and_the_future(desk):
    outsider = desk.tg.user(666, "Mallory")  # not a member of the staff chat
    await outsider.send("/report 2026-10", chat_id=STAFF_CHAT)
    assert desk.tg.last_bot_message(STAFF_CHAT).text == "⚠️ Only staff can ask for the report."
    thandi = desk.tg.staff(s.THANDI, "Thandi", STAFF_CHAT)
    await thandi.send("/report october", chat_id=STAFF_CHAT)
    assert "I could not read the period october" in desk.tg.last_bot_message(STAFF_CHAT).text
    await thandi.send("/report 2026-12", chat_id=STAFF_CHAT)
    assert "has not started yet" in desk.tg.last_bot_message(STAFF_CHAT).text
    assert not desk.tg.uploads
    # in a private chat /report is still the ad report command, never the manager's report
    await thandi.send("/report 2026-10")
    assert not desk.tg.uploads and desk.tg.last_bot_message(s.THANDI).kind == "text"


def documents(tg: FakeTelegram) -> list[str]:
    return [tg.uploads[m.file_id][0] for m in tg.chat_messages(STAFF_CHAT) if m.kind == "document"]


async def run_job(app) -> None:
    await app.job_queue.get_jobs_by_name("monthly_report")[0].run(app)


async def test_the_monthly_report_goes_out_at_the_configured_local_hour_once_even_across_restarts(database):
    """reports.hour = 8 in Africa/Johannesburg (UTC+2): 06:00 UTC on the 1st."""
    await wipe(database)
    clock = FakeClock(datetime(2026, 11, 1, 5, 59, tzinfo=UTC))
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    settings = make_settings(database)
    assert (settings.reports.hour, settings.report_tz.key) == (8, "Africa/Johannesburg")
    app = build_app(settings, request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        await s.seed(app.bot_data["desk"].sessions)
        await run_job(app)
        assert documents(tg) == []  # 07:59 local
        clock.advance(minutes=1)
        await run_job(app)
        await run_job(app)
        assert documents(tg) == ["report-2026-10.html"]
        caption = tg.chat_messages(STAFF_CHAT)[-1].text
        assert "Help desk report: October 2026" in caption and "Ads: 13 submitted" in caption
    clock.advance(hours=3)
    for _ in range(2):  # the bot restarts; what was sent is in the database
        app = build_app(make_settings(database), request=tg, clock=clock)
        tg.attach(app)
        async with running(app):
            await run_job(app)
            rows = await _runs(app)
    assert documents(tg) == ["report-2026-10.html"]
    assert [(r.period, r.status, r.attempts, r.sent_at) for r in rows] == [("2026-10", "sent", 1, datetime(2026, 11, 1, 6, 0, tzinfo=UTC))]


async def _runs(app):
    from reports.runs import runs

    async with app.bot_data["desk"].sessions() as session:
        return await runs(session)


@pytest.mark.parametrize("settings_overrides", [{"reports": {"hour": 7, "timezone": "UTC"}}])
async def test_a_quarter_start_sends_the_month_and_the_quarter_and_a_refusal_is_retried(desk):
    desk.clock.now = datetime(2026, 10, 1, 6, 59, tzinfo=UTC)
    await run_job(desk.app)
    assert documents(desk.tg) == []
    desk.clock.now = datetime(2026, 10, 1, 7, 0, tzinfo=UTC)
    desk.tg.fail_next.append(("sendDocument", ApiError(400, "Bad Request: chat not found")))
    await run_job(desk.app)
    assert documents(desk.tg) == ["report-2026-Q3.html"]  # September's was refused
    assert [(r.period, r.status, r.attempts) for r in await _runs(desk.app)] == [("2026-09", "failed", 1), ("2026-Q3", "sent", 1)]
    desk.clock.advance(minutes=5)
    await run_job(desk.app)
    await run_job(desk.app)
    assert documents(desk.tg) == ["report-2026-Q3.html", "report-2026-09.html"]
    assert {(r.period, r.status, r.attempts) for r in await _runs(desk.app)} == {("2026-09", "sent", 2), ("2026-Q3", "sent", 1)}


@pytest.mark.parametrize("settings_overrides", [{"reports": {"enabled": False}}])
async def test_disabled_reports_are_never_sent(desk):
    desk.clock.now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    await run_job(desk.app)
    assert documents(desk.tg) == [] and await _runs(desk.app) == []


async def test_building_a_report_takes_no_write_lock(desk):
    """A month of figures is a long read, run off the event loop (offloaded) while
    updates go on: it must not hold SQLite's write lock meanwhile (every update's effect
    would wait for it, and fail after the busy timeout), nor need it to start. Here
    another writer holds the lock for the whole build."""
    import asyncio
    import sqlite3

    from bot.context import HelpdeskContext
    from handlers.reports import _build
    from reports import parse_period

    await s.seed(desk.sessions)
    settings = desk.app.bot_data["desk"].settings
    period = parse_period("2026-10", settings.report_tz)
    writer = None
    if desk.db.backend == "sqlite":
        writer = sqlite3.connect(desk.db.url.split(":///", 1)[1], isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
    try:
        report = await asyncio.wait_for(_build(HelpdeskContext(desk.app), period), timeout=5)
    finally:
        if writer is not None:
            writer.rollback()
            writer.close()
    assert "Help desk report: October 2026" in report.summary
