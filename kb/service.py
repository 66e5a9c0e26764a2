"""Knowledge-base services: import/export, the in-memory snapshot, questions and votes.

Every function takes an ``AsyncSession`` and plain values, and never commits: the caller
owns the transaction (one per update).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from markupsafe import Markup
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kb.kbfile import EntrySpec, Followup, KbDocument
from kb.matcher import build_matcher
from kb.models import KbChange, KbEntry, KbPhrasing, KbState, Outcome, PhrasingSource, PhrasingStatus, Question, Vote
from kb.richtext import markdown_to_telegram_html

MAX_SUGGESTIONS = 3


# ---------------------------------------------------------------- import / export


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged"
        )


def _followups_data(spec: EntrySpec) -> list[dict[str, str]]:
    return [f.to_data() for f in spec.followups]


class ImportRefused(Exception):
    """The import would remove most of the knowledge base: probably a broken file."""


# An import that would remove more than this share of the entries needs allow_removal.
MAX_REMOVED_SHARE = 0.5


async def import_kb(session: AsyncSession, doc: KbDocument, now: datetime, *, allow_removal: bool = False) -> ImportReport:
    """Make the database's knowledge base equal to ``doc``; touch only what differs.

    Active phrasings are replaced by the file's; phrasings learned from support cases
    that still wait for review are kept. An import that would remove more than half of
    the entries is refused unless ``allow_removal`` (a truncated file is more likely
    than a desk dropping half its answers).
    """
    report = ImportReport()
    existing = {e.id: e for e in (await session.scalars(select(KbEntry))).all()}
    wanted = {spec.id for spec in doc.entries}
    doomed = [entry_id for entry_id in existing if entry_id not in wanted]
    if doomed and not allow_removal and len(doomed) > MAX_REMOVED_SHARE * len(existing):
        raise ImportRefused(
            f"the file would remove {len(doomed)} of the {len(existing)} entries in the database; "
            "if that is intended, import with --allow-remove"
        )
    for position, spec in enumerate(doc.entries):
        row = existing.get(spec.id)
        if row is None:
            row = KbEntry(
                id=spec.id,
                title=spec.title,
                category=spec.category,
                answer=spec.answer,
                followups=_followups_data(spec),
                position=position,
                created_at=now,
                updated_at=now,
            )
            row.phrasings = [
                KbPhrasing(text=t, position=i, source=PhrasingSource.AUTHORED, status=PhrasingStatus.ACTIVE, created_at=now)
                for i, t in enumerate(spec.phrasings)
            ]
            session.add(row)
            report.added.append(spec.id)
            _log_import(session, spec.id, now, f"imported from the file: {spec.title!r}", None, _file_form(spec))
            continue
        changed = False
        before = entry_file_form(row)
        for attr, value in (
            ("title", spec.title),
            ("category", spec.category),
            ("answer", spec.answer),
            ("followups", _followups_data(spec)),
            ("position", position),
        ):
            if getattr(row, attr) != value:
                setattr(row, attr, value)
                changed = True
        active = [p for p in row.phrasings if p.status == PhrasingStatus.ACTIVE]
        if [p.text for p in active] != list(spec.phrasings):
            learned = {p.text: p for p in active if p.source == PhrasingSource.LEARNED}
            pending = [p for p in row.phrasings if p.status != PhrasingStatus.ACTIVE]
            fresh = []
            for i, text in enumerate(spec.phrasings):
                keep = learned.pop(text, None)
                if keep is not None:
                    keep.position = i
                    fresh.append(keep)
                else:
                    fresh.append(
                        KbPhrasing(
                            text=text,
                            position=i,
                            source=PhrasingSource.AUTHORED,
                            status=PhrasingStatus.ACTIVE,
                            created_at=now,
                        )
                    )
            for j, p in enumerate(pending):
                p.position = len(fresh) + j
            row.phrasings = fresh + pending
            changed = True
        if changed:
            row.updated_at = now
            report.updated.append(spec.id)
            _log_import(session, spec.id, now, "changed by a file import", before, _file_form(spec))
        else:
            report.unchanged += 1
    for entry_id, row in existing.items():
        if entry_id not in wanted:
            _log_import(session, entry_id, now, "removed by a file import", entry_file_form(row), None)
            await session.delete(row)
            report.removed.append(entry_id)
    if report.changed:
        await bump_revision(session)
    await session.flush()
    return report


def _file_form(spec: EntrySpec) -> dict[str, Any]:
    return {
        "id": spec.id, "title": spec.title, "category": spec.category, "answer": spec.answer,
        "phrasings": list(spec.phrasings), "followups": _followups_data(spec),
    }


def entry_file_form(row: KbEntry) -> dict[str, Any]:
    """An entry as the KB file writes it (kb_changes.before / after)."""
    return {
        "id": row.id, "title": row.title, "category": row.category, "answer": row.answer,
        "phrasings": [p.text for p in row.phrasings if p.status == PhrasingStatus.ACTIVE],
        "followups": list(row.followups),
    }


def _log_import(
    session: AsyncSession, entry_id: str, now: datetime, summary: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """kb_changes row of an import (actor None: the file, through the CLI or a start)."""
    session.add(KbChange(entry_id=entry_id, action="import", actor_id=None, at=now, summary=summary[:1000], before=before, after=after))


async def bump_revision(session: AsyncSession) -> None:
    """Every change of the knowledge base bumps its revision (running bots reload)."""
    updated = await session.execute(update(KbState).where(KbState.id == 1).values(revision=KbState.revision + 1))
    if not updated.rowcount:
        session.add(KbState(id=1, revision=1))


async def export_kb(session: AsyncSession) -> KbDocument:
    """The database's knowledge base as a document (active phrasings only).

    Two plain SELECTs, no ORM objects: this also feeds every reload of the running
    bot's matcher, and it runs on the event loop."""
    entries = (
        await session.execute(
            select(KbEntry.id, KbEntry.title, KbEntry.category, KbEntry.answer, KbEntry.followups)
            .order_by(KbEntry.position, KbEntry.id)
        )
    ).all()
    phrasings: dict[str, list[str]] = {}
    for entry_id, text in await session.execute(
        select(KbPhrasing.entry_id, KbPhrasing.text)
        .where(KbPhrasing.status == PhrasingStatus.ACTIVE)
        .order_by(KbPhrasing.entry_id, KbPhrasing.position, KbPhrasing.id)
    ):
        phrasings.setdefault(entry_id, []).append(text)
    doc = KbDocument()
    for entry_id, title, category, answer, followups in entries:
        doc.entries.append(
            EntrySpec(
                id=entry_id,
                title=title,
                category=category,
                answer=answer,
                phrasings=tuple(phrasings.get(entry_id, ())),
                followups=tuple(Followup(**f) for f in followups or ()),
            )
        )
    return doc


async def imported_file_hash(session: AsyncSession) -> str | None:
    """SHA-256 of the KB file the bot last imported on start (None: never)."""
    return await session.scalar(select(KbState.file_sha256).where(KbState.id == 1))


async def remember_imported_file(session: AsyncSession, sha256: str) -> None:
    updated = await session.execute(update(KbState).where(KbState.id == 1).values(file_sha256=sha256))
    if not updated.rowcount:
        session.add(KbState(id=1, revision=0, file_sha256=sha256))
    await session.flush()


async def kb_version(session: AsyncSession) -> int:
    """The knowledge base's revision: changes with every import or edit (cheap to ask)."""
    return int(await session.scalar(select(KbState.revision).where(KbState.id == 1)) or 0)


# ---------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class EntryView:
    """What the bot shows of an entry: ready-made Telegram HTML and follow-ups."""

    id: str
    title: str
    category: str
    answer_html: Markup
    followups: tuple[Followup, ...]


@dataclass(frozen=True)
class KbSnapshot:
    """An immutable view of the knowledge base and its matcher, swapped whole on change.

    ``specs`` are the entries it was built from: :func:`refresh_snapshot` compares them
    with the database's to redo only what changed."""

    entries: dict[str, EntryView]
    matcher: object
    specs: Mapping[str, EntrySpec] = field(default_factory=dict)

    def get(self, entry_id: str | None) -> EntryView | None:
        return self.entries.get(entry_id) if entry_id else None


#: Up to this many changed entries, :func:`refresh_snapshot` updates the matcher entry by
#: entry (``with_entry``, ~17 ms each at 500 entries x 10 phrasings); more: a rebuild
#: (~0.6-0.8 s there).
INCREMENTAL_LIMIT = 16


def _view(spec: EntrySpec) -> EntryView:
    return EntryView(
        id=spec.id,
        title=spec.title,
        category=spec.category,
        answer_html=Markup(markdown_to_telegram_html(spec.answer)),  # noqa: S704 (our renderer escapes)
        followups=spec.followups,
    )


def _matched_as(spec: EntrySpec) -> list[str]:
    # The title is a question too ("How do I post an ad?"): match it like a phrasing.
    return [*spec.phrasings, spec.title]


def build_snapshot(doc: KbDocument, synonyms: Mapping[str, tuple[str, ...]] | None = None) -> KbSnapshot:
    """The entries as users see them and a matcher over them (with the staff's
    synonyms, :mod:`kb.synonyms`, when there are any). CPU-bound (about a second at 500
    entries): a running bot calls it in a worker thread."""
    entries = {e.id: _view(e) for e in doc.entries}
    matcher = build_matcher(((e.id, _matched_as(e)) for e in doc.entries), synonyms=synonyms or None)
    return KbSnapshot(entries=entries, matcher=matcher, specs={e.id: e for e in doc.entries})


def refresh_snapshot(
    current: KbSnapshot | None, doc: KbDocument, synonyms: Mapping[str, tuple[str, ...]] | None = None
) -> KbSnapshot:
    """A snapshot of ``doc``, re-using what ``current`` already has: an edit of one entry
    re-analyses that entry only (the matcher's ``with_entry`` / ``without_entry``, whose
    result equals a rebuild); many changes rebuild. Pure and CPU-bound: safe in a worker
    thread (``current`` is immutable)."""
    if current is None or not current.specs:
        return build_snapshot(doc, synonyms)
    old = current.specs
    new = {e.id: e for e in doc.entries}
    removed = [entry_id for entry_id in old if entry_id not in new]
    rematch = [e for e in doc.entries if e.id not in old or _matched_as(old[e.id]) != _matched_as(e)]
    if len(removed) + len(rematch) > INCREMENTAL_LIMIT:
        return build_snapshot(doc, synonyms)
    matcher: Any = current.matcher
    for entry_id in removed:
        matcher = matcher.without_entry(entry_id)
    for spec in rematch:
        matcher = matcher.with_entry(spec.id, _matched_as(spec))
    entries = {e.id: current.entries[e.id] if old.get(e.id) == e else _view(e) for e in doc.entries}
    return KbSnapshot(entries=entries, matcher=matcher, specs=new)


async def load_snapshot(session: AsyncSession, synonyms: Mapping[str, tuple[str, ...]] | None = None) -> KbSnapshot:
    return build_snapshot(await export_kb(session), synonyms)


# ---------------------------------------------------------------- questions


@dataclass(frozen=True)
class AskResult:
    question_id: int
    outcome: Outcome
    answer: EntryView | None = None
    suggestions: tuple[EntryView, ...] = ()


async def ask(
    session: AsyncSession,
    snapshot: KbSnapshot,
    *,
    user_id: int,
    text: str,
    answer_threshold: float,
    suggest_threshold: float,
    now: datetime,
) -> AskResult:
    """Match a question, log it with what was offered, and say what to show."""
    hits = [h for h in snapshot.matcher.match(text, limit=MAX_SUGGESTIONS) if h.entry_id in snapshot.entries]  # type: ignore[attr-defined]
    top = hits[0].score if hits else 0.0
    if hits and top >= answer_threshold:
        outcome = Outcome.ANSWERED
        offered = hits[:1]
    elif hits and top >= suggest_threshold:
        outcome = Outcome.SUGGESTED
        floor = suggest_threshold / 2
        offered = [h for h in hits if h.score >= floor]
    else:
        outcome = Outcome.NO_MATCH
        offered = hits
    question = Question(
        user_id=user_id,
        text=text,
        source="text",
        offered=[{"entry_id": h.entry_id, "score": round(float(h.score), 4)} for h in offered],
        top_score=round(float(top), 4),
        outcome=outcome,
        answer_entry_id=offered[0].entry_id if outcome == Outcome.ANSWERED else None,
        created_at=now,
    )
    session.add(question)
    await session.flush()
    if outcome == Outcome.ANSWERED:
        return AskResult(question.id, outcome, answer=snapshot.entries[offered[0].entry_id])
    if outcome == Outcome.SUGGESTED:
        return AskResult(question.id, outcome, suggestions=tuple(snapshot.entries[h.entry_id] for h in offered))
    return AskResult(question.id, outcome)


async def open_entry(
    session: AsyncSession, snapshot: KbSnapshot, *, user_id: int, entry_id: str, now: datetime
) -> AskResult | None:
    """A follow-up button: show another entry, logged as a question answered by a button."""
    entry = snapshot.get(entry_id)
    if entry is None:
        return None
    question = Question(
        user_id=user_id,
        text=entry.title,
        source="followup",
        offered=[{"entry_id": entry.id, "score": 1.0}],
        top_score=1.0,
        outcome=Outcome.ANSWERED,
        answer_entry_id=entry.id,
        created_at=now,
    )
    session.add(question)
    await session.flush()
    return AskResult(question.id, Outcome.ANSWERED, answer=entry)


class Status(StrEnum):
    OK = "ok"
    EXPIRED = "expired"  # the question or entry no longer exists
    NOT_YOURS = "not_yours"
    ALREADY = "already"


@dataclass(frozen=True)
class ChoiceResult:
    status: Status
    answer: EntryView | None = None
    question_id: int | None = None


async def _own_question(session: AsyncSession, question_id: int, user_id: int) -> tuple[Status, Question | None]:
    question = await session.get(Question, question_id, with_for_update=True)
    if question is None:
        return Status.EXPIRED, None
    if question.user_id != user_id:
        return Status.NOT_YOURS, question
    return Status.OK, question


async def choose(
    session: AsyncSession,
    snapshot: KbSnapshot,
    *,
    user_id: int,
    question_id: int,
    index: int | None,
    now: datetime,
) -> ChoiceResult:
    """The user picked suggestion ``index`` of a "did you mean" (None: "none of these")."""
    status, question = await _own_question(session, question_id, user_id)
    if question is None or status != Status.OK:
        return ChoiceResult(status)
    if question.outcome != Outcome.SUGGESTED:
        return ChoiceResult(Status.EXPIRED)
    if question.answer_entry_id is not None or question.none_of_these:
        # a repeated press (e.g. the first answer never arrived): the same answer again
        return ChoiceResult(Status.ALREADY, answer=snapshot.get(question.answer_entry_id), question_id=question.id)
    if index is None:
        question.none_of_these = True
        question.chosen_at = now
        return ChoiceResult(Status.OK, question_id=question.id)
    offered: Sequence[dict] = question.offered
    if not 0 <= index < len(offered):
        return ChoiceResult(Status.EXPIRED)
    entry = snapshot.get(offered[index]["entry_id"])
    if entry is None:
        return ChoiceResult(Status.EXPIRED)
    question.answer_entry_id = entry.id
    question.chosen_at = now
    return ChoiceResult(Status.OK, answer=entry, question_id=question.id)


async def vote(
    session: AsyncSession, snapshot: KbSnapshot, *, user_id: int, question_id: int, helpful: bool, now: datetime
) -> ChoiceResult:
    """Record the user's helpful / not-helpful vote on the answer they got (once)."""
    status, question = await _own_question(session, question_id, user_id)
    if question is None or status != Status.OK:
        return ChoiceResult(status)
    if question.answer_entry_id is None:
        return ChoiceResult(Status.EXPIRED)
    if question.vote is not None:
        return ChoiceResult(Status.ALREADY, answer=snapshot.get(question.answer_entry_id))
    question.vote = Vote.HELPFUL if helpful else Vote.NOT_HELPFUL
    question.voted_at = now
    return ChoiceResult(Status.OK, answer=snapshot.get(question.answer_entry_id), question_id=question.id)



# ---------------------------------------------------------------- learned phrasings


async def add_learned_phrasing(session: AsyncSession, *, entry_id: str, text: str, now: datetime) -> bool:
    """A question that a resolved ticket linked to ``entry_id``: pending until reviewed."""
    entry = await session.get(KbEntry, entry_id)
    if entry is None:
        return False
    text = " ".join(text.split())[:500]
    if any(p.text.casefold() == text.casefold() for p in entry.phrasings):
        return True
    entry.phrasings.append(
        KbPhrasing(
            text=text,
            position=len(entry.phrasings),
            source=PhrasingSource.LEARNED,
            status=PhrasingStatus.PENDING,
            created_at=now,
        )
    )
    await session.flush()
    return True


async def pending_phrasings(session: AsyncSession, *, limit: int = 10) -> list[tuple[KbPhrasing, str]]:
    rows = await session.execute(
        select(KbPhrasing, KbEntry.title)
        .join(KbEntry, KbEntry.id == KbPhrasing.entry_id)
        .where(KbPhrasing.status == PhrasingStatus.PENDING)
        .order_by(KbPhrasing.id)
        .limit(limit)
    )
    return [(p, title) for p, title in rows.all()]


async def review_phrasing(
    session: AsyncSession, *, phrasing_id: int, accept: bool, now: datetime, actor_id: int | None = None
) -> KbPhrasing | None:
    """Accept (the matcher uses it from the next refresh) or drop a pending phrasing;
    recorded in kb_changes (action ``review``)."""
    phrasing = await session.get(KbPhrasing, phrasing_id, with_for_update=True)
    if phrasing is None or phrasing.status != PhrasingStatus.PENDING:
        return None
    entry = await session.get(KbEntry, phrasing.entry_id)
    session.add(
        KbChange(
            entry_id=phrasing.entry_id,
            action="review",
            actor_id=actor_id,
            at=now,
            summary=f"learned phrasing {'accepted' if accept else 'dropped'}: {phrasing.text!r}"[:1000],
            before=None,
            after=None,
        )
    )
    if accept:
        phrasing.status = PhrasingStatus.ACTIVE
    else:
        await session.delete(phrasing)
    if entry is not None:
        entry.updated_at = now
    if accept:
        await bump_revision(session)  # the running bots' refresh job notices the change
    await session.flush()
    return phrasing
