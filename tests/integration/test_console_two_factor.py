"""Two-factor sign-in (TOTP) in the console: enrolment on the settings screen (QR code and
otpauth key, the key stored sealed), sign-in with a code, a code used once, recovery codes
used once, throttled attempts, turning it off, and an owner requiring it of everyone
(a user without one sets it up at the next sign-in before any session exists)."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from fastapi.testclient import TestClient

from lunamail.ports.clock import FakeClock
from lunamail.services.accounts import two_factor, users
from tests.integration.console_fixtures import (
    PASSWORD,
    Console,
    console,
    csrf_of,
    sign_in,
    signed_in,
)

__all__ = ["console"]

SESSION = "lunamail_session"


@pytest.fixture(autouse=True)
def _frozen_clock(console: Console) -> None:
    """Time stands still (the time steps and the per-minute throttle windows are then the
    test's, not the machine's), just after the fixture set the passwords."""
    console.system.deps.clock = FakeClock(time.time() + 1.0)


def _key_of(html: str) -> str:
    """The base32 key a settings or sign-in page shows, checked against its otpauth URI."""
    uri = re.search(r'<code class="secret">(otpauth://[^<]+)</code>', html)
    key = re.search(r'Key: <code class="secret">([A-Z2-7]+)</code>', html)
    assert uri and key, "the page shows no key"
    parts = urlsplit(unquote(uri.group(1).replace("&amp;", "&")))
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert parse_qs(parts.query)["secret"] == [key.group(1)] and parse_qs(parts.query)["issuer"] == ["Lunamail"]
    assert "<svg" in html and 'aria-label="QR code of the key' in html
    return key.group(1)


def _code(key: str, console: Console, steps: int = 0) -> str:
    return pyotp.TOTP(key).at(console.system.deps.clock.now() + 30 * steps)


def _enrol(console: Console, client: TestClient, token: str) -> tuple[str, list[str]]:
    assert client.post("/settings/two-factor/start", data={"csrf": token}).status_code == 303
    page = client.get("/settings")
    key = _key_of(page.text)
    wrong = client.post("/settings/two-factor/confirm", data={"csrf": token, "code": "000000"})
    assert wrong.status_code == 422 and "not right" in wrong.text
    done = client.post("/settings/two-factor/confirm", data={"csrf": token, "code": _code(key, console)})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", done.text)
    assert len(codes) == two_factor.RECOVERY_CODES
    return key, codes


def _password_step(console: Console, email: str) -> TestClient:
    client = console.client()
    resp = sign_in(client, email)
    assert resp.status_code == 303 and resp.headers["location"] == "/login/two-factor"
    assert SESSION not in resp.headers.get("set-cookie", "")
    assert client.get("/lists").status_code == 303  # no session yet
    return client


def _second_step(client: TestClient, code: str) -> object:
    page = client.get("/login/two-factor")
    assert page.status_code == 200 and "Two-factor sign-in" in page.text
    return client.post("/login/two-factor", data={"csrf": csrf_of(page.text), "code": code})


def test_enrol_then_sign_in_with_a_code_once_and_recovery_codes_once(console: Console) -> None:
    email = console.email("editor")
    client, token = signed_in(console, "editor")
    key, codes = _enrol(console, client, token)
    item = console.system.deps.store.get("ACCT#alpha", f"USER#{email}")
    assert item is not None and key not in str(item) and key.lower() not in str(item).lower()
    assert all(c.replace("-", "") not in str(item) for c in codes)  # only their HMACs are kept

    # a password alone no longer signs in; a wrong code is refused, the right one works
    browser = _password_step(console, email)
    wrong = _second_step(browser, "123456")
    assert wrong.status_code == 401 and "not right" in wrong.text  # type: ignore[attr-defined]
    right = _second_step(browser, _code(key, console, steps=1))
    assert right.status_code == 303 and SESSION in right.headers["set-cookie"]  # type: ignore[attr-defined]
    assert browser.get("/lists").status_code == 200
    # the same code again (an onlooker, a replay) does not sign in
    other = _password_step(console, email)
    assert _second_step(other, _code(key, console, steps=1)).status_code == 401  # type: ignore[attr-defined]

    # a recovery code signs in once
    third = _password_step(console, email)
    assert _second_step(third, codes[0].upper()).status_code == 303  # type: ignore[attr-defined]
    fourth = _password_step(console, email)
    assert _second_step(fourth, codes[0]).status_code == 401  # type: ignore[attr-defined]
    assert two_factor.recovery_left(console.system.deps, "alpha", email) == two_factor.RECOVERY_CODES - 1

    # turning it off needs a code
    assert client.post("/settings/two-factor/stop", data={"csrf": token, "code": "999999"}).status_code == 422
    assert client.post("/settings/two-factor/stop", data={"csrf": token, "code": codes[1]}).status_code == 303
    assert sign_in(console.client(), email).headers["location"] == "/"


def test_codes_are_throttled_even_the_right_one(console: Console) -> None:
    email = console.email("sender")
    client, token = signed_in(console, "sender")
    key, _codes = _enrol(console, client, token)
    browser = _password_step(console, email)
    statuses = [_second_step(browser, f"{n:06d}").status_code for n in range(two_factor.CODES_PER_MINUTE + 1)]  # type: ignore[attr-defined]
    assert statuses[-1] == 429
    resp = _second_step(browser, _code(key, console, steps=1))
    assert resp.status_code == 429 and SESSION not in resp.headers.get("set-cookie", "")  # type: ignore[attr-defined]


def test_an_owner_requires_it_and_a_user_without_one_sets_it_up_before_signing_in(console: Console) -> None:
    # only owners set the rule
    admin, admin_token = signed_in(console, "admin")
    assert admin.post("/settings/two-factor/rule", data={"csrf": admin_token, "required": "on"}).status_code == 403
    owner, owner_token = signed_in(console, "owner")
    assert owner.post("/settings/two-factor/rule", data={"csrf": owner_token, "required": "on"}).status_code == 303
    assert two_factor.required(console.system.deps, "alpha")
    assert not two_factor.required(console.system.deps, "beta")  # the other account is untouched

    browser = _password_step(console, console.email("viewer"))
    page = browser.get("/login/two-factor")
    assert "Set up two-factor sign-in" in page.text
    key = _key_of(page.text)
    assert browser.get("/login/two-factor").text.count(key) >= 1  # the same key until confirmed
    resp = browser.post("/login/two-factor", data={"csrf": csrf_of(page.text), "code": _code(key, console)})
    assert resp.status_code == 200 and SESSION in resp.headers["set-cookie"]
    assert len(re.findall(r"<li><code>[0-9a-f]{5}-[0-9a-f]{5}</code></li>", resp.text)) == two_factor.RECOVERY_CODES
    assert browser.get("/lists").status_code == 200
    # while required, nobody turns theirs off
    viewer_token = csrf_of(browser.get("/settings").text)
    assert browser.post("/settings/two-factor/stop", data={"csrf": viewer_token, "code": "x"}).status_code == 409
    # the other account's users still sign in with a password
    assert sign_in(console.client(), console.email("viewer", "beta")).headers["location"] == "/"
    # a new user's one-time link sets the password, then asks for the second factor too
    deps = console.system.deps
    users.add_user(deps, "alpha", "newcomer@alpha.example.com", "editor")
    token = users.issue_link(deps, "alpha", "newcomer@alpha.example.com")
    newcomer = console.client()
    form = newcomer.get(f"/login/link/{token}")
    resp = newcomer.post(f"/login/link/{token}", data={"csrf": csrf_of(form.text), "password": "a fine new password",
                                                     "confirm": "a fine new password"})
    assert resp.status_code == 303 and resp.headers["location"] == "/login/two-factor"
    assert SESSION not in resp.headers.get("set-cookie", "") and newcomer.get("/lists").status_code == 303
    assert "Set up two-factor sign-in" in newcomer.get("/login/two-factor").text


def test_the_settings_screen_shows_the_sending_defaults_and_guard_thresholds(console: Console) -> None:
    viewer, _ = signed_in(console, "viewer")
    page = viewer.get("/settings").text
    assert "Open tracking" in page and "on by default" in page and "smtp://127.0.0.1:25" in page
    assert "Save thresholds" not in page  # viewers read them only
    admin, token = signed_in(console, "admin")
    resp = admin.post("/settings/guard", data={"csrf": token, "campaign_bounce": "4", "campaign_complaint": "0.2",
                                               "account_bounce": "3", "account_complaint": "0.1",
                                               "min_sample": "200", "window_hours": "48"})
    assert resp.status_code == 303
    assert 'value="4"' in admin.get("/settings").text
    bad = admin.post("/settings/guard", data={"csrf": token, "campaign_bounce": "400", "campaign_complaint": "x",
                                              "account_bounce": "3", "account_complaint": "0.1",
                                              "min_sample": "200", "window_hours": "48"})
    assert bad.status_code == 422 and "campaign_bounce" in bad.text
    assert PASSWORD not in page
