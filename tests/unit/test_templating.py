"""Campaign templates: validation with lines, the sandbox, rendering, link rewriting."""

from __future__ import annotations

from typing import Any

import pytest

from lunamail.lib.templating import (
    RenderProblem,
    TemplateProblem,
    compile_campaign,
    extract_links,
)

UNSUB = "https://l.example/u/tok?a=1&b=2"
VIEW = "https://l.example/v/tok"
SUB: dict[str, Any] = {"email": "jane@example.com", "name": "Jane", "fields": {"city": "Lyon"}}
CAMP = {"id": "c1", "subject": "Weekly", "name": "w1"}


def render(html: str, text: str | None = "t", subject: str = "s", sub: dict[str, Any] | None = None,
           rewriter: Any = None) -> Any:
    c = compile_campaign(subject, html, text)
    return c.render(SUB if sub is None else sub, unsubscribe_url=UNSUB, view_in_browser_url=VIEW,
                    campaign=CAMP, link_rewriter=rewriter)


# ---------------------------------------------------------------- variables and escaping


def test_variables_render() -> None:
    out = render(
        "<p>{{ subscriber.name }} {{ subscriber.email }} {{ subscriber.fields.city }}"
        " {{ campaign.subject }} {{ campaign.name }} {{ view_in_browser_url }}</p>",
        text="{{ unsubscribe_url }}",
        subject="Hi {{ subscriber.name }}",
    )
    assert out.subject == "Hi Jane"
    assert out.html == "<p>Jane jane@example.com Lyon Weekly w1 https://l.example/v/tok</p>"
    assert out.text == UNSUB


def test_default_filter_on_missing_field() -> None:
    html = '<p>Hello {{ subscriber.fields.city | default("there") }}</p>'
    assert render(html, sub={"email": "a@b.c", "name": "", "fields": {}}).html == "<p>Hello there</p>"
    assert render(html).html == "<p>Hello Lyon</p>"
    # Even when the subscriber has no "fields" at all.
    assert render(html, sub={"email": "a@b.c"}).html == "<p>Hello there</p>"


def test_missing_field_and_none_render_empty() -> None:
    out = render("[{{ subscriber.fields.nope }}|{{ subscriber.name }}]",
                 sub={"email": "a@b.c", "name": None, "fields": {}})
    assert out.html == "[|]"


def test_a_field_named_like_a_dict_method_is_the_field() -> None:
    out = render("{{ subscriber.fields.items }}", sub={"email": "a@b.c", "fields": {"items": "3 books"}})
    assert out.html == "3 books"


def test_html_is_escaped_but_text_and_subject_are_not() -> None:
    sub = {"email": "a@b.c", "name": "<b>Tom & Jerry</b>", "fields": {}}
    out = render("{{ subscriber.name }}", text="{{ subscriber.name }}",
                 subject="{{ subscriber.name }}", sub=sub)
    assert out.html == "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"
    assert out.text == "<b>Tom & Jerry</b>"
    assert out.subject == "<b>Tom & Jerry</b>"


def test_subject_is_kept_on_one_line() -> None:
    sub = {"email": "a@b.c", "name": "Eve\r\nBcc: x@evil.example", "fields": {}}
    out = render("x", subject="Hi {{ subscriber.name }}", sub=sub)
    assert "\n" not in out.subject and "\r" not in out.subject
    assert out.subject == "Hi Eve Bcc: x@evil.example"


def test_text_derived_from_html_when_absent() -> None:
    c = compile_campaign("s", '<p>Hi {{ subscriber.name }}</p><a href="{{ unsubscribe_url }}">Stop</a>', None)
    assert c.text_generated
    out = c.render(SUB, unsubscribe_url=UNSUB, view_in_browser_url=VIEW, campaign=CAMP)
    assert out.text == f"Hi Jane\n\nStop ({UNSUB})\n"
    assert c.uses("text", "unsubscribe_url") and c.unsubscribe_link


def test_set_does_not_leak_between_recipients() -> None:
    c = compile_campaign("s", "{% if subscriber.name %}{% set greet = subscriber.name %}{% endif %}"
                              "{{ greet | default('nobody') }}", "t")
    first = c.render(SUB, unsubscribe_url=UNSUB, view_in_browser_url=VIEW, campaign=CAMP)
    second = c.render({"email": "x@y.z", "name": ""}, unsubscribe_url=UNSUB,
                      view_in_browser_url=VIEW, campaign=CAMP)
    assert (first.html, second.html) == ("Jane", "nobody")


# ---------------------------------------------------------------- errors with part and line


@pytest.mark.parametrize(
    ("part", "source", "line", "words"),
    [
        ("html", "<p>ok</p>\n<p>{{ subscriber.name </p>", 2, "unexpected"),
        ("html", "a\nb\n{% if subscriber.name %}x{% endfor %}\nend", 3, "endfor"),
        ("html", "line1\n{{ nope }}", 2, "unknown variable 'nope'"),
        ("html", "{{ subscriber.emial }}", 1, "subscriber has no attribute 'emial'"),
        ("html", "\n\n{{ campaign.owner }}", 3, "campaign has no attribute 'owner'"),
        ("html", "{{ subscriber.name | shout }}", 1, "No filter named 'shout'"),
        ("subject", "Hi {{ subscriber.name", 1, "unexpected end of template"),
        ("text", "ok\n{% for %}", 2, "Expected"),
    ],
)
def test_template_errors_name_part_and_line(part: str, source: str, line: int, words: str) -> None:
    parts = {"subject": "s", "html": "h", "text": "t", part: source}
    with pytest.raises(TemplateProblem) as info:
        compile_campaign(parts["subject"], parts["html"], parts["text"])
    assert (info.value.part, info.value.line) == (part, line)
    assert words in info.value.message
    assert str(info.value).startswith(f"{part}, line {line}: ")


def test_error_in_generated_text_says_so() -> None:
    # The HTML is a valid template, but its {% endif %} sits in a <style> that the text
    # conversion drops.
    html = "{% if subscriber.name %}<p>x</p><style>{% endif %}</style>"
    with pytest.raises(TemplateProblem) as info:
        compile_campaign("s", html, None)
    assert info.value.part == "text"
    assert "generated from the HTML" in info.value.message


# ---------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ subscriber['__class__'] }}",
        "{{ ''|attr('__class__') }}",
        "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
        "{{ subscriber._private }}",
    ],
)
def test_sandbox_escapes_refused_at_save(source: str) -> None:
    with pytest.raises(TemplateProblem) as info:
        compile_campaign("s", f"<p>\n{source}</p>", "t")
    assert info.value.part == "html" and info.value.line == 2
    assert "not allowed" in info.value.message


@pytest.mark.parametrize(
    "source",
    [
        '{% set n = "__cl" ~ "ass__" %}{{ ""|attr(n) }}',
        '{{ "{0.__class__}".format("") }}',
        "{{ 'x' * 10**7 }}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_what_the_static_check_misses_fails_at_render(source: str) -> None:
    c = compile_campaign("s", source, "t")  # passes the save-time check...
    with pytest.raises(RenderProblem) as info:  # ...but never renders
        c.render(SUB, unsubscribe_url=UNSUB, view_in_browser_url=VIEW, campaign=CAMP)
    assert info.value.part == "html"


def test_mutating_data_is_refused() -> None:
    c = compile_campaign("s", "{{ subscriber.fields.update({'city': 'x'}) }}", "t")
    with pytest.raises(RenderProblem):
        c.render(SUB, unsubscribe_url=UNSUB, view_in_browser_url=VIEW, campaign=CAMP)
    assert SUB["fields"] == {"city": "Lyon"}


# ---------------------------------------------------------------- links

LINKS_HTML = """<p><a href="https://a.example/x?p=1&amp;q=2">A</a>
<a href='mailto:help@example.com'>mail</a>
<a href="#top">top</a>
<a data-lunamail-track="off" href="https://private.example/">private</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
<a class="btn" href=https://b.example/z>B</a>
{% if subscriber.fields.vip %}<a href="https://vip.example/">VIP</a>{% endif %}
<a href="https://c.example/?e={{ subscriber.email | urlencode }}">C</a>
<a href="/relative">rel</a>
<a href="{{ view_in_browser_url }}">view</a></p>"""


def _recording() -> tuple[list[tuple[str, int]], Any]:
    seen: list[tuple[str, int]] = []

    def rewriter(url: str, index: int) -> str:
        seen.append((url, index))
        return f"https://t.example/c/{index}?k=a&b"

    return seen, rewriter


def test_extract_links_gives_stable_ids() -> None:
    links = extract_links(LINKS_HTML)
    assert [(link.index, link.url, link.text) for link in links] == [
        (0, "https://a.example/x?p=1&q=2", "A"),
        (1, "https://b.example/z", "B"),
        (2, "https://vip.example/", "VIP"),
        (3, "https://c.example/?e={{ subscriber.email | urlencode }}", "C"),
        (4, "{{ view_in_browser_url }}", "view"),
    ]


def test_rewriter_gets_each_trackable_link_with_its_index() -> None:
    seen, rewriter = _recording()
    out = render(LINKS_HTML, rewriter=rewriter)
    assert seen == [
        ("https://a.example/x?p=1&q=2", 0),
        ("https://b.example/z", 1),
        ("https://c.example/?e=jane%40example.com", 3),
        (VIEW, 4),
    ]
    html = out.html
    assert 'href="https://t.example/c/0?k=a&amp;b"' in html  # rewritten value is escaped
    assert 'href="https://t.example/c/1?k=a&amp;b"' in html  # unquoted value got quotes
    assert "href='mailto:help@example.com'" in html
    assert 'href="#top"' in html
    assert 'href="https://private.example/"' in html and "data-lunamail-track" not in html
    assert 'href="https://l.example/u/tok?a=1&amp;b=2"' in html  # unsubscribe untouched
    assert 'href="/relative"' in html
    assert "\x01" not in html and "\x02" not in html and "\x03" not in html


def test_indexes_do_not_shift_when_a_conditional_link_renders() -> None:
    seen, rewriter = _recording()
    render(LINKS_HTML, sub={**SUB, "fields": {"vip": True}}, rewriter=rewriter)
    assert [i for _, i in seen] == [0, 1, 2, 3, 4]
    assert seen[2] == ("https://vip.example/", 2)


def test_rendered_href_that_is_not_http_is_left_alone() -> None:
    seen, rewriter = _recording()
    html = '<a href="{{ subscriber.fields.site }}">site</a>'
    out = render(html, sub={**SUB, "fields": {"site": "mailto:x@y.example"}}, rewriter=rewriter)
    assert seen == [] and out.html == '<a href="mailto:x@y.example">site</a>'


def test_without_rewriter_links_are_as_written() -> None:
    out = render(LINKS_HTML)
    assert 'href="https://a.example/x?p=1&amp;q=2"' in out.html
    assert "href=https://b.example/z" in out.html
    assert "data-lunamail-track" not in out.html


def test_stray_marker_characters_in_data_do_not_break_rewriting() -> None:
    seen, rewriter = _recording()
    sub = {**SUB, "name": "a\x01b\x03c"}
    out = render('<p>{{ subscriber.name }}</p><a href="https://a.example/">A</a>', sub=sub,
                 rewriter=rewriter)
    assert seen == [("https://a.example/", 0)]
    assert 'href="https://t.example/c/0?k=a&amp;b"' in out.html


def test_unsubscribe_link_detection() -> None:
    assert compile_campaign("s", '<a href="{{ unsubscribe_url }}">x</a>', "t").unsubscribe_link
    assert not compile_campaign("s", "<p>{{ unsubscribe_url }}</p>", "t").unsubscribe_link
    assert compile_campaign("s", "<p>{{ unsubscribe_url }}</p>", "t").uses("html", "unsubscribe_url")
