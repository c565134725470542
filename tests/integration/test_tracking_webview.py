"""The web view: rendered from tracking's own copy of the campaign, kept by its handler."""

from __future__ import annotations

import re

from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.services.tracking.handlers import on_campaign_send_started
from lunamail.services.tracking.keys import CONTENT_SK, campaign_pk

from .test_tracking_fixtures import ACCOUNT, BASE, CAMPAIGN, EMAIL, LIST, Tracking, tr

__all__ = ["tr"]

HTML = (
    "<html><head><title>{{ campaign.subject }}</title></head><body>"
    "<h1>Hello {{ subscriber.name | default('reader', true) }}</h1>"
    "<p>This went to {{ subscriber.email }}.</p>"
    '<p><a href="https://shop.example.org/sale">Sale</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> · '
    '<a href="{{ view_in_browser_url }}">View online</a></p>'
    "</body></html>"
)


def _started(*, lists: tuple[str, ...] = (LIST,), html: str = HTML, started_at: float = 100.0) -> CampaignSendStarted:
    return CampaignSendStarted(
        account=ACCOUNT, campaign=CAMPAIGN, lists=lists, started_at=started_at,
        content={"subject": "Spring news", "html": html, "text": None, "name": "Spring",
                 "from_name": "Moon Shop", "from_email": "news@shop.example.org"},
    )


def test_the_web_view_renders_the_campaign_for_the_recipient(tr: Tracking) -> None:
    assert on_campaign_send_started(_started(), tr.deps) == []
    resp = tr.client.get(tr.view_path())
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "<title>Spring news</title>" in resp.text
    assert "<h1>Hello reader</h1>" in resp.text and f"This went to {EMAIL}." in resp.text
    assert 'href="https://shop.example.org/sale"' in resp.text  # links are not click-tracked here
    assert "script-src 'none'" in resp.headers["content-security-policy"]
    # The view links to itself, and its unsubscribe link works and names the campaign's list.
    assert f'href="{BASE}{tr.view_path()}"' in resp.text
    unsub = re.search(rf'href="{re.escape(BASE)}(/u/[^"]+)"', resp.text)
    assert unsub is not None
    assert tr.client.get(unsub.group(1)).status_code == 200
    tr.client.post(unsub.group(1), data={"List-Unsubscribe": "One-Click"})
    [event] = tr.published
    assert (event.list, event.email, event.scope) == (LIST, EMAIL, "list")  # type: ignore[attr-defined]


def test_a_campaign_sent_to_several_lists_unsubscribes_from_all(tr: Tracking) -> None:
    on_campaign_send_started(_started(lists=("l1", "l2")), tr.deps)
    unsub = re.search(rf'href="{re.escape(BASE)}(/u/[^"]+)"', tr.client.get(tr.view_path()).text)
    assert unsub is not None
    page = tr.client.get(unsub.group(1)).text
    assert 'value="list"' not in page and "all lists of Moon Shop" in page


def test_bad_tokens_and_unknown_campaigns_are_404(tr: Tracking) -> None:
    on_campaign_send_started(_started(), tr.deps)
    good = tr.view_path()
    assert tr.client.get(good).status_code == 200
    for path in ("/v/garbage", good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
                 tr.view_path(campaign="never-sent")):
        resp = tr.client.get(path)
        assert resp.status_code == 404 and "not available" in resp.text


def test_the_handler_is_idempotent_and_keeps_the_newest_start(tr: Tracking) -> None:
    key = (campaign_pk(ACCOUNT, CAMPAIGN), CONTENT_SK)
    newer = _started(html=HTML.replace("Hello", "Hi again"), started_at=200.0)
    on_campaign_send_started(newer, tr.deps)
    on_campaign_send_started(newer, tr.deps)
    on_campaign_send_started(_started(started_at=100.0), tr.deps)  # a late redelivery
    item = tr.deps.store.get(*key)
    assert item is not None and item["started_at"] == 200.0 and item["lists"] == [LIST]
    assert "<h1>Hi again reader</h1>" in tr.client.get(tr.view_path()).text


def test_a_template_that_fails_to_render_is_not_available(tr: Tracking) -> None:
    on_campaign_send_started(_started(html="<p>{{ subscriber.email.__class__ }}</p>"), tr.deps)
    resp = tr.client.get(tr.view_path())
    assert resp.status_code == 404
