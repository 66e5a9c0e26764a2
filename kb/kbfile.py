"""The knowledge-base file: a YAML document staff edit by hand.

    version: 1
    entries:
    - id: post-an-ad                 # stable id: lowercase letters, digits and '-'
      title: How do I post an ad?
      category: posting
      answer: |-                     # Markdown subset, rendered to Telegram HTML
        Tap **Post an ad** ...
      phrasings:                     # ways users ask it
      - how do i post an ad
      followups:                     # optional buttons under the answer
      - entry: ad-photos             # another entry
      - label: Posting rules         # or a link
        url: https://saypro.example/rules

:func:`parse_kb` turns text into a :class:`KbDocument` plus problems; :func:`validate`
adds the checks across entries; :func:`dump_kb` writes the canonical form, so that
parse -> dump -> parse -> dump is stable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kb.richtext import plain_text_length

FORMAT_VERSION = 1
ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
URL_RE = re.compile(r"^(https?://[^\s]+|tg://[^\s]+)$")
TELEGRAM_TEXT_LIMIT = 4096
# Room the answer message needs besides the answer: the title line and the vote prompt.
ANSWER_MESSAGE_OVERHEAD = 120
MAX_TITLE = 120
MAX_PHRASING = 500
MAX_FOLLOWUPS = 6
MAX_CATEGORY = 64
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
HEADER = (
    "# SayPro Classified knowledge base.\n"
    "# Edit, then run `helpdesk kb validate` and `helpdesk kb import`.\n"
)


@dataclass(frozen=True)
class Followup:
    entry: str | None = None
    label: str | None = None
    url: str | None = None

    def to_data(self) -> dict[str, str]:
        if self.entry is not None:
            return {"entry": self.entry}
        return {"label": self.label or "", "url": self.url or ""}


@dataclass(frozen=True)
class EntrySpec:
    id: str
    title: str
    category: str
    answer: str
    phrasings: tuple[str, ...]
    followups: tuple[Followup, ...] = ()


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    where: str  # entry id, or "entries[3]", or "file"
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class KbDocument:
    entries: list[EntrySpec] = field(default_factory=list)
    version: int = FORMAT_VERSION

    def by_id(self) -> dict[str, EntrySpec]:
        return {e.id: e for e in self.entries}


class KbFileError(Exception):
    """The file cannot be read as a knowledge base at all (I/O or YAML syntax)."""


def _text(raw: dict[str, Any], key: str, where: str, problems: list[Problem]) -> str:
    value = raw.get(key)
    if value is None:
        problems.append(Problem("error", where, f"'{key}' is missing"))
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        problems.append(Problem("error", where, f"'{key}' must be text, found {type(value).__name__}"))
        return ""
    text = str(value).strip()
    if not text:
        problems.append(Problem("error", where, f"'{key}' is empty"))
    return text


def _followups(raw: Any, where: str, problems: list[Problem]) -> tuple[Followup, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(Problem("error", where, "'followups' must be a list"))
        return ()
    out = []
    for i, item in enumerate(raw):
        spot = f"{where} followups[{i}]"
        if isinstance(item, dict) and set(item) == {"entry"} and isinstance(item["entry"], str):
            out.append(Followup(entry=item["entry"].strip()))
        elif isinstance(item, dict) and set(item) == {"label", "url"}:
            label, url = str(item["label"] or "").strip(), str(item["url"] or "").strip()
            if not label:
                problems.append(Problem("error", spot, "the link has an empty 'label'"))
            if not URL_RE.match(url):
                problems.append(Problem("error", spot, f"'url' must start with https://, http:// or tg://, found {url!r}"))
            out.append(Followup(label=label, url=url))
        else:
            problems.append(Problem("error", spot, "must be either {entry: <id>} or {label: <text>, url: <link>}"))
    return tuple(out)


def parse_kb(text: str, where: str = "<kb>") -> tuple[KbDocument, list[Problem]]:
    """Parse the file's text. Structural problems are returned, not raised."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise KbFileError(f"{where}: not valid YAML{at}: {reason}") from None
    problems: list[Problem] = []
    doc = KbDocument()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KbFileError(f"{where}: expected a mapping with 'version' and 'entries' at the top")
    version = data.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        problems.append(Problem("error", "file", f"unsupported version {version!r}, expected {FORMAT_VERSION}"))
    unknown = set(data) - {"version", "entries"}
    if unknown:
        problems.append(Problem("warning", "file", f"unknown top-level keys ignored: {', '.join(sorted(map(str, unknown)))}"))
    if "entries" not in data:
        problems.append(Problem("error", "file", "no 'entries' list: is the key misspelt?"))
    raw_entries = data.get("entries") or []
    if not isinstance(raw_entries, list):
        raise KbFileError(f"{where}: 'entries' must be a list of entries")
    if "entries" in data and not raw_entries:
        problems.append(Problem("error", "file", "the knowledge base has no entries"))
    for index, raw in enumerate(raw_entries):
        spot = f"entries[{index}]"
        if not isinstance(raw, dict):
            problems.append(Problem("error", spot, "an entry must be a mapping with id, title, answer..."))
            continue
        entry_id = str(raw.get("id") or "").strip()
        where_e = entry_id or spot
        extra = set(raw) - {"id", "title", "category", "answer", "phrasings", "followups"}
        if extra:
            problems.append(Problem("warning", where_e, f"unknown keys ignored: {', '.join(sorted(map(str, extra)))}"))
        if not entry_id:
            problems.append(Problem("error", spot, "'id' is missing or empty"))
        elif not ID_RE.match(entry_id):
            problems.append(
                Problem("error", where_e, "'id' must be 1-40 lowercase letters, digits or '-' (no '-' at the ends)")
            )
        title = _text(raw, "title", where_e, problems)
        category = _text(raw, "category", where_e, problems)
        answer = _text(raw, "answer", where_e, problems)
        phr_raw = raw.get("phrasings")
        phrasings: list[str] = []
        if not isinstance(phr_raw, list) or not phr_raw:
            problems.append(Problem("error", where_e, "'phrasings' must be a non-empty list of questions"))
        else:
            for j, p in enumerate(phr_raw):
                if not isinstance(p, (str, int, float)) or isinstance(p, bool) or not str(p).strip():
                    problems.append(Problem("error", where_e, f"phrasing {j + 1} is empty or not text"))
                    continue
                phrasings.append(" ".join(str(p).split()))
        doc.entries.append(
            EntrySpec(
                id=entry_id,
                title=title,
                category=category,
                answer=answer,
                phrasings=tuple(phrasings),
                followups=_followups(raw.get("followups"), where_e, problems),
            )
        )
    return doc, problems


def _same_words(text: str) -> str:
    """Phrasings that differ only in case, punctuation or spacing count as duplicates."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def validate(doc: KbDocument) -> list[Problem]:
    """Checks across the document: duplicates, lengths, links between entries."""
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    titles: dict[str, str] = {}
    phrasings: dict[str, str] = {}
    for entry in doc.entries:
        if entry.id:
            ids[entry.id] = ids.get(entry.id, 0) + 1
    for entry_id, count in ids.items():
        if count > 1:
            problems.append(Problem("error", entry_id, f"the id is used by {count} entries"))
    for entry in doc.entries:
        where = entry.id or "(no id)"
        key = entry.title.casefold()
        if entry.title and key in titles and titles[key] != entry.id:
            problems.append(Problem("error", where, f"same title as entry {titles[key]}"))
        titles.setdefault(key, entry.id)
        if len(entry.title) > MAX_TITLE:
            problems.append(Problem("error", where, f"title is {len(entry.title)} characters, at most {MAX_TITLE}"))
        if len(entry.category) > MAX_CATEGORY:
            problems.append(Problem("error", where, f"category is {len(entry.category)} characters, at most {MAX_CATEGORY}"))
        for name, value in (("title", entry.title), ("category", entry.category), ("answer", entry.answer), *(("phrasing", p) for p in entry.phrasings)):
            bad = CONTROL_RE.search(value)
            if bad:
                problems.append(Problem("error", where, f"{name} contains the control character U+{ord(bad.group()):04X}"))
        if entry.answer:
            length = plain_text_length(entry.answer) + len(entry.title) + ANSWER_MESSAGE_OVERHEAD
            if length > TELEGRAM_TEXT_LIMIT:
                problems.append(
                    Problem(
                        "error",
                        where,
                        f"answer too long for one Telegram message: {length} characters with the title, "
                        f"at most {TELEGRAM_TEXT_LIMIT}",
                    )
                )
        seen_here: set[str] = set()
        for text in entry.phrasings:
            if len(text) > MAX_PHRASING:
                problems.append(Problem("error", where, f"phrasing longer than {MAX_PHRASING} characters: {text[:40]}..."))
            norm = _same_words(text)
            if norm in seen_here:
                problems.append(Problem("warning", where, f"phrasing repeated within the entry: {text!r}"))
                continue
            seen_here.add(norm)
            other = phrasings.get(norm)
            if other is not None and other != entry.id:
                problems.append(Problem("error", where, f"phrasing {text!r} is also a phrasing of entry {other}"))
            phrasings.setdefault(norm, entry.id)
        if 0 < len(entry.phrasings) < 3:
            problems.append(Problem("warning", where, "fewer than 3 phrasings: users will often miss this entry"))
        if len(entry.followups) > MAX_FOLLOWUPS:
            problems.append(Problem("error", where, f"{len(entry.followups)} follow-ups, at most {MAX_FOLLOWUPS}"))
        for f in entry.followups:
            if f.entry is not None:
                if f.entry == entry.id:
                    problems.append(Problem("error", where, "a follow-up points to the entry itself"))
                elif f.entry not in ids:
                    problems.append(Problem("error", where, f"follow-up points to a missing entry {f.entry!r}"))
    return problems


def load_kb(path: Path) -> tuple[KbDocument, list[Problem]]:
    """Read, parse and validate a KB file: the document and every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KbFileError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise KbFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise KbFileError(f"{path}: cannot be read ({exc.strerror})") from None
    doc, problems = parse_kb(text, str(path))
    return doc, problems + validate(doc)


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_kb(doc: KbDocument) -> str:
    """The canonical text of a document (what ``kb export`` writes)."""
    entries = []
    for e in doc.entries:
        item: dict[str, Any] = {
            "id": e.id,
            "title": e.title,
            "category": e.category,
            "answer": e.answer,
            "phrasings": list(e.phrasings),
        }
        if e.followups:
            item["followups"] = [f.to_data() for f in e.followups]
        entries.append(item)
    body = yaml.dump(
        {"version": doc.version, "entries": entries},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100_000,
        default_flow_style=False,
    )
    return HEADER + body
