"""The HTTP function on moto: API Gateway HTTP API (payload 2.0) events through the real
``http_handler``, the same ASGI app ``lunamail serve`` runs, publishing to SQS.

Events are copies of ``tests/events/apigw_http_v2_*.json`` with the path, method,
headers and body of each request; responses are read as API Gateway reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.config import Settings
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.entrypoints.aws import http
from lunamail.entrypoints.aws.system import build_system
from lunamail.lib import tokens
from lunamail.lib.tracklinks import TrackingLinks
from lunamail.runtime.bootstrap import System
from lunamail.services.accounts import api as accounts
from lunamail.services.audience import api as audience
from tests.support.events import http_body, http_event
from tests.support.fixtures import moto_endpoint

from .aws_fixtures import Aws, consumers_of, make_cloud

__all__ = ["moto_endpoint"]

DOMAIN = "mail.example.com"
BASE = f"https://{DOMAIN}"
CAMPAIGN = "c0ffee01"
EMAIL = "ann@example.org"
TARGET = "https://shop.example.org/sale?utm_source=mail"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    http.reset()
    # No custom domain: the function learns its base URL from the request, as deployed.
    yield make_cloud(
        moto_endpoint, tmp_path, monkeypatch, consumers_of(Opened, Clicked, Unsubscribed),
        LUNAMAIL_BASE_URL="",
    )
    http.reset()


@pytest.fixture
def admin(cloud: Aws) -> Iterator[System]:
    with build_system(Settings.load(base_url=BASE)) as system:
        yield system


def _account(admin: System) -> tuple[str, str]:
    acct = accounts.create_account(admin.deps, "Acme")
    return acct.id, accounts.create_api_key(admin.deps, acct.id, "lambda test").secret


def _path(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url[len(BASE) :]


def test_api_call_needs_a_key_and_sees_only_its_account(cloud: Aws, admin: System) -> None:
    account, key = _account(admin)
    audience.create_list(admin.deps, account, "Newsletter")
    audience.create_list(admin.deps, "someone-else", "Theirs")
    assert http.http_handler(http_event("GET", "/v1/lists"), None)["statusCode"] == 401

    created = http.http_handler(
        http_event(
            "POST", "/v1/lists",
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            body=json.dumps({"name": "Offers"}).encode(),
        ),
        None,
    )
    assert created["statusCode"] == 201, http_body(created)
    resp = http.http_handler(
        http_event("GET", "/v1/lists?limit=10", headers={"authorization": f"Bearer {key}"}), None
    )
    assert resp["statusCode"] == 200
    assert resp["headers"]["content-type"] == "application/json"
    names = sorted(i["name"] for i in json.loads(http_body(resp))["items"])
    assert names == ["Newsletter", "Offers"]
    # The base URL of a function without a custom domain is the API's own host.
    system = http._app.system
    assert system is not None and system.settings.base_url == BASE


def test_pixel_and_click_publish_to_their_queues(cloud: Aws, admin: System) -> None:
    account, _ = _account(admin)
    links = TrackingLinks(BASE, admin.deps.secrets.key(account, tokens.TRACK), account, CAMPAIGN)
    sent = admin.deps.clock.now() - 600

    pixel = http.http_handler(
        http_event("GET", _path(links.pixel_url(EMAIL, sent)), headers={"user-agent": CHROME}), None
    )
    assert pixel["statusCode"] == 200 and pixel["isBase64Encoded"] is True
    assert pixel["headers"]["content-type"] == "image/gif"
    assert http_body(pixel).startswith(b"GIF89a")

    click = http.http_handler(
        http_event("GET", _path(links.rewriter(EMAIL, sent)(TARGET, 0)), headers={"user-agent": CHROME}),
        None,
    )
    assert click["statusCode"] in (302, 303, 307) and click["headers"]["location"] == TARGET

    [opened] = cloud.messages(consumers_of(Opened)[0])
    assert isinstance(opened, Opened)
    assert (opened.account, opened.campaign, opened.email, opened.machine) == (
        account, CAMPAIGN, EMAIL, False,
    )
    [clicked] = cloud.messages(consumers_of(Clicked)[0])
    assert isinstance(clicked, Clicked) and (clicked.url, clicked.link) == (TARGET, 0)

    bad = http.http_handler(http_event("GET", "/o/not-a-token.gif"), None)
    assert bad["statusCode"] == 200 and http_body(bad).startswith(b"GIF89a")
    assert cloud.messages(consumers_of(Opened)[0]) == []


def test_one_click_unsubscribe_post_reaches_the_audience_and_the_report(
    cloud: Aws, admin: System
) -> None:
    account, _ = _account(admin)
    token = tokens.make_token(
        admin.deps.secrets.key(account, tokens.UNSUBSCRIBE), account, "u", CAMPAIGN, "list1", EMAIL
    )
    # What a mailbox provider sends for RFC 8058: the form body, no cookie, no key.
    resp = http.http_handler(
        http_event(
            "POST", f"/u/{token}",
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=b"List-Unsubscribe=One-Click",
        ),
        None,
    )
    assert resp["statusCode"] == 200, http_body(resp)
    assert "set-cookie" not in resp["headers"] and "location" not in resp["headers"]
    queues = consumers_of(Unsubscribed)
    assert len(queues) == 2  # the audience and the report both hear it
    for queue in queues:
        [event] = cloud.messages(queue)
        assert isinstance(event, Unsubscribed)
        assert (event.account, event.list, event.email, event.method) == (
            account, "list1", EMAIL, "one-click",
        )
    # A GET (what mail scanners do) shows the page and changes nothing.
    page = http.http_handler(http_event("GET", f"/u/{token}"), None)
    assert page["statusCode"] == 200 and b"<form" in http_body(page)
    assert all(cloud.messages(q) == [] for q in queues)
