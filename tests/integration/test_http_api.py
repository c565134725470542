"""The HTTP API over the in-process ASGI client: auth, tenant isolation, errors, pagination."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter

from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.services.accounts import api as accounts

from .test_http_fixtures import Api, api, assert_error, make_api

__all__ = ["api"]  # the fixture, re-exported so pytest finds it here


# ---------------------------------------------------------------- auth


def test_health_needs_no_key(api: Api) -> None:
    resp = api.client.get("/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer lm_wrongwrongwrongwrongwrongwrongwrongwrongwro"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "lm_no_scheme"},
    ],
)
def test_v1_without_a_valid_key_is_401(api: Api, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/v1/lists"), ("POST", "/v1/lists"), ("GET", "/v1/account")]:
        resp = api.client.request(method, path, headers=headers, json={"name": "x"})
        assert_error(resp, 401, "unauthorized")
        assert resp.headers.get("www-authenticate") == "Bearer"


def test_revoked_key_is_401(api: Api) -> None:
    assert api.client.get("/v1/account", headers=api.a).status_code == 200
    prefix = api.key_a[:11]
    accounts.revoke_api_key(api.system.deps, "alpha", prefix)
    assert_error(api.client.get("/v1/account", headers=api.a), 401, "unauthorized")


def test_account_comes_from_the_key(api: Api) -> None:
    assert api.client.get("/v1/account", headers=api.a).json()["id"] == "alpha"
    assert api.client.get("/v1/account", headers=api.b).json()["id"] == "beta"


def test_openapi_documents_routes_and_bearer_auth(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert "/v1/lists" in schema["paths"] and "/v1/imports/{import_id}/start" in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"].lower() == "bearer"
    assert api.client.get("/docs").status_code == 200


# ---------------------------------------------------------------- tenant isolation


def _seed_alpha(api: Api) -> str:
    resp = api.client.post("/v1/lists", headers=api.a, json={"name": "Newsletter"})
    assert resp.status_code == 201, resp.text
    list_id: str = resp.json()["id"]
    for i in range(3):
        r = api.client.post(
            f"/v1/lists/{list_id}/subscribers", headers=api.a, json={"email": f"p{i}@example.com"}
        )
        assert r.status_code == 201, r.text
    return list_id


def test_other_accounts_data_is_invisible(api: Api) -> None:
    list_id = _seed_alpha(api)
    c, b = api.client, api.b
    assert c.get("/v1/lists", headers=b).json() == {"items": [], "next_cursor": None}
    assert_error(c.get(f"/v1/lists/{list_id}", headers=b), 404, "not_found")
    assert_error(c.get("/v1/lists/Newsletter", headers=b), 404, "not_found")  # by name too
    assert_error(c.patch(f"/v1/lists/{list_id}", headers=b, json={"name": "Mine"}), 404, "not_found")
    assert_error(c.delete(f"/v1/lists/{list_id}", headers=b), 404, "not_found")
    subs = f"/v1/lists/{list_id}/subscribers"
    assert_error(c.get(subs, headers=b), 404, "not_found")
    assert_error(c.get(subs, headers=b, params={"prefix": "p"}), 404, "not_found")
    assert_error(c.get(f"{subs}/p0@example.com", headers=b), 404, "not_found")
    assert_error(c.patch(f"{subs}/p0@example.com", headers=b, json={"name": "X"}), 404, "not_found")
    assert_error(c.post(f"{subs}/p0@example.com/unsubscribe", headers=b), 404, "not_found")
    assert_error(c.delete(f"{subs}/p0@example.com", headers=b), 404, "not_found")
    assert_error(c.post(subs, headers=b, json={"email": "intruder@example.com"}), 404, "not_found")

    # Alpha's data is untouched by all of that.
    mine = c.get(f"/v1/lists/{list_id}", headers=api.a).json()
    assert mine["name"] == "Newsletter" and mine["counts"]["subscribed"] == 3
    emails = [s["email"] for s in c.get(subs, headers=api.a).json()["items"]]
    assert emails == ["p0@example.com", "p1@example.com", "p2@example.com"]


def test_suppressions_are_per_account(api: Api) -> None:
    c = api.client
    assert c.post("/v1/suppressions", headers=api.a, json={"email": "x@example.com"}).status_code == 201
    assert [s["email"] for s in c.get("/v1/suppressions", headers=api.a).json()["items"]] == ["x@example.com"]
    assert c.get("/v1/suppressions", headers=api.b).json()["items"] == []
    assert_error(c.delete("/v1/suppressions/x@example.com", headers=api.b), 404, "not_found")
    assert c.delete("/v1/suppressions/x@example.com", headers=api.a).status_code == 204
    assert c.get("/v1/suppressions", headers=api.a).json()["items"] == []


# ---------------------------------------------------------------- lists and subscribers


def test_list_and_subscriber_lifecycle(api: Api) -> None:
    c, a = api.client, api.a
    created = c.post(
        "/v1/lists",
        headers=a,
        json={"name": "Weekly", "fields": [{"name": "age", "type": "number"}]},
    ).json()
    lid = created["id"]
    assert c.patch(f"/v1/lists/{lid}", headers=a, json={"description": "d"}).json()["description"] == "d"
    subs = f"/v1/lists/{lid}/subscribers"
    sub = c.post(subs, headers=a, json={"email": "Ann@Example.com", "name": "Ann", "fields": {"age": 30}})
    assert sub.status_code == 201 and sub.json()["status"] == "subscribed"
    email = sub.json()["email"]
    assert c.patch(f"{subs}/{email}", headers=a, json={"name": "Anne"}).json()["name"] == "Anne"
    assert c.post(f"{subs}/{email}/unsubscribe", headers=a).json()["status"] == "unsubscribed"
    listed = c.get(subs, headers=a, params={"status": "unsubscribed"}).json()["items"]
    assert [s["email"] for s in listed] == [email]
    assert c.get(subs, headers=a, params={"status": "subscribed"}).json()["items"] == []
    assert c.delete(f"{subs}/{email}", headers=a).status_code == 204
    assert_error(c.get(f"{subs}/{email}", headers=a), 404, "not_found")
    assert c.delete(f"/v1/lists/{lid}", headers=a).status_code == 204
    assert_error(c.get(f"/v1/lists/{lid}", headers=a), 404, "not_found")
    names = [type(m).__name__ for m in api.published]
    assert "ListCreated" in names and "ListDeleted" in names and "PurgeList" in names


# ---------------------------------------------------------------- error shape


def test_unknown_route_is_404_in_the_error_shape(api: Api) -> None:
    assert_error(api.client.get("/nope"), 404, "not_found")
    assert_error(api.client.get("/v1/nope", headers=api.a), 404, "not_found")


def test_wrong_method_is_405_in_the_error_shape(api: Api) -> None:
    assert_error(api.client.put("/health"), 405, "method_not_allowed")


def test_validation_error_names_the_field(api: Api) -> None:
    resp = api.client.post("/v1/lists", headers=api.a, json={"name": "", "colour": "red"})
    err = assert_error(resp, 422, "invalid_input")
    assert "body.name" in err["details"]["fields"] and "body.colour" in err["details"]["fields"]
    err = assert_error(api.client.get("/v1/lists", headers=api.a, params={"limit": 0}), 422, "invalid_input")
    assert "query.limit" in err["details"]["fields"]


def test_service_errors_are_mapped(api: Api) -> None:
    c, a = api.client, api.a
    lid = c.post("/v1/lists", headers=a, json={"name": "Dup"}).json()["id"]
    assert_error(c.post("/v1/lists", headers=a, json={"name": "Dup"}), 409, "conflict")
    err = assert_error(
        c.post(f"/v1/lists/{lid}/subscribers", headers=a, json={"email": "not-an-address"}),
        422,
        "invalid_input",
    )
    assert "email" in err["details"]["fields"]


@pytest.fixture()
def crashing_api(tmp_path: Path) -> Iterator[Api]:
    boom = APIRouter(route_class=ErrorRoute)

    @boom.get("/boom")
    def explode() -> None:
        raise RuntimeError("secret internal detail")

    system, handle = make_api(tmp_path, extra_routers=(boom,))
    with handle.client:
        yield handle
    system.close()


def test_unexpected_exception_is_500_without_internals(crashing_api: Api) -> None:
    resp = crashing_api.client.get("/v1/boom", headers=crashing_api.a)
    assert_error(resp, 500, "internal_error")
    assert "secret internal detail" not in resp.text
    assert_error(crashing_api.client.get("/v1/boom"), 401, "unauthorized")  # auth still first


# ---------------------------------------------------------------- pagination


def test_cursor_round_trip(api: Api) -> None:
    c, a = api.client, api.a
    lid = c.post("/v1/lists", headers=a, json={"name": "Big"}).json()["id"]
    expected = [f"u{i:02d}@example.com" for i in range(7)]
    for email in expected:
        assert c.post(f"/v1/lists/{lid}/subscribers", headers=a, json={"email": email}).status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = c.get(f"/v1/lists/{lid}/subscribers", headers=a, params=params).json()
        assert len(body["items"]) <= 3
        seen.extend(s["email"] for s in body["items"])
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert seen == expected
    assert pages >= 3


def test_cursor_is_bound_to_account_and_listing(api: Api) -> None:
    c, a = api.client, api.a
    lid = c.post("/v1/lists", headers=a, json={"name": "L"}).json()["id"]
    for i in range(3):
        c.post(f"/v1/lists/{lid}/subscribers", headers=a, json={"email": f"c{i}@example.com"})
    cursor = c.get(f"/v1/lists/{lid}/subscribers", headers=a, params={"limit": 1}).json()["next_cursor"]
    assert cursor
    path = f"/v1/lists/{lid}/subscribers"
    # Another listing (a status filter) refuses it; so does a tampered one.
    assert_error(c.get(path, headers=a, params={"cursor": cursor, "status": "unsubscribed"}), 422, "invalid_input")
    assert_error(c.get(path, headers=a, params={"cursor": cursor[:-2] + "xx"}), 422, "invalid_input")
    assert_error(c.get("/v1/suppressions", headers=a, params={"cursor": cursor}), 422, "invalid_input")
    # Beta cannot use Alpha's cursor on Beta's own listing.
    assert_error(c.get("/v1/suppressions", headers=api.b, params={"cursor": cursor}), 422, "invalid_input")
    ok = c.get(path, headers=a, params={"cursor": cursor, "limit": 5}).json()
    assert [s["email"] for s in ok["items"]] == ["c1@example.com", "c2@example.com"]


def test_lists_paginate_too(api: Api) -> None:
    c, a = api.client, api.a
    for name in ["a", "b", "c"]:
        c.post("/v1/lists", headers=a, json={"name": name})
    first = c.get("/v1/lists", headers=a, params={"limit": 2}).json()
    second = c.get("/v1/lists", headers=a, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [x["name"] for x in first["items"] + second["items"]] == ["a", "b", "c"]
    assert second["next_cursor"] is None
