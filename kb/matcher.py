"""FAQ matcher: maps a free-text question to knowledge-base entries.

Usage::

    from kb.matcher import build_matcher, Hit
    m = build_matcher(entries)      # iterable of (entry_id, [phrasing, ...])
    hits = m.match(text, limit=3)   # [Hit(entry_id, score), ...], best first

Algorithm (all parameters are generic, none is fitted to a particular KB):

* Every phrasing is analysed by :mod:`kb.textnorm` (NFKC, casefold, accents,
  contractions, punctuation, stopwords, Snowball stemming) into content
  tokens.  Phrasings with the same token set within an entry are merged.
* Token weights are inverse document frequencies computed over *entries*
  (``log(1 + N_entries / df)``): a token that occurs in many phrasings of a
  single entry is still highly discriminative.
* An inverted index token -> phrasings restricts scoring to phrasings that
  share at least one (possibly corrected) token with the query.  Query words
  that are not in the vocabulary are corrected against the vocabulary
  (stems and surface words) by optimal-string-alignment edit distance (1 edit
  for 4-7 letters, 2 for longer words) and by squeezing doubled letters; the
  look-up is memoised per word.  A corrected token counts less than an exact
  one (``1 - 1.5 * edits / length``).  Unknown words keep the maximum IDF, so
  an unexplained query lowers every score.
* Per candidate phrasing: IDF-weighted soft Dice coefficient between query and
  phrasing tokens.  For the best 16 entries the best 3 phrasings each are
  re-scored as ``0.6 * dice + 0.4 * string``, where ``string`` is the mean of
  rapidfuzz ``token_sort_ratio`` and ``ratio`` on the normalised token
  strings (typo-corrected query tokens; rewards word order and partial-word
  similarity).
* Entry raw similarity = ``0.5 * best phrasing + 0.2 * coverage + 0.3 *
  typicality``: *coverage* is the IDF share of the query found anywhere in
  the entry's phrasings, *typicality* weights each such token by how many of
  the entry's phrasings contain it (relative to the entry's most common
  token), which favours entries for which the query words are core
  vocabulary rather than incidental.
* Confidence: the winner keeps ``raw * (0.5 + 0.5 * min(1, margin / 0.2))``
  where margin is its lead over the runner-up entry, so a clear winner scores
  higher than a tie; lower-ranked hits get ``0.5 * raw`` (never above the
  winner).  An exact phrasing match with no close competitor typically
  scores 0.8-1.0; the score is in [0, 1] and comparable across
  knowledge-base sizes (all parts are ratios; the margin only looks at the
  runner-up).  Measured on HWU64 (``python -m benchmarks.matching``):
  answer at >= 0.40, suggest at >= 0.20.
* Latency is bounded: input is cut to 1,000 characters, 32 distinct tokens,
  8 fuzzy look-ups and 20,000 posting visits (rarest tokens first).

The matcher is immutable after construction and safe to share between
threads/tasks; the only internal state that changes is a bounded
memo of fuzzy vocabulary look-ups, which is thread-safe.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from kb import textnorm

__all__ = ["Hit", "FaqMatcher", "build_matcher"]


class Hit(NamedTuple):
    entry_id: str
    score: float


# --- generic parameters ------------------------------------------------------
# These are structural choices (how much each piece of evidence counts), not
# values fitted to a particular knowledge base.

#: Only the first this many distinct content tokens of a query are used.
MAX_QUERY_TOKENS = 32
#: At most this many out-of-vocabulary query tokens get a fuzzy look-up.
MAX_FUZZY_LOOKUPS = 8
#: Minimum token length for fuzzy (typo) matching.
MIN_FUZZY_LEN = 4
#: Fuzzy neighbours kept per query token.
FUZZY_NEIGHBOURS = 3
#: Size of the per-matcher memo of fuzzy look-ups.
FUZZY_CACHE_SIZE = 4096
#: A fuzzy token match with d edits between strings of length n is credited
#: with similarity 1 - FUZZY_PENALTY * d / n (short words are penalised more:
#: a one-letter change turns many short words into other words).
FUZZY_PENALTY = 1.5
#: Similarity credited to a match after squeezing doubled letters.
DOUBLE_LETTER_SIM = 0.85
#: Upper bound on posting-list entries visited per query (latency guard for
#: very long messages); rare tokens are visited first.
POSTINGS_BUDGET = 20_000
#: Entries whose phrasings are re-scored with rapidfuzz (at least).
RERANK_ENTRIES = 16
#: Phrasings per entry (best by token overlap) re-scored with rapidfuzz.
RERANK_PER_ENTRY = 3
#: Weight of the token-overlap score vs. the rapidfuzz string score.
TOKEN_WEIGHT = 0.6
#: Entry score = (1 - COVERAGE_WEIGHT - TYPICALITY_WEIGHT) * best phrasing
#:             + COVERAGE_WEIGHT * share of the query the entry's vocabulary covers
#:             + TYPICALITY_WEIGHT * how typical the query tokens are for the entry
COVERAGE_WEIGHT = 0.2
TYPICALITY_WEIGHT = 0.3
#: Margin between best and runner-up raw score at which the winner counts as
#: "clear" and keeps its full raw score.
CLEAR_MARGIN = 0.2
#: Fraction of the raw score kept when the winner is tied with the runner-up
#: (also applied to all lower-ranked hits).
TIE_FACTOR = 0.5


def _idf(n_entries: int, df: int) -> float:
    """Inverse entry frequency; always positive."""
    return math.log(1.0 + n_entries / df)


_DOUBLES = re.compile(r"(.)\1+")


def _fuzzy_sim(dist: float, length: int) -> float:
    return max(0.0, 1.0 - FUZZY_PENALTY * dist / max(1, length))


def _max_edits(length: int) -> int:
    if length < MIN_FUZZY_LEN:
        return 0
    return 1 if length < 8 else 2


class FaqMatcher:
    """Immutable FAQ matcher.  Build with :func:`build_matcher`."""

    __slots__ = (
        "_entry_ids",
        "_vocab",
        "_tokens",
        "_surface",
        "_idf",
        "_unk_idf",
        "_postings",
        "_entry_postings",
        "_p_entry",
        "_p_weight",
        "_p_text",
        "_vocab_by_len",
        "_fuzzy",
    )

    def __init__(self, entries: Iterable[tuple[str, Sequence[str]]]) -> None:
        entry_ids: list[str] = []
        entry_index: dict[str, int] = {}
        per_entry: list[list[str]] = []
        for entry_id, phrasings in entries:
            entry_id = str(entry_id)
            if isinstance(phrasings, str):
                phrasings = [phrasings]
            idx = entry_index.get(entry_id)
            if idx is None:
                idx = entry_index[entry_id] = len(entry_ids)
                entry_ids.append(entry_id)
                per_entry.append([])
            per_entry[idx].extend(p for p in phrasings if isinstance(p, str))

        vocab: dict[str, int] = {}
        surface: dict[str, int] = {}  # unstemmed word -> token id
        p_tokens: list[tuple[int, ...]] = []
        p_entry: list[int] = []
        p_text: list[str] = []
        entry_df: list[dict[int, int]] = []  # per token: entry -> #phrasings
        for e_idx, phrasings in enumerate(per_entry):
            seen: set[tuple[int, ...]] = set()
            for phrasing in phrasings:
                pairs = textnorm.analyze_pairs(phrasing)
                if not pairs:
                    continue
                toks = [st for _, st in pairs]
                tids: list[int] = []
                for word, tok in pairs:
                    tid = vocab.get(tok)
                    if tid is None:
                        tid = vocab[tok] = len(vocab)
                        entry_df.append({})
                    surface.setdefault(word, tid)
                    if tid not in tids:
                        tids.append(tid)
                key = tuple(sorted(tids))
                if key in seen:
                    continue
                seen.add(key)
                for tid in tids:
                    d = entry_df[tid]
                    d[e_idx] = d.get(e_idx, 0) + 1
                p_tokens.append(tuple(tids))
                p_entry.append(e_idx)
                p_text.append(" ".join(toks))

        n_entries = max(1, len(entry_ids))
        # Entry-level IDF; +1 smoothing keeps weights positive even for a
        # token present in every entry.
        idf = [_idf(n_entries, len(es)) for es in entry_df]
        unk_idf = _idf(n_entries, 1)

        postings: list[list[int]] = [[] for _ in vocab]
        for pid, tids in enumerate(p_tokens):
            for tid in tids:
                postings[tid].append(pid)
        p_weight = [sum(idf[t] for t in tids) for tids in p_tokens]

        # Strings searched for typos: stems and surface words, each mapped to
        # its token id, bucketed by length.
        fuzzy_vocab: dict[str, int] = dict(surface)
        fuzzy_vocab.update(vocab)
        vocab_by_len: dict[int, tuple[list[str], list[int]]] = {}
        for string, tid in fuzzy_vocab.items():
            strings, ids = vocab_by_len.setdefault(len(string), ([], []))
            strings.append(string)
            ids.append(tid)

        set_ = object.__setattr__
        set_(self, "_entry_ids", tuple(entry_ids))
        set_(self, "_vocab", vocab)
        set_(self, "_tokens", tuple(vocab))
        set_(self, "_surface", surface)
        set_(self, "_idf", tuple(idf))
        set_(self, "_unk_idf", unk_idf)
        set_(self, "_postings", tuple(tuple(p) for p in postings))
        # Typicality of token t for entry e: number of the entry's phrasings
        # containing t, relative to the entry's most frequent token (1.0 for
        # the entry's core words, small for incidental ones; always 1.0 for a
        # single-phrasing entry).
        max_count = [1] * len(entry_ids)
        for d in entry_df:
            for e, c in d.items():
                if c > max_count[e]:
                    max_count[e] = c
        set_(
            self,
            "_entry_postings",
            tuple(tuple((e, c / max_count[e]) for e, c in d.items()) for d in entry_df),
        )
        set_(self, "_p_entry", tuple(p_entry))
        set_(self, "_p_weight", tuple(p_weight))
        set_(self, "_p_text", tuple(p_text))
        set_(
            self,
            "_vocab_by_len",
            {k: (tuple(v[0]), tuple(v[1])) for k, v in vocab_by_len.items()},
        )
        set_(self, "_fuzzy", functools.lru_cache(maxsize=FUZZY_CACHE_SIZE)(self._fuzzy_lookup))

    # -- immutability ---------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FaqMatcher is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("FaqMatcher is immutable")

    # -- introspection --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entry_ids)

    @property
    def entry_ids(self) -> tuple[str, ...]:
        return self._entry_ids

    def __repr__(self) -> str:
        return (
            f"<FaqMatcher entries={len(self._entry_ids)} "
            f"phrasings={len(self._p_text)} vocab={len(self._vocab)}>"
        )

    # -- matching -------------------------------------------------------------

    def _fuzzy_lookup(self, word: str, tok: str) -> tuple[tuple[int, float], ...]:
        """Vocabulary tokens close to an out-of-vocabulary query word.

        ``word`` is the surface form, ``tok`` its stem.  Returns up to
        ``FUZZY_NEIGHBOURS`` ``(token id, similarity)`` pairs, best first.
        """
        best: dict[int, float] = {}
        # Doubled letters ("add" -> "ad", "helllo" -> "hello") are a cheap,
        # common typo that also works for words too short for edit distance.
        squeezed = _DOUBLES.sub(r"\1", word)
        if squeezed != word:
            for cand in (squeezed, *textnorm.stem([squeezed])):
                tid = self._vocab.get(cand)
                if tid is None:
                    tid = self._surface.get(cand)
                if tid is not None and DOUBLE_LETTER_SIM > 0.0:
                    best[tid] = max(best.get(tid, 0.0), DOUBLE_LETTER_SIM)
        for string in {word, tok}:
            n = len(string)
            k = _max_edits(n)
            if k == 0 or string.isdigit():
                continue
            for length in range(n - k, n + k + 1):
                bucket = self._vocab_by_len.get(length)
                if bucket is None:
                    continue
                strings, ids = bucket
                for _, dist, idx in process.extract(
                    string,
                    strings,
                    scorer=OSA.distance,
                    score_cutoff=k,
                    limit=FUZZY_NEIGHBOURS,
                ):
                    sim = _fuzzy_sim(dist, max(n, length))
                    if sim <= 0.0:
                        continue
                    tid = ids[idx]
                    if sim > best.get(tid, 0.0):
                        best[tid] = sim
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(ranked[:FUZZY_NEIGHBOURS])

    def _query_terms(self, text: str):
        pairs = textnorm.analyze_pairs(text)
        if not pairs:
            return None
        seen: dict[str, str | None] = {}  # query token -> corrected spelling
        terms: list[tuple[float, tuple[tuple[int, float], ...]]] = []
        vocab = self._vocab
        idf = self._idf
        lookups = 0
        for word, tok in pairs:
            if tok in seen:
                continue
            if len(seen) >= MAX_QUERY_TOKENS:
                break
            seen[tok] = None
            tid = vocab.get(tok)
            if tid is not None:
                terms.append((idf[tid], ((tid, 1.0),)))
                continue
            matches: tuple[tuple[int, float], ...] = ()
            if lookups < MAX_FUZZY_LOOKUPS and not word.isdigit():
                lookups += 1
                matches = self._fuzzy(word, tok)
            if matches:
                weight = max(idf[t] for t, _ in matches)
                # Use the corrected spelling for the string comparison.
                seen[tok] = self._tokens[matches[0][0]]
            else:
                weight = self._unk_idf
            terms.append((weight, matches))
        q_text = " ".join(t if c is None else c for t, c in seen.items())
        return terms, q_text

    def _raw_scores(self, text: str, depth: int = RERANK_ENTRIES) -> dict[int, float]:
        """Raw similarity in [0, 1] per candidate entry index."""
        parsed = self._query_terms(text)
        if parsed is None:
            return {}
        terms, q_text = parsed
        q_weight = sum(w for w, _ in terms)
        if q_weight <= 0:
            return {}

        postings = self._postings
        entry_postings = self._entry_postings
        idf = self._idf
        acc_q: dict[int, float] = {}  # phrasing -> matched query weight
        acc_p: dict[int, float] = {}  # phrasing -> matched phrasing weight
        coverage: dict[int, float] = {}
        typical: dict[int, float] = {}
        budget = POSTINGS_BUDGET
        # Rarest (most informative) terms first, so the budget only ever
        # skips the posting lists of common words.
        for w, matches in sorted(terms, key=lambda t: -t[0]):
            best_cov: dict[int, float] = {}
            best_typ: dict[int, float] = {}
            for tid, sim in matches:
                plist = postings[tid]
                if len(plist) <= budget:
                    budget -= len(plist)
                    wq = w * sim
                    wp = idf[tid] * sim
                    for pid in plist:
                        if pid in acc_q:
                            acc_q[pid] += wq
                            acc_p[pid] += wp
                        else:
                            acc_q[pid] = wq
                            acc_p[pid] = wp
                for e, typ in entry_postings[tid]:
                    if best_cov.get(e, 0.0) < sim:
                        best_cov[e] = sim
                    typ *= sim
                    if best_typ.get(e, 0.0) < typ:
                        best_typ[e] = typ
            for e, sim in best_cov.items():
                coverage[e] = coverage.get(e, 0.0) + w * sim
            for e, typ in best_typ.items():
                typical[e] = typical.get(e, 0.0) + w * typ
        if not acc_q:
            return {}

        # Token overlap per phrasing: IDF-weighted soft Dice coefficient.
        p_weight = self._p_weight
        p_entry = self._p_entry
        by_entry: dict[int, list[tuple[float, int]]] = {}
        for pid, aq in acc_q.items():
            cq = aq / q_weight
            cp = acc_p[pid] / p_weight[pid]
            if cq > 1.0:
                cq = 1.0
            if cp > 1.0:
                cp = 1.0
            if cq <= 0.0 or cp <= 0.0:
                continue
            dice = 2.0 * cq * cp / (cq + cp)
            e = p_entry[pid]
            lst = by_entry.get(e)
            if lst is None:
                by_entry[e] = [(dice, pid)]
            else:
                lst.append((dice, pid))

        w_best = 1.0 - COVERAGE_WEIGHT - TYPICALITY_WEIGHT

        def entry_part(e: int) -> float:
            cov = coverage.get(e, 0.0) / q_weight
            typ = typical.get(e, 0.0) / q_weight
            return COVERAGE_WEIGHT * min(1.0, cov) + TYPICALITY_WEIGHT * min(1.0, typ)

        prelim = [
            (w_best * max(lst)[0] + entry_part(e), e) for e, lst in by_entry.items()
        ]
        out: dict[int, float] = {}
        p_text = self._p_text
        string_similarity = _string_similarity
        for _, e in heapq.nlargest(depth, prelim):
            lst = by_entry[e]
            best = 0.0
            cands = lst if len(lst) <= RERANK_PER_ENTRY else heapq.nlargest(RERANK_PER_ENTRY, lst)
            for dice, pid in cands:
                s_text = p_text[pid]
                string_sim = string_similarity(q_text, s_text)
                score = TOKEN_WEIGHT * dice + (1.0 - TOKEN_WEIGHT) * string_sim
                if score > best:
                    best = score
            out[e] = w_best * best + entry_part(e)
        return out

    def match(self, text: str, limit: int = 3) -> list[Hit]:
        """Best matching entries for ``text``, best first (at most ``limit``)."""
        if not isinstance(text, str) or not self._entry_ids:
            return []
        limit = int(limit)
        if limit <= 0:
            return []
        raw = self._raw_scores(text, max(RERANK_ENTRIES, limit + 1))
        if not raw:
            return []
        ranked = heapq.nlargest(max(limit, 2), raw.items(), key=lambda kv: (kv[1], -kv[0]))
        s1 = ranked[0][1]
        s2 = ranked[1][1] if len(ranked) > 1 else 0.0
        clear = min(1.0, (s1 - s2) / CLEAR_MARGIN)
        top_conf = s1 * (TIE_FACTOR + (1.0 - TIE_FACTOR) * clear)
        hits = [Hit(self._entry_ids[ranked[0][0]], _clamp(top_conf))]
        for e, s in ranked[1:limit]:
            hits.append(Hit(self._entry_ids[e], _clamp(min(top_conf, s * TIE_FACTOR))))
        return hits


def _string_similarity(query: str, phrasing: str) -> float:
    """Character-level similarity of two normalised token strings in [0, 1]."""
    # token_set_ratio is deliberately not used: it returns 100 whenever one
    # token set contains the other, which makes every one-word query look
    # like a perfect match.
    return (fuzz.token_sort_ratio(query, phrasing) + fuzz.ratio(query, phrasing)) / 200.0


def _clamp(x: float) -> float:
    if x != x:  # NaN guard
        return 0.0
    return round(min(1.0, max(0.0, x)), 4)


def build_matcher(entries: Iterable[tuple[str, Sequence[str]]]) -> FaqMatcher:
    """Build an immutable matcher from ``(entry_id, phrasings)`` pairs."""
    return FaqMatcher(entries)
