import pytest

from bot.telegram_html import (
    TelegramHTMLError,
    parse_telegram_html,
    strip_html,
    visible_length,
)

PREFIX = "Bad Request: can't parse entities: "


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("", ""),
        ("plain text", "plain text"),
        ("<b>a &amp; b</b>", "a & b"),
        ("<b>bold <i>both</i></b> <i>it</i>", "bold both it"),
        ("<strong>s</strong><em>e</em><u>u</u><ins>i</ins><s>s</s><strike>k</strike><del>d</del>", "seuisk" + "d"),
        ('<a href="https://example.com/?a=1&amp;b=2">link</a>', "link"),
        ("<a href='tg://user?id=1'>me</a>", "me"),
        ("<a href=example.com>x</a>", "x"),
        ('<pre><code class="language-python">x = 1 &lt; 2</code></pre>', "x = 1 < 2"),
        ("<pre>a\n  b</pre>", "a\n  b"),
        ("<code>inline</code>", "inline"),
        ('<span class="tg-spoiler">secret</span>', "secret"),
        ("<tg-spoiler>secret</tg-spoiler>", "secret"),
        ("<blockquote expandable>long</blockquote>", "long"),
        ("<blockquote>q</blockquote>", "q"),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍"),
        ("<B>upper</B>", "upper"),
        ("<b >x</b >", "x"),
        ("line 1\nline 2\n\nline 4", "line 1\nline 2\n\nline 4"),
        ("&lt;&gt;&amp;&quot;", '<>&"'),
        ("&#65;&#x42;&#x1F600;", "AB😀"),
        ("1 > 0", "1 > 0"),
        ("<b></b>empty", "empty"),
        ("<b>x</>", "x"),
        ("שלום <b>עולם</b>", "שלום עולם"),
    ],
)
def test_valid_html_gives_plain_text(source, plain):
    assert parse_telegram_html(source) == plain


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("1<2", "Unclosed start tag at byte offset 1"),
        ("a & b", 'Unsupported HTML entity "&" at byte offset 2'),
        ("AT&T", 'Unsupported HTML entity "&T" at byte offset 2'),
        ("&nbsp;", 'Unsupported HTML entity "&nbsp;" at byte offset 0'),
        ("&amp no semicolon", 'Unsupported HTML entity "&amp" at byte offset 0'),
        ("&#0;", 'Unsupported HTML entity "&#0;"'),
        ("&#xD800;", "check for unmatched surrogate code units"),
        ("line<br>next", 'Unsupported start tag "br" at byte offset 4'),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
        ("<a>x</a>", 'Tag "a" must have a non-empty "href" attribute at byte offset 0'),
        ('<a href="">x</a>', 'Tag "a" must have a non-empty "href" attribute'),
        (
            '<a href="https://a">x <a href="https://b">y</a></a>',
            'Tag "a" can\'t be nested inside another "a" tag at byte offset 22',
        ),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<span class="bold">x</span>', 'Tag "span" must have class "tg-spoiler"'),
        ('<tg-emoji emoji-id="abc">x</tg-emoji>', "Invalid custom emoji identifier specified"),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<a href="x', "Unclosed start tag at byte offset 0"),
        ('<a ="x">y</a>', 'Empty attribute name in the tag "a" at byte offset 0'),
        ("<a href=x/>y</a>", "Unexpected end of name token at byte offset 8"),
        ('<a href="https://x?a=1&b=2">y</a>', 'Unsupported HTML entity "&b" at byte offset 22'),
        ("<!-- comment -->", 'Unsupported start tag "!--" at byte offset 0'),
        ("é <p>", 'Unsupported start tag "p" at byte offset 3'),  # offsets are UTF-8 bytes
    ],
)
def test_invalid_html_is_rejected_with_telegrams_description(source, message):
    with pytest.raises(TelegramHTMLError) as excinfo:
        parse_telegram_html(source)
    description = str(excinfo.value)
    assert description.startswith(PREFIX)
    assert message in description
    assert excinfo.value.description == description
    assert excinfo.value.error_code == 400
    assert isinstance(excinfo.value, ValueError)


def test_error_messages_explain_how_to_fix_common_mistakes():
    with pytest.raises(TelegramHTMLError, match="&amp;"):
        parse_telegram_html("Tom & Jerry")
    with pytest.raises(TelegramHTMLError, match="&lt;"):
        parse_telegram_html("if a < b")
    with pytest.raises(TelegramHTMLError, match="newline"):
        parse_telegram_html("a<br>b")


def test_lone_surrogate_is_rejected():
    with pytest.raises(TelegramHTMLError, match="UTF-8"):
        parse_telegram_html("bad \ud800")


@pytest.mark.parametrize(
    ("source", "length"),
    [
        ("", 0),
        ("abc", 3),
        ("😀", 2),
        ("<b>😀</b>", 2),
        ("&#x1F600;", 2),
        ("&amp;", 1),
        ("<b>a &lt; b</b>", 5),
        ("é", 1),
        ("👍🏽", 4),
        ("line\nline", 9),
    ],
)
def test_visible_length_counts_utf16_code_units(source, length):
    assert visible_length(source) == length


def test_visible_length_validates():
    with pytest.raises(TelegramHTMLError):
        visible_length("<b>unclosed")


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("<b>a &amp; b</b>", "a & b"),
        ("<b>unclosed &amp; more", "unclosed & more"),
        ("Tom & Jerry <i>x</i>", "Tom & Jerry x"),
        ("if a < b then <b>c</b>", "if a < b then c"),
        ("<div>kept</div> &nbsp; &lt;", "<div>kept</div> &nbsp; <"),
        ('<a href="https://x?a=1&b=2">y</a>', "y"),
        ("bad \ud800", "bad \ud800"),
        ("", ""),
    ],
)
def test_strip_html_is_lenient(source, plain):
    assert strip_html(source) == plain
