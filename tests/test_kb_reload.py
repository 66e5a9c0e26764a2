"""Reloading the knowledge base in a running bot: off the event loop, without the write
lock, incremental for one edit, and never back to an older revision."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.db import ReadOnlyViolation, unit_of_work
from kb import service
from kb.kbfile import EntrySpec, KbDocument, load_kb
from kb.service import bump_revision, import_kb
from tests.support import STAFF_CHAT

QUIRKY = "zorblax quixotic flumph"


class GatedExecutor(ThreadPoolExecutor):
    """The loop's default executor (what ``asyncio.to_thread`` uses), holding back the
    first ``hold`` knowledge-base builds until :attr:`release` is set, and noting the
    thread each build ran in."""

    def __init__(self, hold: int = 1):
        super().__init__(max_workers=4)
        self.hold = hold
        self.release = threading.Event()
        self.submitted = threading.Event()
        self.builds: list[str] = []  # names of the threads the builds ran in

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # asyncio.to_thread submits functools.partial(context.run, func, *args)
        if getattr(fn, "args", ())[:1] != (service.refresh_snapshot,):
            return super().submit(fn, *args, **kwargs)
        held = self.hold > 0
        self.hold -= held

        def build() -> Any:
            if held:
                self.release.wait(timeout=60)
            self.builds.append(threading.current_thread().name)
            return fn(*args, **kwargs)

        self.submitted.set()
        return super().submit(build)


@pytest.fixture
async def gate() -> Any:
    executor = GatedExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    yield executor
    executor.release.set()


async def until(condition: Any) -> None:
    """Wait (on the loop) until ``condition()`` holds; a condition, not a duration."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def big_kb(doc: KbDocument, extra: int) -> KbDocument:
    """The shipped knowledge base plus ``extra`` filler entries of 10 phrasings each."""
    words = "ad post price photo seller buyer refund account password phone delete boost location payment".split()
    fillers = [
        EntrySpec(
            id=f"filler-{i}", title=f"Filler question number {i}", category="general", answer=f"Filler answer {i}.",
            phrasings=tuple(f"{words[(i + j) % len(words)]} {words[(i * j) % len(words)]} filler {i} {j}" for j in range(10)),
        )
        for i in range(extra)
    ]
    return KbDocument(entries=[*doc.entries, *fillers])


def refresh_job(desk: Any) -> Any:
    [job] = desk.app.job_queue.get_jobs_by_name("refresh_kb")
    return job


async def test_updates_are_served_while_a_big_knowledge_base_is_rebuilt(desk, gate):
    """`helpdesk kb import` of a big knowledge base: the rebuild runs in a worker thread
    while the bot goes on answering with the knowledge base it has."""
    user = desk.tg.user(7301, "Ayanda")
    core = desk.app.bot_data["desk"]
    doc, _ = load_kb(core.settings.kb.path)
    target = doc.entries[0]
    doc.entries[0] = dataclasses.replace(target, phrasings=(*target.phrasings, QUIRKY))
    async with unit_of_work(core.sessions) as session:
        await import_kb(session, big_kb(doc, 300), desk.clock())
    before = core.kb

    reload = asyncio.create_task(refresh_job(desk).run(desk.app))
    await until(gate.submitted.is_set)  # the rebuild is handed to a worker thread ...
    await user.send("is it safe to meet a buyer")  # ... and meanwhile an update is served
    assert desk.tg.last_bot_message(7301).text.startswith("How do I meet a buyer or seller safely?")
    await user.send(QUIRKY)
    assert "I don't know" in desk.tg.last_bot_message(7301).text  # the old snapshot, still whole
    assert not reload.done() and core.kb is before

    gate.release.set()
    await reload
    assert gate.builds and threading.main_thread().name not in gate.builds
    assert len(core.kb.entries) == len(doc.entries) + 300
    assert core.kb_version == await desk.scalar("SELECT revision FROM kb_state")
    await user.send(QUIRKY)
    assert desk.tg.last_bot_message(7301).text.startswith(target.title)
    assert desk.tg.errors() == []


async def test_a_slow_reload_never_installs_an_older_knowledge_base(desk, gate):
    """The minute job is still building revision r+1 when a staff edit makes r+2 and
    reloads at once: r+2 is installed, and r+1, finished last, is dropped."""
    user = desk.tg.user(7302, "Bongani")
    thandi = desk.tg.staff(800001, "Thandi", STAFF_CHAT)
    core = desk.app.bot_data["desk"]
    doc, _ = load_kb(core.settings.kb.path)
    target = doc.entries[0]
    doc.entries[0] = dataclasses.replace(target, phrasings=(*target.phrasings, QUIRKY))
    async with unit_of_work(core.sessions) as session:  # e.g. `helpdesk kb import`
        await import_kb(session, doc, desk.clock())
    first = await desk.scalar("SELECT revision FROM kb_state")

    slow = asyncio.create_task(refresh_job(desk).run(desk.app))
    await until(gate.submitted.is_set)
    await thandi.send("/kb edit meet-safely title Meeting people safely", chat_id=STAFF_CHAT)
    assert "The bot uses it" in desk.tg.last_bot_message(STAFF_CHAT).text
    second = await desk.scalar("SELECT revision FROM kb_state")
    assert second > first and core.kb_version == second
    gate.release.set()
    await slow
    assert len(gate.builds) == 2 and core.kb_version == second  # the older build was dropped
    await user.send("is it safe to meet a buyer")
    assert desk.tg.last_bot_message(7302).text.startswith("Meeting people safely")
    await user.send(QUIRKY)  # the edit's reload read the import too
    assert desk.tg.last_bot_message(7302).text.startswith(target.title)
    assert desk.tg.errors() == []


async def test_a_reload_takes_no_write_lock(desk):
    """While another transaction holds SQLite's write lock (a long write, a backup), the
    reload still reads and swaps: it begins a read-only transaction, not BEGIN IMMEDIATE."""
    user = desk.tg.user(7303, "Zanele")
    core = desk.app.bot_data["desk"]
    doc, _ = load_kb(core.settings.kb.path)
    target = doc.entries[0]
    doc.entries[0] = dataclasses.replace(target, phrasings=(*target.phrasings, QUIRKY))
    async with unit_of_work(core.sessions) as session:
        await import_kb(session, doc, desk.clock())
    committed = await desk.scalar("SELECT revision FROM kb_state")
    async with unit_of_work(core.sessions) as writer:
        await bump_revision(writer)  # holds the write lock (SQLite) until the block ends
        await refresh_job(desk).run(desk.app)
        assert core.kb_version == committed  # read beside the writer, which is not committed
    await user.send(QUIRKY)
    assert desk.tg.last_bot_message(7303).text.startswith(target.title)
    # and a read-only unit of work refuses to write rather than quietly taking the lock
    with pytest.raises(ReadOnlyViolation):
        async with unit_of_work(core.sessions, read_only=True) as session:
            await bump_revision(session)
    assert desk.tg.errors() == []


def test_an_incremental_refresh_equals_a_rebuild():
    """One edit, one new entry, one removal: the refreshed snapshot answers exactly like a
    fresh build, and re-uses the untouched entries as they were."""
    from tests.support import ROOT

    doc, _ = load_kb(ROOT / "kb" / "data" / "faq.yaml")
    base = service.build_snapshot(doc)
    entries = list(doc.entries)
    edited = dataclasses.replace(entries[1], title="Where do my ad photos go?", phrasings=(*entries[1].phrasings, "pictures vanish"))
    removed = entries.pop(2)
    entries[1] = edited
    entries.append(EntrySpec(id="new-one", title="Can I pay with vouchers?", category="payments", answer="No.", phrasings=("voucher payment",)))
    changed = KbDocument(entries=entries)

    refreshed = service.refresh_snapshot(base, changed)
    rebuilt = service.build_snapshot(changed)
    assert list(refreshed.entries) == list(rebuilt.entries) and removed.id not in refreshed.entries
    assert refreshed.entries == rebuilt.entries
    assert refreshed.entries[entries[0].id] is base.entries[entries[0].id]  # not re-rendered
    assert refreshed.matcher is not base.matcher and refreshed.specs == rebuilt.specs
    questions = [*(p for e in entries for p in e.phrasings[:2]), "pictures vanish", "voucher", "how do I post", "hello"]
    for question in questions:
        assert refreshed.matcher.match(question) == rebuilt.matcher.match(question), question  # type: ignore[attr-defined]
    # many changes: a rebuild
    many = KbDocument(entries=[dataclasses.replace(e, title=e.title + " (new)") for e in entries])
    assert service.refresh_snapshot(base, many).entries == service.build_snapshot(many).entries
