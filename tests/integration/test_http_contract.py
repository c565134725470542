"""The OpenAPI document describes the API the server really runs: typed success bodies,
the real error shape for every error status, one list shape, RFC 3339 times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from lunamail.app.errors import CODES
from lunamail.entrypoints.http.schemas import ErrorResponse

from .test_http_fixtures import Api, api, assert_error, make_api

__all__ = ["api"]

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = "#/components/schemas/ErrorResponse"


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items() if m in METHODS]


def _json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    content = response.get("content") or {}
    media = content.get("application/json")
    return None if media is None else dict(media.get("schema") or {})


def test_every_success_response_is_a_named_model_or_not_json(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    untyped = []
    for method, path, op in _operations(doc):
        ok = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert ok, f"{method} {path} documents no success"
        for status, resp in ok.items():
            schema = _json_schema(resp)
            if status == "204" or schema is None:
                continue  # no body, or CSV / event stream
            if "$ref" not in schema:
                untyped.append(f"{method.upper()} {path} {status}: {schema}")
    assert untyped == []


def test_every_error_status_has_the_real_error_schema(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's {"detail": [...]} is never sent
    for method, path, op in _operations(doc):
        responses = op["responses"]
        if path.startswith("/v1/"):
            assert {"401", "422"} <= set(responses), f"{method} {path}"
        if "{" in path and path.startswith("/v1/"):
            assert "404" in responses, f"{method} {path} names a resource but documents no 404"
        for status, resp in responses.items():
            if status.startswith(("4", "5")):
                assert _json_schema(resp) == {"$ref": ERROR_REF}, f"{method} {path} {status}"
    assert schemas["ErrorDetail"]["properties"]["code"]["enum"] == list(CODES)


def test_validation_errors_match_the_documented_schema(api: Api) -> None:
    for resp in (
        api.client.post("/v1/lists", headers=api.a, json={"name": ""}),
        api.client.get("/v1/lists?limit=0", headers=api.a),
        api.client.post("/v1/lists", headers=api.a, content=b"{not json", ),
    ):
        err = assert_error(resp, 422, "invalid_input")
        ErrorResponse.model_validate(resp.json())
        assert err["details"]["fields"]


def test_lists_are_items_and_next_cursor_everywhere(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    pages = [name for name in schemas if name.startswith("Page_")]
    assert pages
    for name in pages:
        assert set(schemas[name]["properties"]) == {"items", "next_cursor"}
    for method, path, op in _operations(doc):
        for status, resp in op["responses"].items():
            schema = _json_schema(resp) or {}
            ref = schema.get("$ref", "").rsplit("/", 1)[-1]
            if ref and status.startswith("2") and "items" in schemas[ref].get("properties", {}):
                assert ref.startswith("Page_"), f"{method} {path}: a list that is not a Page"


def test_times_are_rfc3339_with_an_offset(api: Api) -> None:
    made = api.client.post("/v1/lists", headers=api.a, json={"name": "Times"}).json()
    listed = api.client.get("/v1/lists", headers=api.a).json()["items"][0]
    for value in (made["created_at"], listed["created_at"]):
        assert isinstance(value, str)
        parsed = datetime.fromisoformat(value)
        assert parsed.utcoffset() is not None
    account = api.client.get("/v1/account", headers=api.a).json()
    assert datetime.fromisoformat(account["created_at"]).utcoffset() is not None


def test_a_create_with_a_chosen_id_is_idempotent(api: Api) -> None:
    body = {"id": "june-2030", "name": "June", "subject": "Hi", "html": "<p>Hi</p>"}
    first = api.client.post("/v1/campaigns", headers=api.a, json=body)
    assert first.status_code == 201, first.text
    again = api.client.post("/v1/campaigns", headers=api.a, json=body)
    assert again.status_code == 201 and again.json() == first.json()
    other = api.client.post("/v1/campaigns", headers=api.a, json={**body, "subject": "Other"})
    assert_error(other, 409, "conflict")
    # the id belongs to the account: another account may choose the same one
    assert api.client.post("/v1/campaigns", headers=api.b, json=body).status_code == 201
    listed = api.client.get("/v1/campaigns", headers=api.a).json()["items"]
    assert [c["id"] for c in listed] == ["june-2030"]


def test_cors_is_off_by_default(api: Api) -> None:
    pre = api.client.options("/v1/lists", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 204 and "access-control-allow-origin" not in pre.headers
    assert pre.headers["allow"] == "GET, OPTIONS, POST"  # every method of the path
    one = api.client.options("/v1/campaigns/abc/pause")
    assert one.status_code == 204 and one.headers["allow"] == "OPTIONS, POST"
    assert_error(api.client.options("/v1/nowhere"), 404, "not_found")
    got = api.client.get("/v1/lists", headers={**api.a, "Origin": "https://app.example"})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


def test_cors_when_configured_answers_preflights_and_marks_responses(tmp_path: Path) -> None:
    system, handle = make_api(tmp_path, settings={"cors_origins": ("https://app.example", "https://b.example/")})
    with handle.client as client:
        pre = client.options("/v1/lists", headers={
            "Origin": "https://b.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 200, pre.text  # no key needed for a preflight
        assert pre.headers["access-control-allow-origin"] == "https://b.example"
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        got = client.get("/v1/lists", headers={**handle.a, "Origin": "https://app.example"})
        assert got.status_code == 200
        assert got.headers["access-control-allow-origin"] == "https://app.example"
        denied = client.get("/v1/lists", headers={**handle.a, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in denied.headers
        refused = client.options("/v1/lists", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert refused.status_code == 400
    system.close()
