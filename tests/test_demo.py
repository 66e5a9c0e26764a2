"""``helpdesk demo`` plays the whole scripted session offline."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from bot.cli import main as cli_main
from bot.db import utcnow
from bot.demo import main
from reports import month_of


def test_demo_transcript_covers_every_path(tmp_path):
    out = io.StringIO()
    assert main(keep=str(tmp_path), out=out, out_dir=str(tmp_path / "demo-output")) == 0
    text = out.getvalue()
    assert "👤 Lerato: /start" in text and "Hello, Lerato" in text
    assert text.count("Did this answer your question?") >= 3  # answers
    assert "Is it one of these?" in text  # a "did you mean"
    assert "I don't know that one yet" in text  # an unknown question
    assert "Glad it helped" in text  # a helpful vote
    assert "only read text" in text and "I don't know the command /frobnicate" in text
    assert "Telegram refused" not in text
    tallies = text[text.index("Question log:"):text.index("Report summary for")]
    summary = "\n".join(tallies.strip().splitlines()[:4])
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
    # scene 4 and the end: this month's report, asked for in the staff chat and saved
    month = month_of(utcnow(), ZoneInfo("Africa/Johannesburg"))
    assert f"👤 Thandi (in SayPro support team): /report {month.label}" in text
    assert f"(document) 📊 Help desk report: {month.title()}" in text
    end = text[text.index("Report summary for"):].splitlines()
    assert end[0] == f"Report summary for {month.title()} (the caption staff received):"
    # two moderation rounds: rejected, then resubmitted and approved
    assert "Ads: 2 submitted" in end[2] and "1 approved, 1 rejected" in end[2]
    assert "Questions: 6 asked, 4 answered by the KB" in end[3]
    assert "Tickets: 1 opened, 1 resolved" in end[4] and "Satisfaction: CSAT 100%, mean 5.0 from 1 rating " in end[5]
    report = tmp_path / "demo-output" / f"report-{month.label}.html"
    assert end[-1] == f"HTML report written to {report}"
    html = report.read_text(encoding="utf-8")
    assert f"Help desk report: {month.title()}" in html and html.count("data:image/png;base64,") == 5


def test_demo_through_the_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the report goes to ./demo-output
    assert cli_main(["demo"]) == 0
    text = capsys.readouterr().out
    assert "offline demo" in text and "HTML report written to demo-output/report-" in text
    assert len(list((tmp_path / "demo-output").glob("report-*.html"))) == 1
