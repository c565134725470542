"""Console single sign-on against a real OpenID Connect provider (npm's certified
``oidc-provider``, run by Node on 127.0.0.1 by these tests): the authorization code flow
with PKCE, nonce and state, the identity's verified address mapped to a console user,
first sign-in provisioning when the installation allows it, and the hostile cases
(another browser's or a forged state, a replayed callback, a replayed code, an ID token
for another audience or from another issuer, an unverified address, an unknown one),
each a clean refusal that signs nobody in.

The console side runs in process (the ASGI app through Starlette's client) for the
protocol cases, and as ``lunamail serve`` in Debian's Chromium for the walk a person does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts import users
from tests.e2e.test_unsubscribe_browser import CHROMIUM, CHROMIUM_ARGS, _browser_or_fail
from tests.support.live_server import live_serve
from tests.support.motoserver import free_port
from tests.support.oidc import Provider, oidc_provider

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
MEMBER = "mia@example.org"
SESSION = "lunamail_session"


@pytest.fixture(scope="module")
def console_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(console_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    redirect = f"http://127.0.0.1:{console_port}/login/sso/callback"
    with oidc_provider(redirect, tmp_path_factory.mktemp("oidc")) as running:
        yield running


def _system(tmp: Path, port: int, provider: Provider, **settings: Any) -> System:
    system = bootstrap_in(tmp / "data", settings_overrides={
        "base_url": f"http://127.0.0.1:{port}", "oidc_issuer": provider.issuer,
        "oidc_client_id": provider.client_id, "oidc_client_secret": provider.client_secret, **settings,
    })
    accounts.create_account(system.deps, "Default", account_id="default")
    users.add_user(system.deps, "default", MEMBER, "sender")
    return system


@pytest.fixture()
def system(tmp_path: Path, console_port: int, provider: Provider) -> Iterator[System]:
    made = _system(tmp_path, console_port, provider)
    yield made
    made.close()


def _browser(system: System, port: int) -> TestClient:
    return TestClient(create_app(system), base_url=f"http://127.0.0.1:{port}", raise_server_exceptions=False,
                      follow_redirects=False)


def start(browser: TestClient, next_path: str = "/") -> str:
    """Follow "Sign in with single sign-on": the provider's authorization URL."""
    page = browser.get("/login", params={"next": next_path})
    link = re.search(r'href="(/login/sso\?[^"]+)"', page.text)
    assert link, "the sign-in page offers no single sign-on"
    resp = browser.get(link.group(1).replace("&amp;", "&"))
    assert resp.status_code == 303, resp.text
    return resp.headers["location"]


def at_provider(url: str, email: str) -> str:
    """Sign in at the provider as ``email`` (in its own cookie jar): the callback URL it
    sends the browser back to."""
    with httpx.Client(timeout=30.0, follow_redirects=False) as idp:
        resp = idp.get(url)
        for _ in range(10):
            if resp.status_code not in (302, 303):
                break
            url = urljoin(url, resp.headers["location"])
            if url.startswith("http://127.0.0.1:") and "/login/sso/callback" in url:
                return url
            resp = idp.get(url)
        assert resp.status_code == 200 and "Test identity provider" in resp.text, resp.text
        action = re.search(r'action="([^"]+)"', resp.text)
        assert action
        url = urljoin(url, action.group(1))
        resp = idp.post(url, data={"email": email})
        for _ in range(10):
            assert resp.status_code in (302, 303), resp.text
            url = urljoin(url, resp.headers["location"])
            if "/login/sso/callback" in url:
                return url
            resp = idp.get(url)
    raise AssertionError("the provider never sent the browser back")


def back(browser: TestClient, callback: str) -> httpx.Response:
    parts = urlsplit(callback)
    return browser.get(f"{parts.path}?{parts.query}")


def refused(resp: httpx.Response, browser: TestClient, words: str) -> None:
    assert resp.status_code == 401, resp.text
    assert words in resp.text
    assert SESSION not in resp.headers.get("set-cookie", "")
    assert browser.get("/lists").status_code == 303  # still signed out


def test_a_user_signs_in_with_the_code_flow_pkce_nonce_and_state(system: System, console_port: int) -> None:
    browser = _browser(system, console_port)
    url = start(browser, "/lists")
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43 and len(query["nonce"][0]) >= 32
    assert query["state"][0] == browser.cookies.get("lunamail_sso")
    assert "openid" in query["scope"][0].split() and "email" in query["scope"][0].split()

    callback = at_provider(url, MEMBER)
    assert parse_qs(urlsplit(callback).query)["state"] == query["state"]
    resp = back(browser, callback)
    assert resp.status_code == 303 and resp.headers["location"] == "/lists"
    assert SESSION in resp.headers["set-cookie"] and "HttpOnly" in resp.headers["set-cookie"]
    page = browser.get("/lists")
    assert page.status_code == 200 and f"{MEMBER} · sender" in page.text

    # the same callback again (a replay, even with the state cookie put back): refused
    again = _browser(system, console_port)
    again.cookies.set("lunamail_sso", query["state"][0], domain="127.0.0.1", path="/login/sso")
    refused(back(again, callback), again, "start again")


def test_a_spent_code_replayed_into_another_sign_in_is_refused(system: System, console_port: int) -> None:
    browser = _browser(system, console_port)
    callback = at_provider(start(browser), MEMBER)
    assert back(browser, callback).status_code == 303
    # a new sign-in in another browser, finished with the first sign-in's (spent) code
    other = _browser(system, console_port)
    state = parse_qs(urlsplit(start(other)).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    resp = other.get("/login/sso/callback", params={"code": code, "state": state})
    refused(resp, other, "did not pass the checks")


def test_a_state_from_elsewhere_is_refused(system: System, console_port: int) -> None:
    browser = _browser(system, console_port)
    callback = at_provider(start(browser), MEMBER)
    query = parse_qs(urlsplit(callback).query)
    forged = browser.get("/login/sso/callback", params={"code": query["code"][0], "state": "forged-" + "x" * 40})
    refused(forged, browser, "did not start in this browser")
    # the right state, but in a browser that did not start the sign-in (no state cookie)
    stranger = _browser(system, console_port)
    refused(back(stranger, callback), stranger, "did not start in this browser")
    # the provider's own refusal (the person said no) ends this sign-in cleanly
    other = _browser(system, console_port)
    state = parse_qs(urlsplit(start(other)).query)["state"][0]
    denied = other.get("/login/sso/callback", params={"error": "access_denied", "state": state})
    refused(denied, other, "did not sign you in (access_denied)")
    # hostile sizes are refused, not processed
    huge = browser.get("/login/sso/callback", params={"code": "c" * 30_000, "state": "s" * 30_000})
    assert huge.status_code in (401, 414, 431)


@pytest.mark.parametrize("tamper", ["aud", "iss"])
def test_an_id_token_for_another_audience_or_from_another_issuer_is_refused(
    system: System, console_port: int, provider: Provider, tamper: str
) -> None:
    browser = _browser(system, console_port)
    provider.tamper(tamper)
    try:
        callback = at_provider(start(browser), MEMBER)
        refused(back(browser, callback), browser, "did not pass the checks")
    finally:
        provider.tamper("")


def test_an_unverified_address_is_refused_even_when_it_has_a_user(system: System, console_port: int) -> None:
    users.add_user(system.deps, "default", "unverified-sam@example.org", "admin")
    browser = _browser(system, console_port)
    callback = at_provider(start(browser), "unverified-sam@example.org")
    refused(back(browser, callback), browser, "has not verified this e-mail address")


def test_unknown_addresses_are_refused_unless_provisioning_is_allowed(
    tmp_path: Path, console_port: int, provider: Provider
) -> None:
    closed = _system(tmp_path / "closed", console_port, provider)
    try:
        browser = _browser(closed, console_port)
        refused(back(browser, at_provider(start(browser), "newcomer@example.org")), browser,
                "has no user in this console: ask an admin to add you")
        assert users.find_user(closed.deps, "newcomer@example.org") is None
    finally:
        closed.close()

    opened = _system(tmp_path / "open", console_port, provider, oidc_provision_role="editor",
                     oidc_provision_domains=("example.org",))
    try:
        browser = _browser(opened, console_port)
        resp = back(browser, at_provider(start(browser), "newcomer@example.org"))
        assert resp.status_code == 303, resp.text
        made = users.find_user(opened.deps, "newcomer@example.org")
        assert made is not None and made.role == "editor" and made.account == "default"
        assert "newcomer@example.org · editor" in browser.get("/").text
        # another domain gets no user
        elsewhere = _browser(opened, console_port)
        refused(back(elsewhere, at_provider(start(elsewhere), "visitor@example.net")), elsewhere,
                "has no user in this console")
    finally:
        opened.close()


def test_single_sign_on_in_a_real_browser(system: System, console_port: int) -> None:
    sync_playwright = _browser_or_fail()
    with live_serve(system, port=console_port, worker_processes=0) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # axe-core is injected as a script, which the console's CSP forbids: its own context
            checker = browser.new_context(bypass_csp=True).new_page()
            checker.goto(base + "/login")
            checker.wait_for_load_state("load")
            checker.add_script_tag(path=str(AXE))
            found = checker.evaluate("async () => (await axe.run(document)).violations"
                                     ".filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id)")
            assert found == []
            # the walk itself under the console's real CSP
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto(base + "/campaigns")
            page.wait_for_load_state("load")
            page.get_by_role("link", name="Sign in with single sign-on").click()
            page.get_by_role("heading", name="Test identity provider").wait_for()
            page.wait_for_load_state("load")
            page.get_by_label("E-mail address").fill(MEMBER)
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("heading", name="Campaigns").wait_for()
            assert page.url == base + "/campaigns"
            assert f"{MEMBER} · sender" in page.inner_text("header")
        finally:
            browser.close()
