"""Behavioural tests for kb.matcher / kb.textnorm (plain sync pytest)."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest

from kb import textnorm
from kb.matcher import Hit, build_matcher

KB = [
    (
        "post_ad",
        [
            "How do I post an ad?",
            "How can I create a new listing?",
            "I want to sell something, where do I start?",
            "Publishing an advert",
        ],
    ),
    (
        "photos",
        [
            "How do I add photos to my ad?",
            "Can I upload more pictures?",
            "My images are not showing in the listing",
            "What is the maximum number of photos?",
        ],
    ),
    (
        "delete_ad",
        [
            "How do I delete my ad?",
            "Remove my listing",
            "I sold the item, how do I take the advert down?",
        ],
    ),
    (
        "edit_ad",
        [
            "How can I edit my ad?",
            "Change the description of my listing",
            "Update the text of an advert",
        ],
    ),
    (
        "prices",
        [
            "How much does it cost to post an ad?",
            "Is posting free?",
            "What are the prices for premium listings?",
            "How much is a featured ad?",
        ],
    ),
    (
        "login",
        [
            "I can't log in to my account",
            "I forgot my password",
            "How do I reset my password?",
            "Login does not work",
        ],
    ),
    (
        "scams",
        [
            "I think a buyer is trying to scam me",
            "How do I report a fraudulent user?",
            "Someone asked me to pay by gift card, is this a scam?",
            "How to recognise fraud",
        ],
    ),
    (
        "contact_seller",
        [
            "How do I contact the seller?",
            "Send a message to the advertiser",
            "The seller does not answer my messages",
        ],
    ),
    (
        "delete_account",
        [
            "How do I delete my account?",
            "Close my profile permanently",
            "I want to remove all my data",
        ],
    ),
]


@pytest.fixture(scope="module")
def matcher():
    return build_matcher(KB)


def _top(matcher, text):
    hits = matcher.match(text)
    assert hits, f"no hit for {text!r}"
    return hits[0]


# --- API shape ---------------------------------------------------------------


def test_api_shape(matcher):
    assert len(matcher) == len(KB)
    assert list(matcher.entry_ids) == [e for e, _ in KB]
    hits = matcher.match("how do i delete my ad")
    assert isinstance(hits, list)
    assert all(isinstance(h, Hit) for h in hits)
    assert hits[0] == ("delete_ad", hits[0].score)
    assert isinstance(hits[0].entry_id, str)
    assert isinstance(hits[0].score, float)


def test_matcher_is_immutable(matcher):
    with pytest.raises(AttributeError):
        matcher.entry_ids = ()
    with pytest.raises(AttributeError):
        matcher.foo = 1


def test_build_accepts_generators_and_duplicates():
    m = build_matcher((eid, iter(ps)) for eid, ps in [("a", ["reset password"]), ("a", ["forgot password"])])
    assert len(m) == 1
    assert m.match("forgot my password")[0].entry_id == "a"


# --- matching quality ------------------------------------------------------


@pytest.mark.parametrize("entry_id,phrasings", KB)
def test_exact_phrasing_matches_with_high_score(matcher, entry_id, phrasings):
    for phrasing in phrasings:
        hit = _top(matcher, phrasing)
        assert hit.entry_id == entry_id, phrasing
        assert hit.score >= 0.6, (phrasing, hit)


@pytest.mark.parametrize(
    "query,expected",
    [
        ("how do i delet my add", "delete_ad"),
        ("how do i delte my ad", "delete_ad"),
        ("i forgot my pasword", "login"),
        ("how to uplod more pictres", "photos"),
        ("is this a scamm", "scams"),
    ],
)
def test_typos(matcher, query, expected):
    assert _top(matcher, query).entry_id == expected


@pytest.mark.parametrize(
    "query,expected",
    [
        ("my ad delete how do i", "delete_ad"),
        ("password reset", "login"),
        ("pictures more upload can i", "photos"),
    ],
)
def test_word_order(matcher, query, expected):
    assert _top(matcher, query).entry_id == expected


@pytest.mark.parametrize(
    "query,expected",
    [
        ("HOW DO I DELETE MY AD???", "delete_ad"),
        ("I cant log in", "login"),
        ("I cannot login", "login"),
        ("what’s the price of a featured ad", "prices"),
        ("delete my account", "delete_account"),
        ("remove my listing please", "delete_ad"),
    ],
)
def test_normalisation_variants(matcher, query, expected):
    assert _top(matcher, query).entry_id == expected


def test_html_in_query(matcher):
    hits = matcher.match("<b>price</b> & stuff")
    assert isinstance(hits, list)
    assert hits and hits[0].entry_id == "prices"
    assert isinstance(matcher.match("</a>"), list)
    assert isinstance(matcher.match("<script>alert('x')</script>"), list)


def test_unrelated_scores_clearly_lower(matcher):
    related = _top(matcher, "how do I reset my password").score
    unrelated = matcher.match("what is the weather on mars")
    unrelated_score = unrelated[0].score if unrelated else 0.0
    assert unrelated_score < 0.3
    assert related - unrelated_score >= 0.4


# --- edge cases ------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", "?!...", "¯\\_(ツ)_/¯", "---", "\u200b\u200e"])
def test_empty_like_input_returns_empty(matcher, text):
    assert matcher.match(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Как удалить объявление?",
        "كيف أحذف إعلاني؟",
        "如何删除我的广告",
        "😀😀😀",
        "delete 😀 my 🎉 ad",
        "\u202edelete my ad\u202c",
        "del\u200bete my ad",
        "\x00delete\x00my\x00ad",
        "ａｄ ｄｅｌｅｔｅ",
        "é" * 50,
        "\ud800",  # lone surrogate
        "a" * 10_000,
    ],
)
def test_weird_input_does_not_raise(matcher, text):
    hits = matcher.match(text)
    assert isinstance(hits, list)
    for h in hits:
        assert 0.0 <= h.score <= 1.0


def test_zero_width_and_bidi_marks_are_ignored(matcher):
    assert _top(matcher, "del\u200bete my \u200ead").entry_id == "delete_ad"


def test_long_message_is_fast(matcher):
    msg = ("Hello, I have a question about my account and the photos of my ad, "
           "also the price, and I think someone tried to scam me. ") * 40
    msg = msg[:4000]
    assert len(msg) == 4000
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        hits = matcher.match(msg)
        best = min(best, time.perf_counter() - t0)
    assert isinstance(hits, list)
    assert best < 0.020, f"{best * 1000:.1f} ms"


def test_long_message_is_fast_on_large_kb():
    words = "account ad advert listing photo price password seller buyer item message".split()
    kb = [
        (f"e{i}", [f"{words[i % len(words)]} question {i} {words[(i * 7) % len(words)]} topic{i}"
                   for _ in range(3)] + [f"how to do thing{i} with {words[(i * 3) % len(words)]}"])
        for i in range(500)
    ]
    m = build_matcher(kb)
    msg = (" ".join(words) + " ") * 60
    msg = msg[:4000]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        m.match(msg)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.020, f"{best * 1000:.1f} ms"


def test_empty_knowledge_base():
    m = build_matcher([])
    assert len(m) == 0
    assert m.match("how do i delete my ad") == []


def test_entry_without_usable_phrasings():
    m = build_matcher([("a", []), ("b", ["?!"]), ("c", ["reset password"])])
    assert len(m) == 3
    assert m.match("reset my password")[0].entry_id == "c"


def test_one_entry_kb():
    m = build_matcher([("only", ["How do I reset my password?"])])
    hit = _top(m, "reset password")
    assert hit.entry_id == "only"
    assert hit.score >= 0.5
    unrelated = m.match("what is the weather on mars")
    assert unrelated == [] or unrelated[0].score < 0.3


def test_stopword_only_phrasings_still_match():
    m = build_matcher([("who", ["Who are you?"]), ("pw", ["reset password"])])
    assert _top(m, "who are you").entry_id == "who"


# --- score invariants ------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "how do i delete my ad",
        "ad",
        "my account",
        "photos price scam login",
        "how much does a listing cost",
    ],
)
def test_scores_sorted_bounded_unique(matcher, query):
    for limit in (1, 2, 3, 5, 20):
        hits = matcher.match(query, limit=limit)
        assert len(hits) <= limit
        scores = [h.score for h in hits]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)
        ids = [h.entry_id for h in hits]
        assert len(ids) == len(set(ids))
        assert set(ids) <= set(matcher.entry_ids)


def test_limit_respected(matcher):
    assert len(matcher.match("my ad account photos price", limit=2)) <= 2
    assert matcher.match("my ad", limit=0) == []
    assert len(matcher.match("my ad listing account", limit=100)) <= len(KB)


def test_clear_winner_beats_tie():
    clear = build_matcher([("a", ["reset password"]), ("b", ["delete account"])])
    tie = build_matcher([("a", ["reset password"]), ("b", ["reset password"])])
    assert _top(clear, "reset password").score > _top(tie, "reset password").score


def test_thread_safety(matcher):
    queries = [p for _, ps in KB for p in ps] + ["how do i delet my add", "uplod pictres"]
    expected = {q: matcher.match(q) for q in queries}
    errors: list[object] = []

    def worker():
        try:
            for _ in range(20):
                for q in queries:
                    assert matcher.match(q) == expected[q]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- textnorm --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Don't", "do not"),
        ("I'm here", "i am here"),
        ("what's up", "what is up"),
        ("can't", "can not"),
        ("won’t", "will not"),
        ("Café NAÏVE", "cafe naive"),
        ("del\u200bete", "delete"),
        ("a\x00b", "a b"),
        ("<b>price</b>", "b price b"),
        ("ｆｕｌｌ　ｗｉｄｔｈ", "full width"),
        ("user's account", "user account"),
        ("2FA code 1234", "2fa code 1234"),
        ("Привет, мир!", "привет мир"),
    ],
)
def test_textnorm_clean(raw, expected):
    assert textnorm.clean(raw) == expected


def test_textnorm_analyze():
    assert textnorm.analyze("How do I delete my ads?") == ["delet", "ad"]
    # all stopwords -> all words are kept rather than nothing
    assert textnorm.analyze("how are you") == ["how", "are", "you"]
    assert textnorm.analyze("<b>price</b>") == ["price"]
    assert textnorm.analyze("log in / log out") == ["log", "in", "log", "out"]
    assert textnorm.analyze("") == []


# --- benchmark smoke test ------------------------------------------------------


def test_benchmark_run_on_tiny_dataset(tmp_path: Path):
    from benchmarks import matching

    train = [
        ("how do i delete my ad", "delete_ad"),
        ("remove my listing", "delete_ad"),
        ("take my advert down", "delete_ad"),
        ("i forgot my password", "login"),
        ("cannot log in", "login"),
        ("reset password please", "login"),
        ("how much does an ad cost", "prices"),
        ("is posting free", "prices"),
        ("price of a featured listing", "prices"),
    ]
    test = [
        ("delete my ad", "delete_ad"),
        ("password forgotten", "login"),
        ("how much is it", "prices"),
        ("weather on mars", "prices"),
    ]
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "intent"])
            w.writerows(rows)

    rows = matching.run(tmp_path, ks=(1, None), limit_queries=None)
    assert rows
    methods = {r["method"] for r in rows}
    assert "matcher" in methods
    assert {"token_set_ratio", "WRatio"} <= methods
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 100.0
        assert r["median_ms"] >= 0.0 and r["p99_ms"] >= 0.0
        assert r["k"] in {"1", "all"}
    matcher_rows = [r for r in rows if r["method"] == "matcher"]
    assert all(r["build_ms"] is not None for r in matcher_rows)
    assert len(matcher_rows) == 2
    # formatting helpers work on the rows
    assert "matcher" in matching.format_results(rows)
    assert matching.format_results(rows, markdown=True).startswith("| K")

    _, scores = matching.evaluate(tmp_path, ks=(None,), methods=["matcher"])
    analysis = matching.threshold_analysis(scores["all"])
    assert [a["threshold"] for a in analysis] == list(matching.THRESHOLDS)
    shares = [a["share"] for a in analysis]
    assert shares == sorted(shares, reverse=True)
    op = matching.operating_point(scores["all"], 0.4, 0.2)
    assert abs(op["answered"] + op["suggested"] + op["no_match"] - 100.0) < 1e-6

    # the CLI entry point runs end to end on the tiny data set
    assert matching.main(["--data", str(tmp_path), "--quick", "--markdown"]) == 0
    assert matching.main(["--data", str(tmp_path / "missing")]) == 2


def _write_bench_csvs(tmp_path: Path, train, test) -> None:
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "intent"])
            w.writerows(rows)


_OOS_TRAIN = [
    ("how do i delete my ad", "ads_delete"),
    ("remove my listing", "ads_delete"),
    ("take my advert down", "ads_delete"),
    ("i forgot my password", "account_login"),
    ("cannot log in", "account_login"),
    ("reset password please", "account_login"),
    ("how much does an ad cost", "ads_price"),
    ("is posting free", "ads_price"),
    ("play some jazz music", "music_play"),
    ("put on my playlist", "music_play"),
    ("what is the weather tomorrow", "weather_query"),
    ("will it rain today", "weather_query"),
]
_OOS_TEST = [
    ("delete my ad", "ads_delete"),
    ("password forgotten", "account_login"),
    ("how much is an ad", "ads_price"),
    ("log in problem", "account_login"),
    ("play jazz", "music_play"),
    ("is it going to rain", "weather_query"),
    ("weather for the weekend", "weather_query"),
]


def test_benchmark_out_of_scope_on_tiny_dataset():
    from benchmarks import matching

    res = matching.out_of_scope_eval(
        _OOS_TRAIN, _OOS_TEST, oos_intents=["music_play", "weather_query", "not_in_data"]
    )
    assert res is not None
    assert res["held_out"] == ["music_play", "weather_query"]
    assert res["oos_intents"] == ["music_play", "weather_query"]
    assert res["entries"] == 3
    assert (res["n_in"], res["n_oos"]) == (4, 3)

    m = res["matcher"]
    assert (m["answer"], m["suggest"]) == (
        matching.RECOMMENDED_ANSWER_THRESHOLD,
        matching.RECOMMENDED_SUGGEST_THRESHOLD,
    )
    assert 0.0 <= m["oos_answered"] <= 100.0
    assert abs(m["oos_answered"] + m["oos_suggested"] + m["oos_no_match"] - 100.0) < 1e-6
    parts = [m["in_correct"], m["in_wrong"], m["in_suggested"], m["in_no_match"]]
    assert all(0.0 <= x <= 100.0 for x in parts)
    assert abs(sum(parts) - 100.0) < 1e-6
    assert abs(m["in_escalated"] - m["in_suggested"] - m["in_no_match"]) < 1e-6

    assert {"token_set_ratio", "WRatio"} <= set(res["baseline_top1"])
    b = res["best_baseline"]
    assert b["method"] == max(res["baseline_top1"], key=res["baseline_top1"].get)
    assert 0.0 <= b["oos_answered"] <= matching.MAX_OOS_ANSWERED
    assert abs(b["in_correct"] + b["in_wrong"] + b["in_escalated"] - 100.0) < 1e-6
    assert "matcher" in matching.format_out_of_scope(res)
    assert "(tuned on test)" in matching.format_out_of_scope(res, markdown=True)

    # skipped when none of the named intents has a test question / no in-scope left
    assert matching.out_of_scope_eval(_OOS_TRAIN, _OOS_TEST, oos_intents=["cooking_recipe"]) is None
    all_intents = {i for _, i in _OOS_TRAIN}
    assert matching.out_of_scope_eval(_OOS_TRAIN, _OOS_TEST, oos_intents=all_intents) is None


def test_benchmark_tune_answer_threshold():
    from benchmarks import matching

    oos = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    # at most 10 % of 10 -> one answered: lowest observed score above 0.9
    assert matching.tune_answer_threshold([0.5, 0.92, 0.99], oos, 10.0) == 0.92
    assert matching.tune_answer_threshold([], oos, 10.0) == 0.95
    assert matching.tune_answer_threshold([], oos, 100.0) == 0.1
    assert matching.tune_answer_threshold([1.0], [1.0], 0.0) == float("inf")


def test_benchmark_skips_bench_baselines_without_packages(tmp_path: Path, monkeypatch, capsys):
    import sys

    from benchmarks import matching

    # a None entry in sys.modules makes `import x` raise ImportError
    for mod in ("bm25s", "Stemmer", "sklearn", "sklearn.feature_extraction",
                "sklearn.feature_extraction.text"):
        monkeypatch.setitem(sys.modules, mod, None)
    available, missing = matching.optional_baselines()
    assert available == {}
    assert set(missing) == {matching.BM25, matching.TFIDF}

    _write_bench_csvs(tmp_path, _OOS_TRAIN, _OOS_TEST)
    rows = matching.run(tmp_path, ks=(1, None), limit_queries=None)
    assert {r["method"] for r in rows} == {"matcher", "token_set_ratio", "WRatio"}
    # asking for them explicitly skips them too
    rows, _ = matching.evaluate(tmp_path, ks=(None,), methods=["matcher", "bm25", "tfidf_char"])
    assert [r["method"] for r in rows] == ["matcher"]
    res = matching.out_of_scope_eval(_OOS_TRAIN, _OOS_TEST, oos_intents=["weather_query"])
    assert set(res["baseline_top1"]) == {"token_set_ratio", "WRatio"}

    assert matching.main(["--data", str(tmp_path), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "baselines skipped" in out and "bm25" in out and "tfidf_char" in out
    assert "Out of scope: skipped" in out  # default OOS intents are not in this data


def test_benchmark_bench_baselines_when_installed(tmp_path: Path):
    from benchmarks import matching

    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    pytest.importorskip("sklearn")
    _write_bench_csvs(tmp_path, _OOS_TRAIN, _OOS_TEST)
    rows = matching.run(tmp_path, ks=(1, None), limit_queries=None)
    methods = [r["method"] for r in rows]
    assert methods.count("bm25") == 2 and methods.count("tfidf_char") == 2
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 100.0
        assert r["median_ms"] >= 0.0 and r["p99_ms"] >= 0.0
    kb = matching.build_kb(_OOS_TRAIN, None)
    for factory in (matching._bm25_search, matching._tfidf_search):
        search = factory(kb)
        assert search("delete my ad")[0] == "ads_delete"
        assert search("") == (None, 0.0)
