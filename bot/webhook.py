"""``helpdesk run --webhook``: the HTTP server Telegram posts updates to.

PTB's own ``run_webhook`` compares the ``X-Telegram-Bot-Api-Secret-Token`` header with
``!=``, which leaks through timing how much of a guess was right, and has no hook to
change that. This is PTB's documented alternative (the "custom webhook bot" example):
our own server puts each update on ``application.update_queue`` and the application runs
without its updater. It uses tornado, which PTB's ``webhooks`` extra installs already.

One route, ``POST /<path of telegram.webhook_url>``:

- the secret is compared with :func:`hmac.compare_digest` on bytes; missing or wrong: 403;
- a body over :data:`MAX_BODY` bytes (Telegram's updates are a few KB): 413. The body is
  streamed: at most that much is kept in memory, and a refused request's body is read and
  thrown away (up to :data:`DRAIN_LIMIT`; beyond it the connection is dropped) so that
  the client gets its answer rather than a reset connection;
- a body that is not JSON, or not an update: 400, logged (without the body: it holds
  users' messages), never a crash;
- an update: queued, and answered 200 once the application has handled it
  (``ConfirmAfterProcessing.put_and_wait``): the 200 confirms the update to Telegram, so
  a crash before its effect is in the database makes Telegram send it again, and a
  re-delivery is harmless (``processed_updates``). It waits for its own update, not the
  whole queue, and at most :data:`HANDLING_WAIT` seconds.

Error answers carry a status line and no body. ``GET /healthz`` answers 200 ``ok`` for a
load balancer. Any other path: 404; another method: 405.

SIGTERM / SIGINT: the server stops first (no new connections, open ones closed: a request
cut short was not answered 200, so Telegram sends it again; its update is still handled,
and the marker of its effect makes the repeat a no-op), then the application handles
every update already queued and the running jobs finish (``Application.stop``), then the
database is closed, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import signal
from typing import Any, NoReturn

import tornado.web
from telegram import Update
from telegram.error import BadRequest
from telegram.ext import Application, ExtBot
from tornado.httpserver import HTTPServer

from bot.config import TelegramSettings

log = logging.getLogger("helpdesk.webhook")

#: The largest body accepted (bytes); Telegram's updates are far smaller.
MAX_BODY = 1024 * 1024
#: Bodies up to this size are read and thrown away after a 403 / 413, so the client gets
#: its answer; beyond it the connection is simply closed.
DRAIN_LIMIT = 8 * MAX_BODY
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: How long a request waits for its update to be handled before answering 200 anyway
#: (a handler busy that long is a fault; Telegram would otherwise time out and resend).
HANDLING_WAIT = 50.0
#: What PTB's run_webhook passed to setWebhook (Telegram's default is 40 too).
MAX_CONNECTIONS = 40


class _Quiet(tornado.web.RequestHandler):
    """Error answers are a status line only: nothing for a prober to learn from."""

    def set_default_headers(self) -> None:
        self.clear_header("Server")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish()

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[no-untyped-def]
        # tornado's default logs the whole request, secret header included
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("%s %s failed", self.request.method, self.request.path, exc_info=(typ, value, tb))  # type: ignore[arg-type]


class _NotFound(_Quiet):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class _Health(_Quiet):
    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.write("ok")

    def head(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")


@tornado.web.stream_request_body
class _Updates(_Quiet):
    SUPPORTED_METHODS = ("POST",)  # type: ignore[assignment]

    def initialize(self, ptb: Application, secret: bytes, max_body: int) -> None:  # type: ignore[type-arg]
        self.ptb = ptb
        self.secret = secret
        self.max_body = max_body
        self.chunks: list[bytes] = []
        self.size = 0
        # decided from the headers, answered once the body is read: tornado closes the
        # connection as soon as the answer is out, and a client still sending would see
        # a reset instead of the 403 / 413
        self.refusal: tuple[int, str | None] | None = None

    def prepare(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self.secret):
            self.refusal = (403, None)  # not logged: probes would flood the log
        length = self.request.headers.get("Content-Length")
        if length is None:
            return
        if not length.isdigit():
            self._refuse(*(self.refusal or (400, f"Content-Length {length[:20]!r}")))
        if self.refusal is None and int(length) > self.max_body:
            self.refusal = (413, f"a body of {length} bytes")
        if int(length) > DRAIN_LIMIT:  # not worth reading: answer now, drop the connection
            self._refuse(*(self.refusal or (413, None)))

    def data_received(self, chunk: bytes) -> None:
        # the secret is wrong, or the body too long: read and thrown away
        if self.refusal is not None:
            return
        # chunked bodies have no Content-Length: count here, keep at most max_body bytes
        self.size += len(chunk)
        if self.size <= self.max_body:
            self.chunks.append(chunk)
        else:
            self.refusal = (413, f"a body of more than {self.max_body} bytes")
            self.chunks.clear()

    async def post(self) -> None:
        if self.refusal is not None:
            self._refuse(*self.refusal)
        body = b"".join(self.chunks)
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._refuse(400, f"a body that is not JSON ({len(body)} bytes): {exc.__class__.__name__}")
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            self._refuse(400, f"JSON that is not an update ({len(body)} bytes)")
        bot = self.ptb.bot
        try:
            update = Update.de_json(data, bot)
            if isinstance(bot, ExtBot):
                bot.insert_callback_data(update)  # as PTB's own webhook handler does
        except Exception as exc:  # noqa: BLE001 (whatever PTB makes of a malformed update)
            self._refuse(400, f"update {data['update_id']} that PTB could not read: {exc.__class__.__name__}: {exc}")
        # 200 confirms the update to Telegram: only once its handlers ran (its effect is in
        # the database), so a crash before that makes Telegram send it again
        handled = await self.ptb.update_queue.put_and_wait(update, HANDLING_WAIT)  # type: ignore[attr-defined]
        if handled is None:
            log.warning("update %s not handled after %s s; answered 200, it stays queued", update.update_id, HANDLING_WAIT)
        self.set_status(200)

    def _refuse(self, status: int, what: str | None) -> NoReturn:
        if what is not None:
            self.explained = True  # logged here, with the reason; _log_request stays quiet
            log.warning("refused %s from %s (%s)", what, self.request.remote_ip, status)
        raise tornado.web.HTTPError(status)


def web_app(application: Application, secret: str, path: str, *, max_body: int = MAX_BODY) -> tornado.web.Application:  # type: ignore[type-arg]
    """The routes: updates on ``/<path>``, ``/healthz``, 404 elsewhere."""
    path = path.lstrip("/")  # a trailing slash is kept: Telegram posts to the URL as given
    routes: list[Any] = [
        (f"/{re.escape(path)}" if path else "/", _Updates, {"ptb": application, "secret": secret.encode(), "max_body": max_body}),
    ]
    if path != "healthz":
        routes.append(("/healthz", _Health))
    return tornado.web.Application(routes, default_handler_class=_NotFound, log_function=_log_request)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per refused request (the 200s would be one line per update)."""
    status = handler.get_status()
    if status >= 400 and not getattr(handler, "explained", False):
        log.info("%s %s %s (%s)", status, handler.request.method, handler.request.path, handler.request.remote_ip)


async def serve(application: Application, tg: TelegramSettings, *, allowed_updates: list[str] | None = None) -> int:  # type: ignore[type-arg]
    """Run the bot on the webhook until SIGTERM / SIGINT; the exit status."""
    # a webhook request waits for its own update, not the whole queue (bot/updates.py)
    application.update_queue.wait_for_handlers = False  # type: ignore[attr-defined]
    server = HTTPServer(
        web_app(application, tg.webhook_secret, tg.webhook_path),
        max_body_size=DRAIN_LIMIT,
        body_timeout=30,
        idle_connection_timeout=120,
    )
    try:
        # first: a busy port fails before anything else started; an update that comes
        # early waits in the queue until the application runs
        server.listen(tg.webhook_port, tg.webhook_listen)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", tg.webhook_listen, tg.webhook_port, exc.strerror or exc)
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await application.initialize()
        try:
            if application.post_init:
                await application.post_init(application)
            await application.start()
            try:
                # only now: Telegram posts as soon as the webhook is set
                try:
                    await application.bot.set_webhook(
                        url=tg.webhook_url,
                        secret_token=tg.webhook_secret,
                        allowed_updates=allowed_updates if allowed_updates is not None else Update.ALL_TYPES,
                        max_connections=MAX_CONNECTIONS,
                        drop_pending_updates=False,  # what was sent while we were down is handled
                    )
                except BadRequest as exc:  # a URL Telegram cannot use: stop, saying which key
                    log.error(
                        "telegram.webhook_url: Telegram refused %s (%s); it needs an https URL on port 443, 80, 88 "
                        "or 8443 with a valid certificate (a self-hosted Bot API server also takes http)",
                        tg.webhook_url, exc.message,
                    )
                    return 2
                log.info("webhook set: %s", tg.webhook_url)
                await stopping.wait()
                log.info("stopping: no new updates; handling the ones received")
            finally:
                server.stop()  # no new connections
                await server.close_all_connections()
                await application.stop()  # handles every queued update, waits for the jobs
                if application.post_stop:
                    await application.post_stop(application)
        finally:
            await application.shutdown()
            if application.post_shutdown:
                await application.post_shutdown(application)
    finally:
        server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run(application: Application, tg: TelegramSettings) -> int:  # type: ignore[type-arg]
    return asyncio.run(serve(application, tg))
