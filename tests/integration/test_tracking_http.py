"""Open pixel, click redirect and unsubscribe over the ASGI app: a valid token publishes the
right event, anything else publishes nothing; GET never unsubscribes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunamail.domain.messages import from_json
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed

from .test_tracking_fixtures import (
    ACCOUNT,
    CAMPAIGN,
    CHROME,
    EMAIL,
    LIST,
    Tracking,
    make_tracking,
    path_of,
    tr,
)

__all__ = ["tr"]

URL = "https://shop.example.org/sale?utm_source=mail&a=1"
GIF_MAGIC = b"GIF89a"


def _tampered(path: str) -> str:
    """The same path with one character of the token's payload changed."""
    head, _, token = path.rpartition("/")
    i = 8
    swapped = "A" if token[i] != "A" else "B"
    return f"{head}/{token[:i]}{swapped}{token[i + 1 :]}"


def _assert_no_cookie(resp: object) -> None:
    headers = resp.headers  # type: ignore[attr-defined]
    assert "set-cookie" not in headers


# ---------------------------------------------------------------- the open pixel


def test_pixel_counts_a_valid_open(tr: Tracking) -> None:
    sent = tr.clock.now() - 600
    resp = tr.client.get(path_of(tr.links().pixel_url(EMAIL, sent)), headers={"User-Agent": CHROME})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/gif" and resp.content.startswith(GIF_MAGIC)
    assert "no-store" in resp.headers["cache-control"] and resp.headers["pragma"] == "no-cache"
    _assert_no_cookie(resp)
    [event] = tr.published
    assert isinstance(event, Opened)
    assert (event.account, event.campaign, event.email) == (ACCOUNT, CAMPAIGN, EMAIL)
    assert (event.machine, event.reason, event.at) == (False, "", tr.clock.now())
    assert event.id and from_json(event.to_json()) == event  # JSON all the way


def test_pixel_marks_a_mail_proxy_as_machine(tr: Tracking) -> None:
    ua = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    tr.client.get(path_of(tr.links().pixel_url(EMAIL, tr.clock.now() - 60)), headers={"User-Agent": ua})
    [event] = tr.published
    assert isinstance(event, Opened) and (event.machine, event.reason) == (True, "gmail-image-proxy")


@pytest.mark.parametrize("kind", ["garbage", "tampered", "click-token", "no-suffix"])
def test_pixel_with_a_bad_token_is_still_a_gif_but_counts_nothing(tr: Tracking, kind: str) -> None:
    good = path_of(tr.links().pixel_url(EMAIL, tr.clock.now() - 60))
    path = {
        "garbage": "/o/not-a-token.gif",
        "tampered": _tampered(good),
        "click-token": path_of(tr.links().rewriter(EMAIL, 0)(URL, 0)).replace("/c/", "/o/") + ".gif",
        "no-suffix": good[: -len(".gif")],
    }[kind]
    resp = tr.client.get(path, headers={"User-Agent": CHROME})
    if kind == "no-suffix":  # not the pixel route at all
        assert resp.status_code == 404
    else:
        assert resp.status_code == 200 and resp.content.startswith(GIF_MAGIC)
    assert tr.published == []


# ---------------------------------------------------------------- clicks


def test_click_redirects_to_the_signed_url_and_counts(tr: Tracking) -> None:
    sent = tr.clock.now() - 3600
    resp = tr.client.get(path_of(tr.links().rewriter(EMAIL, sent)(URL, 4)),
                         headers={"User-Agent": CHROME}, follow_redirects=False)
    assert resp.status_code == 302 and resp.headers["location"] == URL
    _assert_no_cookie(resp)
    [event] = tr.published
    assert isinstance(event, Clicked)
    assert (event.account, event.campaign, event.email, event.link, event.url) == (
        ACCOUNT, CAMPAIGN, EMAIL, 4, URL)
    assert (event.machine, event.reason, event.at) == (False, "", tr.clock.now())
    assert from_json(event.to_json()) == event


def test_head_redirects_too_but_is_a_machine(tr: Tracking) -> None:
    path = path_of(tr.links().rewriter(EMAIL, tr.clock.now() - 3600)(URL, 0))
    resp = tr.client.head(path, headers={"User-Agent": CHROME}, follow_redirects=False)
    assert resp.status_code == 302 and resp.headers["location"] == URL
    [event] = tr.published
    assert isinstance(event, Clicked) and (event.machine, event.reason) == (True, "head-request")


def test_a_click_seconds_after_sending_is_a_scanner(tr: Tracking) -> None:
    path = path_of(tr.links().rewriter(EMAIL, tr.clock.now() - 3)(URL, 0))
    assert tr.client.get(path, headers={"User-Agent": CHROME}, follow_redirects=False).status_code == 302
    [event] = tr.published
    assert isinstance(event, Clicked) and (event.machine, event.reason) == (True, "click-too-soon")


@pytest.mark.parametrize("path", ["/c/garbage", "/c/", "/c/a.b", "/c/tampered"])
def test_a_bad_click_token_is_404_and_never_a_redirect(tr: Tracking, path: str) -> None:
    if path == "/c/tampered":
        path = _tampered(path_of(tr.links().rewriter(EMAIL, 0)(URL, 0)))
    for method in ("GET", "HEAD"):
        resp = tr.client.request(method, path, headers={"User-Agent": CHROME}, follow_redirects=False)
        assert resp.status_code == 404
        assert "location" not in resp.headers
    assert tr.published == []


def test_expired_links_are_404(tmp_path: Path) -> None:
    store, t = make_tracking(tmp_path, tracking_link_max_age_days=30)
    with t.client:
        sent = t.clock.now()
        settings_aged = path_of(t.links().rewriter(EMAIL, sent)(URL, 0))  # no expiry in the token
        token_aged = path_of(t.links(max_age=3600).rewriter(EMAIL, sent)(URL, 0))
        t.clock.advance(2 * 3600)
        assert t.client.get(settings_aged, follow_redirects=False).status_code == 302
        assert t.client.get(token_aged, follow_redirects=False).status_code == 404
        t.clock.advance(31 * 86400)
        assert t.client.get(settings_aged, follow_redirects=False).status_code == 404
        pixel = path_of(t.links().pixel_url(EMAIL, sent))
        assert t.client.get(pixel).status_code == 200
    assert len(t.published) == 1  # only the one redirect that happened
    store.close()


# ---------------------------------------------------------------- unsubscribe


def test_one_click_post_unsubscribes_at_once(tr: Tracking) -> None:
    resp = tr.client.post(tr.unsubscribe_path(), data={"List-Unsubscribe": "One-Click"},
                          follow_redirects=False)
    assert resp.status_code == 200
    assert len(resp.content) < 64 and resp.headers["content-type"].startswith("text/plain")
    _assert_no_cookie(resp)
    assert "location" not in resp.headers
    [event] = tr.published
    assert isinstance(event, Unsubscribed)
    assert (event.account, event.campaign, event.list, event.email) == (ACCOUNT, CAMPAIGN, LIST, EMAIL)
    assert (event.scope, event.method, event.at) == ("list", "one-click", tr.clock.now())
    assert from_json(event.to_json()) == event


def test_one_click_also_comes_as_multipart(tr: Tracking) -> None:
    resp = tr.client.post(tr.unsubscribe_path(), files={"List-Unsubscribe": (None, "One-Click")})
    assert resp.status_code == 200
    [event] = tr.published
    assert isinstance(event, Unsubscribed) and event.method == "one-click"


def test_one_click_with_a_bad_token_is_404(tr: Tracking) -> None:
    for path in ("/u/garbage", _tampered(tr.unsubscribe_path())):
        resp = tr.client.post(path, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
        assert resp.status_code == 404
    assert tr.published == []


def test_get_shows_a_confirmation_page_and_changes_nothing(tr: Tracking) -> None:
    for _ in range(2):  # scanners may fetch it more than once
        resp = tr.client.get(tr.unsubscribe_path())
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert EMAIL in resp.text and "Unsubscribe" in resp.text
        assert 'value="list" checked' in resp.text and 'value="all"' in resp.text
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        assert resp.headers["referrer-policy"] == "no-referrer"
        _assert_no_cookie(resp)
    assert tr.published == []


def test_a_link_without_a_list_offers_all_lists_only(tr: Tracking) -> None:
    resp = tr.client.get(tr.unsubscribe_path(list_id=""))
    assert 'value="list"' not in resp.text and 'name="scope" value="all"' in resp.text
    tr.client.post(tr.unsubscribe_path(list_id=""), data={"List-Unsubscribe": "One-Click"})
    [event] = tr.published
    assert isinstance(event, Unsubscribed) and (event.list, event.scope) == ("", "all")


def test_a_bare_post_is_the_page_flow_and_changes_nothing(tr: Tracking) -> None:
    for data in ({}, {"List-Unsubscribe": "something-else"}, {"action": "maybe"}):
        resp = tr.client.post(tr.unsubscribe_path(), data=data, follow_redirects=False)
        assert resp.status_code == 200 and "Nothing changes until you press the button" in resp.text
    assert tr.published == []


@pytest.mark.parametrize(("sent", "scope"), [("all", "all"), ("list", "list"), (None, "list")])
def test_confirming_on_the_page_unsubscribes_with_the_chosen_scope(
    tr: Tracking, sent: str | None, scope: str
) -> None:
    data = {"action": "confirm", **({"scope": sent} if sent else {})}
    resp = tr.client.post(tr.unsubscribe_path(), data=data, follow_redirects=False)
    assert resp.status_code == 200 and "You are unsubscribed" in resp.text and EMAIL in resp.text
    _assert_no_cookie(resp)
    [event] = tr.published
    assert isinstance(event, Unsubscribed) and (event.scope, event.method) == (scope, "page")


def test_page_and_redirect_tokens_are_not_interchangeable(tr: Tracking) -> None:
    # A view token (another key, another kind) is no unsubscribe token, and vice versa.
    view_token = tr.view_path().removeprefix("/v/")
    assert tr.client.get(f"/u/{view_token}").status_code == 404
    unsub_token = tr.unsubscribe_path().removeprefix("/u/")
    assert tr.client.get(f"/v/{unsub_token}").status_code == 404
    assert tr.client.get(f"/c/{unsub_token}", follow_redirects=False).status_code == 404
    assert tr.published == []
