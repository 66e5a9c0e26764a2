"""The fake Bot API over HTTP, for running the real ``helpdesk run`` process offline.

Point ``telegram.api_base_url`` at :attr:`FakeBotServer.url` and the bot long-polls
this server as it would Telegram: ``/bot<token>/<method>`` with form-encoded
parameters (JSON for nested values), answered by :class:`FakeTelegram`.

``setWebhook`` / ``deleteWebhook`` are kept here, as on Telegram: while a webhook is
set (:attr:`FakeBotServer.webhook`, with its ``url`` and ``secret_token``),
``getUpdates`` answers 409 Conflict. Delivering updates to the webhook is up to the
test (a POST with the secret header, like Telegram's).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from bot.fake_telegram import FakeTelegram

LONG_POLL_CAP = 0.5  # seconds a getUpdates call waits for news


class FakeBotServer:
    def __init__(self, tg: FakeTelegram, token: str, host: str = "127.0.0.1", port: int = 0):
        self.tg = tg
        self.token = token
        self.requests: list[tuple[str, str]] = []  # (token seen in the path, method)
        self.webhook: dict[str, Any] | None = None  # setWebhook's parameters while one is set
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
        if method in ("setWebhook", "deleteWebhook"):
            self.webhook = dict(params) if method == "setWebhook" and params.get("url") else None
            self._reply(request, 200, {"ok": True, "result": True})
            return
        if method == "getUpdates" and self.webhook is not None:
            self._reply(request, 409, {"ok": False, "error_code": 409,
                                       "description": "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"})
            return
        if method == "getUpdates":
            self._wait_for_updates(params)
        status, payload = self.tg.dispatch(method, params)
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

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
