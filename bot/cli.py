"""``helpdesk``: run the bot, play the offline demo, migrate the database, manage the KB,
build the manager's report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings

log = logging.getLogger("helpdesk")

DB_CONNECT_TIMEOUT = 20  # seconds: a database that does not answer at all

# Exit status: 0 stopped as asked; 1 a failure that may pass (a server out of reach:
# a service manager may start it again); 2 what only a change of the configuration or
# the command line fixes (a service manager should not retry).
EXIT_FAILURE = 1
EXIT_CONFIG = 2


class Unreachable(ConfigError):
    """A server the configuration names does not answer (exit status 1: it may pass)."""


def _settings(args: argparse.Namespace, *, must_exist: bool = True) -> Settings:
    from bot.config import resolve_config_path

    settings = load_settings(args.config, must_exist=must_exist)
    if not resolve_config_path(args.config).exists():  # only without --config and HELPDESK_CONFIG
        print(
            f"note: no config file (config.toml in {Path.cwd()}, --config or HELPDESK_CONFIG): using the defaults, "
            f"database {_safe_url(settings.database.url)}",
            file=sys.stderr,
        )
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging
    from ads.policy import PolicyError, load_policy
    from kb.kbfile import KbFileError, load_kb

    settings = _settings(args)
    settings.require_for_run()
    if args.webhook:
        settings.require_for_webhook()
    setup_logging(settings.logging.level, [settings.telegram.token, settings.telegram.webhook_secret])
    # the files read at start, checked before the database or Telegram is touched
    try:
        load_policy(settings.ads.policy_path)
    except PolicyError as exc:
        print(f"{settings.source}: ads.policy_path: {exc}{_path_hint(settings, settings.ads.policy_path, 'ads.policy_path', 'policy')}", file=sys.stderr)
        return 2
    if settings.kb.import_on_start:
        try:
            _, problems = load_kb(settings.kb.path)
        except KbFileError as exc:
            print(f"{settings.source}: kb.path: {exc}{_path_hint(settings, settings.kb.path, 'kb.path', 'starter knowledge base')}", file=sys.stderr)
            return 2
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            for problem in errors:
                print(f"{settings.kb.path}: {problem}", file=sys.stderr)
            print(f"{settings.kb.path}: {len(errors)} errors; fix them (helpdesk kb validate) and start again", file=sys.stderr)
            return 2
    # the lock before Telegram: a second instance on this database touches nothing
    lock = _instance_lock(settings)
    try:
        status = _serve(args, settings)
    finally:
        lock.release()
    return EXIT_CONFIG if lock.taken_over else status


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from telegram import Update

    from bot.app import build_app
    from bot.migrate import upgrade

    asyncio.run(_check_token(settings))  # a rejected token: one clear line, before the database
    asyncio.run(_check_database(settings))
    upgrade(settings.database.url, settings.database.schema_name)
    app = build_app(settings)
    if args.webhook:
        from bot.webhook import run as run_webhook

        tg = settings.telegram
        log.info("starting the webhook server on %s:%s for %s", tg.webhook_listen, tg.webhook_port, tg.webhook_url)
        # our own server (bot/webhook.py), not PTB's run_webhook: the secret is compared in
        # constant time, bodies are size-limited, bad ones are a 400
        return run_webhook(app, tg)
    log.info("starting long polling against %s", settings.telegram.api_base_url)
    app.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0


def _instance_lock(settings: Settings):  # type: ignore[no-untyped-def]
    """This database's instance lock (bot/instance.py), or one line: another instance runs
    (exit status 2: a service manager must not start this one again and again), or the
    database cannot be reached (as :func:`_check_database` says)."""
    from sqlalchemy.engine import make_url

    from bot.instance import InstanceRunning, hold, lock_file

    url = settings.database.url
    where = settings.source or "config.toml"
    try:
        return hold(url, settings.database.schema_name, timeout=DB_CONNECT_TIMEOUT, on_taken=_stop_this_process)
    except InstanceRunning as exc:
        holder = f", {exc.holder}" if exc.holder else ""
        raise ConfigError(
            [f"{where}: database.url: another helpdesk instance is running on this database ({_safe_url(url)}{holder}); "
             "stop it first (systemctl stop helpdesk), or give this bot a database of its own"]
        ) from None
    except Exception as exc:  # noqa: BLE001 (whatever the driver raises, the line says it)
        lock = lock_file(url) if make_url(url).get_backend_name() == "sqlite" else None
        if lock is None:
            raise _postgres_trouble(settings, exc) from None
        reason = f"{lock.name}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
        raise _sqlite_trouble(settings, Path(make_url(url).database or ""), reason) from None


def _stop_this_process() -> None:
    """Stop the bot as SIGTERM does (PTB's and the webhook server's handlers)."""
    os.kill(os.getpid(), signal.SIGTERM)


def _path_hint(settings: Settings, path: Path, key: str, shipped: str) -> str:
    """For a file that is not there: where a relative path was looked for, and the default."""
    if path.exists():
        return ""
    folder = settings.source.resolve().parent if settings.source else Path.cwd()
    return f" (relative paths are relative to the config file's folder, {folder}; leave {key} out to use the shipped {shipped})"


async def _check_token(settings: Settings) -> None:
    """getMe, once: a rejected token or a Bot API server out of reach is one clear line."""
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError

    from bot.config import TELEGRAM_API, TOKEN_ENV
    from bot.logs import RedactTokens

    where = settings.source or "config.toml"
    url = settings.telegram.api_base_url
    redact = RedactTokens([settings.telegram.token])._clean
    try:
        async with Bot(settings.telegram.token, base_url=settings.telegram.bot_url, base_file_url=settings.telegram.file_url) as bot:
            log.info("connected as @%s", bot.username)
    except InvalidToken:  # 401, or 404: what a web server that is not a Bot API server says too
        given = f" (given by {TOKEN_ENV})" if os.environ.get(TOKEN_ENV) else ""
        elsewhere = f", and that telegram.api_base_url ({url}) is a Bot API server" if url != TELEGRAM_API else ""
        raise ConfigError(
            [f"{where}: telegram.token: the Bot API server rejected the token{given}; check it with @BotFather{elsewhere}"]
        ) from None
    except RetryAfter as exc:  # the flood limit (a bot started again and again): it passes
        raise Unreachable(
            [f"{where}: telegram.api_base_url: the Bot API server at {url} asks to wait ({redact(exc.message)}); "
             "this passes: start again later (a service manager does)"]
        ) from None
    except NetworkError as exc:  # refused, no DNS, TLS, timed out, a 5xx
        raise Unreachable(
            [f"{where}: telegram.api_base_url: cannot reach the Bot API server at {url} ({redact(exc.message)}); "
             "check the address, this machine's network and any proxy or firewall, then start again"]
        ) from None
    except TelegramError as exc:  # an answer that is not the Bot API's
        raise ConfigError(
            [f"{where}: telegram.api_base_url: the server at {url} did not answer getMe like a Bot API server "
             f"({redact(exc.message)}); check the address"]
        ) from None


#: What PostgreSQL answers at connect (SQLSTATE) that time does not fix: exit status 2,
#: and what to do. Anything else (refused, timed out, starting up, too many connections)
#: may pass: exit status 1.
PG_REFUSALS = {
    "28P01": "correct the user name and password in database.url",
    "28000": "check the user name in database.url (createuser) and that pg_hba.conf lets it in from this machine",
    "3D000": "create the database (createdb --owner=USER NAME) or correct its name in database.url",
    "42501": "grant the user CONNECT on the database, or use another user",
}


async def _check_database(settings: Settings) -> None:
    """Connect once (SELECT 1): a database out of reach is one line naming database.url
    and what to check, instead of a driver's traceback (OSError, asyncpg, sqlite3)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from bot.db import make_engine

    url = make_url(settings.database.url)
    if url.drivername.startswith("sqlite"):
        # the stdlib, in this thread: a failed aiosqlite connect leaves its worker thread
        # to call back into a loop that asyncio.run has closed (a traceback at exit)
        file = Path(url.database or "")
        try:
            if url.database and url.database != ":memory:":
                with contextlib.closing(sqlite3.connect(file, timeout=DB_CONNECT_TIMEOUT, isolation_level=None)) as db:
                    # may this user write? A read-only file reads fine: write the version the
                    # file has (a write SQLite refuses on a read-only file), and roll it back
                    db.execute("BEGIN IMMEDIATE")
                    version = db.execute("PRAGMA user_version").fetchone()[0]
                    db.execute(f"PRAGMA user_version = {int(version)}")
                    db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise _sqlite_trouble(settings, file, str(exc)) from None
        return
    engine = make_engine(settings.database.url, schema=settings.database.schema_name)
    try:
        async with asyncio.timeout(DB_CONNECT_TIMEOUT):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 (whatever the driver raises, the line below says it)
        raise _postgres_trouble(settings, exc) from None
    finally:
        await engine.dispose()


def _sqlite_trouble(settings: Settings, file: Path, reason: str) -> ConfigError:
    where = settings.source or "config.toml"
    if "locked" in reason:  # another process wrote for longer than the timeout: it passes
        return Unreachable(
            [f"{where}: database.url: the SQLite file {file} stayed locked by another process ({reason}); start again later"]
        )
    return ConfigError(
        [f"{where}: database.url: cannot open the SQLite file {file} ({reason}); check that the folder "
         f"{file.parent} exists and that this user may write there (relative paths are relative to the "
         "config file's folder)"]
    )


def _postgres_trouble(settings: Settings, exc: BaseException) -> ConfigError:
    """The one line for a failed connection: a refusal only a change fixes (a wrong
    password, a user or database that does not exist: :data:`PG_REFUSALS`) is a
    :class:`ConfigError`, a server that does not answer is :class:`Unreachable`."""
    from bot.logs import RedactTokens

    where = settings.source or "config.toml"
    url = _safe_url(settings.database.url)
    cause = getattr(exc, "orig", None) or exc
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {DB_CONNECT_TIMEOUT} s"
    else:
        reason = RedactTokens()._clean(str(cause) or type(cause).__name__).splitlines()[0]
    todo = PG_REFUSALS.get(str(getattr(cause, "sqlstate", "")))
    if todo:
        return ConfigError(
            [f"{where}: database.url: PostgreSQL refused {url} ({reason}); {todo}; starting again does not help until then"]
        )
    return Unreachable(
        [f"{where}: database.url: cannot connect to {url} ({reason}); check that PostgreSQL runs there and accepts "
         "connections from this machine (host, port, firewall); this may pass (a service manager starts the bot again)"]
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import main as demo_main

    return demo_main(keep=args.keep)


def cmd_migrate(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from bot.migrate import current_revision, migrate_to

    settings = _settings(args, must_exist=False)
    asyncio.run(_check_database(settings))
    try:
        migrate_to(settings.database.url, args.revision, settings.database.schema_name)
    except (CommandError, ValueError) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    now_at = current_revision(settings.database.url, settings.database.schema_name) or "base (empty)"
    print(f"database at {now_at}: {_safe_url(settings.database.url)}")
    return 0


def _out(arg: str | None) -> Path | None:
    """``--out FILE``, checked before any work: its folder must exist."""
    if arg is None:
        return None
    out = Path(arg)
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError([f"--out: the folder {folder} does not exist; create it (mkdir -p {folder}) or choose another file"])
    return out


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_kb(args: argparse.Namespace) -> int:
    from kb.kbfile import KbFileError, load_kb

    settings = _settings(args, must_exist=False)
    path = Path(args.file) if getattr(args, "file", None) else settings.kb.path
    if args.kb_command == "export":
        return asyncio.run(_kb_export(settings, _out(args.out)))
    try:
        # the hash of the bytes read before parsing: if the file changes meanwhile, the
        # next start sees another file and imports it (never the reverse)
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        sha256 = None  # load_kb says what is wrong
    if path.resolve() != settings.kb.path.resolve():
        # another file than kb.path: the start compares kb.path with the file imported
        # last, so recording this one would make the next start import kb.path over it
        sha256 = None
    try:
        doc, problems = load_kb(path)
    except KbFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr if problem.severity == "error" else sys.stdout)
    errors = sum(p.severity == "error" for p in problems)
    if args.kb_command == "validate":
        phrasings = sum(len(e.phrasings) for e in doc.entries)
        verdict = "OK" if not errors else f"{errors} errors"
        print(f"{path}: {len(doc.entries)} entries, {phrasings} phrasings: {verdict}")
        return 1 if errors else 0
    if errors:
        print(f"{path}: not imported, {errors} errors", file=sys.stderr)
        return 1
    return asyncio.run(_kb_import(settings, doc, path, args.allow_remove, sha256))


async def _kb_import(settings: Settings, doc, path: Path, allow_remove: bool, sha256: str | None) -> int:  # type: ignore[no-untyped-def]
    """Import, and record the file as the one imported last (as the bot's start does):
    a restart then does not import the same file again over edits made since with /kb."""
    from bot.db import make_engine, make_sessionmaker, unit_of_work, utcnow
    from bot.migrate import upgrade
    from kb.service import ImportRefused, import_kb, remember_imported_file

    await _check_database(settings)
    await asyncio.to_thread(upgrade, settings.database.url, settings.database.schema_name)
    engine = make_engine(settings.database.url, schema=settings.database.schema_name)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            report = await import_kb(session, doc, utcnow(), allow_removal=allow_remove)
            if sha256 is not None:
                await remember_imported_file(session, sha256)
    except ImportRefused as exc:
        print(f"{path}: not imported: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"{path}: imported: {report.summary()}")
    return 0


async def _kb_export(settings: Settings, out: Path | None) -> int:
    from bot.db import make_engine, make_sessionmaker, unit_of_work
    from bot.migrate import upgrade
    from kb.kbfile import dump_kb
    from kb.service import export_kb

    await _check_database(settings)
    await asyncio.to_thread(upgrade, settings.database.url, settings.database.schema_name)
    engine = make_engine(settings.database.url, schema=settings.database.schema_name)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            doc = await export_kb(session)
    finally:
        await engine.dispose()
    text = dump_kb(doc)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"{out}: {len(doc.entries)} entries exported")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports import PeriodError, last_month, parse_period

    settings = _settings(args, must_exist=False)
    tz = settings.report_tz
    try:
        period = parse_period(args.period, tz) if args.period else None
    except PeriodError:
        print(f"report: --period {args.period!r}: expected YYYY-MM or YYYY-Qn, like 2026-10 or 2026-Q4", file=sys.stderr)
        return 2
    out = _out(args.out)
    return asyncio.run(_report(settings, period or last_month(_now(), tz), args.format, out))


def _now():  # type: ignore[no-untyped-def]
    from bot.db import utcnow

    return utcnow()


async def _report(settings: Settings, period, fmt: str, out: Path | None) -> int:  # type: ignore[no-untyped-def]
    """Build the report, one progress line per section on stderr."""
    import time

    from bot.db import make_engine, make_sessionmaker
    from bot.migrate import upgrade
    from reports import build_report

    await _check_database(settings)
    await asyncio.to_thread(upgrade, settings.database.url, settings.database.schema_name)
    engine = make_engine(settings.database.url, schema=settings.database.schema_name)
    started = time.perf_counter()
    print(f"report {period.label} ({period.start.isoformat()} to {period.end.isoformat()}):", file=sys.stderr)

    def progress(section: str, seconds: float) -> None:
        print(f"  {section:<16} {seconds:6.2f} s", file=sys.stderr, flush=True)

    try:
        async with make_sessionmaker(engine)() as session:
            report = await build_report(session, settings, period, progress=progress, charts=fmt == "html")
    finally:
        await engine.dispose()
    content = report.csv() if fmt == "csv" else report.html
    if out is None:
        sys.stdout.write(content)
    else:
        out.write_text(content, encoding="utf-8")
    print(f"report {period.label}: {fmt} written to {out or 'standard output'} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """A consistent copy of the SQLite database while the bot runs (SQLite's online
    backup API: one read snapshot, writers carry on). PostgreSQL: pg_dump does that."""
    from sqlalchemy.engine import make_url

    settings = _settings(args, must_exist=False)
    url = make_url(settings.database.url)
    if not url.drivername.startswith("sqlite"):
        print(
            "backup: the database is PostgreSQL; back it up with pg_dump, e.g.\n"
            f"  pg_dump --format=custom --file=helpdesk.dump {_pg_dump_target(url)}\n"
            "(see README, Backups)",
            file=sys.stderr,
        )
        return 2
    source = Path(url.database or "")
    if not url.database or url.database == ":memory:" or not source.exists():
        print(f"backup: there is no database file at {source}", file=sys.stderr)
        return 2
    out = _out(args.out)
    assert out is not None  # --out is required
    if out.resolve() == source.resolve():
        print("backup: --out must not be the database itself", file=sys.stderr)
        return 2
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # all pages in one step: one consistent snapshot
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        tables = dst.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if check != "ok":
        partial.unlink(missing_ok=True)
        print(f"backup: the copy failed its integrity check ({check}); nothing written", file=sys.stderr)
        return 1
    os.replace(partial, out)
    print(f"{out}: backup of {source} ({tables} tables, {out.stat().st_size} bytes), integrity ok")
    return 0


def _pg_dump_target(url) -> str:  # type: ignore[no-untyped-def]
    """The database to name on pg_dump's command line, without the password."""
    host = f"--host={url.host} " if url.host else ""
    port = f"--port={url.port} " if url.port else ""
    user = f"--username={url.username} " if url.username else ""
    return f"{host}{port}{user}{url.database or ''}".strip()


CONFIG_HELP = "config file (default: $HELPDESK_CONFIG, else ./config.toml)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="helpdesk", description="SayPro Classified Help Desk (Telegram bot)")
    p.add_argument("--config", help=CONFIG_HELP)
    # --config also after the command name (helpdesk run --config FILE); given there, it wins
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run the bot (long polling, or --webhook)")
    run.add_argument(
        "--webhook", action="store_true",
        help="receive updates on a webhook (telegram.webhook_url, webhook_listen, webhook_port, webhook_secret) instead of polling",
    )
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="play a scripted session offline and print the transcript")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo database in DIR")
    demo.set_defaults(func=cmd_demo)
    mig = sub.add_parser("migrate", parents=[common], help="apply database migrations")
    mig.add_argument("--revision", default="head", help="target revision (default head; -1 steps back one)")
    mig.set_defaults(func=cmd_migrate)
    kb = sub.add_parser("kb", help="knowledge base: validate, import, export")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    v = kb_sub.add_parser("validate", parents=[common], help="check the KB file and report every problem")
    v.add_argument("file", nargs="?", help="KB file (default: kb.path from the config)")
    i = kb_sub.add_parser("import", parents=[common], help="load the KB file into the database (idempotent)")
    i.add_argument("file", nargs="?", help="KB file (default: kb.path from the config)")
    i.add_argument("--allow-remove", action="store_true", help="allow removing more than half of the entries")
    e = kb_sub.add_parser("export", parents=[common], help="write the database's KB as a file")
    e.add_argument("--out", help="output file (default: standard output)")
    kb.set_defaults(func=cmd_kb)
    rep = sub.add_parser("report", parents=[common], help="the manager's report for a month or a quarter (HTML with charts, or CSV)")
    rep.add_argument("--period", help="YYYY-MM or YYYY-Qn (default: last month), in the reports' time zone")
    rep.add_argument("--out", help="output file (default: standard output)")
    rep.add_argument("--format", choices=["html", "csv"], default="html", help="html (default) or csv of the raw figures")
    rep.set_defaults(func=cmd_report)
    backup = sub.add_parser("backup", parents=[common], help="write a consistent copy of the SQLite database (safe while the bot runs)")
    backup.add_argument("--out", required=True, metavar="FILE", help="where to write the copy")
    backup.set_defaults(func=cmd_backup)
    return p


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError
    from telegram.error import InvalidToken

    from bot.logs import RedactTokens, setup_logging

    args = parser().parse_args(argv)
    if not logging.getLogger().handlers:
        setup_logging("WARNING")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_FAILURE if isinstance(exc, Unreachable) else EXIT_CONFIG
    except InvalidToken:  # after the start: the token was revoked while starting
        print("telegram.token: the Bot API server rejected the token; check it with @BotFather", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        reason = RedactTokens()._clean(str(exc.orig if getattr(exc, "orig", None) else exc)).splitlines()[0]
        print(f"database: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:  # anything else: through the redacting logger, never a raw traceback
        log.exception("helpdesk %s failed", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
