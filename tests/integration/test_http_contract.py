"""The OpenAPI document describes the API the server really runs: typed success bodies,
the real error shape for every error status, one list shape, RFC 3339 times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lunamail.app.errors import CODES
from lunamail.entrypoints.http.schemas import ErrorResponse

from .test_http_fixtures import Api, api, assert_error

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
