"""Cursor pagination: ``?limit=&cursor=`` in, ``{"items": [...], "next_cursor": ...}`` out.

The store's own cursor is wrapped and signed with a per-account key, together
with the listing it belongs to, so a cursor cannot be forged, replayed on
another listing, or carried to another account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import Query

from lunamail.entrypoints.http.errors import ApiError
from lunamail.ports.deps import Deps

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_PURPOSE = "http-cursor"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(deps: Deps, account: str, payload: bytes) -> str:
    key = deps.secrets.key(account, _PURPOSE)
    return _b64(hmac.new(key, payload, hashlib.sha256).digest()[:16])


def encode_cursor(deps: Deps, account: str, scope: str, inner: str | None) -> str | None:
    """Wrap the store's cursor for the client (None stays None: the last page)."""
    if inner is None:
        return None
    payload = orjson.dumps({"s": scope, "c": inner})
    return f"{_b64(payload)}.{_mac(deps, account, payload)}"


def decode_cursor(deps: Deps, account: str, scope: str, cursor: str | None) -> str | None:
    """The store's cursor from a client's, or 422 when it was not issued for this listing."""
    if not cursor:
        return None
    bad = ApiError(422, "invalid_input", "invalid cursor", {"fields": {"query.cursor": "not a cursor of this listing"}})
    try:
        body, mac = cursor.split(".", 1)
        payload = _unb64(body)
    except (ValueError, TypeError) as exc:
        raise bad from exc
    if not hmac.compare_digest(mac, _mac(deps, account, payload)):
        raise bad
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:  # pragma: no cover - a valid MAC implies our JSON
        raise bad from exc
    if doc.get("s") != scope or not isinstance(doc.get("c"), str):
        raise bad
    inner: str = doc["c"]
    return inner


def page(
    deps: Deps, account: str, scope: str, items: Sequence[dict[str, Any]], inner: str | None
) -> dict[str, Any]:
    """The response body of one page."""
    return {"items": list(items), "next_cursor": encode_cursor(deps, account, scope, inner)}


def slice_page(
    deps: Deps,
    account: str,
    scope: str,
    items: Sequence[dict[str, Any]],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Paginate a short, already-loaded collection (e.g. an account's lists) by offset."""
    raw = decode_cursor(deps, account, scope, cursor)
    try:
        start = int(raw) if raw is not None else 0
    except ValueError as exc:
        raise ApiError(422, "invalid_input", "invalid cursor") from exc
    end = start + limit
    nxt = str(end) if end < len(items) else None
    return page(deps, account, scope, items[start:end], nxt)
