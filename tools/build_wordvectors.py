"""Build ``kb/data/wordvectors.npz``, the matcher's general-English word vectors,
from the definitions and usage examples of WordNet 3.0.

Usage::

    python -m tools.build_wordvectors WORDNET_DICT_DIR [--out kb/data/wordvectors.npz]

``WORDNET_DICT_DIR`` is the same WordNet 3.0 database as for
``tools/build_thesaurus.py`` (``data.noun``, ``data.verb``, ...).

Every synset is one short document: its words, its definition and its usage
examples ("alarm clock: a clock that wakes a sleeper at some preset time").
Words that occur in the same documents get close vectors: the positive
pointwise mutual information of their co-occurrence (context distribution
smoothed with exponent 0.75, the usual choice), reduced to :data:`DIM`
dimensions by a truncated SVD (U * sqrt(S)), each vector L2-normalised and
stored as int8 (x 127).  The keys are the matcher's stems
(:mod:`kb.textnorm`, Snowball English), stopwords left out, of words found in
at least :data:`MIN_DOCS` documents: regenerate the file if the stemmer or the
stopword list changes (a test checks that every key is a stem of itself).

This is a small distributional model built once from a dictionary, shipped with
WordNet's licence (``kb/data/WORDNET-LICENSE``); nothing is downloaded or
trained at run time.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from tools.build_thesaurus import ADJ_MARKER, POS, synset_lines

#: Dimensions of the vectors.
DIM = 64
#: A word must occur in at least this many synsets' texts to get a vector.
MIN_DOCS = 3
#: Context distribution smoothing of the PMI.
CONTEXT_ALPHA = 0.75
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "kb" / "data" / "wordvectors.npz"


def documents(folder: Path) -> list[str]:
    """One text per synset: its words, definition and examples."""
    return [
        " ".join(ADJ_MARKER.sub("", w).replace("_", " ") for w in words) + " " + gloss.lower()
        for name in POS
        for _, words, gloss in synset_lines(folder, name)
    ]


def build(docs: list[str]) -> tuple[list[str], np.ndarray]:
    from scipy import sparse
    from scipy.sparse.linalg import svds

    from kb import textnorm

    toks = [{s for _, s in textnorm.analyze_pairs(d)} for d in docs]
    freq = Counter(t for d in toks for t in d)
    keys = sorted(w for w, c in freq.items() if c >= MIN_DOCS and w not in textnorm.STOPWORDS)
    ids = {w: i for i, w in enumerate(keys)}
    rows: list[int] = []
    cols: list[int] = []
    for d in toks:
        present = sorted(ids[t] for t in d if t in ids)
        for a in present:
            rows.extend([a] * (len(present) - 1))
            cols.extend(b for b in present if b != a)
    n = len(keys)
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    counts.sum_duplicates()
    total = counts.sum()
    row_sums = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** CONTEXT_ALPHA
    context = context / context.sum() * total
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (row_sums[coo.row] * context[coo.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    # A fixed start vector: the same input gives the same file.
    u, s, _ = svds(ppmi, k=DIM, v0=np.ones(n) / np.sqrt(n))
    vectors = u * np.sqrt(s)
    # Sign of each dimension fixed by its largest component (SVD signs are arbitrary).
    vectors *= np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(DIM)])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return keys, np.round(vectors * 127).astype(np.int8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wordnet", type=Path, help="WordNet 3.0 dict folder (data.noun, data.verb, ...)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    keys, vectors = build(documents(args.wordnet))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as fh:
        np.savez_compressed(fh, keys=np.array("\n".join(keys)), vectors=vectors)
    print(f"{len(keys)} words x {vectors.shape[1]} dimensions, {args.out.stat().st_size} bytes -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
