"""Configuration: a TOML file validated by pydantic models.

The file is found from ``--config PATH``, else ``$HELPDESK_CONFIG``, else ``./config.toml``.
Secrets may come from the environment: ``HELPDESK_BOT_TOKEN`` overrides ``telegram.token``,
``HELPDESK_WEBHOOK_SECRET`` overrides ``telegram.webhook_secret``.
Every problem is reported as one line naming the file, the key, what was found and what
was expected (:class:`ConfigError`); nothing here prints a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
import tomllib
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_NAME = "config.toml"
TOKEN_ENV = "HELPDESK_BOT_TOKEN"
WEBHOOK_SECRET_ENV = "HELPDESK_WEBHOOK_SECRET"
# Telegram's rule for setWebhook's secret_token (sent back in X-Telegram-Bot-Api-Secret-Token).
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
CONFIG_ENV = "HELPDESK_CONFIG"
TOKEN_RE = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{30,}$")
TELEGRAM_API = "https://api.telegram.org"
PACKAGED_KB = Path(__file__).resolve().parent.parent / "kb" / "data" / "faq.yaml"


class ConfigError(Exception):
    """A configuration problem, already worded for the operator (one line each)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _expect(text: str) -> Any:
    """Field metadata: what an operator should write there (used in error lines)."""
    return {"expected": text}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Telegram ids are strict: a number in quotes is a mistake worth a clear line (pydantic
# would quietly turn "-100123" into a number, but not "@group" or "-100 123").
def _group_id(v: int | None) -> int | None:
    if v is not None and v >= 0:
        raise ValueError("a group's or channel's id is negative, like -1001234567890; a positive number is a person's id")
    return v


def _user_ids(v: list[int]) -> list[int]:
    for uid in v:
        if uid <= 0:
            raise ValueError(f"{uid} is a group's id; a person's id is positive")
    return v


class TelegramSettings(_Section):
    token: Annotated[
        str,
        Field(json_schema_extra=_expect("a bot token from @BotFather, like 123456789:AAE...")),
    ] = ""
    api_base_url: Annotated[
        str,
        Field(json_schema_extra=_expect("an http(s) URL of a Bot API server, like https://api.telegram.org")),
    ] = TELEGRAM_API
    max_retries: Annotated[
        int,
        Field(ge=0, le=10, json_schema_extra=_expect("a whole number of retries from 0 to 10 after Telegram's 429 'retry after'")),
    ] = 3
    # A relay claimed for sending whose outcome was not recorded after this long: the bot
    # stopped mid-send. It is marked "maybe delivered" and staff are told (never re-sent).
    stuck_send_minutes: Annotated[
        int,
        Field(ge=1, le=1440, json_schema_extra=_expect("minutes from 1 to 1440 after which an unfinished send counts as interrupted")),
    ] = 10

    # Webhook mode (`helpdesk run --webhook`): Telegram POSTs updates to webhook_url, which
    # must reach webhook_listen:webhook_port (directly or through a reverse proxy).
    webhook_url: Annotated[
        str,
        Field(json_schema_extra=_expect("the public http(s) URL Telegram sends updates to, like https://bot.example.com/telegram")),
    ] = ""
    webhook_listen: Annotated[
        str,
        Field(min_length=1, json_schema_extra=_expect("the address the webhook server listens on, like 0.0.0.0 or 127.0.0.1")),
    ] = "0.0.0.0"  # noqa: S104 (a webhook server must be reachable)
    webhook_port: Annotated[
        int,
        Field(ge=1, le=65535, json_schema_extra=_expect("a TCP port number between 1 and 65535, like 8443")),
    ] = 8443
    webhook_secret: Annotated[
        str,
        Field(json_schema_extra=_expect("1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule for secret tokens)")),
    ] = ""

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: str) -> str:
        v = v.strip()
        if v and not re.match(r"^https?://[^\s/]+(/\S*)?$", v):
            raise ValueError("not an http(s) URL")
        return v

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, v: str) -> str:
        if v and not WEBHOOK_SECRET_RE.match(v):
            raise ValueError("longer than 256 characters" if len(v) > 256 else "has characters other than these")
        return v

    @property
    def webhook_path(self) -> str:
        """The path of webhook_url: where the local server expects Telegram's POSTs."""
        return urlsplit(self.webhook_url).path.lstrip("/")

    @field_validator("token")
    @classmethod
    def _token_shape(cls, v: str) -> str:
        v = v.strip()
        if v and not TOKEN_RE.match(v):
            raise ValueError("not shaped like a bot token")
        return v

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("not an http(s) URL")
        # Accept the full form people copy from docs (".../bot") too.
        if v.endswith("/bot"):
            v = v[: -len("/bot")]
        return v

    @property
    def bot_url(self) -> str:
        return f"{self.api_base_url}/bot"

    @property
    def file_url(self) -> str:
        return f"{self.api_base_url}/file/bot"


class DatabaseSettings(_Section):
    url: Annotated[
        str,
        Field(
            json_schema_extra=_expect(
                "an async SQLAlchemy URL: sqlite+aiosqlite:///helpdesk.db or "
                "postgresql+asyncpg://user:password@host/dbname"
            )
        ),
    ] = "sqlite+aiosqlite:///helpdesk.db"
    schema_name: Annotated[
        str | None,
        Field(alias="schema", json_schema_extra=_expect("a PostgreSQL schema name (letters, digits, _)")),
    ] = None
    echo: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = False

    @field_validator("url")
    @classmethod
    def _driver(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            scheme = v.split("://", 1)[0] + "://" if "://" in v else ""
            if re.match(r"^postgres(ql)?(\+\w+)?://$", scheme):
                raise ValueError(f"write postgresql+asyncpg:// instead of {scheme}")
            if re.match(r"^sqlite(\+\w+)?://$", scheme):
                raise ValueError(f"write sqlite+aiosqlite:// instead of {scheme}")
            raise ValueError("unsupported driver")
        return v

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", v):
            raise ValueError("not a plain identifier")
        return v


class StaffSettings(_Section):
    chat_id: Annotated[
        StrictInt | None,
        Field(json_schema_extra=_expect("the id of the private staff supergroup, a negative number like -1001234567890")),
    ] = None
    admin_ids: Annotated[
        list[StrictInt],
        Field(json_schema_extra=_expect("a list of Telegram user ids, like [123456789, 987654321]")),
    ] = []
    membership: Annotated[
        str,
        Field(json_schema_extra=_expect("'chat' (every member of the staff chat is staff) or 'admins' (only its administrators and staff.admin_ids)")),
    ] = "chat"

    @field_validator("membership")
    @classmethod
    def _membership(cls, v: str) -> str:
        if v not in ("chat", "admins"):
            raise ValueError("unknown membership rule")
        return v

    _group = field_validator("chat_id")(_group_id)
    _people = field_validator("admin_ids")(_user_ids)


DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
PRIORITIES = ("urgent", "high", "normal", "low")


def parse_minutes(value: Any) -> int:
    """'15m', '4h', '2d' or a whole number of minutes."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int):
        minutes = value
    else:
        match = DURATION_RE.match(str(value))
        if not match:
            raise ValueError("not a duration like 30m, 4h or 2d")
        minutes = int(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[match.group(2)]
    if minutes <= 0:
        raise ValueError("a duration must be positive")
    return minutes


class SupportCategory(_Section):
    id: Annotated[str, Field(json_schema_extra=_expect("a short id: lowercase letters, digits, '-'"))]
    label: Annotated[str, Field(min_length=1, max_length=40, json_schema_extra=_expect("a button label of 1-40 characters"))]
    department: Annotated[str, Field(json_schema_extra=_expect("the name of a department in [support.departments]"))] = "general"
    priority: Annotated[str, Field(json_schema_extra=_expect("one of urgent, high, normal, low"))] = "normal"
    hidden: Annotated[bool, Field(json_schema_extra=_expect("true for categories the bot uses itself (appeal, dispute), not offered in /support"))] = False

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,19}$", v):
            raise ValueError("not a short id")
        return v

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: str) -> str:
        if v not in PRIORITIES:
            raise ValueError("unknown priority")
        return v


class Department(_Section):
    label: Annotated[str, Field(json_schema_extra=_expect("a name staff recognise, like IT"))] = ""
    chat_id: Annotated[
        StrictInt | None,
        Field(json_schema_extra=_expect("the id of the department's own staff supergroup (omit to use staff.chat_id)")),
    ] = None

    _group = field_validator("chat_id")(_group_id)


DEFAULT_CATEGORIES = [
    SupportCategory(id="ads", label="My ads and posting"),
    SupportCategory(id="account", label="Account and login", department="it"),
    SupportCategory(id="payments", label="Payments and featured ads", priority="high"),
    SupportCategory(id="safety", label="Scam or safety problem", priority="urgent"),
    SupportCategory(id="technical", label="Something is broken", department="it"),
    SupportCategory(id="other", label="Something else", priority="low"),
    SupportCategory(id="appeal", label="Appeal against a penalty", priority="normal", hidden=True),
    SupportCategory(id="dispute", label="Dispute with a buyer or seller", priority="high", hidden=True),
]


class SupportSettings(_Section):
    categories: Annotated[
        list[SupportCategory], Field(min_length=1, json_schema_extra=_expect("a list of [[support.categories]] tables"))
    ] = DEFAULT_CATEGORIES
    departments: Annotated[
        dict[str, Department], Field(json_schema_extra=_expect("tables [support.departments.<name>]"))
    ] = {"general": Department(label="General support"), "it": Department(label="IT")}
    reopen_days: Annotated[int, Field(ge=0, le=90, json_schema_extra=_expect("a whole number of days, 0-90"))] = 7
    waiting_days: Annotated[
        int, Field(ge=1, le=90, json_schema_extra=_expect("a whole number of days, 1-90"))
    ] = 3
    csat: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = True

    @model_validator(mode="after")
    def _references(self) -> SupportSettings:
        ids = [c.id for c in self.categories]
        if len(set(ids)) != len(ids):
            raise ValueError("two categories share an id")
        for c in self.categories:
            if c.department not in self.departments:
                raise ValueError(f"category {c.id!r} names an unknown department {c.department!r}")
        for needed in ("appeal", "dispute"):
            if needed not in ids:
                raise ValueError(f"the bot needs a category {needed!r} (hidden = true hides it from /support)")
        return self

    def category(self, category_id: str) -> SupportCategory | None:
        return next((c for c in self.categories if c.id == category_id), None)


class SlaSettings(_Section):
    first_response: Annotated[
        dict[str, int | str], Field(json_schema_extra=_expect("a duration per priority, like {urgent = '15m', high = '1h'}"))
    ] = {"urgent": "15m", "high": "1h", "normal": "4h", "low": "1d"}
    resolution: Annotated[
        dict[str, int | str], Field(json_schema_extra=_expect("a duration per priority, like {urgent = '4h', normal = '3d'}"))
    ] = {"urgent": "4h", "high": "1d", "normal": "3d", "low": "5d"}
    business_hours: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = False
    workday_start: Annotated[str, Field(json_schema_extra=_expect("a time like 08:00"))] = "08:00"
    workday_end: Annotated[str, Field(json_schema_extra=_expect("a time like 17:00, after workday_start"))] = "17:00"
    workdays: Annotated[
        list[int], Field(json_schema_extra=_expect("ISO weekday numbers, Monday = 1, like [1, 2, 3, 4, 5]"))
    ] = [1, 2, 3, 4, 5]
    escalation_contacts: Annotated[
        list[str], Field(json_schema_extra=_expect("Telegram usernames to mention on a breach, like ['@lead']"))
    ] = []
    sweep_seconds: Annotated[int, Field(ge=5, le=3600, json_schema_extra=_expect("seconds between SLA sweeps, 5-3600"))] = 60

    @field_validator("first_response", "resolution")
    @classmethod
    def _durations(cls, v: dict[str, int | str]) -> dict[str, int | str]:
        missing = [p for p in PRIORITIES if p not in v]
        unknown = [p for p in v if p not in PRIORITIES]
        if missing or unknown:
            raise ValueError(f"needs exactly the priorities {', '.join(PRIORITIES)}")
        for value in v.values():
            parse_minutes(value)
        return v

    @field_validator("workday_start", "workday_end")
    @classmethod
    def _clock(cls, v: str) -> str:
        if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", v):
            raise ValueError("not a HH:MM time")
        return v

    @field_validator("workdays")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if not v or any(d < 1 or d > 7 for d in v):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        return sorted(set(v))

    @field_validator("escalation_contacts")
    @classmethod
    def _contacts(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.match(r"^@[A-Za-z0-9_]{5,32}$", name):
                raise ValueError(f"{name!r} is not a @username")
        return v

    @model_validator(mode="after")
    def _hours(self) -> SlaSettings:
        if self.workday_end <= self.workday_start:
            raise ValueError("workday_end must be after workday_start")
        return self

    def minutes(self, kind: str, priority: str) -> int:
        return parse_minutes(getattr(self, kind)[priority])


class AdSubcategory(_Section):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,19}$", json_schema_extra=_expect("a short id: lowercase letters, digits, '-'"))]
    label: Annotated[str, Field(min_length=1, max_length=40, json_schema_extra=_expect("a button label of 1-40 characters"))]


class AdCategory(AdSubcategory):
    children: Annotated[list[AdSubcategory], Field(json_schema_extra=_expect("a list of {id, label} subcategories"))] = []
    photos_required: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = False


class RejectReason(_Section):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,19}$", json_schema_extra=_expect("a short id"))]
    label: Annotated[str, Field(min_length=1, max_length=40, json_schema_extra=_expect("a button label"))]
    rule: Annotated[str, Field(min_length=1, json_schema_extra=_expect("the rule the ad breaks, for the user"))]
    fix: Annotated[str, Field(min_length=1, json_schema_extra=_expect("how to fix the ad, for the user"))]
    field: Annotated[
        str | None,
        Field(json_schema_extra=_expect("the field to change: category, title, description, price, location, photos or contact")),
    ] = None
    strike: Annotated[bool, Field(json_schema_extra=_expect("true if a rejection for this reason is a strike"))] = False

    @field_validator("field")
    @classmethod
    def _field(cls, v: str | None) -> str | None:
        if v is not None and v not in ("category", "title", "description", "price", "location", "photos", "contact"):
            raise ValueError("unknown field")
        return v


DEFAULT_AD_CATEGORIES = [
    AdCategory(id="vehicles", label="Vehicles", photos_required=True, children=[
        AdSubcategory(id="cars", label="Cars"), AdSubcategory(id="bikes", label="Motorbikes"), AdSubcategory(id="parts", label="Parts")]),
    AdCategory(id="property", label="Property", photos_required=True, children=[
        AdSubcategory(id="rent", label="To rent"), AdSubcategory(id="sale", label="For sale")]),
    AdCategory(id="electronics", label="Electronics", children=[
        AdSubcategory(id="phones", label="Phones"), AdSubcategory(id="computers", label="Computers"), AdSubcategory(id="tv-audio", label="TV and audio")]),
    AdCategory(id="home", label="Home and garden", children=[
        AdSubcategory(id="furniture", label="Furniture"), AdSubcategory(id="appliances", label="Appliances")]),
    AdCategory(id="pets", label="Pets", photos_required=True, children=[
        AdSubcategory(id="dogs", label="Dogs"), AdSubcategory(id="cats", label="Cats"), AdSubcategory(id="other-pets", label="Other pets")]),
    AdCategory(id="jobs", label="Jobs", children=[
        AdSubcategory(id="offered", label="Jobs offered"), AdSubcategory(id="wanted", label="Looking for work")]),
    AdCategory(id="services", label="Services", children=[
        AdSubcategory(id="trades", label="Trades and repairs"), AdSubcategory(id="lessons", label="Lessons")]),
]

DEFAULT_REJECT_REASONS = [
    RejectReason(id="prohibited", label="Prohibited item", rule="Prohibited items may not be sold on SayPro Classified.", fix="Remove the item; it cannot be listed.", strike=True),
    RejectReason(id="contact-in-text", label="Contact details in text", rule="Phone numbers, e-mail addresses and links belong in the contact step, not in the title or description.", fix="Delete them from the text and choose how buyers contact you in the contact step.", field="description"),
    RejectReason(id="photos", label="Bad or missing photos", rule="Photos must show the actual item, clearly, without watermarks or contact details.", fix="Add clear photos of the item itself.", field="photos"),
    RejectReason(id="category", label="Wrong category", rule="Ads must be in the category that fits the item.", fix="Choose the right category.", field="category"),
    RejectReason(id="price", label="Unrealistic price", rule="The price must be the real asking price in rand.", fix="Set the real price, or 'negotiable'.", field="price"),
    RejectReason(id="duplicate", label="Duplicate ad", rule="Post each item once; repeated ads are removed.", fix="Edit your existing ad instead of posting it again.", strike=True),
    RejectReason(id="misleading", label="Misleading or unclear", rule="Ads must describe the item honestly and clearly.", fix="Describe the item's condition, age and what is included.", field="description", strike=True),
    RejectReason(id="scam", label="Scam or fraud", rule="Ads that try to cheat buyers are removed and the account is penalised.", fix="This ad cannot be listed.", strike=True),
]


class Penalty(_Section):
    strikes: Annotated[int, Field(ge=1, le=100, json_schema_extra=_expect("the number of active strikes, 1 or more"))]
    action: Annotated[str, Field(json_schema_extra=_expect("warn, block or ban"))]
    days: Annotated[int | None, Field(ge=1, le=3650, json_schema_extra=_expect("days of the block (block only)"))] = None

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        if v not in ("warn", "block", "ban"):
            raise ValueError("unknown penalty")
        return v


class AdsSettings(_Section):
    categories: Annotated[list[AdCategory], Field(min_length=1, json_schema_extra=_expect("a list of [[ads.categories]]"))] = DEFAULT_AD_CATEGORIES
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", json_schema_extra=_expect("an ISO currency code like ZAR"))] = "ZAR"
    currency_symbol: Annotated[str, Field(min_length=1, max_length=4, json_schema_extra=_expect("a symbol like R"))] = "R"
    max_photos: Annotated[int, Field(ge=0, le=10, json_schema_extra=_expect("0 to 10 (Telegram albums hold 10)"))] = 10
    title_min: Annotated[int, Field(ge=1, le=50, json_schema_extra=_expect("a number of characters"))] = 5
    title_max: Annotated[int, Field(ge=10, le=100, json_schema_extra=_expect("a number of characters, at most 100"))] = 70
    description_max: Annotated[int, Field(ge=100, le=3000, json_schema_extra=_expect("a number of characters, at most 3000"))] = 2000
    location_max: Annotated[int, Field(ge=10, le=100, json_schema_extra=_expect("a number of characters"))] = 60
    expiry_days: Annotated[int, Field(ge=1, le=365, json_schema_extra=_expect("days an approved ad stays up"))] = 30
    reminder_days: Annotated[int, Field(ge=0, le=30, json_schema_extra=_expect("days before expiry to remind the owner"))] = 3
    auto_approve_trusted: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = False
    trusted_min_approved: Annotated[int, Field(ge=1, le=1000, json_schema_extra=_expect("approved ads before a user is trusted"))] = 3
    policy_path: Annotated[Path, Field(json_schema_extra=_expect("the path of the ad policy file (TOML)"))] = Path(__file__).resolve().parent.parent / "ads" / "data" / "policy.toml"
    channel_id: Annotated[
        StrictInt | None, Field(json_schema_extra=_expect("the id of the channel approved ads are posted to, a negative number like -1001112223334"))
    ] = None
    moderator_ids: Annotated[list[StrictInt], Field(json_schema_extra=_expect("Telegram ids of moderators (staff chat administrators are moderators too)"))] = []
    reject_reasons: Annotated[list[RejectReason], Field(min_length=1, json_schema_extra=_expect("a list of [[ads.reject_reasons]]"))] = DEFAULT_REJECT_REASONS
    strike_days: Annotated[int, Field(ge=1, le=3650, json_schema_extra=_expect("days a strike stays active"))] = 90
    penalties: Annotated[list[Penalty], Field(json_schema_extra=_expect("a list of {strikes, action, days}"))] = [
        Penalty(strikes=1, action="warn"), Penalty(strikes=2, action="block", days=7), Penalty(strikes=3, action="ban")]

    _channel = field_validator("channel_id")(_group_id)
    _people = field_validator("moderator_ids")(_user_ids)

    @model_validator(mode="after")
    def _unique(self) -> AdsSettings:
        ids = [c.id for c in self.categories] + [s.id for c in self.categories for s in c.children]
        if len(set(ids)) != len(ids):
            raise ValueError("two ad categories share an id")
        if len({r.id for r in self.reject_reasons}) != len(self.reject_reasons):
            raise ValueError("two reject reasons share an id")
        return self

    def category(self, category_id: str) -> AdCategory | None:
        return next((c for c in self.categories if c.id == category_id), None)

    def subcategory(self, sub_id: str) -> tuple[AdCategory, AdSubcategory] | None:
        for c in self.categories:
            for s in c.children:
                if s.id == sub_id:
                    return c, s
        return None

    def reason(self, reason_id: str) -> RejectReason | None:
        return next((r for r in self.reject_reasons if r.id == reason_id), None)


class KbSettings(_Section):
    path: Annotated[
        Path, Field(json_schema_extra=_expect("the path of the knowledge-base YAML file"))
    ] = PACKAGED_KB
    answer_threshold: Annotated[
        float, Field(ge=0, le=1, json_schema_extra=_expect("a number between 0 and 1, above suggest_threshold"))
    ] = 0.375
    suggest_threshold: Annotated[
        float, Field(ge=0, le=1, json_schema_extra=_expect("a number between 0 and 1, below answer_threshold"))
    ] = 0.15
    import_on_start: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = True
    # Staff-editable synonyms for the matcher, one group a line ("listing = ad = advert");
    # see kb/synonyms.py. None: no synonyms.
    synonyms_path: Annotated[
        Path | None, Field(json_schema_extra=_expect("the path of a synonyms file (text, one group per line)"))
    ] = None
    max_question_length: Annotated[
        int, Field(ge=20, le=4096, json_schema_extra=_expect("a whole number of characters from 20 to 4096"))
    ] = 1000

    @model_validator(mode="after")
    def _order(self) -> KbSettings:
        if self.suggest_threshold > self.answer_threshold:
            raise ValueError("suggest_threshold must not be above answer_threshold")
        return self


class LocaleSettings(_Section):
    default: Annotated[str, Field(json_schema_extra=_expect("a locale shipped in bot/templates, like en"))] = "en"
    templates_dir: Annotated[
        Path | None,
        Field(json_schema_extra=_expect("a folder with extra or overriding templates, one subfolder per locale")),
    ] = None

    @field_validator("default")
    @classmethod
    def _shape(cls, v: str) -> str:
        if not re.match(r"^[a-z]{2,3}(_[A-Z]{2})?$", v):
            raise ValueError("not a locale code")
        return v


class LoggingSettings(_Section):
    level: Annotated[str, Field(json_schema_extra=_expect("one of DEBUG, INFO, WARNING, ERROR"))] = "INFO"

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("unknown level")
        return v


class LimitsSettings(_Section):
    messages_per_minute: Annotated[
        int,
        Field(ge=0, le=10_000, json_schema_extra=_expect("a whole number of messages and button presses per user per minute (0: no limit)")),
    ] = 20
    open_tickets_per_user: Annotated[
        int,
        Field(ge=0, le=1000, json_schema_extra=_expect("a whole number of open tickets one user may have at once (0: no limit)")),
    ] = 3


class ReportsSettings(_Section):
    """The monthly (and quarterly) report sent to the staff chat."""

    enabled: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = True
    hour: Annotated[int, Field(ge=0, le=23, json_schema_extra=_expect("an hour of the day from 0 to 23"))] = 8
    # None: the desk's top-level ``timezone``
    timezone: Annotated[
        str | None, Field(json_schema_extra=_expect("an IANA time zone name, like Africa/Johannesburg"))
    ] = None
    quarterly: Annotated[bool, Field(json_schema_extra=_expect("true or false"))] = True

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return v


class Settings(_Section):
    telegram: TelegramSettings = TelegramSettings()
    database: DatabaseSettings = DatabaseSettings()
    staff: StaffSettings = StaffSettings()
    kb: KbSettings = KbSettings()
    support: SupportSettings = SupportSettings()
    sla: SlaSettings = SlaSettings()
    ads: AdsSettings = AdsSettings()
    locale: LocaleSettings = LocaleSettings()
    logging: LoggingSettings = LoggingSettings()
    limits: LimitsSettings = LimitsSettings()
    reports: ReportsSettings = ReportsSettings()
    timezone: Annotated[
        str, Field(json_schema_extra=_expect("an IANA time zone name, like Africa/Johannesburg"))
    ] = "Africa/Johannesburg"
    source: Annotated[Path | None, Field(exclude=True)] = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def report_tz(self) -> ZoneInfo:
        """The reports' time zone: ``reports.timezone``, else the desk's."""
        return ZoneInfo(self.reports.timezone or self.timezone)

    def require_for_run(self) -> None:
        """The keys that only the real bot needs (the demo and tests run without them)."""
        where = str(self.source or DEFAULT_CONFIG_NAME)
        lines = []
        if not self.telegram.token:
            lines.append(
                f"{where}: telegram.token: found nothing, expected a bot token from @BotFather "
                f"(or set {TOKEN_ENV})"
            )
        if self.staff.chat_id is None:
            lines.append(
                f"{where}: staff.chat_id: found nothing, expected the id of the private staff "
                "supergroup, a negative number like -1001234567890"
            )
        if lines:
            raise ConfigError(lines)

    def require_for_webhook(self) -> None:
        """What ``helpdesk run --webhook`` needs besides what every run needs."""
        where = str(self.source or DEFAULT_CONFIG_NAME)
        lines = []
        if not self.telegram.webhook_url:
            lines.append(
                f"{where}: telegram.webhook_url: found nothing, expected the public http(s) URL Telegram "
                "sends updates to, like https://bot.example.com/telegram (needed for --webhook)"
            )
        if not self.telegram.webhook_secret:
            lines.append(
                f"{where}: telegram.webhook_secret: found nothing, expected 1-256 characters of A-Z, a-z, 0-9, "
                f"_ and - (or set {WEBHOOK_SECRET_ENV}); without it anyone could post updates to the bot"
            )
        if lines:
            raise ConfigError(lines)


def with_chat_moves(settings: Settings, moves: dict[int, int]) -> Settings:
    """``settings`` with every staff chat id that Telegram migrated (a group upgraded
    to a supergroup: old id -> new id) replaced by its new id."""
    def moved(chat_id: int | None) -> int | None:
        seen = set()
        while chat_id in moves and chat_id not in seen:
            seen.add(chat_id)
            chat_id = moves[chat_id]
        return chat_id

    departments = {name: d.model_copy(update={"chat_id": moved(d.chat_id)}) for name, d in settings.support.departments.items()}
    return settings.model_copy(
        update={
            "staff": settings.staff.model_copy(update={"chat_id": moved(settings.staff.chat_id)}),
            "support": settings.support.model_copy(update={"departments": departments}),
        }
    )


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _inner_model(tp: Any) -> type[BaseModel] | None:
    """The model inside ``list[M]``, ``dict[str, M]`` or ``M | None``."""
    for arg in typing.get_args(tp):
        if _is_model(arg):
            return arg
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _section_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _field_expectation(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Walk the models along an error location to find the field's 'expected' text."""
    current: Any = model
    extra: Any = None
    for part in loc:
        if not _is_model(current):
            inner = _inner_model(current)
            if inner is None:
                break
            current = inner
            if part not in _section_fields(inner):  # a key of dict[str, M]: [support.departments.it]
                continue
        field = next((info for name, info in current.model_fields.items() if part in (name, info.alias)), None)
        if field is None:
            return "a known key of this section (see config.example.toml)"
        extra = field.json_schema_extra
        current = field.annotation
    if isinstance(extra, dict) and "expected" in extra:
        return str(extra["expected"])
    return "a value as in config.example.toml"


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the section that holds ``loc``'s last part."""
    current: Any = model
    for part in loc[:-1]:
        if not _is_model(current):
            current = _inner_model(current)
            if current is None:
                return []
            if part not in _section_fields(current):
                continue
        field = _section_fields(current).get(part)
        if field is None:
            return []
        current = field.annotation
    if not _is_model(current):
        current = _inner_model(current)
    return [k for k in _section_fields(current) if k != "source"] if current is not None else []


SECRET_KEYS = {"telegram.token", "telegram.webhook_secret"}


def _describe(value: Any, key: str = "") -> str:
    """The value as found, for an error line: secrets are never echoed."""
    if key in SECRET_KEYS and value:
        return f"a value of {len(str(value))} characters (not shown)"
    text = repr(value)
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)  # passwords in URLs
    return text if len(text) <= 60 else text[:57] + "..."


def _format_errors(where: str, exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not isinstance(p, int)) or ("(top level)",)
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _known_keys(Settings, loc), n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]}?)" if close else ""
            lines.append(f"{where}: {key}: found an unknown key, expected only the keys of config.example.toml{hint}")
            continue
        expected = _field_expectation(Settings, loc)
        found = "nothing" if err["type"] == "missing" else _describe(err.get("input"), key)
        reason = err.get("msg", "").removeprefix("Value error, ")
        if err["type"] == "int_type" and isinstance(err.get("input"), str) and re.fullmatch(r"\s*-?\d+\s*", err["input"]):
            reason = "a number in quotes is text: write it without the quotes"
        lines.append(f"{where}: {key}: found {found}, expected {expected} ({reason})")
    return lines


def resolve_config_path(cli_path: str | os.PathLike[str] | None) -> Path:
    if cli_path:
        return Path(cli_path)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG_NAME)


def parse_settings(data: dict[str, Any], where: str = "<settings>", base_dir: Path | None = None) -> Settings:
    """Validate a config mapping. Relative paths are taken relative to ``base_dir``."""
    for env, key in ((TOKEN_ENV, "token"), (WEBHOOK_SECRET_ENV, "webhook_secret")):
        value = os.environ.get(env)
        if value:
            data = {**data, "telegram": {**dict(data.get("telegram") or {}), key: value}}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(where, exc)) from None
    return _absolutise(settings, base_dir or Path.cwd(), where)


def _absolutise(settings: Settings, base: Path, where: str) -> Settings:
    kb_path = settings.kb.path if settings.kb.path.is_absolute() else (base / settings.kb.path)
    synonyms_path = settings.kb.synonyms_path
    if synonyms_path is not None and not synonyms_path.is_absolute():
        synonyms_path = base / synonyms_path
    policy_path = settings.ads.policy_path if settings.ads.policy_path.is_absolute() else (base / settings.ads.policy_path)
    url = settings.database.url
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix):
        db_path = url[len(prefix):].split("?", 1)
        if db_path[0] and not db_path[0].startswith("/") and db_path[0] != ":memory:":
            url = prefix + str(base / db_path[0]) + ("?" + db_path[1] if len(db_path) > 1 else "")
    tdir = settings.locale.templates_dir
    if tdir is not None and not tdir.is_absolute():
        tdir = base / tdir
    if tdir is not None and not tdir.is_dir():
        raise ConfigError([f"{where}: locale.templates_dir: found {str(tdir)!r}, expected an existing folder"])
    shipped = Path(__file__).resolve().parent / "templates"
    available = {p.name for d in (tdir, shipped) if d is not None for p in d.iterdir() if p.is_dir()}
    if settings.locale.default not in available:
        raise ConfigError(
            [f"{where}: locale.default: found {settings.locale.default!r}, expected a locale with templates "
             f"({', '.join(sorted(available))})"]
        )
    return settings.model_copy(
        update={
            "kb": settings.kb.model_copy(update={"path": kb_path, "synonyms_path": synonyms_path}),
            "ads": settings.ads.model_copy(update={"policy_path": policy_path}),
            "database": settings.database.model_copy(update={"url": url}),
            "locale": settings.locale.model_copy(update={"templates_dir": tdir}),
            "source": Path(where) if where != "<settings>" else None,
        }
    )


def load_settings(path: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Settings:
    """Load and validate the configuration file; raise :class:`ConfigError` on any problem."""
    cfg_path = resolve_config_path(path)
    where = str(cfg_path)
    if not cfg_path.exists():
        named = bool(path) or bool(os.environ.get(CONFIG_ENV))  # a file asked for by name must be there
        if must_exist or named:
            given = " (given by --config)" if path else f" (given by {CONFIG_ENV})" if named else ""
            raise ConfigError(
                [f"{where}: file not found{given}, expected a TOML config file (copy config.example.toml to config.toml)"]
            )
        return parse_settings({}, where, Path.cwd())
    try:
        raw = cfg_path.read_bytes().decode("utf-8")
        data = tomllib.loads(raw)
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: file is not UTF-8 text, expected a TOML config file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: not valid TOML ({exc}), expected TOML as in config.example.toml"]) from None
    except OSError as exc:
        raise ConfigError([f"{where}: cannot be read ({exc.strerror}), expected a readable file"]) from None
    return parse_settings(data, where, cfg_path.resolve().parent)
