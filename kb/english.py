"""How rare a word or a character n-gram is in general English.

With one or three phrasings per entry, a knowledge base's own IDF is almost
flat and noisy: over 60 one-line entries nearly every word occurs once, so
"alarm" and "tell" weigh the same.  The frequencies of the ``wordfreq``
package (word lists shipped inside its wheel, nothing is downloaded) give a
prior that the matcher blends with its own statistics, with less and less
weight as entries get more phrasings (:mod:`kb.matcher`).

* :func:`word_rarity` -- ``-log10`` of the word's frequency in English
  (``3`` for a word used once per thousand words, ``6`` for once per
  million), clipped to [:data:`MIN_RARITY`, :data:`UNSEEN_RARITY`]; words
  outside the list (names, typos, other languages) get
  :data:`UNSEEN_RARITY`.
* :func:`gram_rarity` -- the same for character n-grams (hashed as in
  :mod:`kb.charvec`): ``-log10`` of the share of English running words that
  contain the n-gram ("th" is everywhere, "larm" is not).

The "small" English list (about 29,000 words, down to about one use per
million words) is used: ~3 MB in memory, loaded once per process on first
use (about 0.1 s for the words, 0.2 s for the n-gram table), thread-safe.
A knowledge base in another language simply finds no word in the list: every
word then gets the same prior, i.e. the prior has no effect.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from kb import charvec

__all__ = ["MIN_RARITY", "UNSEEN_RARITY", "gram_rarity", "word_rarity"]

#: wordfreq list: "small" keeps words with at least ~1 use per million.
WORD_LIST = "small"
#: The thesaurus (tools/build_thesaurus.py) keeps words of this larger list.
THESAURUS_WORD_LIST = "large"
#: Rarity of a word or n-gram missing from the list (just above the rarest
#: listed word, ~6.0).
UNSEEN_RARITY = 6.5
#: Floor of the rarity (only "the" and the like are below).
MIN_RARITY = 0.5

_lock = threading.Lock()
_freqs: dict[str, float] | None = None
_grams: tuple[np.ndarray, np.ndarray] | None = None


def _load_freqs() -> dict[str, float]:
    global _freqs
    if _freqs is None:
        with _lock:
            if _freqs is None:
                import wordfreq

                _freqs = wordfreq.get_frequency_dict("en", WORD_LIST)
    return _freqs


def word_rarity(word: str) -> float:
    """``-log10`` English frequency of a cleaned (casefolded) word."""
    f = _load_freqs().get(word, 0.0)
    if f <= 0.0:
        return UNSEEN_RARITY
    return min(UNSEEN_RARITY, max(MIN_RARITY, -math.log10(f)))


def _load_grams() -> tuple[np.ndarray, np.ndarray]:
    global _grams
    if _grams is None:
        freqs = _load_freqs()
        with _lock:
            if _grams is None:
                words = [w for w in freqs if w.isalpha()]
                weight = np.fromiter((freqs[w] for w in words), dtype=np.float64, count=len(words))
                hashes = charvec.ngram_hashes_many(words)
                lens = np.fromiter((h.shape[0] for h in hashes), dtype=np.int64, count=len(hashes))
                # Every occurrence of an n-gram in a word counts with the
                # word's frequency (repeats inside one word are rare).
                uniq, inv = np.unique(np.concatenate(hashes), return_inverse=True)
                mass = np.bincount(inv, weights=np.repeat(weight, lens), minlength=uniq.shape[0])
                mass /= weight.sum()
                rarity = np.clip(-np.log10(np.maximum(mass, 1e-30)), MIN_RARITY, UNSEEN_RARITY)
                _grams = (uniq, rarity)
                _release_loading_memory()
    return _grams


def _release_loading_memory() -> None:
    """Loading leaves tens of MB of freed temporary memory (wordfreq's decoded list, the
    per-word n-gram arrays) in the C heap, where the process's resident size keeps it:
    drop wordfreq's cached copies (the dict above is kept) and, with glibc, hand the free
    heap back to the system (measured: 118 -> 82 MB right after loading)."""
    import wordfreq

    for cached in (wordfreq.get_frequency_list, wordfreq.get_frequency_dict):
        cache_clear = getattr(cached, "cache_clear", None)
        if cache_clear is not None:
            cache_clear()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): the memory is reused later instead
        pass


def gram_rarity(hashes: np.ndarray) -> np.ndarray:
    """``-log10`` share of English running words containing each n-gram hash."""
    uniq, rarity = _load_grams()
    if hashes.shape[0] == 0 or uniq.shape[0] == 0:
        return np.full(hashes.shape[0], UNSEEN_RARITY)
    pos = np.searchsorted(uniq, hashes)
    pos[pos >= uniq.shape[0]] = 0
    return np.where(uniq[pos] == hashes, rarity[pos], UNSEEN_RARITY)
