"""Bad input from users, Telegram, the KB file and the CLI: a clear answer, no lost data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.cli import main
from kb.kbfile import dump_kb, load_kb, parse_kb, validate

STARTER = Path(__file__).resolve().parents[1] / "kb" / "data" / "faq.yaml"
SAFE_MEET = "is it safe to meet a buyer"


async def test_nul_characters_in_names_and_questions(desk):
    """PostgreSQL refuses NUL in text: it is dropped before it reaches any table."""
    user = desk.tg.user(401, "Nul\x00Name", last_name="\x00")
    await user.send("is it safe\x00 to meet a buyer")
    assert desk.tg.last_bot_message(401).text.startswith("How do I meet")
    assert await desk.scalar("SELECT first_name FROM users WHERE id = 401") == "NulName"
    assert await desk.scalar("SELECT text FROM questions") == "is it safe to meet a buyer"
    assert desk.tg.errors() == []


async def test_button_on_an_inline_message_is_refused_politely(desk):
    user = desk.tg.user(402, "Inline")
    query = {"id": "q-inline", "from": user.data, "chat_instance": "x", "data": "v:1:1", "inline_message_id": "AAAA"}
    desk.tg._open_callbacks.add("q-inline")
    await desk.tg.feed({"callback_query": query})
    assert desk.tg.events[-1].who == "toast" and "older message" in desk.tg.events[-1].text
    assert desk.tg.errors() == []


async def test_trailing_newline_in_button_data_is_not_a_vote(desk):
    user = desk.tg.user(403, "Forger")
    await user.send(SAFE_MEET)
    answer = desk.tg.last_bot_message(403)
    await user.press_data("v:1:1\n", answer)
    await user.press_data("c:1:n\n", answer)
    await user.press_data("v:١:1", answer)  # an Arabic-Indic digit
    assert await desk.scalar("SELECT vote FROM questions") is None
    assert [e.text for e in desk.tg.events if e.who == "toast"] == [
        "This button belongs to an older message. Please ask your question again."
    ] * 3


async def test_edited_message_gets_an_explanation(desk):
    user = desk.tg.user(404, "Editor")
    await user.send(SAFE_MEET)
    message = user._message(text="is it safe to meet a seller")
    message["edit_date"] = message["date"] + 5
    await desk.tg.feed({"edited_message": message})
    assert "I only read new messages" in desk.tg.last_bot_message(404).text
    assert await desk.scalar("SELECT count(*) FROM questions") == 1


async def test_group_members_are_not_recorded_as_users(desk):
    desk.tg.add_group(-100888, "Random group")
    member = desk.tg.user(405, "Bystander")
    await member.send("how do I post an ad", chat_id=-100888)
    assert await desk.scalar("SELECT count(*) FROM users") == 0
    assert await desk.scalar("SELECT count(*) FROM questions") == 0


async def test_kb_change_is_seen_despite_an_older_clock(desk):
    """The refresh job follows a revision counter, not timestamps from other hosts."""
    from bot.db import unit_of_work
    from kb.service import import_kb

    core = desk.app.bot_data["desk"]
    doc, _ = load_kb(core.settings.kb.path)
    doc.entries[0] = dataclasses.replace(doc.entries[0], phrasings=(*doc.entries[0].phrasings, "zorblax quixotic flumph"))
    desk.clock.advance(hours=-3)  # the importing machine's clock is behind
    async with unit_of_work(core.sessions) as session:
        await import_kb(session, doc, desk.clock())
    [job] = desk.app.job_queue.get_jobs_by_name("refresh_kb")
    await job.run(desk.app)
    user = desk.tg.user(406, "Skew")
    await user.send("zorblax quixotic flumph")
    assert desk.tg.last_bot_message(406).text.startswith(doc.entries[0].title)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nentires:\n- id: a\n", "no 'entries' list"),
        ("version: 1\n", "no 'entries' list"),
        ("version: 1\nentries: []\n", "the knowledge base has no entries"),
        ("entries:\n- id: a\n  title: T\n  category: '" + "c" * 65 + "'\n  answer: A\n  phrasings: [x, y, z]\n",
         "category is 65 characters, at most 64"),
        ('entries:\n- id: a\n  title: "T\\0x"\n  category: c\n  answer: A\n  phrasings: [x, y, z]\n',
         "title contains the control character U+0000"),
    ],
)
def test_kb_files_that_would_break_the_bot_are_errors(text, message):
    doc, problems = parse_kb(text)
    found = [str(p) for p in problems + validate(doc)]
    assert any(message in p and p.startswith("error") for p in found), found


def test_import_refuses_to_wipe_most_of_the_kb(tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/kb.db"\n[kb]\npath = "{STARTER}"\n')
    assert main(["--config", str(cfg), "kb", "import"]) == 0
    few = tmp_path / "few.yaml"
    doc, _ = load_kb(STARTER)
    doc.entries = [dataclasses.replace(e, followups=()) for e in doc.entries[:3]]  # a truncated file
    few.write_text(dump_kb(doc))
    capsys.readouterr()
    assert main(["--config", str(cfg), "kb", "import", str(few)]) == 1
    assert "would remove 66 of the 69 entries" in capsys.readouterr().err
    target = tmp_path / "out.yaml"
    assert main(["--config", str(cfg), "kb", "export", "--out", str(target)]) == 0
    assert target.read_text() == STARTER.read_text()  # nothing was removed
    assert main(["--config", str(cfg), "kb", "import", "--allow-remove", str(few)]) == 0
    assert "66 removed" in capsys.readouterr().out
