"""No bot token in any log line: a whole demo run and real HTTP calls, logged at DEBUG.

The token is built at run time from pieces, so nothing token-shaped is in the repository.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import string

import pytest
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from bot.demo import main as demo_main
from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram
from bot.logs import setup_logging

REAL_TOKEN_SHAPE = re.compile(r"[0-9]{8,10}:[A-Za-z0-9_-]{35}")


def fake_token() -> str:
    """Shaped exactly like a BotFather token (10 digits, 35 characters), never valid."""
    bot_id = "".join(str(d) for d in (8, 1, 2, 3, 4, 5, 6, 7, 8, 9))
    secret = (string.ascii_letters[::3] + string.digits[::2] + "_-" + "Zz")[:35]
    secret = secret.ljust(35, "x")
    return f"{bot_id}:{secret}"


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch):
    """The production logging set-up at DEBUG (httpx too), writing into a buffer."""
    token = fake_token()
    assert REAL_TOKEN_SHAPE.fullmatch(token)
    monkeypatch.setenv("HELPDESK_BOT_TOKEN", token)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "sqlalchemy.engine")}
    setup_logging("DEBUG", [token])
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # the handler setup_logging made, with its filter
    for name in noisy:  # as verbose as anyone debugging a problem could make it
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield token, buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


def assert_clean(text: str, token: str) -> None:
    assert token not in text
    assert token.split(":")[1] not in text
    assert not REAL_TOKEN_SHAPE.search(text), REAL_TOKEN_SHAPE.search(text)


def test_a_whole_demo_at_debug_logs_no_token(captured_logs, tmp_path):
    token, buffer = captured_logs
    transcript = io.StringIO()
    assert demo_main(keep=str(tmp_path / "demo"), out=transcript, out_dir=str(tmp_path / "demo-output")) == 0
    logged = buffer.getvalue()
    assert logged.count("\n") > 100, "the demo logged (almost) nothing: the capture is broken"
    assert "Calling Bot API endpoint" in logged  # PTB's own request logging was on
    assert_clean(logged, token)
    assert_clean(transcript.getvalue(), token)


def test_httpx_request_urls_and_tracebacks_are_redacted(captured_logs):
    """A real ``Bot`` over HTTP (to the local fake Bot API): httpx logs every URL with
    the token in it; failures carry it in their tracebacks."""
    token, buffer = captured_logs
    tg = FakeTelegram()
    user = tg.user(4001, "Ayanda")

    async def talk(base_url: str) -> None:
        async with Bot(token, base_url=f"{base_url}/bot", request=HTTPXRequest()) as bot:
            await bot.send_message(user.id, "hello")
            try:
                await bot.send_message(-1, "nowhere")  # chat not found: an error from the server
            except TelegramError:
                logging.getLogger("test").exception("sending to %s/bot%s failed", base_url, token)
        async with Bot(token, base_url="http://127.0.0.1:9/bot", request=HTTPXRequest(connect_timeout=0.5)) as bot:
            pass

    with FakeBotServer(tg, token) as server:
        try:
            asyncio.run(talk(server.url))
        except Exception:  # the unreachable server: the failure is logged like the bot would
            logging.getLogger("test").exception("start-up failed")
    logged = buffer.getvalue()
    assert "HTTP Request: POST" in logged and "/bot[REDACTED]/sendMessage" in logged
    assert "Traceback" in logged
    assert_clean(logged, token)


def test_stack_info_and_broken_format_arguments_are_redacted(captured_logs):
    token, buffer = captured_logs
    log = logging.getLogger("test.stack")
    log.warning("calling %s", f"https://api.telegram.org/bot{token}/getMe", stack_info=True)
    log.warning("two placeholders %s %s but one argument", f"bot{token}")  # logging would choke
    logged = buffer.getvalue()
    assert "Stack (most recent call last)" in logged and "two placeholders" in logged
    assert_clean(logged, token)
