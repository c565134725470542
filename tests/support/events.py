"""Real-shaped Lambda events: the JSON under ``tests/events/``, and events made from them.

``load_event`` returns a fixture as AWS sends it; the builders copy a fixture and change
only what a request or a record varies in (path, method, headers, body), so every event a
test feeds a handler keeps the exact key set AWS produces.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A fixture by file name (``"apigw_http_v2_get.json"``), freshly parsed."""
    doc: dict[str, Any] = json.loads((EVENTS / name).read_text("utf-8"))
    return doc


def http_event(
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    domain: str = "mail.example.com",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for ``method target`` (path and query).

    Bodies are base64-encoded, as API Gateway does for form and binary bodies."""
    base = "apigw_http_v2_post_form.json" if body is not None else "apigw_http_v2_get.json"
    event = copy.deepcopy(load_event(base))
    parts = urlsplit(target)
    event["rawPath"] = parts.path
    event["rawQueryString"] = parts.query
    event["requestContext"]["http"]["method"] = method.upper()
    event["requestContext"]["http"]["path"] = parts.path
    event["requestContext"]["domainName"] = domain
    event["requestContext"]["domainPrefix"] = domain.split(".", 1)[0]
    event["headers"]["host"] = domain
    if body is not None:
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
        event["headers"]["content-length"] = str(len(body))
    for name, value in (headers or {}).items():
        event["headers"][name.lower()] = value
        if name.lower() == "user-agent":
            event["requestContext"]["http"]["userAgent"] = value
    return event


def http_body(response: dict[str, Any]) -> bytes:
    """The body of a Lambda HTTP response, decoded when it is base64."""
    body = str(response.get("body") or "")
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
