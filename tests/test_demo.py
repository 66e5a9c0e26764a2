"""``helpdesk demo`` plays the whole scripted session offline."""

from __future__ import annotations

import io

from bot.cli import main as cli_main
from bot.demo import main


def test_demo_transcript_covers_every_path(tmp_path):
    out = io.StringIO()
    assert main(keep=str(tmp_path), out=out) == 0
    text = out.getvalue()
    assert "👤 Thandi: /start" in text and "Hello, Thandi" in text
    assert text.count("Did this answer your question?") >= 3  # answers
    assert "Is it one of these?" in text  # a "did you mean"
    assert "I don't know that one yet" in text  # an unknown question
    assert "Glad it helped" in text  # a helpful vote
    assert "only read text" in text and "I don't know the command /frobnicate" in text
    assert "Telegram refused" not in text
    log_line = text.strip().splitlines()[-1]
    assert "answered 3" in log_line or "answered 4" in log_line, log_line
    assert "suggested 1" in log_line and "no_match 1" in log_line and "votes 1" in log_line


def test_demo_through_the_cli(capsys):
    assert cli_main(["demo"]) == 0
    assert "offline demo" in capsys.readouterr().out
