"""CSV imports over HTTP: declare, upload to a signed URL, start, watch.

1. ``POST /v1/imports`` checks the list and mode and returns a signed upload URL.
2. The client PUTs the file there (see ``routes_uploads``); no API key needed.
3. ``POST /v1/imports/{id}/start`` hands the file to the audience service, which
   inspects it once and returns the first chunk command; the workers do the rest.
4. ``GET /v1/imports/{id}`` shows status, progress, counters and the error report.

Between 1 and 3 the import is only an intent; it is kept as a small JSON
object next to the upload (an entrypoint owns no items), keyed under the
account so another account's key cannot find it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lunamail.domain.audience import ImportMode
from lunamail.entrypoints.http.auth import AccountId
from lunamail.entrypoints.http.context import ApiContext, Ctx
from lunamail.entrypoints.http.errors import ApiError, ErrorRoute
from lunamail.ports.blobs import BlobNotFound
from lunamail.services.audience import api as audience

router = APIRouter(prefix="/imports", tags=["imports"], route_class=ErrorRoute)

UPLOAD_EXPIRES = 3600  # seconds an upload URL stays valid


class ImportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: str = Field(min_length=1, max_length=200, description="List id or name.")
    mode: ImportMode = ImportMode.SUBSCRIBE
    mapping: dict[str, str] = Field(
        default_factory=dict, description="CSV column -> field (email, name, or a custom field)."
    )


def upload_key(account: str, upload_id: str) -> str:
    """Where the uploaded CSV lives (the account is part of the key: no cross-tenant reuse)."""
    return f"uploads/{account}/{upload_id}.csv"


def _intent_key(account: str, upload_id: str) -> str:
    return f"uploads/{account}/{upload_id}.json"


def _valid_id(upload_id: str) -> bool:
    return 0 < len(upload_id) <= 64 and upload_id.isalnum()


def _load_intent(ctx: ApiContext, account: str, upload_id: str) -> dict[str, Any] | None:
    if not _valid_id(upload_id):
        return None
    try:
        doc: dict[str, Any] = orjson.loads(ctx.deps.blobs.get(_intent_key(account, upload_id)))
    except (BlobNotFound, KeyError, FileNotFoundError):
        return None
    return doc


def _save_intent(ctx: ApiContext, account: str, doc: dict[str, Any]) -> None:
    ctx.deps.blobs.put(
        _intent_key(account, doc["id"]), orjson.dumps(doc), content_type="application/json"
    )


def _view(ctx: ApiContext, account: str, intent: dict[str, Any]) -> dict[str, Any]:
    """The import as clients see it, before and after it started."""
    if intent.get("import_id"):
        job = audience.get_import(ctx.deps, account, intent["import_id"])
        return _with_links({**job, "id": intent["id"], "import_id": intent["import_id"]})
    uploaded = ctx.deps.blobs.exists(intent["blob"])
    return {
        "id": intent["id"],
        "import_id": None,
        "list": intent["list"],
        "mode": intent["mode"],
        "status": "uploaded" if uploaded else "awaiting_upload",
        "created_at": intent["created_at"],
        "error_report": None,
        "error_report_url": None,
    }


def _with_links(view: dict[str, Any]) -> dict[str, Any]:
    report = view.get("error_report")
    view["error_report_url"] = f"/v1/imports/{view['id']}/errors" if report else None
    return view


@router.post("", status_code=201, summary="Declare an import and get the URL to upload its CSV to")
def create_import(body: ImportCreate, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    lst = audience.get_list(ctx.deps, account, body.list)  # 404 before anything is stored
    upload_id = secrets.token_hex(8)
    intent = {
        "id": upload_id,
        "list": lst["id"],
        "mode": str(body.mode),
        "mapping": dict(body.mapping),
        "blob": upload_key(account, upload_id),
        "created_at": ctx.deps.clock.now(),
        "import_id": None,
    }
    _save_intent(ctx, account, intent)
    url = ctx.deps.blobs.upload_url(intent["blob"], expires=UPLOAD_EXPIRES, content_type="text/csv")
    view = _view(ctx, account, intent)
    view["upload"] = {"url": url, "method": "PUT", "expires_in": UPLOAD_EXPIRES}
    return view


@router.post("/{import_id}/start", summary="Start importing the uploaded file (idempotent)")
def start_import(import_id: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    intent = _load_intent(ctx, account, import_id)
    if intent is None:
        return _with_links(audience.get_import(ctx.deps, account, import_id))  # a started job's id
    if intent.get("import_id"):
        return _view(ctx, account, intent)  # already started: starting twice is a no-op
    if not ctx.deps.blobs.exists(intent["blob"]):
        raise ApiError(409, "conflict", "upload the file to the upload URL first", {"import": import_id})
    job, first = audience.start_import(
        ctx.deps, account, intent["list"], intent["blob"], mode=intent["mode"], mapping=intent["mapping"]
    )
    intent["import_id"] = job["id"]
    _save_intent(ctx, account, intent)
    ctx.emit([first])
    return _with_links({**job, "id": intent["id"], "import_id": job["id"]})


@router.get("/{import_id}", summary="Status, progress and counters of an import")
def get_import(import_id: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    intent = _load_intent(ctx, account, import_id)
    if intent is None:
        return _with_links(audience.get_import(ctx.deps, account, import_id))
    return _view(ctx, account, intent)


@router.get("/{import_id}/errors", summary="The rejected rows of an import, as CSV")
def get_import_errors(import_id: str, ctx: Ctx, account: AccountId) -> Response:
    view = get_import(import_id, ctx, account)
    report = view.get("error_report")
    if not report:
        raise ApiError(404, "not_found", "this import has no error report", {"import": import_id})
    key = report if isinstance(report, str) else str(report.get("key", ""))
    try:
        stream = ctx.deps.blobs.open(key)
    except (BlobNotFound, KeyError, FileNotFoundError) as exc:
        raise ApiError(404, "not_found", "the error report is gone", {"import": import_id}) from exc

    def chunks() -> Iterator[bytes]:
        with stream:  # a report can be large: never read it whole
            yield from iter(lambda: stream.read(64 * 1024), b"")

    return StreamingResponse(chunks(), media_type="text/csv")
