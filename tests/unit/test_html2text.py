"""HTML -> plain text for the text part of a campaign."""

from __future__ import annotations

import pytest

from lunamail.lib.html2text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo\n"),
        ("<p>a<br>b<br/>c</p>", "a\nb\nc\n"),
        ("<p>  lots   of\n\n  space\t here </p>", "lots of space here\n"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two\n"),
        ("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two\n"),
        ("<ul><li>a<ul><li>b</li></ul></li></ul>", "- a\n  - b\n"),
        ("<h1>Title</h1><p>x</p>", "Title\n=====\n\nx\n"),
        ("<h2>Sub</h2>", "Sub\n---\n"),
        ("<h3>Small</h3><p>x</p>", "Small\n\nx\n"),
        ("<h1>Hi {{ subscriber.name }}</h1>", "Hi {{ subscriber.name }}\n"),
        ('<a href="https://x.org/a">Read</a>', "Read (https://x.org/a)\n"),
        ('<a href="https://x.org/">https://x.org/</a>', "https://x.org/\n"),
        ('<a href="mailto:me@x.org">me@x.org</a>', "me@x.org\n"),
        ('<a href="mailto:me@x.org">Write</a>', "Write (me@x.org)\n"),
        ('<a href="#top">Top</a>', "Top\n"),
        ('<a href="https://x.org/"><img src="l.png" alt="Logo"></a>', "Logo (https://x.org/)\n"),
        ('<a href="https://x.org/"><img src="l.png"></a>', "https://x.org/\n"),
        ('<p>x<img src="a.png" alt="A picture">y</p>', "xA picturey\n"),
        ("<p>a</p><script>alert(1)</script><style>p{}</style><p>b</p>", "a\n\nb\n"),
        ("<head><title>T</title></head><body>Hi</body>", "Hi\n"),
        ("<p>Fish &amp; chips &lt;3 &eacute;t&#233; &#x263A;</p>", "Fish & chips <3 été ☺\n"),
        ("<p>non&nbsp;breaking</p>", "non breaking\n"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc\n"),
        ("<pre>keep   this\n  layout</pre>", "keep   this\n  layout\n"),
        ("<p>a</p><hr><p>b</p>", "a\n\n---\n\nb\n"),
        ("", ""),
    ],
)
def test_conversion(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_template_code_survives_for_later_rendering() -> None:
    html = (
        '<p>Hi {{ subscriber.fields.city | default("there") }}</p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    )
    assert html_to_text(html) == (
        'Hi {{ subscriber.fields.city | default("there") }}\n\n'
        "Unsubscribe ({{ unsubscribe_url }})\n"
    )


def test_no_runs_of_blank_lines() -> None:
    text = html_to_text("<div><p>a</p></div><div></div><div><p></p><p>b</p></div>")
    assert text == "a\n\nb\n"
