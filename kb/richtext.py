"""Knowledge-base answer markup (a small Markdown subset) to Telegram HTML.

Staff write answers in CommonMark; the bot sends them with
``parse_mode="HTML"``.  The Markdown is parsed by markdown-it-py (commonmark
preset, raw HTML disabled so it shows up as text, no linkify) and its token
tree is rendered to the handful of tags Telegram understands:

==========================  ===========================================
``**x**``                   ``<b>x</b>``
``_x_`` / ``*x*``           ``<i>x</i>``
`` `x` ``                   ``<code>x</code>``
fenced / indented code      ``<pre>x</pre>``
``[t](url)``, ``<url>``     ``<a href="url">t</a>`` for http, https,
                            mailto and tg links; other links: just ``t``
heading                     ``<b>text</b>`` as its own paragraph
``> quote``                 ``<blockquote>...</blockquote>``
``- item``                  ``• item`` (two more spaces per nesting level)
``3. item``                 ``3. item``
``---``                     ``———``
``![alt](src)``             ``alt``
==========================  ===========================================

Paragraphs are separated by one blank line; line breaks become newlines.
All text is escaped, so the result always parses as Telegram HTML.
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

__all__ = ["markdown_to_telegram_html", "plain_text_length", "ALLOWED_LINK_SCHEMES"]

ALLOWED_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tg"})

BULLET = "• "
HORIZONTAL_RULE = "———"
INDENT = "  "

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
# markdown-it refuses to turn e.g. javascript: links into links at all and
# leaves the whole "[text](url)" source as text.  Accept every link here and
# apply our own scheme whitelist while rendering, so such links show as text.
_md.validateLink = lambda url: True

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _allowed_href(href: str | None) -> bool:
    if not href:
        return False
    match = _SCHEME.match(href)
    return bool(match) and match.group(1).lower() in ALLOWED_LINK_SCHEMES


class _Renderer:
    def __init__(self) -> None:
        self.in_link = False
        self.in_blockquote = False

    # -- inline -----------------------------------------------------------

    def inline(self, nodes: list[SyntaxTreeNode]) -> str:
        return "".join(self.inline_node(node) for node in nodes)

    def inline_node(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("text", "text_special", "html_inline"):
            return _escape(node.content)
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "code_inline":
            return f"<code>{_escape(node.content)}</code>"
        if kind == "strong":
            return f"<b>{self.inline(node.children)}</b>"
        if kind == "em":
            return f"<i>{self.inline(node.children)}</i>"
        if kind == "link":
            href = node.attrGet("href")
            if self.in_link or not _allowed_href(href if isinstance(href, str) else None):
                return self.inline(node.children)
            self.in_link = True
            try:
                inner = self.inline(node.children)
            finally:
                self.in_link = False
            return f'<a href="{html.escape(str(href), quote=True)}">{inner}</a>'
        if kind == "image":
            return _escape(_as_text(node.children))
        # Anything else (only possible with other presets/plugins): its text.
        if node.children:
            return self.inline(node.children)
        return _escape(node.content)

    # -- blocks -----------------------------------------------------------

    def blocks(self, nodes: list[SyntaxTreeNode], depth: int) -> list[str]:
        rendered = (self.block(node, depth) for node in nodes)
        return [text for text in rendered if text.strip()]

    def block(self, node: SyntaxTreeNode, depth: int = 0) -> str:
        kind = node.type
        if kind == "paragraph":
            return self.inline_children(node)
        if kind == "heading":
            text = self.inline_children(node)
            return f"<b>{text}</b>" if text.strip() else ""
        if kind in ("code_block", "fence"):
            code = node.content.rstrip("\n")
            return f"<pre>{_escape(code)}</pre>" if code.strip() else ""
        if kind == "hr":
            return HORIZONTAL_RULE
        if kind == "blockquote":
            if self.in_blockquote:  # Telegram can't nest quotes: flatten
                return "\n\n".join(self.blocks(node.children, depth))
            self.in_blockquote = True
            try:
                inner = "\n\n".join(self.blocks(node.children, depth))
            finally:
                self.in_blockquote = False
            return f"<blockquote>{inner}</blockquote>" if inner else ""
        if kind in ("bullet_list", "ordered_list"):
            return self.list(node, depth)
        if kind == "html_block":  # disabled, but render safely if it appears
            return _escape(node.content.rstrip("\n"))
        if kind == "inline":
            return self.inline(node.children)
        return "\n\n".join(self.blocks(node.children, depth))

    def inline_children(self, node: SyntaxTreeNode) -> str:
        return "".join(self.inline(child.children) for child in node.children if child.type == "inline")

    def list(self, node: SyntaxTreeNode, depth: int) -> str:
        ordered = node.type == "ordered_list"
        start = node.attrGet("start") if ordered else None
        number = int(start) if start is not None else 1
        lines: list[str] = []
        for item in node.children:
            marker = f"{number}. " if ordered else BULLET
            number += 1
            prefix = INDENT * depth + marker
            parts: list[str] = []
            first = True
            for child in item.children:
                is_list = child.type in ("bullet_list", "ordered_list")
                text = self.block(child, depth + 1)
                if not text.strip():
                    continue
                if first and not is_list:
                    parts.append(prefix + text)
                else:
                    if first:
                        parts.append(prefix.rstrip())
                    # Nested lists indent themselves; other blocks (a second
                    # paragraph, a code block) line up under the item text.
                    parts.append(text if is_list else INDENT * (depth + 1) + text)
                first = False
            if first:  # empty item
                parts.append(prefix.rstrip())
            lines.append("\n".join(parts))
        return "\n".join(lines)


def _as_text(nodes: list[SyntaxTreeNode]) -> str:
    """Plain text of inline nodes (markdown-it's renderInlineAsText)."""
    out: list[str] = []
    for node in nodes:
        if node.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif node.children:
            out.append(_as_text(node.children))
        else:
            out.append(node.content)
    return "".join(out)


def _clean(source: str) -> str:
    # Pair up surrogates that arrived as separate code points and replace
    # lone ones, which cannot be encoded as UTF-8 for Telegram.
    if any("\ud800" <= ch <= "\udfff" for ch in source):
        source = source.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return source


def markdown_to_telegram_html(source: str) -> str:
    """Render knowledge-base Markdown as Telegram HTML (``parse_mode="HTML"``)."""
    source = _clean(source or "")
    if not source.strip():
        return ""
    tree = SyntaxTreeNode(_md.parse(source))
    return "\n\n".join(_Renderer().blocks(tree.children, 0)).strip()


_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#x27|#39);")
_ENTITY_CHARS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "#x27": "'", "#39": "'"}


def plain_text_length(source: str) -> int:
    """Visible length of the rendered answer in UTF-16 code units.

    This is what Telegram counts against its message (4096) and caption
    (1024) limits.
    """
    rendered = markdown_to_telegram_html(source)
    # Our output only holds tags we wrote and entities html.escape wrote.
    text = _ENTITY.sub(lambda m: _ENTITY_CHARS[m.group(1)], _TAG.sub("", rendered))
    return len(text.encode("utf-16-le")) // 2
