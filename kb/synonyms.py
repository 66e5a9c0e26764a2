"""Staff-editable synonyms for one knowledge base.

A plain-text file, one group of interchangeable words a line::

    # comments and blank lines are ignored
    listing = ad = advert = post
    pic = photo = picture

Every word is normalised like the matcher's own tokens (case, accents,
Snowball stem), so ``Listings`` and ``listing`` are the same word.  Only
single words take part: a term that normalises to several words, or to
none (a stopword), is left out of its group, and a line left with fewer
than two words is skipped.  Groups that share a word are *not* merged
(``a = b`` and ``b = c`` do not make ``a`` a synonym of ``c``), so one
careless line cannot chain unrelated words together.

The matcher (:func:`kb.matcher.build_matcher` with ``synonyms=``) credits a
query word's synonym with :data:`kb.matcher.SYNONYM_SIM` of an exact match,
so an exact wording still wins over a synonym.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kb import textnorm

__all__ = ["Synonyms", "parse_synonyms", "load_synonyms"]

#: stem -> the other stems of every group it belongs to
Synonyms = Mapping[str, tuple[str, ...]]


def parse_synonyms(text: str) -> dict[str, tuple[str, ...]]:
    """Parse the synonyms file format (see the module docstring)."""
    groups: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        if "=" not in line:
            continue
        stems: list[str] = []
        for term in line.split("="):
            toks = textnorm.analyze(term, keep_stopwords_if_empty=False)
            if len(toks) == 1 and toks[0] not in stems:
                stems.append(toks[0])
        if len(stems) < 2:
            continue
        for st in stems:
            known = groups.setdefault(st, [])
            known.extend(o for o in stems if o != st and o not in known)
    return {st: tuple(others) for st, others in groups.items()}


def load_synonyms(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read and parse a synonyms file (UTF-8); a missing file means none."""
    p = Path(path)
    if not p.is_file():
        return {}
    return parse_synonyms(p.read_text(encoding="utf-8", errors="replace"))
