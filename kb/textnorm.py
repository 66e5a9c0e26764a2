"""Text normalisation for FAQ matching.

Pipeline (see :func:`normalize` and :func:`analyze`):

1. HTML character references are decoded (``&amp;`` -> ``&``), then
   Unicode NFKC + casefold (full-width letters, ligatures, ``ß`` -> ``ss`` ...).
2. Per-character clean-up through a lazily filled translation table:
   control characters -> space, format characters (zero-width space/joiner,
   RTL/LTR marks, BOM, soft hyphen ...) -> removed, Latin letters with
   diacritics -> base letter (``é`` -> ``e``; other scripts are left alone
   because their combining marks carry meaning), apostrophe look-alikes ->
   ``'``, every other punctuation/symbol/emoji/separator -> space.
3. English contractions are expanded (``don't`` -> ``do not``,
   ``what's`` -> ``what is``, ``cant`` -> ``can not`` ...), possessive ``'s``
   is dropped, remaining apostrophes become spaces.
4. Tokens are runs of letters, digits and combining marks (numbers stay
   tokens).  :func:`analyze` additionally drops a small list of generic English
   function words and applies the Snowball English stemmer.

Everything here is pure, thread-safe (the stemmer, which is not thread-safe,
is kept per thread) and bounded: input longer than ``MAX_INPUT_CHARS`` is cut
before any work is done, so hostile or accidental huge messages stay cheap.
"""

from __future__ import annotations

import html
import re
import threading
import unicodedata
from typing import Iterable

import Stemmer

__all__ = [
    "MAX_INPUT_CHARS",
    "STOPWORDS",
    "analyze",
    "analyze_cleaned_pairs",
    "analyze_pairs",
    "clean",
    "normalize",
    "stem",
    "words",
]

#: Messages are cut to this many characters before normalisation.  FAQ
#: questions are short; the tail of a very long message carries little
#: signal and only costs time.
MAX_INPUT_CHARS = 1000

# ---------------------------------------------------------------------------
# Character level clean-up
# ---------------------------------------------------------------------------

_APOSTROPHES = "'\u2018\u2019\u201b\u02bc\u02b9\u0060\u00b4\u2032\uff07"


def _latin_base(ch: str) -> str | None:
    """Return the base letter for a Latin letter with diacritics, else None."""
    decomposed = unicodedata.normalize("NFD", ch)
    if len(decomposed) < 2:
        return None
    base = decomposed[0]
    # Basic Latin, Latin-1 Supplement, Latin Extended-A/B, Latin Extended Additional
    o = ord(base)
    if not (o < 0x250 or 0x1E00 <= o <= 0x1EFF):
        return None
    if not base.isalpha():
        return None
    if all(unicodedata.category(c) == "Mn" for c in decomposed[1:]):
        return base
    return None


_CHAR_MAP_MAX = 50_000


class _CharMap(dict):
    """``str.translate`` table that classifies characters on first use.

    Only ever grows (up to ``_CHAR_MAP_MAX`` entries) with idempotent
    entries, so concurrent use from several threads is harmless.
    """

    def __missing__(self, code: int):
        ch = chr(code)
        cat = unicodedata.category(ch)
        value: str | None
        if ch in _APOSTROPHES:
            value = "'"
        elif cat == "Cf":  # zero-width chars, bidi marks, BOM, soft hyphen
            value = None
        elif cat[0] in "LN":
            base = _latin_base(ch) if code > 0x7F and cat[0] == "L" else None
            value = base if base is not None else ch
        elif 0x300 <= code <= 0x36F:
            # Generic diacritics left over after NFKC (no precomposed form,
            # e.g. the dot of casefolded "İ"): drop, like other accents.
            value = None
        elif cat[0] == "M":
            value = ch  # combining marks are part of words in many scripts
        else:  # Cc, Cs, Co, Cn, P*, S* (incl. emoji), Z*
            value = " "
        if len(self) < _CHAR_MAP_MAX:  # bounded: never grows without limit
            self[code] = value
        return value


_CHAR_MAP = _CharMap()
# Pre-fill ASCII so the common case never hits __missing__.
for _i in range(128):
    _CHAR_MAP[_i]  # noqa: B018 - populate cache
del _i

# ---------------------------------------------------------------------------
# Contractions
# ---------------------------------------------------------------------------

# Rules for text containing an apostrophe (irregular negations first).
_APOSTROPHE_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\bshan't\b"), "shall not"),
    (re.compile(r"\bain't\b"), "is not"),
    (re.compile(r"\blet's\b"), "let us"),
    (re.compile(r"\by'all\b"), "you all"),
    (re.compile(r"\b(\w+)n't\b"), r"\1 not"),
    (re.compile(r"\bi'm\b"), "i am"),
    (re.compile(r"\b(\w+)'re\b"), r"\1 are"),
    (re.compile(r"\b(\w+)'ve\b"), r"\1 have"),
    (re.compile(r"\b(\w+)'ll\b"), r"\1 will"),
    (re.compile(r"\b(\w+)'d\b"), r"\1 would"),
    # 's after pronouns / question words is "is"; elsewhere it is possessive.
    (
        re.compile(
            r"\b(it|that|there|here|he|she|who|what|where|when|why|how|this)'s\b"
        ),
        r"\1 is",
    ),
    (re.compile(r"(\w)'s\b"), r"\1"),
]

# Frequent apostrophe-less chat spellings.  Only forms that are not (common)
# English words by themselves are expanded.
_BARE_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:cant|cannot)\b"), "can not"),
    (re.compile(r"\bwont\b"), "will not"),
    (
        re.compile(
            r"\b(do|does|did|is|are|was|were|has|have|had|could|should|would"
            r"|must|need)nt\b"
        ),
        r"\1 not",
    ),
    (re.compile(r"\bim\b"), "i am"),
    (re.compile(r"\b(what|that|there|where)s\b"), r"\1 is"),
]


def _expand_contractions(text: str) -> str:
    if "'" in text:
        for pattern, repl in _APOSTROPHE_RULES:
            text = pattern.sub(repl, text)
        text = text.replace("'", " ")
    for pattern, repl in _BARE_RULES:
        text = pattern.sub(repl, text)
    return text


# ---------------------------------------------------------------------------
# Stopwords and stemming
# ---------------------------------------------------------------------------

#: Generic English function words (articles, pronouns, auxiliaries,
#: prepositions, conjunctions) and single Latin letters.  Deliberately *not*
#: included: negations ("not", "no", "nor"), verb particles ("in", "out",
#: "on", "off", "up", "down": "log in" vs "log out") and the question words
#: "who", "when", "where", "why", which change the meaning of a help-desk
#: question.
STOPWORDS: frozenset[str] = frozenset(
    """
    a an the
    i me my mine myself we us our ours ourselves you your yours yourself
    yourselves he him his himself she her hers herself it its itself they them
    their theirs themselves
    this that these those
    am is are was were be been being
    do does did doing done
    have has had having
    will would shall should can could may might must
    what which whom whose how
    and or but if then else so than too very just also
    of at by for with about against between into through during before after
    above below to from over under again further once
    here there
    all any both each few more most other some such only own same
    please
    """.split()
) | frozenset("abcdefghijklmnopqrstuvwxyz")  # stray single letters (HTML tags, "s")

_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    st = getattr(_local, "stemmer", None)
    if st is None:
        st = _local.stemmer = Stemmer.Stemmer("english")
    return st


def stem(words_: Iterable[str]) -> list[str]:
    """Snowball English stems (thread-safe)."""
    return _stemmer().stemWords(list(words_))


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def clean(text: str) -> str:
    """Unicode/character clean-up + contractions; returns space separated words."""
    if not text:
        return ""
    if len(text) > MAX_INPUT_CHARS:
        text = text[:MAX_INPUT_CHARS]
    if "&" in text:  # HTML character references typed or pasted: "&amp;" -> "&"
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_CHAR_MAP)
    text = _expand_contractions(text)
    return " ".join(text.split())


def words(text: str) -> list[str]:
    """Cleaned, lower-cased words (no stopword removal, no stemming)."""
    cleaned = clean(text)
    return cleaned.split() if cleaned else []


def analyze(text: str, *, keep_stopwords_if_empty: bool = True) -> list[str]:
    """Content tokens: cleaned words minus stopwords, stemmed, in order.

    If every word is a stopword (e.g. "how are you") and
    ``keep_stopwords_if_empty`` is true, all words are kept instead so that
    such questions remain matchable.
    """
    ws = words(text)
    if not ws:
        return []
    content = [w for w in ws if w not in STOPWORDS]
    if not content:
        if not keep_stopwords_if_empty:
            return []
        content = ws
    return stem(content)


def analyze_pairs(text: str) -> list[tuple[str, str]]:
    """Like :func:`analyze` but returns ``(surface word, stem)`` pairs."""
    return analyze_cleaned_pairs(clean(text))


def analyze_cleaned_pairs(cleaned: str) -> list[tuple[str, str]]:
    """:func:`analyze_pairs` of a string already passed through :func:`clean`."""
    ws = cleaned.split()
    if not ws:
        return []
    content = [w for w in ws if w not in STOPWORDS] or ws
    return list(zip(content, stem(content)))


def normalize(text: str) -> str:
    """Normalised string of content stems, suitable for string similarity."""
    return " ".join(analyze(text))
