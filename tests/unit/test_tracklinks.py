"""Tracked URLs: tokens round-trip, match the canonical token format, and refuse any tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lunamail.lib import tokens
from lunamail.lib.tracklinks import (
    ClickToken,
    OpenToken,
    TrackingLinks,
    insert_pixel,
    read_click,
    read_open,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
BASE = "https://t.example.com/"
SENT = 1_700_000_000.75
NOW = SENT + 3600
URL = "https://shop.example.org/spring?utm_source=mail&x=1#top"


def keys(account: str) -> bytes:
    return {"acct": KEY}[account]


def links(max_age: float | None = None) -> TrackingLinks:
    return TrackingLinks(BASE, KEY, "acct", "camp1", max_age=max_age)


def token_of(url: str, prefix: str) -> str:
    assert url.startswith(prefix), url
    return url[len(prefix) :]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_click_round_trip() -> None:
    url = links().rewriter("ann@example.com", SENT)(URL, 3)
    token = token_of(url, "https://t.example.com/c/")
    assert read_click(keys, token, now=NOW) == ClickToken(
        "acct", "camp1", "ann@example.com", 3, URL, int(SENT)
    )


def test_open_round_trip_and_gif_suffix() -> None:
    url = links().pixel_url("ann@example.com", SENT)
    token = token_of(url, "https://t.example.com/o/")
    assert token.endswith(".gif")
    assert read_open(keys, token[: -len(".gif")], now=NOW) == OpenToken(
        "acct", "camp1", "ann@example.com", int(SENT)
    )


@pytest.mark.parametrize("key", [KEY, b"short", b"x" * 100])  # <, =, > the 64-byte block
def test_tokens_are_exactly_what_make_token_makes(key: bytes) -> None:
    tl = TrackingLinks(BASE, key, "acct", "camp1", max_age=86400)
    click = token_of(tl.rewriter("ann@example.com", SENT)(URL, 7), "https://t.example.com/c/")
    expires = int(SENT) + 86400
    assert click == tokens.make_token(
        key, "acct", "c", "camp1", "ann@example.com", "7", URL, str(int(SENT)), expires=expires
    )
    pixel = token_of(tl.pixel_url("ann@example.com", SENT), "https://t.example.com/o/")
    assert pixel == tokens.make_token(
        key, "acct", "o", "camp1", "ann@example.com", str(int(SENT)), expires=expires
    ) + ".gif"


def test_one_rewriter_serves_many_links_independently() -> None:
    rewrite = links().rewriter("ann@example.com", SENT)
    first, second = rewrite("https://a.example/", 0), rewrite("https://b.example/", 1)
    found = [read_click(keys, token_of(u, f"{BASE}c/"), now=NOW) for u in (first, second)]
    assert [(f.link, f.url) for f in found if f] == [(0, "https://a.example/"), (1, "https://b.example/")]


def _retoken(token: str, change: dict[int, str]) -> str:
    """The token with some payload fields replaced but the old MAC kept: a forgery."""
    body, _, mac = token.partition(".")
    parts = unb64(body).decode().split("\x1f")
    for i, value in change.items():
        parts[i] = value
    return f"{b64(chr(0x1F).join(parts).encode())}.{mac}"


@pytest.mark.parametrize(
    "change",
    [
        {6: "https://evil.example/"},  # the destination
        {3: "other-campaign"},
        {4: "bob@example.com"},
        {5: "8"},  # the link index
        {7: str(int(SENT) + 1)},  # the send time
        {0: "acct"},  # unchanged fields keep the MAC valid (the control case)
    ],
)
def test_a_tampered_click_field_is_refused(change: dict[int, str]) -> None:
    token = token_of(links().rewriter("ann@example.com", SENT)(URL, 3), f"{BASE}c/")
    forged = _retoken(token, change)
    unchanged = change == {0: "acct"}
    assert (read_click(keys, forged, now=NOW) is not None) is unchanged


def test_bad_mac_wrong_key_garbage_and_wrong_kind_are_refused() -> None:
    token = token_of(links().rewriter("ann@example.com", SENT)(URL, 3), f"{BASE}c/")
    body, _, mac = token.partition(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert read_click(keys, f"{body}.{flipped}", now=NOW) is None
    assert read_click(lambda a: OTHER_KEY, token, now=NOW) is None
    for junk in ["", ".", "abc", "abc.def", "%%%.***", token + "x"]:
        assert read_click(keys, junk, now=NOW) is None
    pixel = token_of(links().pixel_url("ann@example.com", SENT), f"{BASE}o/")[:-4]
    assert read_click(keys, pixel, now=NOW) is None  # an open token is no click token
    assert read_open(keys, token, now=NOW) is None
    unknown: dict[str, bytes] = {}
    assert read_click(lambda a: unknown[a], token, now=NOW) is None  # unknown account


def test_only_http_urls_are_ever_signed_targets() -> None:
    rewrite = links().rewriter("ann@example.com", SENT)
    for url in ["javascript:alert(1)", "data:text/html,x", "ftp://x.example/", "//evil.example/"]:
        token = token_of(rewrite(url, 0), f"{BASE}c/")
        assert read_click(keys, token, now=NOW) is None, url


def test_no_expiry_by_default_and_max_age_when_given() -> None:
    far_future = SENT + 20 * 365 * 86400
    plain = token_of(links().rewriter("ann@example.com", SENT)(URL, 0), f"{BASE}c/")
    assert read_click(keys, plain, now=far_future) is not None
    aged = token_of(links(max_age=365 * 86400).rewriter("ann@example.com", SENT)(URL, 0), f"{BASE}c/")
    assert read_click(keys, aged, now=SENT + 364 * 86400) is not None
    assert read_click(keys, aged, now=SENT + 366 * 86400) is None
    pixel = token_of(links(max_age=60).pixel_url("ann@example.com", SENT), f"{BASE}o/")[:-4]
    assert read_open(keys, pixel, now=SENT + 30) is not None
    assert read_open(keys, pixel, now=SENT + 120) is None


def test_separator_in_a_url_is_percent_encoded_and_refused_in_ids() -> None:
    token = token_of(links().rewriter("ann@example.com", SENT)("https://x.example/a\x1fb", 0), f"{BASE}c/")
    found = read_click(keys, token, now=NOW)
    assert found is not None and found.url == "https://x.example/a%1Fb"
    with pytest.raises(ValueError):
        links().rewriter("a\x1fb@example.com", SENT)
    with pytest.raises(ValueError):
        links().pixel_url("a\x1fb@example.com", SENT)
    with pytest.raises(ValueError):
        TrackingLinks(BASE, KEY, "acct", "c\x1f1")


def test_insert_pixel_goes_before_the_closing_body_or_at_the_end() -> None:
    px = "https://t.example.com/o/abc.def.gif"
    out = insert_pixel("<html><body><p>Hi</p></body></html>", px)
    assert out.startswith("<html><body><p>Hi</p><table role=\"presentation\"")
    assert out.endswith("<![endif]--></body></html>")
    # a cell background for most clients, an <img> only inside Outlook's conditional comment
    assert f'background="{px}"' in out and f"background-image:url('{px}')" in out
    assert out.count("<img") == 1 and out.index("<!--[if mso]><img") < out.index("<![endif]-->")
    assert "<img" not in out.replace(out[out.index("<!--[if mso]>"):out.index("<![endif]-->")], "")
    assert insert_pixel("<p>Hi</p>", px).startswith("<p>Hi</p><table ")
    assert insert_pixel("<P>Hi</P></BODY>", px).endswith("<![endif]--></BODY>")
    assert '&amp;"' not in insert_pixel("", 'https://t.example/o/a"b&c')
    assert 'src="https://t.example/o/a&quot;b&amp;c"' in insert_pixel("", 'https://t.example/o/a"b&c')


_text = st.text(st.characters(exclude_characters="\x1f", exclude_categories=["Cs"]), max_size=40)


@given(email=_text, path=_text, index=st.integers(0, 10_000), sent=st.integers(0, 2**33))
def test_round_trip_for_any_recipient_and_url(email: str, path: str, index: int, sent: int) -> None:
    url = "https://x.example/" + path
    token = token_of(links().rewriter(email, sent)(url, index), f"{BASE}c/")
    assert read_click(keys, token, now=float(sent)) == ClickToken("acct", "camp1", email, index, url, sent)
