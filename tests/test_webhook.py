"""``helpdesk run --webhook``: the real process receives updates over HTTP from "Telegram"
(here: this test, with or without the secret header) and answers through the fake Bot API.
The server is ours (bot/webhook.py), not PTB's run_webhook."""

from __future__ import annotations

import asyncio
import hmac
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import httpx
import pytest
from telegram import Update
from telegram.ext import TypeHandler
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from bot.config import ConfigError, load_settings
from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram
from bot.webhook import MAX_BODY, SECRET_HEADER, web_app
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
        proc = start_webhook_bot(tmp_path, server, port)
        try:
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


def start_webhook_bot(tmp_path, server: FakeBotServer, port: int) -> subprocess.Popen:  # type: ignore[type-arg]
    """``helpdesk run --webhook`` on ``port``, hook path /telegram/hook, once the webhook is set."""
    cfg = write_config(tmp_path, server)
    hook = f"http://127.0.0.1:{port}/telegram/hook"
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
    if not wait_for(lambda: server.webhook is not None and listening(port), timeout=60):
        proc.kill()
        raise AssertionError(f"no webhook was set: {proc.communicate()[0]}")
    return proc


def raw(port: int, method: str, path: str, body: bytes = b"", *, secret: str | None = SECRET, chunked: bool = False) -> tuple[int, bytes]:
    """One HTTP request, exactly as given (http.client: no retries, no redirects)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:  # no Content-Length: the size is known only while reading
            pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
            conn.request(method, path, body=iter(pieces), headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body if method not in ("GET", "HEAD") else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_bad_requests_are_refused_without_details_and_sigterm_drains_then_exits_0(tmp_path):
    tg = FakeTelegram()
    port = free_port()
    hook = "/telegram/hook"
    with FakeBotServer(tg, TOKEN) as server:
        proc = start_webhook_bot(tmp_path, server, port)
        try:
            user = tg.user(3201, "Ayanda")
            valid = json.dumps(next_update(tg, user, "is it safe to meet a buyer")).encode()
            # the secret: one character off at the end, a prefix, longer, empty: all 403,
            # whatever the body; the check comes before the body is even looked at
            for wrong in (SECRET[:-1] + ("x" if SECRET[-1] != "x" else "y"), SECRET[:-1], SECRET + "n", ""):
                assert raw(port, "POST", hook, valid, secret=wrong) == (403, b""), wrong
            assert raw(port, "POST", hook, b"x" * (MAX_BODY + 1), secret="nope") == (403, b"")
            # not JSON, not UTF-8, JSON but not an update, an update PTB cannot read: 400
            for body in (b"{not json", b"\xff\xfe{}", b"", b"[1, 2]", b'"text"', b'{"message": {}}',
                         b'{"update_id": "7"}', b'{"update_id": 7, "message": "hello"}', b'{"update_id": 8, "message": {}}'):
                assert raw(port, "POST", hook, body) == (400, b""), body
            # over the limit, with a Content-Length or streamed in chunks: 413
            assert raw(port, "POST", hook, b" " * (MAX_BODY + 1)) == (413, b"")
            assert raw(port, "POST", hook, b" " * (MAX_BODY + 1), chunked=True) == (413, b"")
            assert raw(port, "POST", hook, b" " * MAX_BODY) == (400, b"")  # the limit itself is allowed
            # a Content-Length far too large: answered at once, nothing is read
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(f"POST {hook} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\nContent-Length: 100000000\r\n\r\n".encode())
                assert s.recv(100).startswith(b"HTTP/1.1 413 ")
            # only POST, only on the hook's path
            assert raw(port, "GET", hook)[0] == 405
            assert raw(port, "PUT", hook, valid)[0] == 405
            assert raw(port, "POST", "/telegram/hook/other", valid) == (404, b"")
            assert raw(port, "POST", "/", valid) == (404, b"")
            assert raw(port, "GET", "/healthz", secret=None) == (200, b"ok")
            assert proc.poll() is None, "a bad request crashed the bot"
            assert not tg.sent("sendMessage", 3201)

            # a good update is not answered while its handler is busy (the 200 confirms it)
            answer = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == "3201")
            outcome: list[object] = []

            def request() -> None:
                try:
                    outcome.append(raw(port, "POST", hook, valid))
                except (OSError, http.client.HTTPException) as exc:  # cut by the shutdown
                    outcome.append(exc)

            poster = threading.Thread(target=request)
            poster.start()
            assert answer.wait(60), "the update was not handled"
            poster.join(0.5)
            assert poster.is_alive() and not outcome, f"answered before its handler finished: {outcome}"
            # SIGTERM: the server stops first (no new updates), the busy handler finishes
            proc.send_signal(signal.SIGTERM)
            assert wait_for(lambda: not listening(port), timeout=30), "the server still listens"
            assert proc.poll() is None, "the bot exited before its handler finished"
            answer.release()
            output, _ = proc.communicate(timeout=60)
            poster.join(30)
            # the request got its 200 after the handler, or was cut without one (then
            # Telegram sends it again and the marker of its effect makes that a no-op)
            assert outcome and (outcome[0] == (200, b"") or isinstance(outcome[0], Exception)), outcome
        finally:
            if proc.poll() is None:
                proc.kill()
                output, _ = proc.communicate()
    assert proc.returncode == 0, output
    assert len(tg.sent("sendMessage", 3201)) == 1
    assert "meet a buyer or seller safely" in tg.sent("sendMessage", 3201)[0].params["text"]
    with sqlite3.connect(tmp_path / "run.db") as db:
        assert [r[0] for r in db.execute("SELECT text FROM questions WHERE user_id = 3201")] == ["is it safe to meet a buyer"]
    assert "Traceback" not in output
    assert SECRET not in output and TOKEN not in output and SECRET[:-1] not in output
    assert output.count("helpdesk.webhook: refused") == 13, output  # the 400s and 413s, with the reason
    assert "a body that is not JSON" in output and "JSON that is not an update" in output


async def test_the_secret_is_compared_with_hmac_compare_digest_on_bytes(desk, monkeypatch):
    """In process, on each database: every request's secret goes through
    hmac.compare_digest (constant time) as bytes, and a right one reaches the handlers."""
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    desk.app.update_queue.wait_for_handlers = False  # as in webhook mode
    sock, port = bind_unused_port()
    server = HTTPServer(web_app(desk.app, SECRET, "/telegram/hook"))
    server.add_sockets([sock])
    user = desk.tg.user(3301, "Zanele")
    desk.tg.app = None  # the fake queues the update instead of feeding it: we post it
    await user.send("how do I renew my ad")
    update = desk.tg.pending.pop()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for wrong in (SECRET[:-1] + "X", SECRET + "X", SECRET[:-1], "ä".encode("latin-1")):
                response = await client.post(url, json=update, headers={SECRET_HEADER: wrong})
                assert (response.status_code, response.content) == (403, b"")
            assert (await client.post(url, json=update)).status_code == 403
            assert len(compared) == 5
            assert all(type(a) is bytes and b == SECRET.encode() for a, b in compared)

            assert (await client.post(url, json=update, headers={SECRET_HEADER: SECRET})).status_code == 200
            assert len(compared) == 6
        for _ in range(200):
            if desk.tg.sent("sendMessage", 3301):
                break
            await asyncio.sleep(0.05)
    finally:
        server.stop()
        await server.close_all_connections()
    assert len(desk.tg.sent("sendMessage", 3301)) == 1
    assert await desk.rows("SELECT text FROM questions WHERE user_id = 3301") == [("how do I renew my ad",)]


async def test_a_webhook_update_is_answered_only_after_it_was_handled(desk):
    """The 200 confirms the update to Telegram: it comes once the handlers ran and the
    effect is in the database, never while they are still busy."""
    gate, reached = asyncio.Event(), asyncio.Event()

    async def busy(update: Update, context: object) -> None:  # holds this user's update
        if update.effective_user is not None and update.effective_user.id == 3302:
            reached.set()
            await gate.wait()

    desk.app.add_handler(TypeHandler(Update, busy), group=-10)
    desk.app.update_queue.wait_for_handlers = False  # as in webhook mode
    sock, port = bind_unused_port()
    server = HTTPServer(web_app(desk.app, SECRET, "/telegram/hook"))
    server.add_sockets([sock])
    user = desk.tg.user(3302, "Lindiwe")
    desk.tg.app = None  # the fake queues the update instead of feeding it: we post it
    await user.send("how do I renew my ad")
    update = desk.tg.pending.pop()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            posting = asyncio.create_task(
                client.post(f"http://127.0.0.1:{port}/telegram/hook", json=update, headers={SECRET_HEADER: SECRET})
            )
            await asyncio.wait_for(reached.wait(), 30)
            await asyncio.sleep(0.3)
            assert not posting.done(), "answered while the update's handlers were still busy"
            assert not desk.tg.sent("sendMessage", 3302)
            gate.set()
            response = await asyncio.wait_for(posting, 30)
        # by the time of the 200, the answer was sent and the question recorded
        assert response.status_code == 200
        assert len(desk.tg.sent("sendMessage", 3302)) == 1
        assert await desk.rows("SELECT text FROM questions WHERE user_id = 3302") == [("how do I renew my ad",)]
    finally:
        gate.set()
        server.stop()
        await server.close_all_connections()


def test_a_busy_port_is_one_clear_line_and_no_webhook_is_set(tmp_path):
    tg = FakeTelegram()
    with socket.socket() as taken, FakeBotServer(tg, TOKEN) as server:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path, server)
        cfg.write_text(
            cfg.read_text().replace(
                "[telegram]\n",
                f'[telegram]\nwebhook_url = "http://127.0.0.1:{port}/hook"\nwebhook_listen = "127.0.0.1"\nwebhook_port = {port}\n',
            )
        )
        env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN, "HELPDESK_WEBHOOK_SECRET": SECRET}
        env.pop("HELPDESK_CONFIG", None)
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run", "--webhook"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.webhook is None  # Telegram was not told to post to a server that is not there
