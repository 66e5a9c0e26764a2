"""Importing and exporting the knowledge base, on both databases, and the CLI around it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.cli import main
from bot.db import make_engine, make_sessionmaker, unit_of_work
from kb.kbfile import dump_kb, load_kb
from kb.service import export_kb, import_kb, load_snapshot

STARTER = Path(__file__).resolve().parents[1] / "kb" / "data" / "faq.yaml"


async def fresh_sessions(database):
    from tests.support import wipe

    await wipe(database)
    engine = make_engine(database.url, schema=database.schema)
    return engine, make_sessionmaker(engine)


async def test_import_is_idempotent_and_round_trips(database):
    from tests.support import FakeClock

    clock = FakeClock()
    engine, sessions = await fresh_sessions(database)
    doc, _ = load_kb(STARTER)
    try:
        async with unit_of_work(sessions) as s:
            first = await import_kb(s, doc, clock())
        assert len(first.added) == len(doc.entries) and not first.updated and not first.removed
        stamps = await _stamps(sessions)
        clock.advance(hours=1)
        async with unit_of_work(sessions) as s:
            second = await import_kb(s, doc, clock())
        assert not second.changed and second.unchanged == len(doc.entries)
        assert await _stamps(sessions) == stamps  # nothing was rewritten
        async with unit_of_work(sessions) as s:
            exported = await export_kb(s)
        assert dump_kb(exported) == STARTER.read_text(encoding="utf-8")
    finally:
        await engine.dispose()


async def _stamps(sessions):
    from sqlalchemy import text

    async with sessions() as s:
        entries = (await s.execute(text("SELECT id, updated_at FROM kb_entries ORDER BY id"))).all()
        phrasings = (await s.execute(text("SELECT id, text FROM kb_phrasings ORDER BY id"))).all()
    return entries, phrasings


async def test_edited_file_updates_in_place(database):
    from tests.support import FakeClock

    clock = FakeClock()
    engine, sessions = await fresh_sessions(database)
    doc, _ = load_kb(STARTER)
    try:
        async with unit_of_work(sessions) as s:
            await import_kb(s, doc, clock())
        first, second, *rest = doc.entries
        edited = dataclasses.replace(
            first, answer=first.answer + "\n\nNew sentence.", phrasings=first.phrasings[1:] + ("brand new way to ask",)
        )
        new_entry = dataclasses.replace(second, id="a-new-entry", title="A brand new entry?", phrasings=("zebra question one", "zebra question two", "zebra three"))
        doc.entries = [edited, *rest[:-1], new_entry]  # second and the last entry removed
        clock.advance(minutes=5)
        async with unit_of_work(sessions) as s:
            report = await import_kb(s, doc, clock())
        assert report.updated[0] == first.id
        assert report.added == ["a-new-entry"]
        assert sorted(report.removed) == sorted([second.id, rest[-1].id])
        async with unit_of_work(sessions) as s:
            exported = await export_kb(s)
            snapshot = await load_snapshot(s)
        assert exported.entries == doc.entries
        assert snapshot.matcher.match("brand new way to ask")[0].entry_id == first.id
        assert snapshot.matcher.match("zebra question one")[0].entry_id == "a-new-entry"
        assert second.id not in snapshot.entries
    finally:
        await engine.dispose()


def _config(tmp_path: Path, kb_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/cli.db"\n[kb]\npath = "{kb_path}"\n')
    return cfg


def test_cli_validate_import_export(tmp_path, capsys):
    cfg = _config(tmp_path, STARTER)
    assert main(["--config", str(cfg), "kb", "validate"]) == 0
    assert ": OK" in capsys.readouterr().out
    assert main(["--config", str(cfg), "kb", "import"]) == 0
    out = capsys.readouterr().out
    assert "added" in out and "0 updated" in out
    assert main(["--config", str(cfg), "kb", "import"]) == 0
    assert "0 added, 0 updated, 0 removed" in capsys.readouterr().out
    target = tmp_path / "out.yaml"
    assert main(["--config", str(cfg), "kb", "export", "--out", str(target)]) == 0
    assert target.read_text() == STARTER.read_text()


def test_cli_validate_reports_errors_and_import_refuses(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nentries:\n- id: a\n  title: A\n  category: c\n  answer: ''\n  phrasings: [x, y, z]\n"
        "  followups:\n  - entry: ghost\n"
    )
    cfg = _config(tmp_path, bad)
    assert main(["--config", str(cfg), "kb", "validate"]) == 1
    err = capsys.readouterr().err
    assert "error: a: 'answer' is empty" in err and "missing entry 'ghost'" in err
    assert main(["--config", str(cfg), "kb", "import"]) == 1
    assert "not imported, 2 errors" in capsys.readouterr().err


def test_cli_migrate(tmp_path, capsys):
    cfg = _config(tmp_path, STARTER)
    assert main(["--config", str(cfg), "migrate"]) == 0
    from bot.migrate import head_revision

    assert f"database at {head_revision()}" in capsys.readouterr().out
    assert main(["--config", str(cfg), "migrate", "--revision", "0001"]) == 0
    assert "database at 0001" in capsys.readouterr().out
    assert main(["--config", str(cfg), "migrate", "--revision", "base"]) == 0
    assert "database at base (empty)" in capsys.readouterr().out
    assert main(["--config", str(cfg), "migrate", "--revision", "nonsense"]) == 2
    assert (tmp_path / "cli.db").exists()


async def test_staff_edits_after_a_cli_import_survive_a_restart(database, tmp_path):
    """README's workflow: edit the team's KB file, ``helpdesk kb import`` while the bot
    runs, staff then fix an entry with /kb edit, the bot restarts (an upgrade, a reboot).
    The file the CLI imported is the one imported last: the restart must not import it
    again over the staff's edit."""
    import asyncio

    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import STAFF_CHAT, FakeClock, make_settings, wipe

    await wipe(database)
    faq = tmp_path / "faq.yaml"
    faq.write_text(STARTER.read_text(encoding="utf-8"), encoding="utf-8")
    settings = make_settings(database, kb={"path": str(faq)})
    cfg = tmp_path / "config.toml"
    schema = f'schema = "{database.schema}"\n' if database.schema else ""
    cfg.write_text(f'[database]\nurl = "{database.url}"\n{schema}[kb]\npath = "{faq}"\n', encoding="utf-8")
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    thandi = tg.staff(800001, "Thandi", STAFF_CHAT)
    user = tg.user(5190, "Zodwa")
    app = build_app(settings, request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        # the team edits its file and imports it while the bot runs
        text = faq.read_text(encoding="utf-8")
        faq.write_text(text.replace("title: How do I meet a buyer or seller safely?", "title: Meeting a buyer or seller safely"), encoding="utf-8")
        assert await asyncio.to_thread(main, ["--config", str(cfg), "kb", "import"]) == 0
        # a staff member then fixes the entry from the staff chat
        await thandi.send("/kb edit meet-safely title Meeting buyers and sellers safely", chat_id=STAFF_CHAT)
        assert "meet-safely changed" in tg.last_bot_message(STAFF_CHAT).text
    clock.advance(minutes=10)
    app = build_app(settings, request=tg, clock=clock)  # the restart
    tg.attach(app)
    async with running(app):
        await user.send("is it safe to meet a buyer")
        assert tg.last_bot_message(5190).text.startswith("Meeting buyers and sellers safely")


async def test_importing_another_file_by_name_is_not_undone_by_a_restart(database, tmp_path):
    """``helpdesk kb import FILE`` with a file that is not ``kb.path`` (README: export,
    edit the copy, import it): the restart must not import ``kb.path`` again over it (the
    file the bot imports on start did not change since it was imported last)."""
    import asyncio

    from bot.app import build_app, running
    from bot.fake_telegram import FakeTelegram
    from tests.support import STAFF_CHAT, FakeClock, make_settings, wipe

    await wipe(database)
    faq = tmp_path / "faq.yaml"  # kb.path: imported on the first start
    faq.write_text(STARTER.read_text(encoding="utf-8"), encoding="utf-8")
    settings = make_settings(database, kb={"path": str(faq)})
    cfg = tmp_path / "config.toml"
    schema = f'schema = "{database.schema}"\n' if database.schema else ""
    cfg.write_text(f'[database]\nurl = "{database.url}"\n{schema}[kb]\npath = "{faq}"\n', encoding="utf-8")
    clock = FakeClock()
    tg = FakeTelegram(clock=lambda: clock.now.timestamp())
    tg.add_group(STAFF_CHAT, "Support staff")
    user = tg.user(5190, "Zodwa")
    app = build_app(settings, request=tg, clock=clock)
    tg.attach(app)
    async with running(app):
        # the team edits a copy of its knowledge base and imports that copy by name
        edited = tmp_path / "edited.yaml"
        text = faq.read_text(encoding="utf-8")
        edited.write_text(text.replace("title: How do I meet a buyer or seller safely?", "title: Meeting a buyer or seller safely"), encoding="utf-8")
        assert await asyncio.to_thread(main, ["--config", str(cfg), "kb", "import", str(edited)]) == 0
    clock.advance(minutes=10)
    app = build_app(settings, request=tg, clock=clock)  # the restart: kb.path is as it was imported on the first start
    tg.attach(app)
    async with running(app):
        await user.send("is it safe to meet a buyer")
        assert tg.last_bot_message(5190).text.startswith("Meeting a buyer or seller safely")
