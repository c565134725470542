"""Roles over the REST API: scoped keys get 403 for what their role may not do, and the
users API (the twin of ``lunamail users``)."""

from __future__ import annotations

from lunamail.services.accounts import api as accounts
from tests.integration.test_http_fixtures import Api, api, assert_error

__all__ = ["api"]

DRAFT = {"name": "June", "subject": "Hi", "from_name": "News", "from_email": "news@example.org",
         "html": '<p>Hi <a href="{{ unsubscribe_url }}">unsubscribe</a></p>'}


def _key(api: Api, role: str) -> dict[str, str]:
    return api.auth(accounts.create_api_key(api.system.deps, "alpha", role, role=role).secret)


def _draft(api: Api) -> str:
    lst = api.client.post("/v1/lists", json={"name": "News"}, headers=api.a)
    assert lst.status_code == 201, lst.text
    api.client.post(f"/v1/lists/{lst.json()['id']}/subscribers", json={"email": "ann@example.com"}, headers=api.a)
    resp = api.client.post("/v1/campaigns", json={**DRAFT, "lists": ["News"]}, headers=api.a)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_a_viewer_key_reads_but_changes_nothing(api: Api) -> None:
    camp = _draft(api)
    viewer = _key(api, "viewer")
    before = len(api.published)
    assert api.client.get("/v1/lists", headers=viewer).status_code == 200
    assert api.client.get(f"/v1/campaigns/{camp}", headers=viewer).status_code == 200
    err = assert_error(api.client.post("/v1/lists", json={"name": "X"}, headers=viewer), 403, "forbidden")
    assert err["details"] == {"permission": "audience"}
    assert_error(api.client.post(f"/v1/campaigns/{camp}/send", headers=viewer), 403, "forbidden")
    assert_error(api.client.get("/v1/users", headers=viewer), 403, "forbidden")
    assert len(api.published) == before


def test_an_editor_edits_but_cannot_send_and_a_sender_can(api: Api) -> None:
    camp = _draft(api)
    editor, sender = _key(api, "editor"), _key(api, "sender")
    before = len(api.published)
    resp = api.client.patch(f"/v1/campaigns/{camp}", json={"subject": "Hello"}, headers=editor)
    assert resp.status_code == 200, resp.text
    for action in ("send", "pause", "cancel"):
        assert_error(api.client.post(f"/v1/campaigns/{camp}/{action}", json={}, headers=editor), 403, "forbidden")
    assert len(api.published) == before
    resp = api.client.post(f"/v1/campaigns/{camp}/send", headers=sender)
    assert resp.status_code == 202, resp.text
    assert len(api.published) > before


def test_users_api_adds_lists_changes_and_removes(api: Api) -> None:
    resp = api.client.post("/v1/users", json={"email": "Ed@Example.com", "role": "editor"}, headers=api.a)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["email"] == "ed@example.com" and body["role"] == "editor"
    assert "/login/link/" in body["set_password_link"] and body["has_password"] is False
    listed = api.client.get("/v1/users", headers=api.a).json()
    assert [u["email"] for u in listed["items"]] == ["ed@example.com"]
    assert api.client.get("/v1/users", headers=api.b).json()["items"] == []  # the other account
    assert_error(api.client.delete("/v1/users/ed@example.com", headers=api.b), 404, "not_found")
    resp = api.client.patch("/v1/users/ed@example.com", json={"role": "sender"}, headers=api.a)
    assert resp.json()["role"] == "sender"
    assert_error(api.client.patch("/v1/users/ed@example.com", json={"role": "root"}, headers=api.a),
                 422, "invalid_input")
    admin = _key(api, "admin")
    assert_error(api.client.post("/v1/users", json={"email": "o@example.com", "role": "owner"}, headers=admin),
                 403, "forbidden")  # only owners make owners
    assert api.client.delete("/v1/users/ed@example.com", headers=api.a).status_code == 204
    assert api.client.get("/v1/users", headers=api.a).json()["items"] == []
