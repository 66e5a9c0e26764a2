"""A strict validator for Telegram Bot API HTML (``parse_mode="HTML"``).

The offline fake Telegram API uses this to reject what real Telegram rejects,
with descriptions worded like Telegram's.  The tokenizer follows TDLib's
``parse_html`` (byte offsets are UTF-8 byte offsets into the text, as
Telegram reports them) and is deliberately stricter in a few places where
real Telegram silently accepts text that is almost always a bug:

* an ``&`` that does not start ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;``,
  ``&#NNN;`` or ``&#xHH;`` is an error (Telegram keeps it as a literal), and
  the closing ``;`` is required (Telegram also accepts ``&amp`` without it);
* ``<a>`` must have a non-empty ``href`` (Telegram falls back to the link
  text) and must not contain another ``<a>``.

See https://core.telegram.org/bots/api#html-style
"""

from __future__ import annotations

import re

__all__ = [
    "TelegramHTMLError",
    "parse_telegram_html",
    "visible_length",
    "strip_html",
]

_PREFIX = "Bad Request: can't parse entities: "

SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)

_NAMED_ENTITIES = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}

# TDLib's is_space; NUL counts because TDLib reads a NUL-terminated string.
_SPACES = frozenset(b" \t\r\n\v\f\0")
_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_NAME_TOKEN = _ALPHA | _DIGITS | frozenset(b".-")
_ATTR_NAME_STOP = _SPACES | frozenset(b"=>/\"'")


class TelegramHTMLError(ValueError):
    """Raised for text Telegram would refuse with ``400 Bad Request``.

    ``str(error)`` and ``error.description`` are the Bot API description,
    e.g. ``Bad Request: can't parse entities: Unsupported start tag "div" at
    byte offset 0``.
    """

    error_code = 400

    def __init__(self, description: str, byte_offset: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.byte_offset = byte_offset


def _fail(reason: str, byte_offset: int | None = None) -> TelegramHTMLError:
    return TelegramHTMLError(_PREFIX + reason, byte_offset)


def _show(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class _Cursor:
    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def at(self, i: int) -> int:
        # Past the end reads as NUL, like TDLib's C string.
        return self.data[i] if i < self.size else 0


def _decode_entity(cur: _Cursor, pos: int) -> tuple[int, int, bool]:
    """TDLib's decode_html_entity.

    Returns ``(code_point, end_position, had_semicolon)``; code point 0 means
    "not an entity Telegram understands".
    """
    at = cur.at
    end = pos + 1
    code = 0
    if at(pos + 1) == ord("#"):
        end += 1
        if at(pos + 2) == ord("x"):
            end += 1
            while at(end) in _HEX:
                code = code * 16 + int(chr(at(end)), 16)
                end += 1
                if code >= 0x10FFFF:  # keep going, but stop the number growing
                    code = 0x10FFFF
        else:
            while at(end) in _DIGITS:
                code = code * 10 + at(end) - 48
                end += 1
                if code >= 0x10FFFF:
                    code = 0x10FFFF
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos, False
    else:
        while at(end) in _ALPHA:
            end += 1
        name = cur.data[pos + 1 : end]
        char = _NAMED_ENTITIES.get(name)
        if char is None:
            return 0, pos, False
        code = ord(char)
    if at(end) == ord(";"):
        return code, end + 1, True
    return code, end, False


def _entity_error(cur: _Cursor, pos: int) -> TelegramHTMLError:
    match = re.match(rb"&#?[A-Za-z0-9]{0,24};?", cur.data[pos:])
    shown = _show(match.group(0)) if match else "&"
    if shown == "&":
        hint = 'a literal "&" must be written as "&amp;"'
    elif not shown.endswith(";") and _decode_entity(cur, pos)[0]:
        hint = 'the terminating ";" is missing'
    else:
        hint = (
            "only &lt;, &gt;, &amp;, &quot; and numeric character references "
            'are supported; write a literal "&" as "&amp;"'
        )
    return _fail(f'Unsupported HTML entity "{shown}" at byte offset {pos} ({hint})', pos)


def _read_entity(cur: _Cursor, pos: int) -> tuple[str, int]:
    """Strictly decode the entity at ``pos`` (which holds ``&``)."""
    code, end, had_semicolon = _decode_entity(cur, pos)
    if code == 0 or not had_semicolon:
        raise _entity_error(cur, pos)
    if 0xD800 <= code <= 0xDFFF:
        raise _fail(
            "Text contains invalid Unicode characters after decoding HTML "
            "entities, check for unmatched surrogate code units",
            pos,
        )
    return chr(code), end


class _Open:
    __slots__ = ("tag", "argument", "begin", "text_len")

    def __init__(self, tag: str, argument: str, begin: int, text_len: int) -> None:
        self.tag = tag
        self.argument = argument
        self.begin = begin
        self.text_len = text_len


def _start_tag(cur: _Cursor, begin: int, stack: list[_Open], text_len: int) -> tuple[_Open, int]:
    """Parse a start tag whose ``<`` is at ``begin``; returns the index of its ``>``."""
    at = cur.at
    i = begin + 1
    while at(i) not in _SPACES and at(i) != ord(">"):
        i += 1
    if i >= cur.size:
        raise _fail(f"Unclosed start tag at byte offset {begin}", begin)

    tag = _show(cur.data[begin + 1 : i].lower())
    if tag not in SUPPORTED_TAGS:
        hint = ""
        if tag == "":
            hint = ' (a literal "<" must be written as "&lt;")'
        elif tag == "br":
            hint = ' (use a newline character instead of "<br>")'
        raise _fail(f'Unsupported start tag "{tag}" at byte offset {begin}{hint}', begin)

    argument = ""
    has_href = False
    while at(i) != ord(">"):
        while i < cur.size and at(i) in _SPACES:
            i += 1
        if at(i) == ord(">"):
            break
        attr_begin = i
        while at(i) not in _ATTR_NAME_STOP:
            i += 1
        attribute = _show(cur.data[attr_begin:i])
        if not attribute:
            raise _fail(f'Empty attribute name in the tag "{tag}" at byte offset {begin}', begin)
        while i < cur.size and at(i) in _SPACES:
            i += 1
        if at(i) != ord("="):
            if i >= cur.size:
                raise _fail(f'Unclosed start tag "{tag}" at byte offset {begin}', begin)
            if tag == "blockquote" and attribute == "expandable":
                argument = "1"
            continue
        i += 1
        while i < cur.size and at(i) in _SPACES:
            i += 1
        if i >= cur.size:
            raise _fail(f'Unclosed start tag "{tag}" at byte offset {begin}', begin)

        quote = at(i)
        if quote not in (ord('"'), ord("'")):
            # A name token: letters, digits, periods, hyphens; case-insensitive.
            token_begin = i
            while at(i) in _NAME_TOKEN:
                i += 1
            if at(i) not in _SPACES and at(i) != ord(">"):
                raise _fail(f"Unexpected end of name token at byte offset {token_begin}", token_begin)
            value = _show(cur.data[token_begin:i].lower())
        else:
            i += 1
            parts: list[str] = []
            chunk_begin = i
            while i < cur.size and at(i) != quote:
                if at(i) == ord("&"):
                    parts.append(_show(cur.data[chunk_begin:i]))
                    char, i = _read_entity(cur, i)
                    parts.append(char)
                    chunk_begin = i
                    continue
                i += 1
            parts.append(_show(cur.data[chunk_begin:i]))
            value = "".join(parts)
            if at(i) == quote and i < cur.size:
                i += 1
        if i >= cur.size:
            raise _fail(f"Unclosed start tag at byte offset {begin}", begin)

        if tag == "a" and attribute == "href":
            argument = value
            has_href = True
        elif tag == "tg-emoji" and attribute == "emoji-id":
            argument = value
        elif tag == "code" and attribute == "class" and value.startswith("language-"):
            argument = value[9:]
        elif tag == "span" and attribute == "class" and value.startswith("tg-"):
            argument = value[3:]
        elif tag == "blockquote" and attribute == "expandable":
            argument = "1"

    if tag == "span" and argument != "spoiler":
        raise _fail(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}', begin)
    if tag == "a":
        if not has_href or not argument.strip():
            raise _fail(f'Tag "a" must have a non-empty "href" attribute at byte offset {begin}', begin)
        if any(open_.tag == "a" for open_ in stack):
            raise _fail(f'Tag "a" can\'t be nested inside another "a" tag at byte offset {begin}', begin)
    return _Open(tag, argument, begin, text_len), i


def _end_tag(cur: _Cursor, begin: int, stack: list[_Open], text_len: int) -> int:
    """Parse an end tag whose ``<`` is at ``begin``; returns the index of its ``>``."""
    at = cur.at
    if not stack:
        raise _fail(f"Unexpected end tag at byte offset {begin} (no tag is open)", begin)
    i = begin + 2
    while at(i) not in _SPACES and at(i) != ord(">"):
        i += 1
    name = _show(cur.data[begin + 2 : i].lower())
    while i < cur.size and at(i) in _SPACES:
        i += 1
    if at(i) != ord(">") or i >= cur.size:
        raise _fail(f"Unclosed end tag at byte offset {begin}", begin)
    open_ = stack[-1]
    if name and name != open_.tag:
        raise _fail(
            f'Unmatched end tag at byte offset {begin}, expected "</{open_.tag}>", found "</{name}>"',
            begin,
        )
    if open_.tag == "tg-emoji" and text_len > open_.text_len:
        arg = open_.argument
        if not (arg.isascii() and arg.isdigit() and 0 < int(arg) < 2**63):
            raise _fail("Invalid custom emoji identifier specified", open_.begin)
    stack.pop()
    return i


def parse_telegram_html(text: str) -> str:
    """Validate ``text`` as Telegram HTML and return its plain text.

    Tags are removed and entities decoded.  Raises :class:`TelegramHTMLError`
    for anything Telegram would reject (plus the stricter rules in the module
    docstring).
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TelegramHTMLError("Bad Request: strings must be encoded in UTF-8") from exc

    cur = _Cursor(data)
    out: list[str] = []
    out_len = 0  # characters produced so far, to detect empty entities
    stack: list[_Open] = []
    chunk_begin = 0
    i = 0
    size = cur.size
    while i < size:
        c = data[i]
        if c != 0x26 and c != 0x3C:  # fast path: neither "&" nor "<"
            i += 1
            continue
        if i > chunk_begin:
            piece = _show(data[chunk_begin:i])
            out.append(piece)
            out_len += len(piece)
        if c == 0x26:  # "&"
            char, i = _read_entity(cur, i)
            out.append(char)
            out_len += 1
        elif cur.at(i + 1) != ord("/"):
            open_, i = _start_tag(cur, i, stack, out_len)
            stack.append(open_)
            i += 1
        else:
            i = _end_tag(cur, i, stack, out_len) + 1
        chunk_begin = i
    if size > chunk_begin:
        out.append(_show(data[chunk_begin:size]))

    if stack:
        open_ = stack[-1]
        raise _fail(
            f'Can\'t find end tag corresponding to start tag "{open_.tag}" '
            f"(opened at byte offset {open_.begin})",
            open_.begin,
        )
    return "".join(out)


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram counts in."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def visible_length(text: str) -> int:
    """UTF-16 length of the plain text of ``text`` (validated strictly)."""
    return utf16_length(parse_telegram_html(text))


_LENIENT_TAG = re.compile(
    r"</?(?:" + "|".join(sorted((re.escape(t) for t in SUPPORTED_TAGS), key=len, reverse=True)) + r")"
    r"(?=[\s/>])(?:\"[^\"]*\"|'[^']*'|[^'\">])*>",
    re.IGNORECASE,
)
_LENIENT_ENTITY = re.compile(r"&(?:#x([0-9a-fA-F]{1,8})|#([0-9]{1,8})|(lt|gt|amp|quot));?")


def _lenient_entity(match: re.Match[str]) -> str:
    hex_code, dec_code, name = match.groups()
    if name:
        return _NAMED_ENTITIES[name.encode()]
    code = int(hex_code, 16) if hex_code else int(dec_code)
    if 0 < code < 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return match.group(0)


def strip_html(text: str) -> str:
    """Plain text of ``text`` for transcripts; never raises.

    Valid Telegram HTML gives exactly what :func:`parse_telegram_html` gives.
    Otherwise supported tags are dropped, entities Telegram understands are
    decoded, and everything else (stray ``<``, unknown tags, bare ``&``) is
    kept as written.
    """
    try:
        return parse_telegram_html(text)
    except TelegramHTMLError:
        pass
    stripped = _LENIENT_TAG.sub("", text)
    return _LENIENT_ENTITY.sub(_lenient_entity, stripped)
