"""The console through its HTTP surface: sign-in security, CSRF on every change, roles
and account isolation, and each screen's empty and filled states."""

from __future__ import annotations

from fastapi.routing import APIRoute

from lunamail.entrypoints.web.app import ROUTERS
from lunamail.services.accounts import users
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from tests.integration.console_fixtures import (
    PASSWORD,
    Console,
    console,
    csrf_of,
    sign_in,
    signed_in,
)
from tests.support.domains import add_sending_domain

__all__ = ["console"]

HTML = '<p>Hi {{ subscriber.name }} <a href="{{ unsubscribe_url }}">unsubscribe</a></p>'


def _routes(method: str) -> list[str]:
    out = []
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and method in route.methods:
                out.append(route.path)
    return out


def _fill(path: str) -> str:
    return (path.replace("{list_id}", "nolist").replace("{campaign_id}", "nocamp").replace("{email}", "x@example.com")
            .replace("{import_id}", "noimport").replace("{prefix}", "lm_nokey").replace("{token}", "notoken")
            .replace("{action}", "pause"))


def test_no_page_without_a_session(console: Console) -> None:
    client = console.client()
    pages = [p for p in _routes("GET") if not p.startswith("/login")]
    assert len(pages) >= 12
    for path in pages:
        resp = client.get(_fill(path))
        assert resp.status_code == 303, path
        assert resp.headers["location"].startswith("/login?next="), path
    for path in _routes("POST"):
        if path.startswith("/login"):
            continue
        assert client.post(_fill(path), data={}).status_code == 401, path


def test_every_state_changing_request_needs_the_csrf_token(console: Console) -> None:
    client, token = signed_in(console, "owner")
    posts = [p for p in _routes("POST") if not p.startswith("/login")]
    assert len(posts) >= 15
    for path in posts:
        for headers, data in (({}, {}), ({}, {"csrf": "forged"}), ({"X-CSRF-Token": "forged"}, {})):
            resp = client.post(_fill(path), data=data, headers=headers)
            assert resp.status_code == 403, (path, resp.status_code)
    assert console.published == []
    # the same request with the token goes through
    resp = client.post("/lists", data={"name": "News", "csrf": token})
    assert resp.status_code == 303
    resp = client.post("/lists", data={"name": "Other"}, headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert resp.status_code == 204 and resp.headers["HX-Redirect"].startswith("/lists/")


def test_login_forms_need_their_own_token(console: Console) -> None:
    client = console.client()
    resp = client.post("/login", data={"email": console.email("owner"), "password": PASSWORD})
    assert resp.status_code == 403 and "lunamail_session" not in resp.headers.get("set-cookie", "")
    resp = client.post("/login/reset", data={"email": console.email("owner")})
    assert resp.status_code == 403


def test_session_rotates_at_sign_in_and_sign_out_ends_it(console: Console) -> None:
    client = console.client()
    client.cookies.set("lunamail_session", "planted-by-an-attacker", domain="testserver.local")
    resp = sign_in(client, console.email("editor"))
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    first = resp.cookies["lunamail_session"]
    assert first != "planted-by-an-attacker"
    again = sign_in(client, console.email("editor"))
    second = again.cookies["lunamail_session"]
    assert second != first
    stale = console.client()
    stale.cookies.set("lunamail_session", first)
    assert stale.get("/").status_code == 303  # the earlier session died with the rotation
    token = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    replay = console.client()
    replay.cookies.set("lunamail_session", second)
    assert replay.get("/lists").status_code == 303


def test_cookie_is_secure_behind_https(console: Console) -> None:
    client = console.client(base_url="https://testserver")
    resp = sign_in(client, console.email("viewer"))
    assert "Secure" in resp.headers["set-cookie"]


def test_lock_out_after_repeated_failures(console: Console) -> None:
    client = console.client()
    for _ in range(users.MAX_FAILURES):
        resp = sign_in(client, console.email("sender"), "wrong password!")
        assert resp.status_code == 401 and "wrong e-mail address or password" in resp.text
    resp = sign_in(client, console.email("sender"))
    assert resp.status_code == 423 and "locked" in resp.text
    assert "lunamail_session" not in resp.headers.get("set-cookie", "")


def test_next_only_goes_to_console_paths(console: Console) -> None:
    client = console.client()
    page = client.get("/login?next=//evil.example.org/x")
    resp = client.post("/login", data={"email": console.email("owner"), "password": PASSWORD,
                                       "csrf": csrf_of(page.text), "next": "//evil.example.org/x"})
    assert resp.headers["location"] == "/"


def _campaign(console: Console, account: str = "alpha") -> str:
    """A draft that passes the checks, From the account's sending domain."""
    deps = console.system.deps
    add_sending_domain(deps, account, "example.org")
    lst = audience.create_list(deps, account, "News")
    audience.subscribe(deps, account, lst["id"], "ann@example.com", name="Ann")
    c = campaigns.create_draft(deps, account, name="June", subject="Hi", from_name="News",
                               from_email="news@example.org", html=HTML, lists=[lst["id"]])
    return c.id


def test_a_viewer_sees_no_send_button_and_an_editor_cannot_send(console: Console) -> None:
    camp = _campaign(console)
    viewer, vtoken = signed_in(console, "viewer")
    page = viewer.get(f"/campaigns/{camp}")
    assert page.status_code == 200 and "June" in page.text
    assert "Send now" not in page.text and "Send test" not in page.text
    assert viewer.post(f"/campaigns/{camp}/send", data={"csrf": vtoken}).status_code == 403
    assert viewer.post("/lists", data={"name": "X", "csrf": vtoken}).status_code == 403
    assert "Users" not in viewer.get("/").text.split("<main")[0]
    assert viewer.get("/users").status_code == 403
    editor, etoken = signed_in(console, "editor")
    page = editor.get(f"/campaigns/{camp}")
    assert "Send now" not in page.text and 'id="f-html"' in page.text and "Send test" in page.text
    assert editor.post(f"/campaigns/{camp}/send", data={"csrf": etoken}).status_code == 403
    assert editor.post(f"/campaigns/{camp}/pause", data={"csrf": etoken}).status_code == 403
    assert campaigns.get(console.system.deps, "alpha", camp).status == "draft"
    sender, stoken = signed_in(console, "sender")
    assert "Send now" in sender.get(f"/campaigns/{camp}").text
    resp = sender.post(f"/campaigns/{camp}/send", data={"csrf": stoken})
    assert resp.status_code == 303 and resp.headers["location"] == f"/campaigns/{camp}/report"
    assert campaigns.get(console.system.deps, "alpha", camp).status == "sending"


def test_accounts_are_isolated(console: Console) -> None:
    camp = _campaign(console, "alpha")
    lst = audience.list_lists(console.system.deps, "alpha")[0]["id"]
    beta, token = signed_in(console, "owner", "beta")
    assert beta.get(f"/campaigns/{camp}").status_code == 404
    assert beta.get(f"/campaigns/{camp}/report").status_code == 404
    assert beta.get(f"/lists/{lst}").status_code == 404
    assert beta.post(f"/campaigns/{camp}/send", data={"csrf": token}).status_code == 404
    assert "June" not in beta.get("/campaigns").text
    users_page = beta.get("/users").text
    assert "alpha.example.com" not in users_page and "owner@beta.example.com" in users_page


def test_screens_show_their_empty_states(console: Console) -> None:
    client, _ = signed_in(console, "owner")
    assert "creating a list" in client.get("/").text
    assert "No lists yet" in client.get("/lists").text
    assert "No campaigns yet" in client.get("/campaigns").text
    assert "Nobody is suppressed" in client.get("/suppression").text
    assert "No keys yet" in client.get("/keys").text


def test_owner_manages_users_and_keys_in_the_console(console: Console) -> None:
    client, token = signed_in(console, "owner")
    resp = client.post("/users", data={"email": "new@alpha.example.com", "role": "editor", "csrf": token})
    assert resp.status_code == 200 and "/login/link/" in resp.text
    assert users.get_user(console.system.deps, "alpha", "new@alpha.example.com").role == "editor"
    resp = client.post("/users/new@alpha.example.com/role", data={"role": "sender", "csrf": token})
    assert resp.status_code == 303
    assert users.get_user(console.system.deps, "alpha", "new@alpha.example.com").role == "sender"
    resp = client.post("/keys", data={"label": "ci", "role": "viewer", "csrf": token})
    assert resp.status_code == 200 and "shown only this once" in resp.text
    admin, atoken = signed_in(console, "admin")
    assert admin.post("/users", data={"email": "o2@alpha.example.com", "role": "owner",
                                      "csrf": atoken}).status_code == 403
