"""``helpdesk run``: the real process, long-polling a local fake Bot API over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "4242424242:QQwwEErrTTyyUUiiOOppAAssDDffGGhhJ"


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def write_config(tmp_path, server):
    """A config for the real process: the fake Bot API server, a fresh SQLite file."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[telegram]\napi_base_url = "{server.url}"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/run.db"\n'
        "[staff]\nchat_id = -1009999\n"
    )
    return cfg


def test_run_answers_over_http_and_stops_cleanly_on_sigterm(tmp_path):
    tg = FakeTelegram()
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        env.pop("HELPDESK_CONFIG", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            user = tg.user(3001, "Palesa")
            assert wait_for(lambda: any(m == "getUpdates" for _, m in server.requests)), "the bot never polled"
            asyncio.run(user.send("/start"))
            asyncio.run(user.send("is it safe to meet a buyer"))
            assert wait_for(lambda: len(tg.sent("sendMessage", 3001)) >= 3), tg.calls
            texts = [c.params["text"] for c in tg.sent("sendMessage", 3001)]
            assert "Hello, <b>Palesa</b>" in texts[0]
            assert "New here?" in texts[1]  # a first-time user gets the short tour
            assert "meet a buyer or seller safely" in texts[2]
            # the vote buttons came through as JSON in a form field
            markup = tg.sent("sendMessage", 3001)[2].params["reply_markup"]
            assert markup["inline_keyboard"][0][0]["callback_data"].startswith("v:")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
        assert proc.returncode == 0, output
        assert {token for token, _ in server.requests} == {TOKEN}
        assert TOKEN not in output and TOKEN.split(":")[1] not in output
        assert "starting long polling" in output


def test_rejected_token_is_one_clear_line_without_the_token(tmp_path):
    tg = FakeTelegram()
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        wrong = "5555555555:ZZyyXXwwVVuuTTssRRqqPPooNNmmLLkkJ"
        env = {**os.environ, "HELPDESK_BOT_TOKEN": wrong}
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert "telegram.token: the Bot API server rejected the token" in result.stderr
    assert "ZZyyXX" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
