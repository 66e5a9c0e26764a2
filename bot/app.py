"""The Application factory and the one place where every handler is registered.

``build_app(settings)`` only wires things together: nothing touches the network, the
database or the file system until PTB calls :func:`on_startup` (``post_init``), which
opens the engine, loads the knowledge base and the templates. Tests and the demo pass
an offline ``request`` (:class:`bot.fake_telegram.FakeTelegram`) and drive the same app.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from telegram import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import ChatMigrated, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.config import Settings
from bot.context import Desk, HelpdeskContext
from bot.db import make_engine, make_sessionmaker, unit_of_work, utcnow
from bot.templates import Templates
from bot.updates import ConfirmAfterProcessing
from bot.chats import chat_moves
from handlers import ads, common, dedupe, faq, feedback, guides, jobs, kbedit, limits, notices, privacy, staff, tickets
from handlers.delivery import apply_chat_moves, chat_moved, config_keys
from handlers import reports as report_handlers
from kb.kbfile import KbFileError, load_kb
from kb.synonyms import load_synonyms
from ads.policy import load_policy
from ads.service import Rules
from escalation.service import Policy
from kb.service import ImportRefused, import_kb, imported_file_hash, kb_version, load_snapshot, remember_imported_file

log = logging.getLogger(__name__)

# Handler groups, run in this order for every update. Only the first matching handler
# of a group runs, so each concern has a group of its own.
GROUP_DEDUPE = -4  # drop re-delivered updates; remember the update for its first effect
GROUP_LIMITS = -3  # the per-user flood limit drops what a flooding user sends
GROUP_INTERRUPT = -2  # a private command or button: the user moved on (a /feedback prompt no longer applies)
GROUP_USERS = -1  # record the user, load their account
GROUP_FEATURES = 0  # the first matching feature handler answers
GROUP_DONE = 100  # the update's handlers are done

# How often a running bot looks for knowledge-base changes (e.g. `helpdesk kb import`).
KB_REFRESH_SECONDS = 60

# How often ads are checked for expiry reminders and expiries.
AD_SWEEP_SECONDS = 600

# Used when no token is configured (demo, tests): shaped like a token, never valid.
OFFLINE_TOKEN = "1234567:offline-fake-token-not-for-telegram"

Clock = Callable[[], datetime]


def build_app(settings: Settings, *, request: BaseRequest | None = None, clock: Clock | None = None) -> Application:  # type: ignore[type-arg]
    """Build the bot. ``request`` replaces the network (tests, demo); ``clock`` the time."""
    builder = (
        ApplicationBuilder()
        .token(settings.telegram.token or OFFLINE_TOKEN)
        .base_url(settings.telegram.bot_url)
        .base_file_url(settings.telegram.file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .context_types(ContextTypes(context=HelpdeskContext))
        .post_init(on_startup)
        .post_shutdown(on_shutdown)
        # polling confirms an update only after its handlers ran (bot/updates.py)
        .update_queue(ConfirmAfterProcessing())
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    builder = builder.rate_limiter(rate_limiter(settings, offline=request is not None))
    app = builder.build()
    app.bot_data["settings"] = settings
    app.bot_data["clock"] = clock or utcnow
    register_handlers(app)
    return app


def rate_limiter(settings: Settings, *, offline: bool = False) -> AIORateLimiter:
    """PTB's limiter in every build: it waits out Telegram's 429 "retry after" and retries
    up to ``telegram.max_retries`` times. Offline (tests, demo, benchmarks) it does not
    pace the requests (the fake API has no flood limits), but retries the same way."""
    if offline:
        return AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=settings.telegram.max_retries)
    return AIORateLimiter(max_retries=settings.telegram.max_retries)


def register_handlers(app: Application) -> None:  # type: ignore[type-arg]
    """Every handler of the bot, in one place, with explicit groups."""
    settings: Settings = app.bot_data["settings"]
    private = filters.ChatType.PRIVATE
    new_message = filters.UpdateType.MESSAGE
    staff_chats = filters.Chat(staff_chat_ids(settings)) if staff_chat_ids(settings) else filters.Chat([])
    app.bot_data["staff_chat_filter"] = staff_chats  # a staff chat that gets a new id is added (handlers/delivery.py)
    number = r"[0-9]{1,18}"
    slug = r"[a-z0-9-]{1,20}"
    fields = "(category|title|description|price|location|photos|contact)"

    app.add_handler(TypeHandler(Update, dedupe.drop_duplicates), group=GROUP_DEDUPE)
    app.add_handler(TypeHandler(Update, limits.flood_guard), group=GROUP_LIMITS)
    app.add_handler(MessageHandler(private & new_message & filters.COMMAND, feedback.forget_on_command), group=GROUP_INTERRUPT)
    app.add_handler(CallbackQueryHandler(feedback.forget_on_button, pattern=r"^(?!fb:)"), group=GROUP_INTERRUPT)
    app.add_handler(TypeHandler(Update, common.track_user), group=GROUP_USERS)

    user_side = [
        CommandHandler("start", common.start, filters=private & new_message),
        CommandHandler("help", common.help_command, filters=private & new_message),
        CommandHandler("support", tickets.support_command, filters=private & new_message),
        CommandHandler("mytickets", tickets.mytickets, filters=private & new_message),
        CommandHandler("newad", ads.newad, filters=private & new_message),
        CommandHandler("cancel", ads.cancel_command, filters=private & new_message),
        CommandHandler("myads", ads.myads, filters=private & new_message),
        CommandHandler("report", ads.cmd_report, filters=private & new_message),
        CommandHandler("feedback", feedback.feedback_command, filters=private & new_message),
        CommandHandler("guide", guides.guide_command, filters=private & new_message),
        CommandHandler("language", guides.language_command, filters=private & new_message),
        CallbackQueryHandler(feedback.on_rate, pattern=rf"^fb:r:{number}:([1-5]|s)\Z"),
        CallbackQueryHandler(feedback.on_cancel, pattern=r"^fb:x\Z"),
        CallbackQueryHandler(guides.on_guide_button, pattern=r"^g:(m|[a-z]{1,12}:[0-9]{1,2})\Z"),
        CallbackQueryHandler(guides.on_onboarding_button, pattern=r"^ob:(guides|newad|ask|language)\Z"),
        CallbackQueryHandler(guides.on_language_button, pattern=r"^lang:[a-z]{2,3}(_[A-Z]{2})?\Z"),
        CommandHandler("mydata", privacy.cmd_mydata, filters=private & new_message),
        CommandHandler("deleteme", privacy.cmd_deleteme, filters=private & new_message),
        CallbackQueryHandler(privacy.on_user_button, pattern=r"^pv:(erase|keep)\Z"),
        CallbackQueryHandler(faq.on_vote, pattern=rf"^v:{number}:[01]\Z"),
        CallbackQueryHandler(faq.on_choose, pattern=rf"^c:{number}:([0-9]|n)\Z"),
        CallbackQueryHandler(faq.on_followup, pattern=r"^f:[a-z0-9-]{1,40}\Z"),
        CallbackQueryHandler(tickets.on_talk, pattern=rf"^tk:new:{number}\Z"),
        CallbackQueryHandler(tickets.on_category, pattern=rf"^tk:cat:{number}:[a-z0-9-]{{1,20}}\Z"),
        CallbackQueryHandler(tickets.on_cancel, pattern=rf"^tk:cancel:{number}\Z"),
        CallbackQueryHandler(tickets.on_close, pattern=rf"^tk:close:{number}\Z"),
        CallbackQueryHandler(tickets.on_reopen, pattern=rf"^tk:reopen:{number}\Z"),
        CallbackQueryHandler(tickets.on_rate, pattern=rf"^r:{number}:([1-5]|skip)\Z"),
        CallbackQueryHandler(ads.on_appeal, pattern=r"^ap:new\Z"),
        CallbackQueryHandler(ads.on_owner_button, pattern=rf"^my:(edit|sold|delete|renew):{number}\Z"),
        CallbackQueryHandler(ads.on_report_button, pattern=rf"^rp:({number}:(scam|prohibited|category|offensive|other)|dispute:{number})\Z"),
        CallbackQueryHandler(
            ads.on_ad_button,
            pattern=rf"^ad:(resume|fresh|photos:done|submit|edit|cancel|cat:({slug}|-)|sub:{slug}|edit:{fields}|reedit:{number}:({fields}|preview))\Z",
        ),
    ]
    staff_side = [
        CommandHandler("queue", staff.cmd_queue, filters=staff_chats & new_message),
        CommandHandler("ticket", staff.cmd_ticket, filters=staff_chats & new_message),
        CommandHandler("assign", staff.cmd_assign, filters=staff_chats & new_message),
        CommandHandler("resolve", staff.cmd_resolve, filters=staff_chats & new_message),
        CommandHandler("reopen", staff.cmd_reopen, filters=staff_chats & new_message),
        CommandHandler("note", staff.cmd_note, filters=staff_chats & new_message),
        CommandHandler("canned", staff.cmd_canned, filters=staff_chats & new_message),
        CommandHandler("transfer", staff.cmd_transfer, filters=staff_chats & new_message),
        CommandHandler("repost", staff.cmd_repost, filters=staff_chats & new_message),
        CommandHandler("kb", kbedit.cmd_kb, filters=staff_chats & new_message),
        CommandHandler("cancel", kbedit.cmd_cancel, filters=staff_chats & new_message),
        CommandHandler("help", staff.cmd_help, filters=staff_chats & new_message),
        CallbackQueryHandler(staff.on_ticket_button, pattern=rf"^t:(claim|release|resolve|spam|reopen):{number}\Z"),
        CallbackQueryHandler(staff.on_learn_button, pattern=rf"^t:learn:{number}:([0-9]|n)\Z"),
        CallbackQueryHandler(staff.on_review_button, pattern=rf"^kb:(ok|drop):{number}\Z"),
        CallbackQueryHandler(kbedit.on_draft_button, pattern=r"^kbd:(save|cancel|cat:[a-z0-9-]{1,40})\Z"),
        CallbackQueryHandler(kbedit.on_edit_button, pattern=r"^kbe:(title|answer|phrasings|category):[a-z0-9-]{1,40}\Z"),
        CallbackQueryHandler(kbedit.on_delete_button, pattern=r"^kbx:(yes|no):[a-z0-9-]{1,40}\Z"),
        CallbackQueryHandler(feedback.on_answer_button, pattern=rf"^fb:a:{number}\Z"),
        CallbackQueryHandler(ads.on_mod_button, pattern=rf"^m:((ok|rej|chg|back|ban|banok|ro|co):{number}|(r|c):{number}:{slug})\Z"),
        CallbackQueryHandler(ads.on_report_decision, pattern=rf"^rep:(up|no):{number}\Z"),
        CallbackQueryHandler(ads.on_take_down, pattern=rf"^m:down:{number}\Z"),
        CommandHandler("strikes", ads.cmd_strikes, filters=staff_chats & new_message),
        CommandHandler("modqueue", ads.cmd_modqueue, filters=staff_chats & new_message),
        CommandHandler("warn", ads.cmd_warn, filters=staff_chats & new_message),
        CommandHandler("unban", ads.cmd_unban, filters=staff_chats & new_message),
        CommandHandler("pardon", ads.cmd_pardon, filters=staff_chats & new_message),
        # the staff chat's /report is the manager's report; a private /report N reports an ad
        CommandHandler("report", report_handlers.cmd_report, filters=staff_chats & new_message),
        CommandHandler("userdata", privacy.cmd_userdata, filters=staff_chats & new_message),
        CommandHandler("forget", privacy.cmd_forget, filters=staff_chats & new_message),
        CallbackQueryHandler(privacy.on_staff_button, pattern=rf"^pv:(forget|spare):{number}\Z"),
        MessageHandler(staff_chats & new_message & ~filters.COMMAND & ~filters.StatusUpdate.ALL, staff.on_staff_message),
        MessageHandler(filters.StatusUpdate.MIGRATE, staff.on_chat_migrated),
    ]
    fallbacks = [
        CallbackQueryHandler(common.stale_button),
        MessageHandler(private & new_message & filters.COMMAND, common.unknown_command),
        MessageHandler(private & new_message & filters.TEXT, faq.on_text),
        MessageHandler(private & new_message, common.not_text),
        MessageHandler(private & filters.UpdateType.EDITED_MESSAGE, common.edited),
    ]
    for handler in [*user_side, *staff_side, *fallbacks]:
        app.add_handler(handler, group=GROUP_FEATURES)
    app.add_handler(TypeHandler(Update, dedupe.end_of_update), group=GROUP_DONE)
    app.add_error_handler(common.on_error)

    # Periodic work on PTB's JobQueue (the one scheduler); due times live in the database.
    jq = app.job_queue
    jq.run_repeating(  # type: ignore[union-attr]
        jobs.refresh_kb, interval=KB_REFRESH_SECONDS, first=KB_REFRESH_SECONDS, name="refresh_kb",
        job_kwargs={"misfire_grace_time": KB_REFRESH_SECONDS},
    )
    sweep = settings.sla.sweep_seconds
    jq.run_repeating(  # type: ignore[union-attr]
        staff.sla_sweep, interval=sweep, first=sweep, name="sla_sweep", job_kwargs={"misfire_grace_time": sweep}
    )
    jq.run_repeating(  # type: ignore[union-attr]
        ads.expiry_job, interval=AD_SWEEP_SECONDS, first=AD_SWEEP_SECONDS, name="ad_expiry", job_kwargs={"misfire_grace_time": AD_SWEEP_SECONDS}
    )
    jq.run_repeating(  # type: ignore[union-attr]
        dedupe.prune, interval=dedupe.PRUNE_SECONDS, first=dedupe.PRUNE_SECONDS, name="prune_updates",
        job_kwargs={"misfire_grace_time": dedupe.PRUNE_SECONDS},
    )
    jq.run_repeating(  # type: ignore[union-attr]
        notices.prune, interval=notices.PRUNE_SECONDS, first=notices.PRUNE_SECONDS, name="prune_notices",
        job_kwargs={"misfire_grace_time": notices.PRUNE_SECONDS},
    )
    if settings.database.url.startswith("sqlite"):
        # WAL checkpoints in a worker thread (bot.db.sqlite_upkeep)
        jq.run_repeating(  # type: ignore[union-attr]
            jobs.sqlite_upkeep_job, interval=jobs.UPKEEP_SECONDS, first=jobs.UPKEEP_SECONDS, name="sqlite_upkeep",
            job_kwargs={"misfire_grace_time": jobs.UPKEEP_SECONDS},
        )
    # the monthly / quarterly report: sent when due, once (report_runs in the database)
    every = report_handlers.REPORT_SWEEP_SECONDS
    jq.run_repeating(  # type: ignore[union-attr]
        report_handlers.report_job, interval=every, first=every, name="monthly_report", job_kwargs={"misfire_grace_time": every}
    )


async def on_startup(app: Application) -> None:  # type: ignore[type-arg]
    """``post_init``: open the database, load templates and the knowledge base."""
    settings: Settings = app.bot_data["settings"]
    clock: Clock = app.bot_data["clock"]
    engine = make_engine(settings.database.url, schema=settings.database.schema_name, echo=settings.database.echo)
    sessions = make_sessionmaker(engine)
    templates = Templates(settings.locale.default, settings.locale.templates_dir)
    synonyms = _load_synonyms(settings)
    async with unit_of_work(sessions) as session:
        if settings.kb.import_on_start:
            await _import_kb_file(session, settings, clock())
        version = await kb_version(session)  # first: the snapshot is at least this new
        snapshot = await load_snapshot(session, synonyms)
        moves = await chat_moves(session)
    for old, new in moves.items():
        for key in config_keys(settings, old):
            log.critical("config.toml: %s is %s, but Telegram moved that chat to %s: the bot uses %s; update %s", key, old, new, new, key)
    apply_chat_moves(app, moves)
    settings = app.bot_data["settings"]
    if not snapshot.entries:
        log.warning("the knowledge base is empty: every question will get 'I don't know'")
    desk = Desk(
        settings=settings,
        engine=engine,
        sessions=sessions,
        templates=templates,
        kb=snapshot,
        kb_version=version,
        synonyms=synonyms,
        clock=clock,
        policy=Policy.from_settings(settings),
        ad_rules=Rules(settings.ads, load_policy(settings.ads.policy_path)),
    )
    app.bot_data["desk"] = desk
    await _discover_staff_chats(app, desk)
    await _publish_commands(app, templates)


def _load_synonyms(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The staff's synonyms file (``kb.synonyms_path``), read once at start; a missing or
    unreadable file means no synonyms, said in the log."""
    path = settings.kb.synonyms_path
    if path is None:
        return {}
    if not path.is_file():
        log.error("kb.synonyms_path: there is no file at %s; the matcher runs without synonyms", path)
        return {}
    try:
        synonyms = load_synonyms(path)
    except OSError as exc:
        log.error("kb.synonyms_path: %s could not be read (%s); the matcher runs without synonyms", path, exc)
        return {}
    log.info("synonyms %s: %d words in groups", path, len(synonyms))
    return synonyms


async def _import_kb_file(session, settings: Settings, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """Import the KB file on start, unless it is the very file imported last time:
    then the database (with the edits made from the staff chat since) stays as it is."""
    try:
        sha256 = hashlib.sha256(settings.kb.path.read_bytes()).hexdigest()
    except OSError:
        sha256 = None  # load_kb says what is wrong
    if sha256 is not None and sha256 == await imported_file_hash(session):
        log.info("knowledge base %s: unchanged since the last import, not imported again", settings.kb.path)
        return
    try:
        doc, problems = load_kb(settings.kb.path)
    except KbFileError as exc:
        log.error("knowledge base not imported: %s", exc)
        return
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        for problem in errors:
            log.error("knowledge base %s: %s", settings.kb.path, problem)
        log.error("knowledge base not imported (%d errors); the bot uses the previous one", len(errors))
        return
    try:
        report = await import_kb(session, doc, now)
    except ImportRefused as exc:
        log.error("knowledge base %s not imported: %s", settings.kb.path, exc)
        return
    await remember_imported_file(session, sha256)  # type: ignore[arg-type]
    log.info("knowledge base %s: %s", settings.kb.path, report.summary())


def staff_chat_ids(settings: Settings) -> list[int]:
    ids = [settings.staff.chat_id] + [d.chat_id for d in settings.support.departments.values()]
    return sorted({i for i in ids if i is not None})


async def _discover_staff_chats(app: Application, desk: Desk) -> None:  # type: ignore[type-arg]
    """Ask Telegram whether each staff chat is a forum (a topic per ticket) or not."""
    for chat_id in staff_chat_ids(desk.settings):
        try:
            try:
                chat = await app.bot.get_chat(chat_id)
            except ChatMigrated as exc:  # upgraded to a supergroup while the bot was away
                chat_id = await chat_moved(HelpdeskContext(app), chat_id, exc.new_chat_id)
                chat = await app.bot.get_chat(chat_id)
            desk.staff_chats[chat_id] = bool(chat.is_forum)
        except TelegramError as exc:
            desk.staff_chats[chat_id] = False
            log.error("staff chat %s is not reachable (%s): add the bot to it; alerts will fail until then", chat_id, exc)


async def _publish_commands(app: Application, templates: Templates) -> None:  # type: ignore[type-arg]
    def private_commands(locale: str) -> list[BotCommand]:
        label = templates.label
        return [
            BotCommand(name, label(locale, f"cmd_{name}"))
            for name in ("start", "support", "newad", "myads", "mytickets", "guide", "feedback", "language", "cancel", "mydata", "deleteme", "help")
        ]

    commands = private_commands(templates.default)
    # users whose Telegram language is another shipped locale see the menu in it
    translated = {loc: private_commands(loc) for loc in templates.locales if loc != templates.default and re.fullmatch(r"[a-z]{2}", loc)}
    staff_commands = [
        BotCommand(name, text)
        for name, text in (
            ("queue", "Open tickets, oldest first"),
            ("ticket", "A ticket's card and messages: /ticket N"),
            ("resolve", "Resolve: /resolve [N] [faq:entry]"),
            ("reopen", "Reopen: /reopen N"),
            ("assign", "Assign: /assign N @name"),
            ("transfer", "Transfer: /transfer N department"),
            ("note", "Internal note in a ticket"),
            ("canned", "Saved replies"),
            ("repost", "Post a card again: /repost ticket|ad|report|feedback N"),
            ("kb", templates.label(templates.default, "cmd_staff_kb")),
            ("cancel", templates.label(templates.default, "cmd_staff_cancel")),
            ("modqueue", "Ads waiting for moderation"),
            ("strikes", "A user's strikes: /strikes @user"),
            ("warn", "Give a strike: /warn @user reason"),
            ("unban", "Lift a ban: /unban @user"),
            ("pardon", "Pardon a strike: /pardon <id>"),
            ("report", "The manager's report: /report [YYYY-MM | YYYY-Qn]"),
            ("userdata", "Admins: a user's data file: /userdata @user"),
            ("forget", "Admins: erase a user's data: /forget @user"),
            ("help", "Staff commands"),
        )
    ]
    try:
        await app.bot.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats())
        for locale, local_commands in translated.items():
            await app.bot.set_my_commands(local_commands, scope=BotCommandScopeAllPrivateChats(), language_code=locale)
        for chat_id in staff_chat_ids(app.bot_data["settings"]):
            await app.bot.set_my_commands(staff_commands, scope=BotCommandScopeChat(chat_id))
    except TelegramError as exc:
        log.warning("could not publish the command menu: %s", exc)


async def on_shutdown(app: Application) -> None:  # type: ignore[type-arg]
    desk: Desk | None = app.bot_data.get("desk")
    if desk is not None:
        await desk.engine.dispose()


@asynccontextmanager
async def running(app: Application) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """Start the app the way ``run_polling`` does, minus polling (tests, demo)."""
    await app.initialize()
    await on_startup(app)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await on_shutdown(app)
        await app.shutdown()

