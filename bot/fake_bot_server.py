"""The fake Bot API over HTTP, for running the real ``helpdesk run`` process offline.

Point ``telegram.api_base_url`` at :attr:`FakeBotServer.url` and the bot long-polls
this server as it would Telegram: ``/bot<token>/<method>`` with form-encoded
parameters (JSON for nested values), answered by :class:`FakeTelegram`.

As on Telegram, ``getUpdates`` hands out every update not yet confirmed, and an update
is confirmed only by a later ``getUpdates`` whose ``offset`` is above its id: a bot
that dies before that gets the same updates again. For crash tests, :meth:`hold`
stops one chosen request half-way (before Telegram acts on it, or after, with the
answer not yet sent), so the test can kill the bot at that exact point.

``setWebhook`` / ``deleteWebhook`` are kept here, as on Telegram: while a webhook is
set (:attr:`FakeBotServer.webhook`, with its ``url`` and ``secret_token``),
``getUpdates`` answers 409 Conflict. Delivering updates to the webhook is up to the
test (a POST with the secret header, like Telegram's). :attr:`FakeBotServer.refuse_webhook`
makes ``setWebhook`` fail as Telegram does for a URL it cannot use (400 "bad webhook").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from bot.fake_telegram import FakeTelegram

LONG_POLL_CAP = 0.5  # seconds a getUpdates call waits for news
HOLD_LIMIT = 300.0  # a held request gives up waiting after this many seconds


@dataclass
class Hold:
    """One request stopped half-way: see :meth:`FakeBotServer.hold`."""

    method: str
    match: Callable[[dict[str, Any]], bool]
    after: bool  # True: Telegram acts on the request first, only the answer is held
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    drop: bool = False

    def wait(self, timeout: float = 60.0) -> bool:
        """Until the bot made the held request."""
        return self.reached.wait(timeout)

    def release(self, *, drop: bool = False) -> None:
        """Let the request go on; ``drop``: it never reaches Telegram (or its answer never
        reaches the bot) and the connection is closed, as when the bot was killed."""
        self.drop = drop
        self.released.set()


class FakeBotServer:
    def __init__(self, tg: FakeTelegram, token: str, host: str = "127.0.0.1", port: int = 0):
        self.tg = tg
        self.token = token
        self.requests: list[tuple[str, str]] = []  # (token seen in the path, method)
        self.deliveries: list[list[int]] = []  # update ids handed out by each getUpdates
        self.polls: list[dict[str, Any]] = []  # the parameters of each getUpdates
        self._holds: list[Hold] = []
        self.webhook: dict[str, Any] | None = None  # setWebhook's parameters while one is set
        self.refuse_webhook: str | None = None  # setWebhook answers 400 with this description
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                server._handle(self)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBotServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self._reply(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        token, method = parts[0][3:], parts[1]
        self.requests.append((token, method))
        if token != self.token:
            self._reply(request, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode() if length else ""
        params = self._params(request.headers.get("Content-Type") or "", body)
        if method == "setWebhook" and self.refuse_webhook:
            self._reply(request, 400, {"ok": False, "error_code": 400, "description": self.refuse_webhook})
            return
        if method in ("setWebhook", "deleteWebhook"):
            self.webhook = dict(params) if method == "setWebhook" and params.get("url") else None
            self._reply(request, 200, {"ok": True, "result": True})
            return
        if method == "getUpdates" and self.webhook is not None:
            self._reply(request, 409, {"ok": False, "error_code": 409,
                                       "description": "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"})
            return
        if method == "getUpdates":
            with self.tg.lock:
                self.polls.append(params)
            self._wait_for_updates(params)
        hold = self._take_hold(method, params)
        status, payload = 0, b""
        if hold is None or hold.after:
            status, payload = self.tg.dispatch(method, params)
        if hold is not None:
            hold.reached.set()
            hold.released.wait(HOLD_LIMIT)
            if hold.drop:
                return  # the connection closes without an answer
            if not hold.after:
                status, payload = self.tg.dispatch(method, params)
        if method == "getUpdates" and status == 200:
            with self.tg.lock:
                self.deliveries.append([u["update_id"] for u in json.loads(payload)["result"]])
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except OSError:
            pass  # the bot is gone (killed while waiting for the answer)

    def hold(self, method: str, match: Callable[[dict[str, Any]], bool] = lambda _: True, *, after: bool = False) -> Hold:
        """Stop the next ``method`` request whose parameters ``match`` until the test
        releases it: before Telegram acts on it, or (``after``) once it has acted but
        before the bot hears back."""
        hold = Hold(method, match, after)
        with self.tg.lock:
            self._holds.append(hold)
        return hold

    def _take_hold(self, method: str, params: dict[str, Any]) -> Hold | None:
        with self.tg.lock:
            for hold in self._holds:
                if hold.method == method and hold.match(params):
                    self._holds.remove(hold)
                    return hold
        return None

    def delivered(self, update_id: int) -> int:
        """How many times ``getUpdates`` handed out this update."""
        with self.tg.lock:
            return sum(ids.count(update_id) for ids in self.deliveries)

    def confirmed(self, update_id: int) -> bool:
        """Has the bot confirmed the update (asked for updates with a higher offset)?"""
        with self.tg.lock:
            return any(int(p.get("offset") or 0) > update_id for p in self.polls)

    @staticmethod
    def _params(content_type: str, body: str) -> dict[str, Any]:
        if not body:
            return {}
        if "json" in content_type:
            return dict(json.loads(body))
        params: dict[str, Any] = {}
        for key, value in parse_qsl(body, keep_blank_values=True):
            if value[:1] in "[{":
                try:
                    params[key] = json.loads(value)
                    continue
                except ValueError:
                    pass
            params[key] = value
        return params

    def _wait_for_updates(self, params: dict[str, Any]) -> None:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), LONG_POLL_CAP)
        while time.monotonic() < deadline:
            with self.tg.lock:
                if any(u["update_id"] >= offset for u in self.tg.pending):
                    return
            time.sleep(0.02)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
