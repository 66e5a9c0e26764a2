import pytest

from bot.telegram_html import parse_telegram_html, visible_length
from kb.richtext import markdown_to_telegram_html, plain_text_length


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", ""),
        ("   \n\n  ", ""),
        ("Hello", "Hello"),
        ("Hello **world**", "Hello <b>world</b>"),
        ("an _italic_ and *another*", "an <i>italic</i> and <i>another</i>"),
        ("***both***", "<i><b>both</b></i>"),
        ("run `rm -rf <dir> && ls`", "run <code>rm -rf &lt;dir&gt; &amp;&amp; ls</code>"),
        ("first\n\nsecond\n\n\n\nthird", "first\n\nsecond\n\nthird"),
        ("soft\nbreak", "soft\nbreak"),
        ("hard  \nbreak", "hard\nbreak"),
        ("hard\\\nbreak", "hard\nbreak"),
        ("trailing   \n\n", "trailing"),
        ("```\nx < 1 && y > 2\n```", "<pre>x &lt; 1 &amp;&amp; y &gt; 2</pre>"),
        ("```python\nprint('hi')\n```", "<pre>print('hi')</pre>"),
        ("    indented\n    code", "<pre>indented\ncode</pre>"),
        ("[docs](https://example.com/a?b=1&c=2)", '<a href="https://example.com/a?b=1&amp;c=2">docs</a>'),
        ("[mail](mailto:help@example.com)", '<a href="mailto:help@example.com">mail</a>'),
        ("[bot](tg://resolve?domain=helpdesk)", '<a href="tg://resolve?domain=helpdesk">bot</a>'),
        ("[**bold** link](http://x.org)", '<a href="http://x.org"><b>bold</b> link</a>'),
        ("[x](javascript:alert(1))", "x"),
        ("[x](ftp://example.com/file)", "x"),
        ("[relative](/path/to)", "relative"),
        ("[q](https://x.org/?q='\")", '<a href="https://x.org/?q=&#x27;%22">q</a>'),
        ("<https://example.com>", '<a href="https://example.com">https://example.com</a>'),
        ("<help@example.com>", '<a href="mailto:help@example.com">help@example.com</a>'),
        ("- one\n- two\n- three", "• one\n• two\n• three"),
        ("* a\n\n* b", "• a\n• b"),
        ("- a\n  - b\n    - c\n- d", "• a\n  • b\n    • c\n• d"),
        ("- item\n\n  second paragraph", "• item\n  second paragraph"),
        ("1. one\n2. two", "1. one\n2. two"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("1. a\n   - b\n2. c", "1. a\n  • b\n2. c"),
        ("intro\n\n- a\n- b\n\noutro", "intro\n\n• a\n• b\n\noutro"),
        ("# Title\n\nBody", "<b>Title</b>\n\nBody"),
        ("Setext\n======\nBody", "<b>Setext</b>\n\nBody"),
        ("## Sub *title*", "<b>Sub <i>title</i></b>"),
        ("> quoted\n> text", "<blockquote>quoted\ntext</blockquote>"),
        ("> a\n>\n> b", "<blockquote>a\n\nb</blockquote>"),
        ("> outer\n> > inner", "<blockquote>outer\n\ninner</blockquote>"),
        ("above\n\n---\n\nbelow", "above\n\n———\n\nbelow"),
        ("***", "———"),
        ("![a *cat*](cat.png)", "a cat"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("<b>not bold</b>", "&lt;b&gt;not bold&lt;/b&gt;"),
        ("a & b", "a &amp; b"),
        ("1 < 2 > 0", "1 &lt; 2 &gt; 0"),
        ("&amp; &lt; &copy;", "&amp; &lt; ©"),
        ("**unbalanced", "**unbalanced"),
        ("quote \"marks\" 'here'", "quote \"marks\" 'here'"),
        ("😀 emoji", "😀 emoji"),
        ("שלום **עולם**", "שלום <b>עולם</b>"),
    ],
)
def test_markdown_to_telegram_html(source, expected):
    html = markdown_to_telegram_html(source)
    assert html == expected
    parse_telegram_html(html)


HOSTILE = [
    "",
    "<script>alert(1)</script>",
    "a & b",
    "1 < 2",
    "**unbalanced",
    "__also *unbalanced",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox)",
    '[x](https://a.b/"><script>)',
    "[x](<https://a.b/ space>)",
    "<javascript:alert(1)>",
    "[[nested](https://a)](https://b)",
    "[<https://inner>](https://outer)",
    "![img](javascript:alert(1)) ![<b>](x.png)",
    "😀👍🏽🇺🇦 emoji",
    "\u202eRTL override\u202c مرحبا بالعالم שלום",
    "&nbsp;&foo;&#0;&#x110000;&#xD800;&",
    "<br><div><p>tags</p></div><br/>",
    "</b></i></a>",
    "<b><i>x</b></i>",
    "`code with <tags> & amps`",
    "```\n<pre>\n</pre>\n```",
    "```html\n<a href='x'>&amp;</a>",
    "> > > deeply\n> > nested\n> quote",
    "- - - ",
    "1. \n2. \n   - [ ]",
    "* [link](https://x?a=1&b=<2>)\n  * `code`\n    * **bold _italic_**",
    "# \n## \n---\n***\n___",
    "\x00 null \x01 ctrl \x7f",
    "lone \ud800 surrogate",
    "\\<b>escaped\\</b> \\& \\*",
    "<!-- comment --> <![CDATA[x]]> <?php ?>",
    "a\r\nb\rc\n",
    "\t\ttabs    and    spaces   ",
    "[x](tg://user?id=1\"><b>)",
    "*" * 50 + "x" + "_" * 50,
    "[" * 20 + "x" + "](https://y)" * 20,
]


@pytest.mark.parametrize("source", HOSTILE)
def test_output_always_parses_as_telegram_html(source):
    html = markdown_to_telegram_html(source)
    parse_telegram_html(html)  # raises on anything Telegram would reject
    assert html == html.strip()
    assert "<script" not in html
    assert 'href="javascript' not in html.lower()
    assert plain_text_length(source) == visible_length(html)


def test_unsafe_links_keep_only_their_text():
    for source in HOSTILE:
        html = markdown_to_telegram_html(source)
        for href in html.split('href="')[1:]:
            scheme = href.split(":", 1)[0].lower()
            assert scheme in {"http", "https", "mailto", "tg"}, (source, html)


def test_empty_string():
    assert markdown_to_telegram_html("") == ""
    assert plain_text_length("") == 0


@pytest.mark.parametrize(
    ("source", "length"),
    [
        ("hello", 5),
        ("**a & b**", 5),
        ("😀", 2),
        ("[link](https://example.com/a-very-long-url)", 4),
        ("- a\n- b", 7),
        ("# T\n\nx", 4),
    ],
)
def test_plain_text_length_counts_what_telegram_counts(source, length):
    assert plain_text_length(source) == length
