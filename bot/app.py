"""The Application factory and the one place where every handler is registered.

``build_app(settings)`` only wires things together: nothing touches the network, the
database or the file system until PTB calls :func:`on_startup` (``post_init``), which
opens the engine, loads the knowledge base and the templates. Tests and the demo pass
an offline ``request`` (:class:`bot.fake_telegram.FakeTelegram`) and drive the same app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from telegram import BotCommand, BotCommandScopeAllPrivateChats, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
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
from handlers import common, faq, jobs
from kb.kbfile import KbFileError, load_kb
from kb.service import import_kb, kb_version, load_snapshot

log = logging.getLogger(__name__)

# Handler groups, run in this order for every update.
GROUP_USERS = -1  # record the user, load their account
GROUP_FEATURES = 0  # the first matching feature handler answers

# How often a running bot looks for knowledge-base changes (e.g. `helpdesk kb import`).
KB_REFRESH_SECONDS = 60

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
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    else:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    app = builder.build()
    app.bot_data["settings"] = settings
    app.bot_data["clock"] = clock or utcnow
    register_handlers(app)
    return app


def register_handlers(app: Application) -> None:  # type: ignore[type-arg]
    """Every handler of the bot, in one place, with explicit groups."""
    private = filters.ChatType.PRIVATE
    new_message = filters.UpdateType.MESSAGE

    app.add_handler(TypeHandler(Update, common.track_user), group=GROUP_USERS)

    features = [
        CommandHandler("start", common.start, filters=private),
        CommandHandler("help", common.help_command, filters=private),
        CallbackQueryHandler(faq.on_vote, pattern=r"^v:\d{1,18}:[01]$"),
        CallbackQueryHandler(faq.on_choose, pattern=r"^c:\d{1,18}:(\d|n)$"),
        CallbackQueryHandler(faq.on_followup, pattern=r"^f:[a-z0-9-]{1,40}$"),
        CallbackQueryHandler(common.stale_button),
        MessageHandler(private & new_message & filters.COMMAND, common.unknown_command),
        MessageHandler(private & new_message & filters.TEXT, faq.on_text),
        MessageHandler(private & new_message, common.not_text),
    ]
    for handler in features:
        app.add_handler(handler, group=GROUP_FEATURES)
    app.add_error_handler(common.on_error)

    # Periodic work on PTB's JobQueue (the one scheduler); due times live in the database.
    app.job_queue.run_repeating(  # type: ignore[union-attr]
        jobs.refresh_kb, interval=KB_REFRESH_SECONDS, first=KB_REFRESH_SECONDS, name="refresh_kb",
        job_kwargs={"misfire_grace_time": KB_REFRESH_SECONDS},
    )


async def on_startup(app: Application) -> None:  # type: ignore[type-arg]
    """``post_init``: open the database, load templates and the knowledge base."""
    settings: Settings = app.bot_data["settings"]
    clock: Clock = app.bot_data["clock"]
    engine = make_engine(settings.database.url, schema=settings.database.schema_name, echo=settings.database.echo)
    sessions = make_sessionmaker(engine)
    templates = Templates(settings.locale.default, settings.locale.templates_dir)
    async with unit_of_work(sessions) as session:
        if settings.kb.import_on_start:
            await _import_kb_file(session, settings, clock())
        snapshot = await load_snapshot(session)
        version = await kb_version(session)
    if not snapshot.entries:
        log.warning("the knowledge base is empty: every question will get 'I don't know'")
    app.bot_data["desk"] = Desk(
        settings=settings, engine=engine, sessions=sessions, templates=templates, kb=snapshot, kb_version=version, clock=clock
    )
    await _publish_commands(app, templates)


async def _import_kb_file(session, settings: Settings, now: datetime) -> None:  # type: ignore[no-untyped-def]
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
    report = await import_kb(session, doc, now)
    log.info("knowledge base %s: %s", settings.kb.path, report.summary())


async def _publish_commands(app: Application, templates: Templates) -> None:  # type: ignore[type-arg]
    commands = [
        BotCommand("start", templates.label(templates.default, "cmd_start")),
        BotCommand("help", templates.label(templates.default, "cmd_help")),
    ]
    try:
        await app.bot.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats())
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

