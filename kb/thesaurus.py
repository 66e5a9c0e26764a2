"""General-English synonyms and definitions for the matcher ("pic" ~ "photo",
"refund" -> money, repay, pay back).

With one phrasing per entry, a user who writes "pics" finds nothing in an entry
that says "photos": the words share no stem and few character n-grams.  This
module gives the matcher the synonyms of common English words, taken from
WordNet 3.0 (Princeton University; licence in ``kb/data/WORDNET-LICENSE``) by
``tools/build_thesaurus.py``: for each word its two most frequent senses per
part of speech, single words only, only words of ``wordfreq``'s general list
(``wordfreq``'s "large" list).  About 33,000 headwords, 0.48 MB compressed,
shipped in the package: nothing is downloaded; ~7 MB in memory once loaded.

The matcher credits a thesaurus synonym of a query word like a staff synonym
(:data:`kb.matcher.SYNONYM_SIM` of an exact match), so the exact wording still
wins.  The credit fades as entries get more phrasings of their own
(:data:`kb.matcher.THESAURUS_SCALE`) and is off from about 20 phrasings per
entry: with many wordings, a synonym mostly blurs close entries (measured: at
K=all on the development splits it cost ~2.5 points of in-scope questions
answered right at the same threshold).  Measured on the development splits
of HWU64 (seeds 7, 8 and 9, two knowledge-base draws each): top-1 at K=1
39.4 -> 40.2, K=3 55.8 -> 56.4, K=10 72.1 -> 72.1, K=all unchanged.

:func:`synonyms` maps a *stem* (as produced by :mod:`kb.textnorm`) to the
stems of its synonyms.  The file is loaded and stemmed once per process on
first use (thread-safe); an English-free knowledge base simply never finds
its words in it.

:func:`glosses` is the second table, ``kb/data/glosses.tsv.gz`` (same
source and licence, same tool): for about 56,000 words of the same list, the
words of the definition of the most frequent sense per part of speech and
that sense's synonyms, without the usage examples (1.4 MB compressed; ~0.7 s
and ~12 MB resident once loaded, only when a knowledge base uses it).  The
matcher's "gloss vectors" are built from it (:mod:`kb.matcher`).

:func:`word_vectors` is the third, ``kb/data/wordvectors.npz``
(``tools/build_wordvectors.py``, same source and licence): 64-dimensional
vectors of 26,693 stems from the co-occurrence of words in WordNet's
definitions and examples (1.4 MB; ~0.25 s and ~7 MB once loaded).
"""

from __future__ import annotations

import gzip
import math
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import NamedTuple, TypeVar

import numpy as np

from kb import textnorm

__all__ = ["DATA_FILE", "GLOSSES_FILE", "VECTORS_FILE", "Glosses", "WordVectors", "glosses", "load", "synonyms", "word_vectors"]

DATA_FILE = "thesaurus.tsv.gz"
GLOSSES_FILE = "glosses.tsv.gz"
VECTORS_FILE = "wordvectors.npz"

_lock = threading.Lock()
T = TypeVar("T")


class WordVectors(NamedTuple):
    """Word vectors from WordNet's definitions (``tools/build_wordvectors.py``):
    ``ids`` maps a stem to its row of ``matrix`` (float32, rows L2-normalised)."""

    ids: dict[str, int]
    matrix: np.ndarray


class Glosses(NamedTuple):
    """Stems of the definitions of common English words, as a sparse matrix.

    ``ids`` numbers every stem that is a headword or occurs in a definition;
    row ``i`` (``col[ptr[i]:ptr[i + 1]]``, weights ``val[...]``, L2 norm 1)
    holds the stems of the definition of the headword with id ``i`` (empty
    for a stem that only occurs in definitions).
    """

    ids: dict[str, int]
    ptr: np.ndarray
    col: np.ndarray
    val: np.ndarray

    def row(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.ids.get(stem)
        if i is None or i + 1 >= len(self.ptr):
            return _EMPTY_I, _EMPTY_F
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        return self.col[a:b], self.val[a:b]


_EMPTY_I = np.zeros(0, dtype=np.int32)
_EMPTY_F = np.zeros(0, dtype=np.float32)


def _stems(words: list[str]) -> dict[str, str]:
    """word -> its matcher stem, stopwords left out: one batch call of the
    stemmer.  The file holds only words that :func:`kb.textnorm.clean` leaves
    as they are (``tools/build_thesaurus.py`` drops the others and a test
    checks it), so they need no cleaning here."""
    kept = [w for w in words if w not in textnorm.STOPWORDS]
    return dict(zip(kept, textnorm.stem(kept)))


def _rows(name: str) -> tuple[list[list[str]], dict[str, str]]:
    """The lines of a shipped table (headword, rest) and the stems of its words."""
    raw = resources.files("kb").joinpath("data", name).read_bytes()
    rows = [line.split("\t", 1) for line in gzip.decompress(raw).decode("utf-8").splitlines()]
    return rows, _stems(sorted({w for head, rest in rows for w in (head, *rest.split())}))


def _once(build: Callable[[], T]) -> Callable[[], T]:
    """``build()`` run on the first call only (thread-safe); its result after."""
    done: list[T] = []

    def get() -> T:
        if not done:
            with _lock:
                if not done:
                    done.append(build())
        return done[0]

    return get


def _stem_pairs(rows: list[list[str]], stems: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(headword's stem, stem of another word of its line) for every line of a
    table, stopwords and the headword's own stem left out."""
    for head, rest in rows:
        key = stems.get(head)
        if key is None:
            continue  # a stopword ("well")
        for other in rest.split():
            s = stems.get(other)
            if s is not None and s != key:
                yield key, s


@_once
def _load() -> dict[str, tuple[str, ...]]:
    merged: dict[str, set[str]] = {}
    for key, other in _stem_pairs(*_rows(DATA_FILE)):
        merged.setdefault(key, set()).add(other)
    return {k: tuple(sorted(v)) for k, v in merged.items()}


@_once
def _load_glosses() -> Glosses:
    merged: dict[str, dict[str, float]] = {}
    for key, other in _stem_pairs(*_rows(GLOSSES_FILE)):
        counts = merged.setdefault(key, {})
        counts[other] = counts.get(other, 0.0) + 1.0
    heads = sorted(merged)
    ids = {k: i for i, k in enumerate(heads)}
    for counts in merged.values():
        for s in counts:
            ids.setdefault(s, len(ids))
    ptr = np.zeros(len(heads) + 1, dtype=np.int64)
    cols: list[int] = []
    vals: list[float] = []
    for i, head in enumerate(heads):
        counts = merged[head]
        norm = math.sqrt(sum(c * c for c in counts.values()))
        cols.extend(ids[s] for s in counts)
        vals.extend(c / norm for c in counts.values())
        ptr[i + 1] = len(cols)
    return Glosses(ids, ptr, np.asarray(cols, dtype=np.int32), np.asarray(vals, dtype=np.float32))


@_once
def _load_vectors() -> WordVectors:
    with resources.files("kb").joinpath("data", VECTORS_FILE).open("rb") as fh, np.load(fh) as data:
        keys = str(data["keys"]).split("\n")
        matrix = data["vectors"].astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return WordVectors({k: i for i, k in enumerate(keys)}, matrix)


def load() -> int:
    """Load the table now (the matcher calls it while it builds, so the first
    question does not pay ~0.5 s); returns the number of headwords."""
    return len(_load())


def word_vectors() -> WordVectors:
    """The word vectors (loaded once per process, ~7 MB)."""
    return _load_vectors()


def glosses() -> Glosses:
    """The definitions table (loaded and stemmed once per process, ~0.5 s)."""
    return _load_glosses()


def synonyms(stem: str) -> tuple[str, ...]:
    """Stems of the general-English synonyms of ``stem`` (empty if none)."""
    return _load().get(stem, ())
