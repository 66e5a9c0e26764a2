"""The staff's synonyms file (``kb.synonyms_path``) reaches the matcher the bot uses."""

from __future__ import annotations

from pathlib import Path

import pytest

QUESTION = "how do i zorble an ad"  # "zorble" is in no FAQ entry


@pytest.fixture
def settings_overrides(tmp_path: Path, request: pytest.FixtureRequest) -> dict:
    if request.node.get_closest_marker("no_synonyms"):
        return {}
    path = tmp_path / "synonyms.txt"
    path.write_text("# staff's words\nzorble = post\n", encoding="utf-8")
    return {"kb": {"synonyms_path": str(path)}}


async def test_a_synonym_from_the_file_brings_the_entry(desk):
    user = desk.tg.user(5101, "Ayanda")
    await user.send(QUESTION)
    reply = desk.tg.last_bot_message(5101)
    assert "Is it one of these?" in reply.text
    assert reply.button_texts[0] == "1. How do I post an ad?"


@pytest.mark.no_synonyms
async def test_without_the_file_the_word_is_unknown(desk):
    user = desk.tg.user(5102, "Bongani")
    await user.send(QUESTION)
    assert "I don't know that one yet" in desk.tg.last_bot_message(5102).text


def test_a_missing_file_is_reported_and_the_bot_runs_without(tmp_path, caplog):
    from bot.app import _load_synonyms
    from bot.config import parse_settings

    settings = parse_settings({"kb": {"synonyms_path": "nowhere/synonyms.txt"}}, "<test>", tmp_path)
    assert settings.kb.synonyms_path == tmp_path / "nowhere/synonyms.txt"
    assert _load_synonyms(settings) == {}
    assert "there is no file at" in caplog.text
