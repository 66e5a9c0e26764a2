"""Character n-gram tf-idf index (numpy/scipy) for the FAQ matcher.

Text is first cleaned by :func:`kb.textnorm.clean` (case, Unicode, punctuation,
contractions); its character 2-5-grams are taken inside word boundaries, like
scikit-learn's ``analyzer="char_wb"``: every word is padded with one space on
each side and only n-grams without an inner space count.  N-grams are hashed
(64-bit polynomial hash, vectorised with numpy) instead of being built as
Python strings, so indexing 10,000 phrasings takes tens of milliseconds.

A query gets the cosine similarity against each *entry* as one document
(all its phrasings together), with sub-linear term frequency (``1 + log tf``)
and smoothed IDF over entries (``1 + log((1 + n) / (1 + df))``): the
"centroid" view that wins with few phrasings per entry.  (A best-phrasing
cosine was measured too: it added nothing on the development split and cost
most of the index time and memory, so it is not computed.)

:class:`GramVocab` maps n-gram hashes to stable ids and only ever grows, so
the per-entry id arrays of unchanged entries stay valid when one entry is
added, edited or removed; an index over new id arrays is assembled with a few
vectorised passes over the (entry, n-gram) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

__all__ = ["MIN_N", "MAX_N", "CharIndex", "GramVocab", "entry_grams", "ngram_hashes", "ngram_hashes_many"]

#: Shortest and longest character n-gram.
MIN_N = 2
MAX_N = 5

_MULT = np.uint64(1_000_003)
_EMPTY_U64 = np.zeros(0, dtype=np.uint64)
_LEN_SALT = [np.uint64((n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) for n in range(MAX_N + 1)]


def _hash_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, start positions) of the valid n-grams of a code array.

    ``codes``: uint64 code points where words are separated by single spaces
    (32) and separate texts by 0.  An n-gram is valid if it contains no 0
    and no space except at its first and last position.
    """
    length = codes.shape[0]
    is_space = codes == 32
    is_sep = codes == 0
    hashes = []
    starts = []
    h = codes.copy()
    inner_space = np.zeros(length, dtype=bool)
    has_sep = is_sep.copy()
    with np.errstate(over="ignore"):
        for n in range(2, MAX_N + 1):
            m = length - n + 1
            if m <= 0:
                break
            h = h[:m] * _MULT + codes[n - 1 : n - 1 + m]
            has_sep = has_sep[:m] | is_sep[n - 1 : n - 1 + m]
            if n > 2:
                inner_space = inner_space[:m] | is_space[n - 2 : n - 2 + m]
            else:
                inner_space = inner_space[:m]
            if n >= MIN_N:
                ok = ~(inner_space | has_sep)
                idx = np.flatnonzero(ok)
                if idx.shape[0]:
                    # Mix the length in so that n-grams of different
                    # lengths never share a hash by construction.
                    hashes.append(h[idx] ^ _LEN_SALT[n])
                    starts.append(idx)
    if not hashes:
        return _EMPTY_U64, np.zeros(0, dtype=np.int64)
    return np.concatenate(hashes), np.concatenate(starts)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def ngram_hashes(cleaned: str) -> np.ndarray:
    """64-bit hashes of the char_wb 2-5-grams of an already cleaned string.

    ``cleaned`` is space separated words (the output of
    :func:`kb.textnorm.clean`).  Returns a uint64 array, one value per
    n-gram occurrence.
    """
    if not cleaned:
        return _EMPTY_U64
    return _hash_codes(_codes(" " + cleaned + " "))[0]


def ngram_hashes_many(cleaned: Sequence[str]) -> list[np.ndarray]:
    """:func:`ngram_hashes` of many strings at once (one numpy pass)."""
    if not cleaned:
        return []
    joined = "\x00".join(" " + c + " " if c else "" for c in cleaned)
    lengths = np.fromiter((len(c) + 2 if c else 0 for c in cleaned), dtype=np.int64, count=len(cleaned))
    offsets = np.concatenate(([0], np.cumsum(lengths + 1)))  # +1: the separator
    hashes, starts = _hash_codes(_codes(joined))
    owner = np.searchsorted(offsets, starts, side="right") - 1
    order = np.argsort(owner, kind="stable")
    hashes, owner = hashes[order], owner[order]
    bounds = np.searchsorted(owner, np.arange(len(cleaned) + 1))
    return [hashes[bounds[i] : bounds[i + 1]] for i in range(len(cleaned))]


def _sublinear(counts: np.ndarray) -> np.ndarray:
    return 1.0 + np.log(counts.astype(np.float64))


class GramVocab:
    """Immutable, grow-only map n-gram hash -> id (ids are never reused)."""

    __slots__ = ("_hashes", "_ids", "size")

    def __init__(self, hashes: np.ndarray | None = None, ids: np.ndarray | None = None, size: int = 0) -> None:
        self._hashes = _EMPTY_U64 if hashes is None else hashes  # sorted
        self._ids = np.zeros(0, dtype=np.int64) if ids is None else ids
        self.size = size

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, known mask) of ``hashes`` (ids are 0 where unknown)."""
        if self._hashes.shape[0] == 0 or hashes.shape[0] == 0:
            return np.zeros(hashes.shape[0], dtype=np.int64), np.zeros(hashes.shape[0], dtype=bool)
        pos = np.searchsorted(self._hashes, hashes)
        pos[pos >= self._hashes.shape[0]] = 0
        known = self._hashes[pos] == hashes
        return np.where(known, self._ids[pos], 0), known

    def hashes_by_id(self) -> np.ndarray:
        """The hash of every id (``size`` values)."""
        out = np.zeros(self.size, dtype=np.uint64)
        out[self._ids] = self._hashes
        return out

    def extended(self, hashes: np.ndarray) -> tuple[GramVocab, np.ndarray]:
        """(vocabulary including ``hashes``, their ids)."""
        ids, known = self.lookup(hashes)
        if known.all():
            return self, ids
        new = np.unique(hashes[~known])
        new_ids = np.arange(self.size, self.size + new.shape[0], dtype=np.int64)
        all_h = np.concatenate((self._hashes, new))
        all_i = np.concatenate((self._ids, new_ids))
        order = np.argsort(all_h, kind="stable")
        vocab = GramVocab(all_h[order], all_i[order], self.size + new.shape[0])
        ids, _ = vocab.lookup(hashes)
        return vocab, ids


def entry_grams(phrasing_hashes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(distinct n-gram hashes, counts) of an entry's phrasings taken together."""
    if not phrasing_hashes:
        return _EMPTY_U64, np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(phrasing_hashes), return_counts=True)


class CharIndex:
    """Char n-gram tf-idf cosine against each entry (immutable)."""

    __slots__ = ("n_entries", "vocab", "_matrix", "_idf", "_idf_max", "_live")

    def __init__(
        self,
        vocab: GramVocab,
        entry_ids: Sequence[np.ndarray],
        entry_counts: Sequence[np.ndarray],
        prior: np.ndarray | None = None,
    ) -> None:
        """``entry_ids[e]`` / ``entry_counts[e]``: distinct n-gram ids of entry
        ``e`` (from ``vocab``) and how often each occurs in its phrasings.
        ``prior``: optional positive factor per n-gram id multiplied into the
        IDF (the matcher's general-language rarity of the n-gram)."""
        n_e = len(entry_ids)
        n_v = vocab.size
        self.n_entries = n_e
        self.vocab = vocab
        lens = np.fromiter((a.shape[0] for a in entry_ids), dtype=np.int64, count=n_e)
        if n_e == 0 or n_v == 0 or lens.sum() == 0:
            self._matrix = sparse.csr_matrix((max(1, n_v), max(1, n_e)), dtype=np.float32)
            self._idf = np.ones(max(1, n_v))
            self._idf_max = 1.0
            self._live = np.zeros(max(1, n_v), dtype=bool)
            return
        gids = np.concatenate(entry_ids)
        counts = np.concatenate(entry_counts)
        eids = np.repeat(np.arange(n_e, dtype=np.int64), lens)
        # gram x entry; no duplicates (ids are distinct per entry)
        m = sparse.csr_matrix((counts.astype(np.float64), (gids, eids)), shape=(n_v, n_e))
        df = np.diff(m.indptr)
        live = df > 0
        idf = 1.0 + np.log((1.0 + n_e) / (1.0 + df))
        if prior is not None:
            idf *= prior
        idf_max = float(idf[live].max())
        idf[~live] = idf_max  # n-grams of removed entries count as unknown
        rows = np.repeat(np.arange(n_v), df)
        w = _sublinear(m.data) * idf[rows]
        norms = np.sqrt(np.bincount(m.indices, weights=w * w, minlength=n_e))
        norms[norms == 0] = 1.0
        w /= norms[m.indices]
        self._matrix = sparse.csr_matrix((w.astype(np.float32), m.indices, m.indptr), shape=m.shape)
        self._idf = idf
        self._idf_max = idf_max
        self._live = live

    def nbytes(self) -> int:
        m = self._matrix
        return (
            m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + self._idf.nbytes + self._live.nbytes
            + self.vocab._hashes.nbytes + self.vocab._ids.nbytes
        )

    def similarities(self, hashes: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query n-grams with every entry."""
        n_e = self.n_entries
        if hashes.shape[0] == 0 or n_e == 0:
            return np.zeros(n_e)
        uniq, counts = np.unique(hashes, return_counts=True)
        ids, known = self.vocab.lookup(uniq)
        known &= self._live[ids]
        if not known.any():
            return np.zeros(n_e)
        tf = _sublinear(counts)
        ids = ids[known]
        w = tf[known] * self._idf[ids]
        # Unknown n-grams still count in the query's norm (with the highest
        # IDF), so a query that is mostly unknown never looks like a match.
        unk = tf[~known] * self._idf_max
        w /= np.sqrt(float(w @ w) + float(unk @ unk))
        return _gather(self._matrix, ids, w, n_e)


def _gather(matrix: sparse.csr_matrix, ids: np.ndarray, weights: np.ndarray, n_cols: int) -> np.ndarray:
    """``weights @ matrix[ids]`` as a dense float64 vector of ``n_cols``.

    Done by hand with numpy (scipy's sparse constructors cost ~0.1 ms per
    call, more than the arithmetic): only the rows of the query's n-grams
    are touched.
    """
    indptr = matrix.indptr
    starts = indptr[ids]
    lens = indptr[ids + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(n_cols)
    shift = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    pos = np.arange(total) + shift
    w = np.repeat(weights, lens) * matrix.data[pos]
    return np.bincount(matrix.indices[pos], weights=w, minlength=n_cols)
