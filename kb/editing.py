"""Knowledge-base upkeep from the staff chat: search, show, add, edit, delete, drafts.

Every change goes through one of :func:`create_entry`, :func:`update_entry`,
:func:`add_phrasing` and :func:`delete_entry`: each validates with the same rules as
the KB file (:mod:`kb.kbfile`), records a ``kb_changes`` row (who, when, before and
after in the file's form) and bumps the KB revision. The caller commits, then reloads
the snapshot (the matcher) at once.

Functions take an ``AsyncSession`` and plain values and never commit; no telegram here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kb.kbfile import (
    ANSWER_MESSAGE_OVERHEAD,
    CONTROL_RE,
    ID_RE,
    MAX_PHRASING,
    MAX_TITLE,
    TELEGRAM_TEXT_LIMIT,
    EntrySpec,
    Followup,
    KbDocument,
    validate,
)
from kb.models import KbChange, KbDraft, KbEntry, KbPhrasing, PhrasingSource, PhrasingStatus
from kb.richtext import ALLOWED_LINK_SCHEMES, markdown_to_telegram_html, plain_text_length
from kb.service import KbSnapshot, bump_revision, entry_file_form

CATEGORY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
MAX_SEARCH_HITS = 10
FIELDS = ("title", "answer", "phrasings", "category")
ADD_STEPS = ("title", "answer", "phrasings", "category", "preview")


class EditError(Exception):
    """A change that cannot be made; ``code`` picks the message, ``details`` fill it."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class PhrasingView:
    text: str
    source: str  # authored | learned
    status: str  # active | pending


@dataclass(frozen=True)
class ChangeView:
    action: str
    actor_id: int | None
    at: datetime
    summary: str


@dataclass(frozen=True)
class EntryDetail:
    id: str
    title: str
    category: str
    answer: str
    answer_html: Markup
    phrasings: tuple[PhrasingView, ...]
    followups: tuple[Followup, ...]
    last_change: ChangeView | None = None


@dataclass(frozen=True)
class SearchHit:
    id: str
    title: str
    category: str


async def _entry(session: AsyncSession, entry_id: str, *, lock: bool = False) -> KbEntry:
    entry_id = (entry_id or "").strip().lower()
    entry = await session.get(KbEntry, entry_id, with_for_update=lock) if ID_RE.match(entry_id) else None
    if entry is None:
        raise EditError("unknown_entry", entry_id=entry_id[:60])
    return entry


async def get_entry(session: AsyncSession, entry_id: str) -> EntryDetail:
    entry = await _entry(session, entry_id)
    last = await session.scalar(
        select(KbChange).where(KbChange.entry_id == entry.id).order_by(KbChange.at.desc(), KbChange.id.desc()).limit(1)
    )
    return EntryDetail(
        id=entry.id,
        title=entry.title,
        category=entry.category,
        answer=entry.answer,
        answer_html=Markup(markdown_to_telegram_html(entry.answer)),  # noqa: S704 (the renderer escapes)
        phrasings=tuple(PhrasingView(p.text, p.source, p.status) for p in entry.phrasings),
        followups=tuple(Followup(**f) for f in entry.followups),
        last_change=ChangeView(last.action, last.actor_id, last.at, last.summary) if last else None,
    )


async def search(
    session: AsyncSession, snapshot: KbSnapshot, words: str, *, min_score: float, limit: int = MAX_SEARCH_HITS
) -> list[SearchHit]:
    """Entries for ``words``: an exact id first, then the matcher's best (those scoring at
    least ``min_score``, what the bot would at least suggest), then titles and answers
    containing every word."""
    words = " ".join(words.split())[:200]
    if not words:
        return []
    found: list[str] = []
    if ID_RE.match(words.lower()) and await session.get(KbEntry, words.lower()) is not None:
        found.append(words.lower())
    for hit in snapshot.matcher.match(words, limit=limit):  # type: ignore[attr-defined]
        if hit.score >= min_score and hit.entry_id not in found:
            found.append(hit.entry_id)
    terms = [w.casefold() for w in words.split()][:8]
    query = select(KbEntry.id)
    for term in terms:
        pattern = f"%{term}%"
        query = query.where(or_(func.lower(KbEntry.title).like(pattern), func.lower(KbEntry.answer).like(pattern)))
    for entry_id in (await session.scalars(query.order_by(KbEntry.position, KbEntry.id).limit(limit))).all():
        if entry_id not in found:
            found.append(entry_id)
    rows = {e.id: e for e in (await session.scalars(select(KbEntry).where(KbEntry.id.in_(found[:limit])))).all()}
    return [SearchHit(i, rows[i].title, rows[i].category) for i in found[:limit] if i in rows]


async def categories(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(KbEntry.category).distinct().order_by(KbEntry.category))).all())


# ---------------------------------------------------------------- validation


def clean_line(text: str) -> str:
    return " ".join((text or "").split())


def clean_answer(text: str) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _same_words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


_md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
_md.validateLink = lambda url: True  # every link reaches the check below
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_CODE = re.compile(r"<(code|pre)>.*?</\1>", re.S)
_TAG = re.compile(r"<[^>]*>")


def markdown_problems(answer: str) -> list[dict[str, str]]:
    """What in an answer would not show the way its author meant: links that are not
    web links (shown as plain text), raw HTML (shown as text), unclosed ``**`` / ``__``
    and broken ``[text](link)`` syntax (shown with the symbols)."""
    problems: list[dict[str, str]] = []
    for token in _md.parse(answer):
        if token.type == "html_block":
            problems.append({"kind": "html", "text": token.content.strip()[:40]})
        for child in token.children or ():
            if child.type == "html_inline":
                problems.append({"kind": "html", "text": child.content[:40]})
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                scheme = _SCHEME.match(href)
                if not scheme or scheme.group(1).lower() not in ALLOWED_LINK_SCHEMES:
                    problems.append({"kind": "link", "text": href[:60]})
    visible = _TAG.sub("", _CODE.sub("", markdown_to_telegram_html(answer)))
    for mark in ("**", "__"):
        if mark in visible:
            problems.append({"kind": "unclosed", "text": mark})
    if "](" in visible:
        problems.append({"kind": "broken_link", "text": "]("})
    return problems


def check_title(title: str) -> str:
    title = clean_line(title)
    if not title:
        raise EditError("empty_title")
    if len(title) > MAX_TITLE:
        raise EditError("title_too_long", length=len(title), limit=MAX_TITLE)
    if CONTROL_RE.search(title):
        raise EditError("control_character", field="title")
    return title


def check_answer(answer: str, title: str) -> str:
    answer = clean_answer(answer)
    if not answer:
        raise EditError("empty_answer")
    if CONTROL_RE.search(answer):
        raise EditError("control_character", field="answer")
    check_length(answer, title)
    problems = markdown_problems(answer)
    if problems:
        raise EditError("bad_markdown", problems=problems)
    return answer


def check_length(answer: str, title: str) -> None:
    """The answer and its title must fit one Telegram message (what users get)."""
    length = plain_text_length(answer) + len(title) + ANSWER_MESSAGE_OVERHEAD
    if length > TELEGRAM_TEXT_LIMIT:
        room = TELEGRAM_TEXT_LIMIT - ANSWER_MESSAGE_OVERHEAD - len(title)
        raise EditError("answer_too_long", length=length - len(title) - ANSWER_MESSAGE_OVERHEAD, limit=room)


def check_category(category: str) -> str:
    category = "-".join(clean_line(category).lower().split())
    if not category:
        raise EditError("empty_category")
    if not CATEGORY_RE.match(category):
        raise EditError("bad_category", category=category[:60])
    return category


def check_phrasings(lines: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        text = clean_line(line)
        if not text:
            continue
        if len(text) > MAX_PHRASING:
            raise EditError("phrasing_too_long", text=text[:40], limit=MAX_PHRASING)
        if CONTROL_RE.search(text):
            raise EditError("control_character", field="phrasing")
        key = _same_words(text)
        if not key:
            raise EditError("empty_phrasing", text=text[:40])
        if key in seen:
            continue  # the same question twice in one list: keep it once
        seen.add(key)
        out.append(text)
    if not out:
        raise EditError("no_phrasings")
    return tuple(out)


async def _title_owner(session: AsyncSession, title: str, *, entry_id: str | None = None) -> str | None:
    """The other entry with this title (case-insensitive, as the file's validation)."""
    key = title.casefold()
    for other_id, other_title in (await session.execute(select(KbEntry.id, KbEntry.title))).all():
        if other_id != entry_id and other_title.casefold() == key:
            return str(other_id)
    return None


async def _check_against_others(session: AsyncSession, spec: EntrySpec) -> None:
    """The checks across entries: same title, a phrasing of another entry, then the
    file's own rules as a backstop (nothing that ``helpdesk kb validate`` would refuse
    gets in). Plain column queries: no entry objects are loaded."""
    other = await _title_owner(session, spec.title, entry_id=spec.id)
    if other is not None:
        raise EditError("duplicate_title", other=other)
    await _check_phrasings_free(session, list(spec.phrasings), entry_id=spec.id)
    # the other entries only matter by id here (follow-ups must point to one)
    ids = (await session.scalars(select(KbEntry.id).where(KbEntry.id != spec.id))).all()
    doc = KbDocument(entries=[*(EntrySpec(id=i, title="", category="", answer="", phrasings=()) for i in ids), spec])
    errors = [str(p.message) for p in validate(doc) if p.severity == "error" and p.where == spec.id]
    if errors:
        raise EditError("invalid", problems=errors)


async def _check_phrasings_free(session: AsyncSession, texts: list[str], *, entry_id: str | None = None) -> None:
    """No other entry may have one of these phrasings (early, at the draft's step)."""
    mine = {_same_words(t): t for t in texts}
    rows = await session.execute(
        select(KbPhrasing.text, KbPhrasing.entry_id).where(KbPhrasing.status == PhrasingStatus.ACTIVE)
    )
    for other_text, other_id in rows.all():
        if other_id != entry_id and _same_words(other_text) in mine:
            raise EditError("duplicate_phrasing", text=mine[_same_words(other_text)], other=other_id)


def new_entry_id(title: str, taken: set[str]) -> str:
    """A stable id from the title: 'How do I pay?' -> 'how-do-i-pay' (then -2, -3...)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    base = ""
    for word in words:
        candidate = f"{base}-{word}" if base else word
        if len(candidate) > 34:
            break
        base = candidate
    base = base or "entry"
    entry_id, n = base, 1
    while entry_id in taken:
        n += 1
        entry_id = f"{base}-{n}"
    return entry_id


# ---------------------------------------------------------------- changes


entry_data = entry_file_form  # the entry as the KB file writes it (kb_changes.before / after)


def _spec(data: dict[str, Any]) -> EntrySpec:
    return EntrySpec(
        id=data["id"],
        title=data["title"],
        category=data["category"],
        answer=data["answer"],
        phrasings=tuple(data["phrasings"]),
        followups=tuple(Followup(**f) for f in data["followups"]),
    )


async def record_change(
    session: AsyncSession,
    *,
    entry_id: str,
    action: str,
    actor_id: int | None,
    now: datetime,
    summary: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> KbChange:
    change = KbChange(entry_id=entry_id, action=action, actor_id=actor_id, at=now, summary=summary[:1000], before=before, after=after)
    session.add(change)
    return change


def _set_active_phrasings(entry: KbEntry, texts: tuple[str, ...], now: datetime) -> None:
    """Active phrasings become ``texts`` (learned ones that stay keep their origin);
    phrasings waiting for review are kept after them."""
    active = {p.text: p for p in entry.phrasings if p.status == PhrasingStatus.ACTIVE}
    pending = [p for p in entry.phrasings if p.status != PhrasingStatus.ACTIVE and _same_words(p.text) not in {_same_words(t) for t in texts}]
    fresh = []
    for i, text in enumerate(texts):
        keep = active.pop(text, None)
        if keep is None:
            keep = KbPhrasing(text=text, source=PhrasingSource.AUTHORED, status=PhrasingStatus.ACTIVE, created_at=now)
        keep.position = i
        fresh.append(keep)
    for j, p in enumerate(pending):
        p.position = len(fresh) + j
    entry.phrasings = fresh + pending


def _describe(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key in ("title", "category", "answer"):
        if before[key] != after[key]:
            parts.append(f"{key}: {before[key]!r} -> {after[key]!r}" if key != "answer" else "answer changed")
    added = [p for p in after["phrasings"] if p not in before["phrasings"]]
    removed = [p for p in before["phrasings"] if p not in after["phrasings"]]
    if added:
        parts.append(f"{len(added)} phrasing(s) added")
    if removed:
        parts.append(f"{len(removed)} phrasing(s) removed")
    return "; ".join(parts) or "no change"


async def _renumber(session: AsyncSession) -> None:
    """Positions 0..n-1 in file order, as an import of the exported file sets them."""
    rows = (await session.execute(select(KbEntry.id, KbEntry.position).order_by(KbEntry.position, KbEntry.id))).all()
    for position, (entry_id, old) in enumerate(rows):
        if old != position:
            await session.execute(update(KbEntry).where(KbEntry.id == entry_id).values(position=position))


async def create_entry(
    session: AsyncSession,
    *,
    title: str,
    answer: str,
    category: str,
    phrasings: list[str] | tuple[str, ...],
    actor_id: int | None,
    now: datetime,
) -> KbEntry:
    title = check_title(title)
    answer = check_answer(answer, title)
    category = check_category(category)
    texts = check_phrasings(list(phrasings))
    taken = set((await session.scalars(select(KbEntry.id))).all())
    entry_id = new_entry_id(title, taken)
    spec = EntrySpec(id=entry_id, title=title, category=category, answer=answer, phrasings=texts)
    await _check_against_others(session, spec)
    await _renumber(session)
    position = int(await session.scalar(select(func.count()).select_from(KbEntry)) or 0)
    entry = KbEntry(
        id=entry_id, title=title, category=category, answer=answer, followups=[], position=position,
        created_at=now, updated_at=now,
    )
    entry.phrasings = [
        KbPhrasing(text=t, position=i, source=PhrasingSource.AUTHORED, status=PhrasingStatus.ACTIVE, created_at=now)
        for i, t in enumerate(texts)
    ]
    session.add(entry)
    await session.flush()
    await record_change(
        session, entry_id=entry_id, action="add", actor_id=actor_id, now=now,
        summary=f"added {title!r} ({len(texts)} phrasings)", before=None, after=entry_data(entry),
    )
    await bump_revision(session)
    await session.flush()
    return entry


async def update_entry(
    session: AsyncSession,
    entry_id: str,
    *,
    actor_id: int | None,
    now: datetime,
    title: str | None = None,
    answer: str | None = None,
    category: str | None = None,
    phrasings: list[str] | tuple[str, ...] | None = None,
    action: str = "edit",
) -> KbEntry:
    """Change some fields of an entry; None leaves a field as it is."""
    entry = await _entry(session, entry_id, lock=True)
    before = entry_data(entry)
    after = dict(before)
    if title is not None:
        after["title"] = check_title(title)
    if answer is not None:
        after["answer"] = check_answer(answer, after["title"])
    elif title is not None:
        check_length(entry.answer, after["title"])  # a longer title leaves less room
    if category is not None:
        after["category"] = check_category(category)
    if phrasings is not None:
        after["phrasings"] = list(check_phrasings(list(phrasings)))
    if after == before:
        raise EditError("no_change", entry_id=entry.id)
    await _check_against_others(session, _spec(after))
    entry.title, entry.answer, entry.category = after["title"], after["answer"], after["category"]
    if after["phrasings"] != before["phrasings"]:
        _set_active_phrasings(entry, tuple(after["phrasings"]), now)
    entry.updated_at = now
    await session.flush()
    await record_change(
        session, entry_id=entry.id, action=action, actor_id=actor_id, now=now,
        summary=_describe(before, after), before=before, after=entry_data(entry),
    )
    await bump_revision(session)
    await session.flush()
    return entry


async def add_phrasing(session: AsyncSession, entry_id: str, text: str, *, actor_id: int | None, now: datetime) -> KbEntry:
    """One more way to ask an entry (active at once). A learned phrasing that waited
    for review with the same words is accepted instead of added twice."""
    entry = await _entry(session, entry_id, lock=True)
    (text,) = check_phrasings([text])
    key = _same_words(text)
    for p in entry.phrasings:
        if _same_words(p.text) == key:
            if p.status == PhrasingStatus.ACTIVE:
                raise EditError("already_phrasing", text=text, entry_id=entry.id)
    before = entry_data(entry)
    await _check_against_others(session, _spec({**before, "phrasings": [*before["phrasings"], text]}))
    waiting = next((p for p in entry.phrasings if _same_words(p.text) == key), None)
    if waiting is not None:
        waiting.status = PhrasingStatus.ACTIVE
    else:
        entry.phrasings.append(
            KbPhrasing(text=text, position=len(entry.phrasings), source=PhrasingSource.AUTHORED, status=PhrasingStatus.ACTIVE, created_at=now)
        )
    entry.updated_at = now
    await session.flush()
    await record_change(
        session, entry_id=entry.id, action="phrase", actor_id=actor_id, now=now,
        summary=f"phrasing added: {text!r}", before=before, after=entry_data(entry),
    )
    await bump_revision(session)
    await session.flush()
    return entry


@dataclass
class Deleted:
    entry_id: str
    title: str
    unlinked: list[str] = field(default_factory=list)  # entries whose follow-up pointed here


async def delete_entry(session: AsyncSession, entry_id: str, *, actor_id: int | None, now: datetime) -> Deleted:
    """Remove an entry; follow-up buttons of other entries that lead to it go too (an
    exported file would otherwise point to a missing entry and not import)."""
    entry = await _entry(session, entry_id, lock=True)
    result = Deleted(entry.id, entry.title)
    linked = [
        other_id
        for other_id, followups in (await session.execute(select(KbEntry.id, KbEntry.followups).where(KbEntry.id != entry.id))).all()
        if any(f.get("entry") == entry.id for f in followups or ())
    ]
    for other_id in linked:
        other = await session.get(KbEntry, other_id)
        if other is not None:
            before = entry_data(other)
            other.followups = [f for f in other.followups if f.get("entry") != entry.id]
            other.updated_at = now
            await record_change(
                session, entry_id=other.id, action="edit", actor_id=actor_id, now=now,
                summary=f"follow-up to deleted entry {entry.id!r} removed", before=before, after=entry_data(other),
            )
            result.unlinked.append(other.id)
    before = entry_data(entry)
    await session.delete(entry)
    await session.flush()
    await _renumber(session)
    await record_change(
        session, entry_id=result.entry_id, action="delete", actor_id=actor_id, now=now,
        summary=f"deleted {result.title!r}", before=before, after=None,
    )
    await bump_revision(session)
    await session.flush()
    return result


async def changes(session: AsyncSession, *, entry_id: str | None = None, limit: int = 20) -> list[KbChange]:
    query = select(KbChange).order_by(KbChange.at.desc(), KbChange.id.desc()).limit(limit)
    if entry_id is not None:
        query = query.where(KbChange.entry_id == entry_id)
    return list((await session.scalars(query)).all())


# ---------------------------------------------------------------- drafts (the staff chat's conversations)


async def get_draft(session: AsyncSession, *, staff_id: int, chat_id: int) -> KbDraft | None:
    return await session.get(KbDraft, (staff_id, chat_id), with_for_update=True)


DRAFT_IDLE = timedelta(hours=2)  # a draft untouched this long no longer takes messages


async def start_draft(
    session: AsyncSession, *, staff_id: int, chat_id: int, kind: str, step: str, now: datetime, entry_id: str | None = None,
    thread_id: int | None = None,
) -> KbDraft:
    """Begin ``/kb add`` (kind add, step title) or one field of ``/kb edit``; replaces
    whatever draft this staff member had in this chat. ``thread_id``: the forum topic it
    was started in (kept in ``data["thread"]``): only messages there go to it."""
    if entry_id is not None:
        entry_id = (await _entry(session, entry_id)).id
    await session.execute(delete(KbDraft).where(KbDraft.staff_id == staff_id, KbDraft.chat_id == chat_id))
    data = {"thread": thread_id} if thread_id is not None else {}
    draft = KbDraft(staff_id=staff_id, chat_id=chat_id, kind=kind, entry_id=entry_id, step=step, data=data, updated_at=now)
    session.add(draft)
    await session.flush()
    return draft


def draft_thread(draft: KbDraft) -> int | None:
    """The forum topic the draft was started in (None: none); only messages there go to it."""
    thread = draft.data.get("thread")
    return int(thread) if thread is not None else None


def draft_expired(draft: KbDraft, *, now: datetime) -> bool:
    """Untouched for :data:`DRAFT_IDLE`: it no longer takes messages."""
    return now - draft.updated_at > DRAFT_IDLE


async def move_drafts(session: AsyncSession, *, old_chat_id: int, new_chat_id: int) -> int:
    """The staff chat got a new id: the staff's ``/kb`` conversations in it follow, and
    no longer wait in a forum topic of the old chat (which the new one has not). A draft
    the same person already has in the new chat wins; the old one stays. Returns how many
    moved."""
    taken = set((await session.scalars(select(KbDraft.staff_id).where(KbDraft.chat_id == new_chat_id))).all())
    drafts = (await session.scalars(select(KbDraft).where(KbDraft.chat_id == old_chat_id))).all()
    moved = 0
    for draft in drafts:
        if draft.staff_id in taken:
            continue
        data = {k: v for k, v in draft.data.items() if k != "thread"}
        session.add(KbDraft(
            staff_id=draft.staff_id, chat_id=new_chat_id, kind=draft.kind, entry_id=draft.entry_id, step=draft.step,
            data=data, updated_at=draft.updated_at,
        ))
        await session.delete(draft)
        moved += 1
    await session.flush()
    return moved


async def drop_draft(session: AsyncSession, *, staff_id: int, chat_id: int) -> bool:
    gone = await session.execute(delete(KbDraft).where(KbDraft.staff_id == staff_id, KbDraft.chat_id == chat_id))
    return bool(gone.rowcount)


@dataclass
class DraftOutcome:
    draft: KbDraft | None  # None: the conversation is over
    entry: KbEntry | None = None  # the entry an edit draft changed


async def draft_input(session: AsyncSession, draft: KbDraft, text: str, *, actor_id: int, now: datetime) -> DraftOutcome:
    """A message typed into a draft: validated for its step, stored, next step.

    An add draft moves title -> answer -> phrasings -> category -> preview (saved by
    :func:`save_draft`); an edit draft changes its one field and ends. Raises
    :class:`EditError` (the draft stays at its step) when the text does not fit.
    """
    data = dict(draft.data)
    if draft.kind == "edit":
        value: dict[str, Any] = {draft.step: text.splitlines() if draft.step == "phrasings" else text}
        entry = await update_entry(session, draft.entry_id or "", actor_id=actor_id, now=now, **value)
        await session.delete(draft)
        await session.flush()
        return DraftOutcome(None, entry)
    if draft.step == "title":
        data["title"] = check_title(text)
        other = await _title_owner(session, data["title"])
        if other is not None:
            raise EditError("duplicate_title", other=other)
        step = "answer"
    elif draft.step == "answer":
        data["answer"] = check_answer(text, data.get("title", ""))
        step = "phrasings"
    elif draft.step == "phrasings":
        data["phrasings"] = list(check_phrasings(text.splitlines()))
        await _check_phrasings_free(session, data["phrasings"])
        step = "category"
    elif draft.step == "category":
        data["category"] = check_category(text)
        step = "preview"
    else:
        raise EditError("use_buttons")
    draft.data, draft.step, draft.updated_at = data, step, now
    await session.flush()
    return DraftOutcome(draft)


async def save_draft(session: AsyncSession, *, staff_id: int, chat_id: int, now: datetime) -> KbEntry:
    """The add draft's Save button: the entry is created (checked again: the knowledge
    base may have changed since) and the draft goes."""
    draft = await get_draft(session, staff_id=staff_id, chat_id=chat_id)
    if draft is None or draft.kind != "add" or draft.step != "preview":
        raise EditError("no_draft")
    data = draft.data
    entry = await create_entry(
        session, title=data["title"], answer=data["answer"], category=data["category"], phrasings=data["phrasings"],
        actor_id=staff_id, now=now,
    )
    await session.delete(draft)
    await session.flush()
    return entry
