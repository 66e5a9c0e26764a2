"""The manager's report in the staff chat: ``/report [YYYY-MM | YYYY-Qn]`` on demand, and
the JobQueue sweep that sends the monthly (and quarterly) report when it is due.

(``/report N`` in a private chat is something else: reporting an ad, handlers/ads.py.)
"""

from __future__ import annotations

import logging

from telegram import InputFile, Message, Update

from bot.context import HelpdeskContext
from bot.db import offloaded, unit_of_work
from handlers.casework import srender
from handlers.staffauth import is_staff
from reports import Period, PeriodError, Report, last_month, parse_period, runs
from reports.build import collect, finish

log = logging.getLogger(__name__)

# How often the scheduler looks for a report that is due (it sends each period once).
REPORT_SWEEP_SECONDS = 300


async def _send(context: HelpdeskContext, chat_id: int, report: Report, thread_id: int | None = None) -> Message:
    return await context.bot.send_document(
        chat_id,
        document=InputFile(report.html.encode("utf-8"), filename=report.filename),
        caption=report.summary,
        message_thread_id=thread_id,
    )


async def _build(context: HelpdeskContext, period: Period) -> Report:
    desk = context.desk
    # a month of figures: long reads, kept off the event loop, in one read-only snapshot
    # (no SQLite write lock held meanwhile: updates go on writing while it runs)
    with offloaded():
        async with unit_of_work(desk.sessions, read_only=True) as session:
            figures = await collect(session, period)
    return await finish(figures, desk.settings, now=context.now())  # drawn outside the transaction


async def cmd_report(update: Update, context: HelpdeskContext) -> None:
    """``/report`` (last month), ``/report 2026-10`` or ``/report 2026-Q4``: staff only."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None:
        return
    if not await is_staff(context, user.id, chat.id):
        log.warning("refused /report by non-staff user %s in chat %s", user.id, chat.id)
        await message.reply_html(srender(context, "reports/refused.html"))
        return
    settings = context.desk.settings
    args = list(context.args or [])
    try:
        period = parse_period(args[0], settings.report_tz) if args else last_month(context.now(), settings.report_tz)
    except PeriodError:
        await message.reply_html(srender(context, "reports/usage.html", given=args[0]))
        return
    if len(args) > 1:
        await message.reply_html(srender(context, "reports/usage.html", given=" ".join(args)))
        return
    if period.start >= context.now():
        await message.reply_html(srender(context, "reports/future.html", period=period.label))
        return
    report = await _build(context, period)
    await _send(context, chat.id, report, thread_id=message.message_thread_id if message.is_topic_message else None)


async def report_job(context: HelpdeskContext) -> None:
    """JobQueue, every few minutes: send each due report (last month; with ``quarterly``
    also last quarter) that was not sent yet. Safe to repeat and to restart: what was
    sent is in ``report_runs``."""
    desk = context.desk
    settings = desk.settings
    chat_id = settings.staff.chat_id
    if not settings.reports.enabled or chat_id is None:
        return
    now = context.now()
    async with unit_of_work(desk.sessions) as session:
        due = await runs.claim_due(
            session, now=now, tz=settings.report_tz, hour=settings.reports.hour, quarterly=settings.reports.quarterly, chat_id=chat_id
        )
    for period in due:
        try:
            report = await _build(context, period)
            sent = await _send(context, chat_id, report)
        except Exception as exc:  # noqa: BLE001 - a refusal or a failure: recorded, retried by a later sweep
            log.exception("report %s not sent", period.label)
            async with unit_of_work(desk.sessions) as session:
                await runs.mark_failed(session, period=period.label, error=str(exc) or type(exc).__name__)
            continue
        async with unit_of_work(desk.sessions) as session:
            await runs.mark_sent(session, period=period.label, message_id=sent.message_id, now=context.now())
        log.info("report %s sent to the staff chat", period.label)
