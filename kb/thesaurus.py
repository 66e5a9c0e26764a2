"""General-English synonyms for the matcher ("pic" ~ "photo", "ad" ~ "advert").

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
"""

from __future__ import annotations

import gzip
import threading
from importlib import resources

from kb import textnorm

__all__ = ["DATA_FILE", "load", "synonyms"]

DATA_FILE = "thesaurus.tsv.gz"

_lock = threading.Lock()
_table: dict[str, tuple[str, ...]] | None = None


def _stems(words: list[str]) -> dict[str, str]:
    """word -> its matcher stem, stopwords left out: one batch call of the
    stemmer.  The file holds only words that :func:`kb.textnorm.clean` leaves
    as they are (``tools/build_thesaurus.py`` drops the others and a test
    checks it), so they need no cleaning here."""
    kept = [w for w in words if w not in textnorm.STOPWORDS]
    return dict(zip(kept, textnorm.stem(kept)))


def _load() -> dict[str, tuple[str, ...]]:
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                raw = resources.files("kb").joinpath("data", DATA_FILE).read_bytes()
                rows = [line.split("\t", 1) for line in gzip.decompress(raw).decode("utf-8").splitlines()]
                stems = _stems(sorted({w for head, rest in rows for w in (head, *rest.split())}))
                merged: dict[str, set[str]] = {}
                for head, rest in rows:
                    key = stems.get(head)
                    if key is None:
                        continue  # a stopword ("well")
                    for other in rest.split():
                        s = stems.get(other)
                        if s is not None and s != key:
                            merged.setdefault(key, set()).add(s)
                _table = {k: tuple(sorted(v)) for k, v in merged.items()}
    return _table


def load() -> int:
    """Load the table now (the matcher calls it while it builds, so the first
    question does not pay ~0.5 s); returns the number of headwords."""
    return len(_load())


def synonyms(stem: str) -> tuple[str, ...]:
    """Stems of the general-English synonyms of ``stem`` (empty if none)."""
    return _load().get(stem, ())
