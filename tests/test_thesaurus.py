"""General-English synonyms (kb.thesaurus, WordNet) in the matcher."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from kb import textnorm, thesaurus
from kb.matcher import build_matcher

KB = [
    ("photos", ["how do i add photos to my ad"]),
    ("price", ["what does it cost to post an ad"]),
    ("delete", ["how do i delete my account"]),
]


def stem(word: str) -> str:
    (s,) = textnorm.analyze(word)
    return s


def shipped_table(name: str) -> tuple[int, list[str], list[str]]:
    """(compressed size, lines, headwords) of a table shipped in kb/data."""
    raw = resources.files("kb").joinpath("data", name).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return len(raw), lines, [line.split("\t", 1)[0] for line in lines]


def test_shipped_file_is_small_sorted_and_single_words():
    size, lines, heads = shipped_table(thesaurus.DATA_FILE)
    assert size < 600_000
    assert heads == sorted(heads) and len(heads) == len(set(heads)) > 5000
    for line in lines:
        head, rest = line.split("\t")
        # plain words that the matcher's clean-up leaves as they are (kb.thesaurus relies on it)
        assert textnorm.clean(head) == head and rest and all(textnorm.clean(w) == w != head for w in rest.split())
    assert resources.files("kb").joinpath("data", "WORDNET-LICENSE").read_text().startswith("WordNet Release 3.0")


def test_synonyms_are_stems_both_ways_and_nothing_for_unknown_words():
    assert stem("photo") in thesaurus.synonyms(stem("pics"))
    assert stem("picture") in thesaurus.synonyms(stem("photo"))
    assert stem("advertisement") in thesaurus.synonyms(stem("ad"))
    assert thesaurus.synonyms("xqzzv") == ()
    assert thesaurus.synonyms("") == ()


def test_a_synonym_lifts_the_entry_that_shares_no_word():
    kb = KB + [("pickup", ["can i pick up the item myself"])]
    with_t = build_matcher(kb)
    without = build_matcher(kb, thesaurus=False)
    # "advert" ~ "ad": from below the suggestion threshold (0.15) to a suggestion.
    q = "what is the charge for an advert"
    assert without.match(q, limit=1)[0].score < 0.15
    hit = with_t.match(q, limit=1)[0]
    assert hit.entry_id == "price" and hit.score >= 0.15
    # "pics" ~ "photos": the same entry, answered with more confidence (the
    # margin is small since the definitions and word-vector signals, also off
    # without general English, count unknown words as not similar).
    a, b = with_t.match("how do i add pics", limit=1)[0], without.match("how do i add pics", limit=1)[0]
    assert a.entry_id == b.entry_id == "photos" and a.score > b.score + 0.02


def test_exact_wording_still_beats_a_thesaurus_synonym():
    m = build_matcher([("photo", ["upload a photo"]), ("picture", ["upload a picture"])])
    assert m.match("upload a picture", limit=1)[0].entry_id == "picture"
    assert m.match("upload a photo", limit=1)[0].entry_id == "photo"


def test_thesaurus_setting_survives_incremental_updates():
    m = build_matcher(KB, thesaurus=False).with_entry("fees", ["how much is the fee"])
    n = build_matcher(KB + [("fees", ["how much is the fee"])], thesaurus=False)
    for q in ("what is the charge for an advert", "erase my account", "what is the fee"):
        assert m.match(q) == n.match(q)
    m2 = build_matcher(KB).without_entry("price")
    n2 = build_matcher(KB[:1] + KB[2:])
    assert m2.match("how do i add pics") == n2.match("how do i add pics")


def test_non_english_knowledge_base_is_unaffected():
    kb = [("a", ["как добавить фото к объявлению"]), ("b", ["как удалить аккаунт"])]
    assert build_matcher(kb).match("удалить аккаунт") == build_matcher(kb, thesaurus=False).match("удалить аккаунт")


def test_synonym_credit_fades_as_entries_get_more_phrasings():
    """Entries with many wordings of their own get no thesaurus credit at all."""
    many = [
        ("price", [f"what does it cost to post ad number {i}" for i in range(30)]),
        ("photos", [f"how do i add photos to ad number {i}" for i in range(30)]),
    ]
    q = "what is the charge for an advert"
    assert build_matcher(many).match(q) == build_matcher(many, thesaurus=False).match(q)
    one = [(e, p[:1]) for e, p in many]
    assert build_matcher(one).match(q) != build_matcher(one, thesaurus=False).match(q)


# --- definitions (glosses) ---------------------------------------------------

GLOSS_KB = [
    ("refund", ["how do i get a refund"]),
    ("password", ["i forgot my password"]),
    ("delivery", ["how long does delivery take"]),
    ("seller", ["how do i contact the seller"]),
]


def test_shipped_glosses_file_is_small_sorted_and_plain_words():
    size, lines, heads = shipped_table(thesaurus.GLOSSES_FILE)
    assert size < 1_600_000
    assert heads == sorted(heads) and len(heads) == len(set(heads)) > 20_000
    for line in lines:
        head, rest = line.split("\t")
        assert textnorm.clean(head) == head and rest
        assert all(textnorm.clean(w) == w != head and w not in textnorm.STOPWORDS for w in rest.split())


def test_gloss_rows_hold_the_stems_of_the_definition():
    table = thesaurus.glosses()
    names = {i: s for s, i in table.ids.items()}
    cols, vals = table.row(stem("refund"))
    assert {stem("money"), stem("repay")} <= {names[int(c)] for c in cols}
    assert abs(float((vals * vals).sum()) - 1.0) < 1e-5
    assert len(table.row("xqzzv")[0]) == 0 and len(table.row("")[0]) == 0


def test_a_definition_ranks_the_entry_that_shares_no_word():
    """'money' and 'back' are in the definition of 'refund' ("money returned to a
    payer", "pay back"), 'secret' and 'phrase' in that of 'password'."""
    with_t = build_matcher(GLOSS_KB)
    without = build_matcher(GLOSS_KB, thesaurus=False)
    for q, right in (("i want my money back", "refund"), ("secret phrase lost", "password")):
        assert with_t.match(q, limit=1)[0].entry_id == right
        assert without.match(q, limit=1)[0].entry_id != right
        # A definition ranks; it does not make a confident answer on its own.
        assert with_t.match(q, limit=1)[0].score < 0.15


def test_definitions_survive_incremental_updates():
    """Words the definitions table does not know ('xqzzv') get ids of their own;
    an incrementally updated matcher still equals a rebuild."""
    extra = ("login", ["cannot log in, xqzzv error"])
    m = build_matcher(GLOSS_KB).with_entry(*extra).without_entry("seller")
    n = build_matcher(GLOSS_KB[:3] + [extra])
    for q in ("i want my money back", "xqzzv again", "who is the vendor", "secret phrase lost"):
        assert m.match(q) == n.match(q)
        assert np.allclose(m.signals(q)["gloss"], n.signals(q)["gloss"], rtol=0, atol=1e-12)


def test_knowledge_base_without_content_words_matches_nothing():
    assert build_matcher([("a", ["???"]), ("b", ["🙂"])]).match("i want a refund") == []
    m = build_matcher(GLOSS_KB + [("empty", ["!!!"])])
    for entry_id, _ in GLOSS_KB:
        m = m.without_entry(entry_id)
    assert m.match("i want my money back") == []


def test_a_word_only_removed_entries_had_weighs_as_after_a_rebuild():
    base = [("pw", ["password reset"]), ("del", ["delivery time"]), ("acct", ["delete my account"])]
    m = build_matcher(base + [("tmp", ["refunding"])]).without_entry("tmp")
    n = build_matcher(base)
    for q in ("refund my password", "refund delivery"):
        assert np.allclose(m.signals(q)["gloss"], n.signals(q)["gloss"], rtol=0, atol=1e-12)
        assert m.match(q) == n.match(q)


def test_repeated_question_words_count_once_in_the_definitions_signal():
    m = build_matcher(GLOSS_KB)
    once = m.signals("money secret phrase")["gloss"]
    assert np.allclose(m.signals("money " * 40 + "secret phrase")["gloss"], once, rtol=0, atol=1e-12)
    assert once[1] > 0  # the password entry, reached only through "secret phrase"


def test_sibling_matchers_do_not_mix_up_new_words():
    """Two matchers derived from one may give the same new token id to different
    words; each must still equal its own rebuild."""
    parent = build_matcher(GLOSS_KB)
    a = parent.with_entry("a", ["xqzzv refund"])
    b = parent.with_entry("b", ["wvkkq password"])
    for derived, extra in ((a, ("a", ["xqzzv refund"])), (b, ("b", ["wvkkq password"]))):
        rebuilt = build_matcher(GLOSS_KB + [extra])
        for q in ("xqzzv", "wvkkq", "i want my money back"):
            assert derived.match(q) == rebuilt.match(q)


# --- word vectors ------------------------------------------------------------

VECTOR_KB = [
    ("alarm", ["set an alarm"]),
    ("weather", ["is it going to rain"]),
    ("taxi", ["book a taxi"]),
    ("refund", ["how do i get a refund"]),
    ("password", ["i forgot my password"]),
]


def test_shipped_word_vectors_are_small_and_keyed_by_stems():
    raw = resources.files("kb").joinpath("data", thesaurus.VECTORS_FILE).read_bytes()
    assert len(raw) < 1_600_000
    table = thesaurus.word_vectors()
    assert len(table.ids) > 20_000 and table.matrix.shape == (len(table.ids), 64)
    assert np.allclose(np.linalg.norm(table.matrix, axis=1), 1.0, atol=1e-5)
    assert not set(table.ids) & textnorm.STOPWORDS
    # keys are the matcher's stems: the stems of common words are found as they are
    for word in ("pictures", "refunds", "deleted", "passwords", "weather", "running"):
        assert stem(word) in table.ids


def test_related_words_have_close_vectors():
    table = thesaurus.word_vectors()

    def cos(a: str, b: str) -> float:
        return float(table.matrix[table.ids[stem(a)]] @ table.matrix[table.ids[stem(b)]])

    assert cos("wake", "alarm") > cos("wake", "price") + 0.3
    assert cos("storm", "rain") > cos("storm", "password") + 0.3
    assert cos("refund", "payment") > cos("refund", "weather") + 0.3


def test_word_vectors_rank_and_lift_the_related_entry(monkeypatch):
    import kb.matcher as matcher_module

    everything = build_matcher(VECTOR_KB)
    no_english = build_matcher(VECTOR_KB, thesaurus=False)
    monkeypatch.setattr(matcher_module, "VECTOR_WEIGHT", 0.0)
    no_vectors = build_matcher(VECTOR_KB)
    # "storm" shares no word and no definition word with "is it going to rain"
    assert everything.match("will there be a storm", limit=1)[0].entry_id == "weather"
    assert no_english.match("will there be a storm", limit=1)[0].entry_id != "weather"
    # "wake" ~ "alarm": the same entry wins, with clearly more confidence
    a = everything.match("wake me up at seven", limit=1)[0]
    b = no_vectors.match("wake me up at seven", limit=1)[0]
    assert a.entry_id == b.entry_id == "alarm" and a.score > b.score + 0.05
    assert everything._weights["vectors"] > 0 and no_vectors._weights["vectors"] == 0


def test_unknown_words_keep_a_question_unknown():
    """One known word among made-up ones ("how do i zorble an ad") must not look
    like a close match to every entry about that word: in the definitions and
    word-vector signals the unknown words count as not similar."""
    m = build_matcher(VECTOR_KB + [("post", ["how do i post an ad"]), ("report", ["how do i report an ad"])])
    sig = m.signals("zorble ad")
    known = m.signals("ad")
    for name in ("gloss", "vectors"):
        assert sig[name].max() < 0.75 * known[name].max()
    assert m.signals("zorble frumious")["vectors"].max() == 0.0
