"""``helpdesk run --webhook``: the real process receives updates over HTTP from "Telegram"
(here: this test, with or without the secret header) and answers through the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from bot.config import ConfigError, load_settings
from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram
from tests.test_run_process import ROOT, TOKEN, wait_for, write_config

SECRET = "s3cret_Webhook-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, update: dict, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(update).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def next_update(tg: FakeTelegram, user, text: str) -> dict:  # type: ignore[no-untyped-def]
    """What Telegram would POST for ``user`` typing ``text`` (the fake queues it)."""
    asyncio.run(user.send(text))
    with tg.lock:
        return tg.pending.pop()


def test_webhook_refuses_missing_or_wrong_secret_and_answers_the_right_one(tmp_path):
    tg = FakeTelegram()
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        cfg.write_text(
            cfg.read_text().replace(
                "[telegram]\n", f'[telegram]\nwebhook_url = "{hook}"\nwebhook_listen = "127.0.0.1"\nwebhook_port = {port}\n'
            )
        )
        env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN, "HELPDESK_WEBHOOK_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        env.pop("HELPDESK_CONFIG", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run", "--webhook"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            assert wait_for(lambda: server.webhook is not None and listening(port), timeout=60), "no webhook was set"
            assert server.webhook["url"] == hook
            assert server.webhook["secret_token"] == SECRET
            user = tg.user(3101, "Lindiwe")

            assert post(hook, next_update(tg, user, "how do I post an ad"), None) == 403
            assert post(hook, next_update(tg, user, "how do I renew my ad"), "not-the-secret") == 403
            assert post(hook, next_update(tg, user, "is it safe to meet a buyer"), SECRET) == 200

            assert wait_for(lambda: len(tg.sent("sendMessage", 3101)) >= 1), tg.calls
            assert "meet a buyer or seller safely" in tg.sent("sendMessage", 3101)[0].params["text"]
            assert not any(method == "getUpdates" for _, method in server.requests)  # no polling beside it
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
    assert proc.returncode == 0, output
    assert "starting the webhook server" in output
    assert SECRET not in output and TOKEN not in output
    # only the update with the right secret was processed: one question, one answer
    assert len(tg.sent("sendMessage", 3101)) == 1
    with sqlite3.connect(tmp_path / "run.db") as db:
        asked = [row[0] for row in db.execute("SELECT text FROM questions WHERE user_id = 3101")]
    assert asked == ["is it safe to meet a buyer"]


def test_webhook_needs_url_and_secret_and_says_so(tmp_path, monkeypatch):
    tg = FakeTelegram()
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN}
        env.pop("HELPDESK_WEBHOOK_SECRET", None)
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run", "--webhook"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert f"{cfg}: telegram.webhook_url: found nothing" in result.stderr
    assert f"{cfg}: telegram.webhook_secret: found nothing" in result.stderr
    assert "HELPDESK_WEBHOOK_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.webhook is None


@pytest.mark.parametrize(
    ("secret", "reason"),
    [("has space", "has characters other than these"), ("ä" * 5, "has characters other than these"), ("x" * 257, "longer than 256")],
)
def test_a_malformed_secret_is_one_clear_line_that_does_not_show_it(tmp_path, monkeypatch, secret, reason):
    monkeypatch.delenv("HELPDESK_WEBHOOK_SECRET", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(f'[telegram]\nwebhook_secret = "{secret}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    (line,) = info.value.lines
    assert line.startswith(f"{path}: telegram.webhook_secret: found a value of {len(secret)} characters (not shown)")
    assert "1-256 characters of A-Z, a-z, 0-9, _ and -" in line and reason in line
    assert secret not in line


def test_secret_from_the_environment_overrides_the_file_and_is_checked_too(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text('[telegram]\nwebhook_url = "https://bot.example.com/tg"\nwebhook_secret = "from_file"\n')
    monkeypatch.setenv("HELPDESK_WEBHOOK_SECRET", "from-env_42")
    settings = load_settings(path)
    assert settings.telegram.webhook_secret == "from-env_42"
    assert settings.telegram.webhook_path == "tg"
    monkeypatch.setenv("HELPDESK_WEBHOOK_SECRET", "no/slashes")
    with pytest.raises(ConfigError):
        load_settings(path)
