"""``helpdesk demo`` plays the whole scripted session offline."""

from __future__ import annotations

import io
import re

from bot.cli import main as cli_main
from bot.demo import main

RULE = "=" * 78


def scenes_of(text: str) -> dict[str, str]:
    """Scene title -> what the scene printed (between its header and the next rule)."""
    parts = text.split(RULE + "\n")
    scenes = {}
    for header, body in zip(parts[1::2], parts[2::2]):
        if header.startswith("Scene "):
            scenes[header.strip()] = body
    return scenes


def test_demo_transcript_covers_every_path(tmp_path):
    out = io.StringIO()
    assert main(keep=str(tmp_path), out=out, out_dir=str(tmp_path / "demo-output")) == 0
    text = out.getvalue()
    scenes = scenes_of(text)
    titles = list(scenes)
    assert [t.split(":")[0] for t in titles] == [f"Scene {n}" for n in range(1, 10)], titles
    first, escalation, ads, feedback, guides, language, kb_edit, mydata, report = scenes.values()
    assert "Telegram refused" not in text
    # the clock: a fixed Monday in November 2026, moving between the steps
    assert "The clock starts on Monday 02 November 2026, 09:00 (Africa/Johannesburg)" in text
    assert "⏱  11 min later: Mon 02 Nov, 09:31" in escalation and "⏱  2 h 35 min later: Tue 03 Nov, 14:50" in ads
    stamps = re.findall(r"^⏱ .*: \w{3} (\d\d) Nov, (\d\d:\d\d)$", text, re.M)
    assert len(stamps) > 20 and stamps == sorted(stamps)  # forward only, all inside November
    # scene 1: the first-time welcome, then questions
    assert "👤 Lerato: /start" in first and "Hello, Lerato" in first and "New here? Here is what I can do" in first
    assert first.count("Did this answer your question?") >= 3  # answers
    assert "Is it one of these?" in first  # a "did you mean"
    assert "I don't know that one yet" in first  # an unknown question
    assert "Glad it helped" in first  # a helpful vote
    assert "only read text" in first and "I don't know the command /frobnicate" in first
    tallies = text[text.index("Question log:"):text.index("Report summary for")]
    summary = "\n".join(tallies.strip().splitlines()[:5])
    assert "answered 5, no_match 1, suggested 2; votes 1" in summary, summary
    # scene 2: escalation to a person in a forum staff chat
    assert "Your case #1 (Payments and featured ads) is with our support team" in escalation
    assert "SayPro support team › #1 · Lerato Mokoena" in escalation
    assert "Thandi from support is on your case #1" in escalation
    assert "💬 Thandi (support, case #1)" in escalation
    assert "(photo) 👤 Lerato (#1): here they are" in escalation
    assert "has been marked as solved" in escalation and "You rated ⭐⭐⭐⭐⭐ (5/5)" in escalation
    assert "· 02 Nov 09:31 claimed" in escalation  # the card shows the demo's time
    assert "Tickets: #1 resolved; rating 5/5; learned phrasings approved 1" in summary
    assert "refused 0" in summary
    # scene 3: an ad flagged, rejected with a reason, fixed, approved; then reported, dismissed
    assert "It contains a phone number (082 123 4567)" in ads
    assert "❌ Rejected by Mo" in ads and "Why: Contact details in text" in ads
    assert "🔁 resubmitted 1×" in ads and "✅ Approved by Mo at 03 Nov 14:50" in ads and "Your ad #1 is live" in ads
    assert "🚩 Report #1 on ad #1: Wrong category" in ads and "✖️ Dismissed by Mo" in ads and "found no breach" in ads
    assert "Ads: #1 approved" in summary
    # scene 4: feedback, rated, answered by a reply to its card in the Feedback topic
    assert "Your feedback #1 is with our team" in feedback and "You rated the help desk ⭐⭐⭐⭐ (4/5)" in feedback
    assert "🤖 → SayPro support team › Feedback:\n     ✍️ Feedback #1" in feedback
    assert "👤 Thandi (in SayPro support team › Feedback): Thank you, Lerato!" in feedback
    assert "Our team answered your feedback #1" in feedback and "Answer to feedback #1 sent to Lerato Mokoena" in feedback
    assert "Feedback: 4/5, answered" in summary
    # scene 5: a guide, two pages
    assert "📷 Photo tips · 1/2" in guides and "📷 Photo tips · 2/2" in guides and "[⬅️ Back]" in guides
    # scene 6: Afrikaans and back
    assert "Van nou af skryf ek in Afrikaans" in language and "Hoe ek kan help" in language
    assert language.rindex("From now on I will write to you in English") > language.rindex("Hoe ek kan help")
    # scene 7: /kb edit in the staff chat changes the very next answer
    before, after = kb_edit.split("✅ moderation-time changed:")
    assert "reviewed within a few hours" in before and "checked within 2 hours" not in before
    assert "Most ads are checked within 2 hours on weekdays" in after and "reviewed within a few hours" not in after
    # scene 8: /mydata, the file named and summed up in one line
    assert "Everything we store about you" in mydata
    assert "📎 the file: saypro-helpdesk-data-5550001-2026-11-12.json" in mydata
    assert "📎 in it: the account of Lerato Mokoena; questions 6, tickets 1, ads 0, reports made 1" in mydata
    assert "strikes 0, penalties 0, feedback 1" in mydata
    assert '"format"' not in text  # not the whole JSON
    # scene 9, last, and the end: the month's report, asked for in the staff chat and saved
    assert titles[-1] == "Scene 9: The manager's report for November 2026, asked for in the staff chat"
    assert "👤 Thandi (in SayPro support team): /report 2026-11" in report
    assert "(document) 📊 Help desk report: November 2026" in report
    end = text[text.index("Report summary for"):].splitlines()
    assert end[0] == "Report summary for November 2026 (the caption staff received):"
    # two moderation rounds: rejected, then resubmitted and approved
    assert "Ads: 2 submitted" in end[2] and "1 approved, 1 rejected" in end[2]
    assert "Approval time: median 2.6 h" in end[2]  # resubmitted 12:15, approved 14:50
    assert "Questions: 8 asked, 6 answered by the KB" in end[3]
    assert "Tickets: 1 opened, 1 resolved" in end[4] and "First response: median 13 min" in end[4]  # 09:20 to 09:33
    assert "Satisfaction: CSAT 100%, mean 5.0 from 1 rating " in end[5]
    assert "1 feedback" in end[6]
    assert "median 0 s" not in text
    report_path = tmp_path / "demo-output" / "report-2026-11.html"
    assert end[-1] == f"HTML report written to {report_path}"
    html = report_path.read_text(encoding="utf-8")
    assert "Help desk report: November 2026" in html and html.count("data:image/png;base64,") == 5


def test_demo_is_the_same_every_time(tmp_path):
    texts = []
    for run in ("a", "b"):
        out = io.StringIO()
        assert main(keep=str(tmp_path / run), out=out, out_dir=str(tmp_path / run / "demo-output")) == 0
        texts.append(out.getvalue().replace(str(tmp_path / run), "<dir>"))
    assert texts[0] == texts[1]


def test_mydata_summary_counts_every_list():
    from bot.demo import summarise

    doc = {"format": "x/1", "user": {"id": 1, "first_name": "Ayanda"}, "questions": [{}, {}], "feedback": []}
    assert summarise(doc) == "the account of Ayanda; questions 2, feedback 0"


def test_demo_through_the_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the report goes to ./demo-output
    assert cli_main(["demo"]) == 0
    text = capsys.readouterr().out
    assert "offline demo" in text and "HTML report written to demo-output/report-2026-11.html" in text
    assert len(list((tmp_path / "demo-output").glob("report-*.html"))) == 1
