"""The knowledge-base file: the starter KB, validation errors, the canonical form."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.kbfile import KbFileError, dump_kb, load_kb, parse_kb, validate

STARTER = Path(__file__).resolve().parents[1] / "kb" / "data" / "faq.yaml"


def entry(id_="a-b", title="T", phrasings=("how do i x", "x please", "help with x"), answer="Answer.", extra=""):
    lines = [f"- id: {id_}", f"  title: {title}", "  category: posting", f"  answer: {answer}", "  phrasings:"]
    lines += [f"  - {p}" for p in phrasings]
    return "\n".join(lines) + ("\n" + extra if extra else "")


def problems_of(text: str) -> list[str]:
    doc, problems = parse_kb(text)
    return [str(p) for p in problems + validate(doc)]


def test_starter_kb_is_clean_and_covers_the_desk():
    doc, problems = load_kb(STARTER)
    assert [p for p in problems if p.severity == "error"] == []
    assert len(doc.entries) >= 40
    assert all(len(e.phrasings) >= 4 for e in doc.entries)
    categories = {e.category for e in doc.entries}
    for needed in ("posting", "photos", "categories", "prices", "editing", "renewing", "deleting", "moderation",
                   "prohibited", "account", "paid", "safety", "reporting", "contact", "privacy", "support"):
        assert needed in categories
    assert "talk-to-a-person" in doc.by_id()


def test_starter_kb_is_in_canonical_form():
    """What ``kb export`` writes is byte for byte the shipped file (stable round trip)."""
    doc, _ = load_kb(STARTER)
    assert dump_kb(doc) == STARTER.read_text(encoding="utf-8")


def test_dump_parse_round_trip_keeps_everything():
    doc, _ = load_kb(STARTER)
    again, problems = parse_kb(dump_kb(doc))
    assert problems == [] and again.entries == doc.entries


def test_valid_minimal_file():
    assert problems_of("version: 1\nentries:\n" + entry()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("entries:\n" + entry() + "\n" + entry(title="Other"), "error: a-b: the id is used by 2 entries"),
        ("entries:\n" + entry() + "\n" + entry(id_="c-d"), "error: c-d: same title as entry a-b"),
        ("entries:\n" + entry() + "\n" + entry(id_="c-d", title="U", phrasings=("How do I X?", "y", "z")),
         "error: c-d: phrasing 'How do I X?' is also a phrasing of entry a-b"),
        ("entries:\n" + entry(title="''"), "error: a-b: 'title' is empty"),
        ("entries:\n- id: a-b\n  title: T\n  category: c\n  phrasings: [x]", "error: a-b: 'answer' is missing"),
        ("entries:\n- id: a-b\n  title: T\n  category: c\n  answer: A\n  phrasings: []",
         "error: a-b: 'phrasings' must be a non-empty list"),
        ("entries:\n" + entry(id_="Bad_ID"), "'id' must be 1-40 lowercase letters"),
        ("entries:\n" + entry(answer="'" + "word " * 900 + "'"), "answer too long for one Telegram message"),
        ("entries:\n" + entry(extra="  followups:\n  - entry: nowhere"), "follow-up points to a missing entry 'nowhere'"),
        ("entries:\n" + entry(extra="  followups:\n  - entry: a-b"), "a follow-up points to the entry itself"),
        ("entries:\n" + entry(extra="  followups:\n  - label: Site\n    url: javascript:alert(1)"),
         "'url' must start with https://"),
        ("entries:\n" + entry(extra="  followups:\n  - foo: bar"), "must be either {entry: <id>}"),
        ("version: 2\nentries: []", "unsupported version 2"),
        ("entries:\n" + entry(phrasings=("only one",)), "warning: a-b: fewer than 3 phrasings"),
    ],
)
def test_validation_reports(text, message):
    found = problems_of(text)
    assert any(message in p for p in found), found


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(KbFileError) as info:
        parse_kb("entries:\n- id: a\n  title: [unclosed\n", "faq.yaml")
    assert "faq.yaml: not valid YAML at line" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(KbFileError, match="file not found"):
        load_kb(tmp_path / "none.yaml")
