"""The matcher's general-language prior (kb.english): how rare a word is in
English decides between entries that a tiny knowledge base cannot tell apart,
and real English words are not "corrected" into knowledge-base words."""

from __future__ import annotations

import numpy as np

from kb import charvec, english
from kb.matcher import build_matcher


def test_english_rarity_orders_words_and_ngrams():
    assert english.word_rarity("the") < english.word_rarity("tell") < english.word_rarity("alarm")
    assert english.word_rarity("qzxvbnwq") == english.UNSEEN_RARITY
    assert english.MIN_RARITY <= english.word_rarity("the")
    # n-grams of a very common word are common; most of a nonsense word's
    # are unseen in English words
    the = english.gram_rarity(charvec.ngram_hashes("the"))
    nonsense = english.gram_rarity(charvec.ngram_hashes("qzxqj"))
    assert the.max() < 2.0
    assert np.median(nonsense) == english.UNSEEN_RARITY


def test_rare_shared_word_beats_common_shared_word():
    # One phrasing per entry: both entries share one word with the query, the
    # knowledge base's own IDF cannot tell them apart; "jazz" is the
    # informative one.
    m = build_matcher([("news", ["tell me the news"]), ("jazz", ["put on the jazz station"])])
    hits = m.match("tell jazz", limit=2)
    assert [h.entry_id for h in hits] == ["jazz", "news"]


def test_real_word_is_not_corrected_into_a_knowledge_base_word():
    m = build_matcher([("cart", ["view my shopping cart"]), ("hours", ["opening hours"])])
    # "card" is an English word, not a typo of "cart": no word evidence.
    sig = m.signals("i lost my card")
    assert sig is not None and not sig["word"].any()
    # A misspelling that is no English word is still corrected.
    sig = m.signals("whats in my shoping kart")
    assert sig is not None and sig["word"][0] > 0.0
    assert m.match("whats in my shoping kart", limit=1)[0].entry_id == "cart"


def test_knowledge_base_outside_the_word_list_still_matches():
    # Words missing from the English list all get the same prior: no effect.
    m = build_matcher(
        [
            ("delivery", ["как отследить доставку заказа"]),
            ("refund", ["как вернуть деньги за товар"]),
        ]
    )
    assert m.match("отследить доставку", limit=1)[0].entry_id == "delivery"
    assert m.match("вернуть деньги", limit=1)[0].entry_id == "refund"


def test_update_equals_rebuild_with_the_prior():
    base = [("a", ["tell me the news"]), ("b", ["put on the jazz station"])]
    edited = build_matcher(base).with_entry("c", ["set an alarm for six", "wake me up at six"])
    rebuilt = build_matcher([*base, ("c", ["set an alarm for six", "wake me up at six"])])
    for q in ("tell jazz", "alarm at six", "news please", "wake up"):
        assert edited.match(q, limit=3) == rebuilt.match(q, limit=3)


def test_a_removed_entry_leaves_no_trace_in_the_prior():
    """A word's English rarity is that of its most common spelling in the live
    entries: once the entry that said "refund" is gone, the token is weighed as
    "refunding" again, as in a rebuild."""
    base = [("pw", ["password reset"]), ("policy", ["refunding policy"]), ("ship", ["shipping times"])]
    m = build_matcher(base + [("tmp", ["refund"])]).without_entry("tmp")
    n = build_matcher(base)
    for q in ("refund password", "refunding", "refund policy shipping"):
        assert m.match(q) == n.match(q)
        for name, values in n.signals(q).items():
            assert np.allclose(m.signals(q)[name], values, rtol=0, atol=1e-12), name


def test_typo_correction_forgets_the_words_of_removed_entries():
    """A typo is corrected against the words of the live entries: 'refundng' is
    one edit from 'refunding', which only a removed entry had."""
    base = [("pw", ["password reset"]), ("policy", ["refund policy"]), ("ship", ["shipping times"])]
    m = build_matcher(base + [("tmp", ["refunding shipments"])]).without_entry("tmp")
    n = build_matcher(base)
    for q in ("refundng", "refundin", "refunddng"):
        assert m.match(q) == n.match(q)


def test_any_sequence_of_updates_equals_a_rebuild():
    """Random edits, additions and removals on knowledge bases made of the starter
    KB's phrasings (some entries with one phrasing, so the definitions signal is on):
    the updated matcher answers every question, typos included, exactly as a
    matcher built from scratch on the same entries."""
    import random
    from pathlib import Path

    from kb.kbfile import load_kb

    doc, _ = load_kb(Path(__file__).resolve().parents[1] / "kb" / "data" / "faq.yaml")
    texts = sorted({p for e in doc.entries for p in (e.title, *e.phrasings)})
    rng = random.Random(20261205)

    def typo(text: str) -> str:
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1 :]

    questions = rng.sample(texts, 60)
    questions += [typo(q) for q in questions] + ["xqzzv", "refund my money", "olly stop"]
    for _ in range(3):
        kb = {f"e{i}": rng.sample(texts, rng.randint(1, 3)) for i in range(25)}
        m = build_matcher(kb.items())
        for _ in range(8):
            if rng.random() < 0.5:
                gone = rng.choice(sorted(kb))
                del kb[gone]
                m = m.without_entry(gone)
            else:
                entry = f"e{rng.randrange(30)}"
                kb[entry] = rng.sample(texts, rng.randint(1, 3))
                m = m.with_entry(entry, kb[entry])
        n = build_matcher([(e, kb[e]) for e in m.entry_ids])
        for q in questions:
            assert m.match(q, limit=3) == n.match(q, limit=3), q
