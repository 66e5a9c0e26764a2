"""The automatic pre-check of an ad: plain functions over plain values.

Each check returns :class:`Finding` objects with a code, a severity (block / flag /
hint, from the policy file) and details for the user-facing explanation, which the
Telegram side renders from ``templates/<locale>/ads/checks/<code>.html``.

Obfuscation: text is normalised (Unicode NFKC, case, accents, digits and symbols
used as letters), spaced-out letters are joined ("w.h.a.t.s.a.p.p" -> "whatsapp"),
and each banned word is compared with rapidfuzz to every word (and phrase) of the ad,
so "v1agra", "viiagra" and "c o c a i n e" are found while "vagrant" is not.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

SEVERITIES = ("block", "flag", "hint")
CODES = (
    "banned_word", "prohibited_item", "phone_number", "email_address", "link", "shouting",
    "price_out_of_range", "duplicate", "too_short", "too_many_ads",
)
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "!": "i", "|": "i", "€": "e"})
WORD_MATCH = 88  # rapidfuzz ratio for a word to count as the banned word (one typo)
FUZZY_MIN = 7  # shorter terms match only exactly (after the normalisation), or "stole" would be "stolen"


def _squeeze(word: str) -> str:
    """Repeated letters once: 'viiagra' -> 'viagra'."""
    return re.sub(r"(.)\1+", r"\1", word)


def _same(candidate: str, target: str, *, threshold: float = WORD_MATCH) -> bool:
    if candidate == target or _squeeze(candidate) == _squeeze(target):
        return True
    return len(target) >= FUZZY_MIN and fuzz.ratio(candidate, target) >= threshold


JOINED_MATCH = 94  # a phrase written as one word must be nearly exact ("whatsapp" is not "whatsapp me")


class PolicyError(ValueError):
    """The policy file is wrong; the message names the key."""


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    severity: dict[str, str]
    banned: tuple[str, ...]
    prohibited: dict[str, tuple[str, ...]]
    prices: dict[str, tuple[float, float]]
    min_description: int = 30
    shouting_share: float = 0.7
    max_ads: int = 5
    max_ads_window: timedelta = timedelta(hours=24)
    duplicate_similarity: float = 90
    duplicate_days: int = 30

    def finding(self, code: str, **detail: Any) -> Finding:
        return Finding(code, self.severity[code], detail)


def load_policy(path: Path) -> Policy:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text") from None
    except OSError as exc:  # a folder, no permission
        raise PolicyError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_policy(data, str(path))


def parse_policy(data: dict[str, Any], where: str = "<policy>") -> Policy:
    severity = dict(data.get("severity") or {})
    for code in CODES:
        value = severity.setdefault(code, "flag")
        if value not in SEVERITIES:
            raise PolicyError(f"{where}: severity.{code}: found {value!r}, expected one of {', '.join(SEVERITIES)}")
    unknown = set(severity) - set(CODES)
    if unknown:
        raise PolicyError(f"{where}: severity: unknown codes {', '.join(sorted(unknown))}")
    limits = data.get("limits") or {}
    banned = tuple(str(t).strip() for t in (data.get("banned") or {}).get("terms", []) if str(t).strip())
    prohibited = {str(k): tuple(str(t) for t in v) for k, v in (data.get("prohibited") or {}).items()}
    prices: dict[str, tuple[float, float]] = {}
    for key, value in (data.get("prices") or {}).items():
        try:
            low, high = float(value["min"]), float(value["max"])
        except (KeyError, TypeError, ValueError):
            raise PolicyError(f"{where}: prices.{key}: expected {{ min = 0, max = 1000 }}") from None
        if low > high:
            raise PolicyError(f"{where}: prices.{key}: min is above max")
        prices[str(key)] = (low, high)
    try:
        return Policy(
            severity=severity,
            banned=banned,
            prohibited=prohibited,
            prices=prices,
            min_description=int(limits.get("min_description", 30)),
            shouting_share=float(limits.get("shouting_share", 0.7)),
            max_ads=int(limits.get("max_ads", 5)),
            max_ads_window=timedelta(hours=float(limits.get("max_ads_window_hours", 24))),
            duplicate_similarity=float(limits.get("duplicate_similarity", 90)),
            duplicate_days=int(limits.get("duplicate_days", 30)),
        )
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{where}: limits: {exc}") from None


# ------------------------------------------------------------------ normalisation


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Normalised words; runs of single letters ('v i a g r a') are joined."""
    raw = re.findall(r"[\w@$!|€]+", _fold(text).translate(LEET))
    raw = [re.sub(r"[^a-z0-9\u0080-\uffff]", "", w.translate(LEET)) for w in raw]
    out: list[str] = []
    run: list[str] = []
    for w in raw:
        if len(w) == 1:
            run.append(w)
            continue
        if len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if w:
            out.append(w)
    if len(run) >= 3:
        out.append("".join(run))
    else:
        out.extend(run)
    return out


def _contains_term(text_words: Sequence[str], term: str) -> str | None:
    """The words of the ad that match ``term`` (a word or a phrase), or None."""
    term_words = words(term)
    if not term_words:
        return None
    n = len(term_words)
    target = " ".join(term_words)
    joined_target = "".join(term_words)
    for i in range(len(text_words) - n + 1):
        candidate = " ".join(text_words[i : i + n])
        if _same(candidate, target):
            return candidate
    # a phrase written as one word ("crystalmeth"), or a word split in two ("via gra")
    if n > 1:
        for w in text_words:
            if _same(w, joined_target, threshold=JOINED_MATCH):
                return w
    for i in range(len(text_words) - 1):
        pair = text_words[i] + text_words[i + 1]
        if len(joined_target) >= FUZZY_MIN and _same(pair, joined_target, threshold=JOINED_MATCH):
            return f"{text_words[i]} {text_words[i + 1]}"
    return None


# ------------------------------------------------------------------ the checks


def check_banned(policy: Policy, text: str) -> list[Finding]:
    found = []
    text_words = words(text)
    for term in policy.banned:
        hit = _contains_term(text_words, term)
        if hit:
            found.append(policy.finding("banned_word", term=term, found=hit))
    return found


def check_prohibited(policy: Policy, category_path: Sequence[str], text: str) -> list[Finding]:
    text_words = words(text)
    found = []
    keys = ["*", *category_path]
    for key in keys:
        for item in policy.prohibited.get(key, ()):
            hit = _contains_term(text_words, item)
            if hit:
                found.append(policy.finding("prohibited_item", item=item, found=hit))
    return found


PHONE_RE = re.compile(r"(?<![\w+])(?:\+?\d[\s().-]*){9,13}(?!\w)")
EMAIL_RE = re.compile(r"[\w.+-]+\s*(?:@|\(at\)|\[at\])\s*[\w-]+(?:\s*(?:\.|\(dot\)|\[dot\])\s*[a-z]{2,})+", re.I)
LINK_RE = re.compile(r"(?:https?://|www\.|\b(?:t\.me|wa\.me|bit\.ly)/|\b[\w-]+\.(?:com|co\.za|net|org|io|me|info|biz|za)\b)", re.I)


def check_contacts(policy: Policy, text: str) -> list[Finding]:
    """Phone numbers, e-mail addresses and links belong in the contact step, not the text."""
    found = []
    phones = [m.group().strip().rstrip(" .-(") for m in PHONE_RE.finditer(text) if 9 <= sum(ch.isdigit() for ch in m.group()) <= 13]
    if phones:
        found.append(policy.finding("phone_number", found=phones[0]))
    email = EMAIL_RE.search(text)
    if email:
        found.append(policy.finding("email_address", found=email.group()))
    link = LINK_RE.search(text.replace(email.group(), " ") if email else text)
    if link:
        found.append(policy.finding("link", found=link.group()))
    return found


def check_shouting(policy: Policy, text: str) -> list[Finding]:
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 20:
        return []
    share = sum(ch.isupper() for ch in letters) / len(letters)
    return [policy.finding("shouting", share=round(share * 100))] if share > policy.shouting_share else []


def check_price(policy: Policy, category_path: Sequence[str], amount: float | None) -> list[Finding]:
    if amount is None:
        return []
    bounds = next((policy.prices[k] for k in reversed(list(category_path)) if k in policy.prices), policy.prices.get("*"))
    if bounds is None:
        return []
    low, high = bounds
    if amount < low or amount > high:
        return [policy.finding("price_out_of_range", amount=amount, low=low, high=high)]
    return []


def check_length(policy: Policy, description: str) -> list[Finding]:
    length = len(description.strip())
    if length < policy.min_description:
        return [policy.finding("too_short", length=length, minimum=policy.min_description)]
    return []


@dataclass(frozen=True)
class RecentAd:
    ad_id: int
    user_id: int
    title: str
    description: str
    posted_at: datetime


def check_duplicate(policy: Policy, user_id: int, title: str, description: str, recent: Iterable[RecentAd], now: datetime) -> list[Finding]:
    since = now - timedelta(days=policy.duplicate_days)
    text = f"{title}\n{description}".casefold()
    best: tuple[float, RecentAd] | None = None
    for ad in recent:
        if ad.posted_at < since:
            continue
        score = fuzz.token_set_ratio(text, f"{ad.title}\n{ad.description}".casefold())
        if score >= policy.duplicate_similarity and (best is None or score > best[0]):
            best = (score, ad)
    if best is None:
        return []
    score, ad = best
    return [policy.finding("duplicate", ad_id=ad.ad_id, own=ad.user_id == user_id, similarity=round(score))]


def check_rate(policy: Policy, recent_count: int) -> list[Finding]:
    if recent_count >= policy.max_ads:
        hours = policy.max_ads_window.total_seconds() / 3600
        return [policy.finding("too_many_ads", count=recent_count, limit=policy.max_ads, hours=round(hours))]
    return []


def pre_check(
    policy: Policy,
    *,
    user_id: int,
    category_path: Sequence[str],
    title: str,
    description: str,
    price: float | None,
    recent_ads: Iterable[RecentAd],
    ads_in_window: int,
    now: datetime,
) -> list[Finding]:
    """Every check on one ad, in a stable order."""
    text = f"{title}\n{description}"
    return [
        *check_banned(policy, text),
        *check_prohibited(policy, category_path, text),
        *check_contacts(policy, text),
        *check_shouting(policy, text),
        *check_price(policy, category_path, price),
        *check_length(policy, description),
        *check_duplicate(policy, user_id, title, description, recent_ads, now),
        *check_rate(policy, ads_in_window),
    ]
