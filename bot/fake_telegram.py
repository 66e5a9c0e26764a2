"""An offline Telegram Bot API for tests and the demo.

:class:`FakeTelegram` is a ``telegram.request.BaseRequest``: give it to
``build_app(settings, request=fake)`` and every Bot API call lands here instead of on the
network. It keeps the chats and the messages the bot sent (with later edits), answers
with Telegram-shaped JSON, and refuses what Telegram refuses (empty or too-long text,
HTML that Telegram cannot parse, bad buttons, editing nothing, a user who blocked the
bot...), with Telegram's status codes and descriptions.

It also plays the people: :meth:`FakeTelegram.user` makes a :class:`FakeUser` whose
``send``/``press`` build real ``Update`` objects and run them through the real
Application, and :meth:`transcript` prints the conversation.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from telegram import Update
from telegram.error import NetworkError, TimedOut
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot.telegram_html import TelegramHTMLError, parse_telegram_html, strip_html

BOT_ID = 7_000_000_001
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "SayPro Help Desk",
    "username": "saypro_helpdesk_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": True,
    "supports_inline_queries": False,
}
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_TEXT_LIMIT = 200


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    result: Any = None
    error: ApiError | None = None
    timed_out: bool = False  # the bot saw a timeout (``result`` set: it went through all the same)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


# Telegram's answers for the faults a test can inject with FakeTelegram.fail(): HTTP
# status, description, and the "parameters" PTB turns into RetryAfter / ChatMigrated.
FAULTS: dict[str, tuple[int, str]] = {
    "flood": (429, "Too Many Requests: retry after {retry_after}"),
    "blocked": (403, "Forbidden: bot was blocked by the user"),
    "too_long": (400, "Bad Request: message is too long"),
    "parse": (400, "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"),
    "migrated": (400, "Bad Request: group chat was upgraded to a supergroup chat"),
    "timeout": (0, "timed out"),  # no answer at all: PTB raises TimedOut
    "not_admin": (403, "Forbidden: bot is not a member of the channel chat"),
    "kicked": (403, "Forbidden: bot was kicked from the supergroup chat"),  # removed from a group
    "cant_delete": (400, "Bad Request: message can't be deleted"),
    # 200 with a result the bot cannot read (a broken proxy or self-hosted Bot API server);
    # nothing is done
    "garbage": (200, ""),
    # the Bot API server refuses the connection (down, restarting, a network outage):
    # nothing reached it; PTB raises NetworkError from httpx.ConnectError
    "unreachable": (0, "[Errno 111] Connection refused"),
    # a proxy in front of the Bot API answers 502: PTB raises NetworkError("Bad Gateway")
    "bad_gateway": (502, "Bad Gateway"),
}


@dataclass
class Fault:
    """The next ``times`` calls of ``method`` (to ``chat_id``, or to any chat) fail."""

    method: str
    kind: str
    chat_id: int | None = None
    times: int = 1
    retry_after: int = 1
    migrate_to: int | None = None
    delivered: bool = False  # timeout only: the call took effect, the answer was lost

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        return self.times > 0 and self.method == method and (self.chat_id is None or _chat_id_of(params) == self.chat_id)

    def error(self) -> ApiError:
        code, description = FAULTS[self.kind]
        parameters: dict[str, Any] | None = None
        if self.kind == "flood":
            parameters = {"retry_after": self.retry_after}
        elif self.kind == "migrated":
            parameters = {"migrate_to_chat_id": self.migrate_to}
        return ApiError(code, description.format(retry_after=self.retry_after), parameters)


class FakeTimeout(Exception):
    """Raised by :meth:`FakeTelegram.dispatch` for an injected timeout."""


class FakeUnreachable(Exception):
    """Raised by :meth:`FakeTelegram.dispatch` for an injected refused connection."""


def _not_modified() -> ApiError:
    return ApiError(
        400,
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message",
    )


#: Bots may delete a message only within 48 hours of its sending (deleteMessage).
DELETE_WINDOW_SECONDS = 48 * 3600


@dataclass
class SentMessage:
    """A message in a chat as Telegram keeps it (the latest version after edits)."""

    chat_id: int
    message_id: int
    text: str  # plain text, entities removed
    html: str  # what the bot sent
    reply_markup: dict[str, Any] | None
    date: int
    from_bot: bool = True
    kind: str = "text"  # text | photo | document | voice | sticker | ...
    edits: int = 0
    deleted: bool = False
    thread_id: int | None = None
    reply_to: int | None = None
    file_id: str | None = None
    sender: dict[str, Any] | None = None  # the user who wrote it (None: the bot)
    upload: bytes | None = None  # the content of a file the bot uploaded
    filename: str | None = None

    @property
    def buttons(self) -> list[list[dict[str, Any]]]:
        if not self.reply_markup:
            return []
        return self.reply_markup.get("inline_keyboard") or self.reply_markup.get("keyboard") or []

    @property
    def button_texts(self) -> list[str]:
        return [b["text"] if isinstance(b, dict) else str(b) for row in self.buttons for b in row]

    def button(self, text: str) -> dict[str, Any]:
        for row in self.buttons:
            for b in row:
                if isinstance(b, dict) and (b["text"] == text or text in b["text"]):
                    return b
        raise LookupError(f"no button {text!r} on message {self.message_id}: {self.button_texts}")


@dataclass
class Event:
    """One line of the transcript."""

    who: str  # "user" | "bot" | "edit" | "toast" | "error"
    chat_id: int
    text: str
    buttons: list[str] = field(default_factory=list)
    actor: str = ""
    thread_id: int | None = None


def _button_labels(markup: dict[str, Any] | None) -> list[str]:
    if not markup:
        return []
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    return [b["text"] if isinstance(b, dict) else str(b) for row in rows for b in row]


def _chat_id_of(params: dict[str, Any]) -> int:
    try:
        return int(params.get("chat_id") or 0)
    except (TypeError, ValueError):
        return 0


def _media_json(kind: str, file_id: str) -> dict[str, Any]:
    unique = "u" + file_id[-12:]
    if kind == "photo":
        return {"photo": [{"file_id": file_id, "file_unique_id": unique, "width": 800, "height": 600}]}
    if kind == "document":
        return {"document": {"file_id": file_id, "file_unique_id": unique, "file_name": "file.pdf", "mime_type": "application/pdf"}}
    if kind == "voice":
        return {"voice": {"file_id": file_id, "file_unique_id": unique, "duration": 3, "mime_type": "audio/ogg"}}
    if kind in ("contact", "location", "service"):
        return {}  # the content itself is added by the sender
    if kind == "sticker":
        return {"sticker": {"file_id": file_id, "file_unique_id": unique, "type": "regular", "width": 512,
                            "height": 512, "is_animated": False, "is_video": False, "emoji": "🙂"}}
    return {"document": {"file_id": file_id, "file_unique_id": unique}}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeTelegram(BaseRequest):
    """The fake Bot API server and the people who use it."""

    def __init__(self, clock: Callable[[], float] | None = None):
        self.clock = clock or time.time
        self.calls: list[ApiCall] = []
        self.events: list[Event] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.blocked_by: set[int] = set()
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._names: dict[int, str] = {}
        self.app: Application | None = None  # type: ignore[type-arg]
        # raised by the next call of a method (method, error) or of a method to one chat (method, error, chat id)
        self.fail_next: list[tuple[Any, ...]] = []
        self.faults: list[Fault] = []
        self.migrated: dict[int, int] = {}  # old chat id -> new (groups upgraded to supergroups)
        # Updates waiting for getUpdates when no application is attached (a real
        # ``helpdesk run`` process polling over HTTP).
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self.members: dict[int, dict[int, tuple[dict[str, Any], str]]] = {}  # chat -> user -> (user, status)
        self.topics: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, thread) -> topic
        # files the bot uploaded (sendDocument with bytes): file_id -> (file name, content)
        self.uploads: dict[str, tuple[str, bytes]] = {}

    # ------------------------------------------------------------ BaseRequest

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        params = dict(request_data.parameters) if request_data else {}
        for name, part in (request_data.multipart_data if request_data else {}).items():
            # an upload: Telegram would store it and give it a file_id; keep the bytes
            filename, content = part[0], part[1]
            data = content if isinstance(content, bytes) else content.read()
            file_id = f"upload-{len(self.uploads) + 1}"
            with self.lock:
                self.uploads[file_id] = (filename or name, data)
            params[name] = file_id
        try:
            return self.dispatch(url.rsplit("/", 1)[-1], params)
        except FakeTimeout:
            raise TimedOut() from None
        except FakeUnreachable as exc:  # as PTB's HTTPXRequest words it
            cause = httpx.ConnectError(str(exc))
            raise NetworkError(f"httpx.ConnectError: {exc}") from cause

    # ------------------------------------------------------------ injected faults

    def fail(
        self,
        method: str,
        kind: str,
        *,
        chat_id: int | None = None,
        times: int = 1,
        retry_after: int = 1,
        migrate_to: int | None = None,
        delivered: bool = False,
    ) -> Fault:
        """Make the next ``times`` calls of ``method`` (to ``chat_id``; default any chat)
        fail the way Telegram fails them. ``kind``: ``flood`` (429 with ``retry_after``),
        ``timeout`` (no answer; ``delivered=True``: the call took effect all the same),
        ``blocked`` (403), ``not_admin`` (403 from a channel), ``kicked`` (403: removed from a group), ``too_long`` / ``parse`` /
        ``cant_delete`` (400), ``migrated`` (400 with
        ``migrate_to_chat_id``; see also :meth:`migrate_chat`), ``garbage`` (200 with a result
        missing its fields: PTB fails to read it, not with a TelegramError), ``unreachable`` (the
        connection refused: nothing sent), ``bad_gateway`` (502 from a proxy). Timeouts and
        refused connections act in-process only (through :meth:`do_request`), not through the
        HTTP fake server."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(FAULTS)}")
        fault = Fault(method, kind, chat_id, times, retry_after, migrate_to, delivered)
        with self.lock:
            self.faults.append(fault)
        return fault

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> dict[str, Any]:
        """The group ``old_chat_id`` is upgraded to the supergroup ``new_chat_id``: from
        now on every call to the old id answers 400 with ``migrate_to_chat_id``."""
        old = self.chats[old_chat_id]
        chat = self.add_group(new_chat_id, old.get("title", "group"))
        self.members[new_chat_id] = dict(self.members.get(old_chat_id, {}))
        self.migrated[old_chat_id] = new_chat_id
        return chat

    async def announce_migration(self, old_chat_id: int, new_chat_id: int, by: dict[str, Any]) -> None:
        """The two service messages Telegram sends when a group becomes a supergroup."""
        old_chat = dict(self.chats[old_chat_id], type="group")
        now = int(self.clock())
        for chat, key, value in ((old_chat, "migrate_to_chat_id", new_chat_id), (self.chats[new_chat_id], "migrate_from_chat_id", old_chat_id)):
            message = {"message_id": self._next_message_id(chat["id"]), "date": now, "chat": chat, "from": by, key: value}
            await self.feed({"message": message})

    def _take_fault(self, api_method: str, params: dict[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.matches(api_method, params):
                fault.times -= 1
                return fault
        return None

    def dispatch(self, api_method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        """Answer one Bot API call: (HTTP status, Telegram's JSON body)."""
        call = ApiCall(api_method, params)
        with self.lock:
            self.calls.append(call)
            try:
                for i, (name, error, *where) in enumerate(self.fail_next):
                    if name == api_method and (not where or where[0] == _chat_id_of(params)):
                        del self.fail_next[i]
                        raise error
                fault = self._take_fault(api_method, params)
                if fault is not None and fault.kind == "timeout":
                    call.timed_out = True
                    self.events.append(Event("error", _chat_id_of(params), f"{api_method}: (no answer: timed out)"))
                    if fault.delivered:
                        handler = getattr(self, f"api_{api_method}")
                        call.result = handler(params)
                    raise FakeTimeout(api_method)
                if fault is not None and fault.kind == "unreachable":
                    self.events.append(Event("error", _chat_id_of(params), f"{api_method}: (connection refused)"))
                    raise FakeUnreachable(FAULTS["unreachable"][1])
                if fault is not None and fault.kind == "garbage":
                    self.events.append(Event("error", _chat_id_of(params), f"{api_method}: (an answer without its fields)"))
                    return 200, json.dumps({"ok": True, "result": {"garbage": True}}).encode()
                if fault is not None:
                    raise fault.error()
                handler = getattr(self, f"api_{api_method}", None)
                if handler is None:
                    raise ApiError(404, "Not Found: method not found")
                call.result = handler(params)
            except ApiError as exc:
                call.error = exc
                self.events.append(Event("error", _chat_id_of(params), f"{api_method}: {exc.description}"))
                body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
                if exc.parameters:
                    body["parameters"] = exc.parameters
                return exc.code, json.dumps(body).encode()
        return 200, json.dumps({"ok": True, "result": call.result}).encode()

    # ------------------------------------------------------------ chats

    def add_private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if user.get("username"):
            chat["username"] = user["username"]
        self.chats[user["id"]] = chat
        self._names[user["id"]] = user["first_name"]
        return chat

    def add_group(self, chat_id: int, title: str, *, forum: bool = False) -> dict[str, Any]:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        if forum:
            chat["is_forum"] = True
        self.chats[chat_id] = chat
        self._names[chat_id] = title
        return chat

    def add_member(self, chat_id: int, user: dict[str, Any], status: str = "member") -> None:
        """``status``: creator, administrator, member, restricted, left or kicked."""
        self.members.setdefault(chat_id, {})[user["id"]] = (user, status)

    def topic_named(self, chat_id: int, prefix: str) -> int:
        for (chat, thread), topic in self.topics.items():
            if chat == chat_id and topic["name"].startswith(prefix):
                return thread
        raise LookupError(f"no topic starting with {prefix!r} in chat {chat_id}")

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("chat_id")
        try:
            chat_id = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_by:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.migrated:
            raise ApiError(
                400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": self.migrated[chat_id]}
            )
        return chat

    # ------------------------------------------------------------ validation

    def _parse_text(self, text: Any, parse_mode: Any, limit: int, what: str = "message text") -> str:
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, f"Bad Request: {what} is empty")
        if parse_mode == "HTML":
            try:
                plain = parse_telegram_html(text)
            except TelegramHTMLError as exc:
                raise ApiError(400, str(exc)) from None
        elif parse_mode is None:
            plain = text
        else:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r} in the fake")
        if not plain.strip():
            raise ApiError(400, f"Bad Request: {what} is empty")
        if _utf16_len(plain) > limit:
            raise ApiError(400, "Bad Request: message is too long" if limit == TEXT_LIMIT else "Bad Request: message caption is too long")
        return plain

    def _check_markup(self, markup: Any) -> dict[str, Any] | None:
        if markup is None:
            return None
        if isinstance(markup, str):
            markup = json.loads(markup)
        if "inline_keyboard" in markup:
            for row in markup["inline_keyboard"]:
                for b in row:
                    if not b.get("text"):
                        raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
                    kinds = [k for k in ("callback_data", "url", "switch_inline_query", "login_url") if k in b]
                    if len(kinds) != 1:
                        raise ApiError(400, "Bad Request: can't parse inline keyboard button: exactly one of the optional fields must be used")
                    if "callback_data" in b:
                        data = b["callback_data"]
                        if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                    if "url" in b and not str(b["url"]).startswith(("http://", "https://", "tg://")):
                        raise ApiError(400, f"Bad Request: inline keyboard button URL '{b['url']}' is invalid: unsupported URL protocol")
        elif "keyboard" in markup:
            for row in markup["keyboard"]:
                for b in row:
                    text = b.get("text") if isinstance(b, dict) else b
                    if not text:
                        raise ApiError(400, "Bad Request: keyboard button text is empty")
        return markup

    def _placement(self, chat: dict[str, Any], params: dict[str, Any]) -> tuple[int | None, int | None]:
        """Validate ``message_thread_id`` and the message replied to, as Telegram does."""
        thread = params.get("message_thread_id")
        thread_id = int(thread) if thread not in (None, "") else None
        if thread_id is not None:
            if not chat.get("is_forum"):
                raise ApiError(400, "Bad Request: message thread not found")
            topic = self.topics.get((chat["id"], thread_id))
            if topic is None:
                raise ApiError(400, "Bad Request: message thread not found")
            if topic.get("closed"):
                raise ApiError(400, "Bad Request: TOPIC_CLOSED")
        reply = params.get("reply_parameters")
        if isinstance(reply, str):
            reply = json.loads(reply)
        reply_id = reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        reply_to = int(reply_id) if reply_id not in (None, "") else None
        if reply_to is not None:
            target = self.messages.get((chat["id"], reply_to))
            if target is None or target.deleted:
                allow = isinstance(reply, dict) and reply.get("allow_sending_without_reply")
                if not allow:
                    raise ApiError(400, "Bad Request: message to be replied not found")
                reply_to = None
            elif thread_id is None:
                thread_id = target.thread_id
        return thread_id, reply_to

    def _store(
        self,
        chat: dict[str, Any],
        text: str,
        html: str,
        markup: dict[str, Any] | None,
        kind: str = "text",
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        file_id: str | None = None,
    ) -> SentMessage:
        msg = SentMessage(
            chat_id=chat["id"],
            message_id=self._next_message_id(chat["id"]),
            text=text,
            html=html,
            reply_markup=markup,
            date=int(self.clock()),
            kind=kind,
            thread_id=thread_id,
            reply_to=reply_to,
            file_id=file_id,
        )
        self.messages[(chat["id"], msg.message_id)] = msg
        shown = text if kind == "text" else f"({kind}) {text}".rstrip()
        self.events.append(Event("bot", chat["id"], shown, _button_labels(markup), thread_id=thread_id))
        return msg

    def _message_json(self, msg: SentMessage, *, with_reply: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": msg.message_id,
            "date": msg.date,
            "chat": self.chats[msg.chat_id],
            "from": msg.sender or BOT_USER,
        }
        if msg.kind == "text":
            data["text"] = msg.text
        else:
            data.update(_media_json(msg.kind, msg.file_id or "file"))
            if msg.text:
                data["caption"] = msg.text
        if msg.thread_id is not None:
            data["message_thread_id"] = msg.thread_id
            data["is_topic_message"] = True
        if msg.reply_to is not None and with_reply:
            target = self.messages.get((msg.chat_id, msg.reply_to))
            if target is not None:
                data["reply_to_message"] = self._message_json(target, with_reply=False)
        if "reply_to_message" not in data and with_reply and msg.thread_id is not None:
            # as Telegram does: a message in a forum topic that replies to nothing (or to a
            # message that is gone) "replies" to the topic's service message
            topic = self.topics.get((msg.chat_id, msg.thread_id))
            if topic is not None:
                data["reply_to_message"] = {
                    "message_id": msg.thread_id, "date": msg.date, "chat": self.chats[msg.chat_id], "from": BOT_USER,
                    "message_thread_id": msg.thread_id, "is_topic_message": True,
                    "forum_topic_created": {"name": topic["name"], "icon_color": 7322096},
                }
        if msg.edits:
            data["edit_date"] = int(self.clock())
        if msg.reply_markup and "inline_keyboard" in msg.reply_markup:
            data["reply_markup"] = msg.reply_markup
        return data

    def api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def api_setMyCommands(self, params: dict[str, Any]) -> bool:
        scope = params.get("scope") or {"type": "default"}
        key = json.dumps(scope, sort_keys=True) + (params.get("language_code") or "")
        commands = params.get("commands") or []
        for c in commands:
            if not (1 <= len(c["command"]) <= 32) or not (1 <= len(c["description"]) <= 256):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[key] = commands
        return True

    def api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    def api_getUpdates(self, params: dict[str, Any]) -> list[Any]:
        """Updates queued for a polling bot (see :meth:`feed` without an attached app).

        ``offset`` confirms every earlier update, as on Telegram; the wait for new
        updates is done by :class:`bot.fake_bot_server.FakeBotServer`.
        """
        offset = int(params.get("offset") or 0)
        with self.lock:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
            limit = int(params.get("limit") or 100)
            return self.pending[:limit]

    def api_sendChatAction(self, params: dict[str, Any]) -> bool:
        self._chat(params)
        return True

    def api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        html = params.get("text")
        plain = self._parse_text(html, params.get("parse_mode"), TEXT_LIMIT)
        markup = self._check_markup(params.get("reply_markup"))
        thread_id, reply_to = self._placement(chat, params)
        msg = self._store(chat, plain, html, markup, thread_id=thread_id, reply_to=reply_to)  # type: ignore[arg-type]
        return self._message_json(msg)

    def _send_media(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        file_id = params.get(kind)
        upload = None
        if isinstance(file_id, str) and file_id in self.uploads:  # a file the bot uploaded
            name, data = self.uploads[file_id]
            upload = {"upload": data, "filename": name}
            if not data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            if len(data) > 50 * 1024 * 1024:
                raise ApiError(413, "Request Entity Too Large")
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        caption = params.get("caption")
        plain = ""
        if caption:
            plain = self._parse_text(caption, params.get("parse_mode"), CAPTION_LIMIT, "message caption")
        markup = self._check_markup(params.get("reply_markup"))
        thread_id, reply_to = self._placement(chat, params)
        msg = self._store(chat, plain, caption or "", markup, kind, thread_id=thread_id, reply_to=reply_to, file_id=file_id)
        if upload is not None:
            msg.upload, msg.filename = upload["upload"], upload["filename"]
        return self._message_json(msg)

    def api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._send_media("photo", params)

    def api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._send_media("document", params)

    def api_sendVoice(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._send_media("voice", params)

    def api_sendMediaGroup(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        chat = self._chat(params)
        media = params.get("media")
        if isinstance(media, str):
            media = json.loads(media)
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: MEDIA_GROUP_INVALID: there must be 2 to 10 items")
        thread_id, reply_to = self._placement(chat, params)
        sent = []
        for item in media:
            caption = item.get("caption") or ""
            plain = self._parse_text(caption, item.get("parse_mode"), CAPTION_LIMIT, "message caption") if caption else ""
            msg = self._store(chat, plain, caption, None, item.get("type", "photo"), thread_id=thread_id, reply_to=reply_to, file_id=item.get("media"))
            sent.append(self._message_json(msg))
        return sent

    def api_copyMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        source_chat = self.chats.get(int(params.get("from_chat_id") or 0))
        if source_chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        source = self.messages.get((source_chat["id"], int(params.get("message_id") or 0)))
        if source is None or source.deleted:
            raise ApiError(400, "Bad Request: message to copy not found")
        chat = self._chat(params)
        if "caption" in params and source.kind != "text":
            caption = params.get("caption") or ""
            plain = self._parse_text(caption, params.get("parse_mode"), CAPTION_LIMIT, "message caption") if caption else ""
            html = caption
        else:
            plain, html = source.text, source.html or source.text
        markup = self._check_markup(params.get("reply_markup"))
        thread_id, reply_to = self._placement(chat, params)
        msg = self._store(chat, plain, html, markup, source.kind, thread_id=thread_id, reply_to=reply_to, file_id=source.file_id)
        return {"message_id": msg.message_id}

    def api_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False, "premium_subscription": False,
            "gifts_from_channels": False}}

    def api_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        user_id = int(params.get("user_id") or 0)
        user, status = self.members.get(chat["id"], {}).get(
            user_id, ({"id": user_id, "is_bot": False, "first_name": "?"}, "left")
        )
        data: dict[str, Any] = {"status": status, "user": user}
        if status == "administrator":
            data.update({k: True for k in (
                "can_be_edited", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                "can_post_stories", "can_edit_stories", "can_delete_stories")})
            data["is_anonymous"] = False
        elif status == "creator":
            data["is_anonymous"] = False
        elif status == "restricted":
            data.update({"is_member": True, "until_date": 0, **{k: True for k in (
                "can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
                "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
                "can_send_other_messages", "can_add_web_page_previews", "can_change_info",
                "can_invite_users", "can_pin_messages", "can_manage_topics", "can_edit_tag", "can_react_to_messages")}})
        elif status == "kicked":
            data["until_date"] = 0
        return data

    def api_createForumTopic(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        if not chat.get("is_forum"):
            raise ApiError(400, "Bad Request: the chat is not a forum")
        name = params.get("name") or ""
        if not 1 <= len(name) <= 128:
            raise ApiError(400, "Bad Request: TOPIC_NAME_INVALID")
        thread_id = self._next_message_id(chat["id"])  # the topic's service message
        self.topics[(chat["id"], thread_id)] = {"name": name, "closed": False}
        self.events.append(Event("bot", chat["id"], f"(new topic: {name})", thread_id=thread_id))
        return {"message_thread_id": thread_id, "name": name, "icon_color": 7322096}

    def _topic(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        topic = self.topics.get((chat["id"], int(params.get("message_thread_id") or 0)))
        if topic is None:
            raise ApiError(400, "Bad Request: message thread not found")
        return topic

    def api_editForumTopic(self, params: dict[str, Any]) -> bool:
        topic = self._topic(params)
        name = params.get("name")
        if name is not None:
            if not 1 <= len(name) <= 128:
                raise ApiError(400, "Bad Request: TOPIC_NAME_INVALID")
            if name == topic["name"]:
                raise ApiError(400, "Bad Request: TOPIC_NOT_MODIFIED")
            topic["name"] = name
        return True

    def api_closeForumTopic(self, params: dict[str, Any]) -> bool:
        topic = self._topic(params)
        if topic["closed"]:
            raise ApiError(400, "Bad Request: TOPIC_NOT_MODIFIED")
        topic["closed"] = True
        return True

    def api_reopenForumTopic(self, params: dict[str, Any]) -> bool:
        topic = self._topic(params)
        if not topic["closed"]:
            raise ApiError(400, "Bad Request: TOPIC_NOT_MODIFIED")
        topic["closed"] = False
        return True

    def _edit_target(self, params: dict[str, Any]) -> SentMessage:
        if "inline_message_id" in params:
            raise ApiError(400, "Bad Request: inline messages are not supported by the fake")
        chat = self._chat(params)
        msg = self.messages.get((chat["id"], int(params.get("message_id") or 0)))
        if msg is None or msg.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not msg.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    def api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._edit_target(params)
        html = params.get("text")
        return self._edit_content(msg, html, self._parse_text(html, params.get("parse_mode"), TEXT_LIMIT), params)

    def api_editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._edit_target(params)
        if msg.kind == "text":
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        html = params.get("caption") or ""
        plain = self._parse_text(html, params.get("parse_mode"), CAPTION_LIMIT, "message caption") if html else ""
        return self._edit_content(msg, html, plain, params)

    def _edit_content(self, msg: SentMessage, html: Any, plain: str, params: dict[str, Any]) -> dict[str, Any]:
        """A message's text (or caption) and buttons replaced, as Telegram refuses a no-op."""
        markup = self._check_markup(params.get("reply_markup"))
        if plain == msg.text and markup == msg.reply_markup:
            raise _not_modified()
        msg.text, msg.html, msg.reply_markup = plain, html, markup  # type: ignore[assignment]
        msg.edits += 1
        self.events.append(Event("edit", msg.chat_id, plain, _button_labels(markup), thread_id=msg.thread_id))
        return self._message_json(msg)

    def api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._edit_target(params)
        markup = self._check_markup(params.get("reply_markup"))
        if markup == msg.reply_markup or (not markup and not msg.reply_markup):
            raise _not_modified()
        msg.reply_markup = markup
        msg.edits += 1
        self.events.append(Event("edit", msg.chat_id, "(buttons changed)", _button_labels(markup), thread_id=msg.thread_id))
        return self._message_json(msg)

    def api_deleteMessage(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        msg = self.messages.get((chat["id"], int(params.get("message_id") or 0)))
        if msg is None or msg.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        if self.clock() - msg.date >= DELETE_WINDOW_SECONDS:  # Telegram's rule for bots
            raise ApiError(400, "Bad Request: message can't be deleted")
        msg.deleted = True
        return True

    def api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self._open_callbacks:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(text) > CALLBACK_TEXT_LIMIT:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        if text:
            self.events.append(Event("toast", 0, text))
        return True

    # ------------------------------------------------------------ playing the users

    def attach(self, app: Application) -> None:  # type: ignore[type-arg]
        self.app = app

    def user(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> FakeUser:
        data: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            data["last_name"] = last_name
        if username:
            data["username"] = username
        if language_code:
            data["language_code"] = language_code
        self.add_private_chat(data)
        return FakeUser(self, data)

    def staff(self, user_id: int, first_name: str, chat_id: int, *, username: str | None = None, status: str = "member") -> FakeUser:
        """A member of a group (e.g. the staff chat) who also has a private chat with the bot."""
        member = self.user(user_id, first_name, username=username)
        self.add_member(chat_id, member.data, status)
        return member

    async def feed(self, update_data: dict[str, Any]) -> list[ApiCall]:
        """Run one update through the attached application; return the API calls it
        caused. Without an attached application the update waits for ``getUpdates``."""
        update_data = {"update_id": next(self._update_ids), **update_data}
        if self.app is None:
            with self.lock:
                self.pending.append(update_data)
            return []
        before = len(self.calls)
        await self.app.process_update(Update.de_json(update_data, self.app.bot))
        # Let handlers that run as tasks (block=False) finish too.
        await asyncio.sleep(0)
        return self.calls[before:]

    def chat_messages(self, chat_id: int) -> list[SentMessage]:
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id and not m.deleted]

    def last_bot_message(self, chat_id: int) -> SentMessage:
        for msg in reversed(self.chat_messages(chat_id)):
            if msg.from_bot:
                return msg
        raise LookupError(f"the bot has sent nothing to chat {chat_id}")

    def sent(self, method: str = "sendMessage", chat_id: int | None = None) -> list[ApiCall]:
        return [
            c
            for c in self.calls
            if c.method == method and c.ok and (chat_id is None or _chat_id_of(c.params) == chat_id)
        ]

    def errors(self) -> list[ApiCall]:
        return [c for c in self.calls if not c.ok]

    # ------------------------------------------------------------ transcript

    def transcript(self, start: int = 0, end: int | None = None) -> str:
        lines: list[str] = []
        for event in self.events[start:end]:
            name = self._names.get(event.chat_id, str(event.chat_id))
            if event.thread_id is not None:
                topic = self.topics.get((event.chat_id, event.thread_id))
                name += f" › {topic['name'] if topic else event.thread_id}"
            if event.who == "user":
                where = f" (in {name})" if self.chats.get(event.chat_id, {}).get("type") != "private" else ""
                lines.append(f"👤 {event.actor}{where}: {event.text}")
                continue
            if event.who == "toast":
                lines.append(f"   💬 (pop-up) {event.text}")
                continue
            if event.who == "error":
                lines.append(f"   ⚠️  Telegram refused: {event.text}")
                continue
            head = "🤖 → " + name if event.who == "bot" else "🤖 ✎ edited, in " + name
            lines.append(f"{head}:")
            for text_line in event.text.splitlines() or [""]:
                lines.append(f"     {text_line}" if text_line else "")
            if event.buttons:
                lines.append("     " + " ".join(f"[{b}]" for b in event.buttons))
        return "\n".join(lines)


class FakeUser:
    """A Telegram user: writes to the bot privately, or in a group (staff) chat."""

    _files = itertools.count(1)

    def __init__(self, tg: FakeTelegram, data: dict[str, Any]):
        self.tg = tg
        self.data = data
        self.id: int = data["id"]
        self.name: str = data["first_name"]

    def _message(
        self,
        chat_id: int | None = None,
        *,
        thread_id: int | None = None,
        reply_to: SentMessage | int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        chat_id = self.id if chat_id is None else chat_id
        chat = self.tg.chats[chat_id]
        reply_id = reply_to.message_id if isinstance(reply_to, SentMessage) else reply_to
        if reply_id is not None and thread_id is None:
            target = self.tg.messages.get((chat_id, reply_id))
            thread_id = target.thread_id if target else None
        kind = "text" if "text" in content else next((k for k in ("photo", "document", "voice", "sticker", "video", "contact", "location") if k in content), "service")
        file_id = None
        if kind not in ("text", "contact", "location", "service"):
            media = content[kind]
            file_id = media[-1]["file_id"] if isinstance(media, list) else media["file_id"]
        stored = SentMessage(
            chat_id=chat_id,
            message_id=self.tg._next_message_id(chat_id),
            text=content.get("text") or content.get("caption") or "",
            html="",
            reply_markup=None,
            date=int(self.tg.clock()),
            from_bot=False,
            kind=kind,
            thread_id=thread_id,
            reply_to=reply_id,
            file_id=file_id,
            sender=self.data,
        )
        self.tg.messages[(chat_id, stored.message_id)] = stored
        msg = self.tg._message_json(stored)
        msg.update(content)
        return msg

    def _log(self, chat_id: int | None, text: str, thread_id: int | None = None) -> None:
        self.tg.events.append(Event("user", self.id if chat_id is None else chat_id, text, actor=self.name, thread_id=thread_id))

    async def send(
        self, text: str, *, chat_id: int | None = None, thread_id: int | None = None, reply_to: SentMessage | int | None = None
    ) -> list[ApiCall]:
        """Type a text message (a leading /command gets Telegram's bot_command entity)."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        message = self._message(chat_id, thread_id=thread_id, reply_to=reply_to, **content)
        self._log(chat_id, text, message.get("message_thread_id"))
        return await self.tg.feed({"message": message})

    async def _send_media(self, kind: str, label: str, chat_id: int | None, caption: str | None, **where: Any) -> list[ApiCall]:
        file_id = f"{kind}-{self.id}-{next(self._files)}"
        content: dict[str, Any] = dict(_media_json(kind, file_id))
        if caption:
            content["caption"] = caption
        message = self._message(chat_id, **where, **content)
        self._log(chat_id, f"({label}){' ' + caption if caption else ''}", message.get("message_thread_id"))
        return await self.tg.feed({"message": message})

    async def send_sticker(self, emoji: str = "😀", *, chat_id: int | None = None) -> list[ApiCall]:
        return await self._send_media("sticker", f"sticker {emoji}", chat_id, None)

    async def send_photo(self, caption: str | None = None, *, chat_id: int | None = None, **where: Any) -> list[ApiCall]:
        return await self._send_media("photo", "photo", chat_id, caption, **where)

    async def send_document(self, caption: str | None = None, *, chat_id: int | None = None, **where: Any) -> list[ApiCall]:
        return await self._send_media("document", "document", chat_id, caption, **where)

    async def send_voice(self, *, chat_id: int | None = None, **where: Any) -> list[ApiCall]:
        return await self._send_media("voice", "voice message", chat_id, None, **where)

    async def press(self, button_text: str, message: SentMessage | None = None, *, chat_id: int | None = None) -> list[ApiCall]:
        """Press an inline button of ``message`` (default: the latest bot message with
        such a button in the chat)."""
        if message is None:
            chat = self.id if chat_id is None else chat_id
            for candidate in reversed(self.tg.chat_messages(chat)):
                if candidate.from_bot and candidate.reply_markup and "inline_keyboard" in candidate.reply_markup:
                    try:
                        candidate.button(button_text)
                    except LookupError:
                        continue
                    message = candidate
                    break
            if message is None:
                raise LookupError(f"no message with a button {button_text!r} in chat {chat}")
        button = message.button(button_text)
        return await self.press_data(button["callback_data"], message, label=button["text"])

    async def press_data(self, data: str, message: SentMessage, *, label: str | None = None) -> list[ApiCall]:
        """Press a button with arbitrary callback data (as a modified client could)."""
        self.tg.events.append(Event("user", message.chat_id, f"(presses [{label or data}])", actor=self.name, thread_id=message.thread_id))
        return await self.tg.feed(self.callback_update(data, message))

    def callback_update(self, data: str, message: SentMessage) -> dict[str, Any]:
        """The update of a button press, without running it (for concurrency tests)."""
        query_id = str(next(self.tg._callback_ids))
        self.tg._open_callbacks.add(query_id)
        return {
            "callback_query": {
                "id": query_id,
                "from": self.data,
                "chat_instance": f"ci{message.chat_id}",
                "data": data,
                "message": self.tg._message_json(message),
            }
        }
