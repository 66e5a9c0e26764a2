"""``helpdesk demo`` plays the whole scripted session offline."""

from __future__ import annotations

import io

from bot.cli import main as cli_main
from bot.demo import main


def test_demo_transcript_covers_every_path(tmp_path):
    out = io.StringIO()
    assert main(keep=str(tmp_path), out=out) == 0
    text = out.getvalue()
    assert "👤 Lerato: /start" in text and "Hello, Lerato" in text
    assert text.count("Did this answer your question?") >= 3  # answers
    assert "Is it one of these?" in text  # a "did you mean"
    assert "I don't know that one yet" in text  # an unknown question
    assert "Glad it helped" in text  # a helpful vote
    assert "only read text" in text and "I don't know the command /frobnicate" in text
    assert "Telegram refused" not in text
    summary = "\n".join(text.strip().splitlines()[-4:])
    assert "answered 3, no_match 1, suggested 2; votes 1" in summary, summary
    # scene 2: escalation to a person in a forum staff chat
    assert "Your case #1 (Payments and featured ads) is with our support team" in text
    assert "SayPro support team › #1 · Lerato Mokoena" in text
    assert "Thandi from support is on your case #1" in text
    assert "💬 Thandi (support, case #1)" in text
    assert "(photo) 👤 Lerato (#1): here they are" in text
    assert "has been marked as solved" in text and "You rated ⭐⭐⭐⭐⭐ (5/5)" in text
    assert "Tickets: #1 resolved; rating 5/5; learned phrasings approved 1" in summary
    assert "refused 0" in summary
    # scene 3: an ad flagged, rejected with a reason, fixed, approved
    assert "It contains a phone number (082 123 4567)" in text
    assert "❌ Rejected by Mo" in text and "Why: Contact details in text" in text
    assert "🔁 resubmitted 1×" in text and "✅ Approved by Mo" in text and "Your ad #1 is live" in text
    assert "Ads: #1 approved" in text


def test_demo_through_the_cli(capsys):
    assert cli_main(["demo"]) == 0
    assert "offline demo" in capsys.readouterr().out
