"""CSV imports over HTTP: declare, upload to a signed URL, start, watch.

1. ``POST /v1/imports`` checks the list and mode and returns a signed upload URL.
2. The client PUTs the file there (see ``routes_uploads``); no API key needed.
3. ``POST /v1/imports/{id}/start`` hands the file to the audience service, which
   inspects it once and returns the first chunk command; the workers do the rest.
4. ``GET /v1/imports/{id}`` shows status, progress, counters and the error report.

The steps are use cases of :mod:`lunamail.app.audience`, which keeps the intent
between 1 and 3 as a small JSON object next to the upload, keyed under the
account so another account's key cannot find it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import audience
from lunamail.domain.audience import ImportMode
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ApiError, ErrorRoute
from lunamail.entrypoints.http.schemas import ImportOut, error_responses
from lunamail.ports.blobs import BlobNotFound

router = APIRouter(prefix="/imports", tags=["imports"], route_class=ErrorRoute)

UPLOAD_EXPIRES = audience.UPLOAD_EXPIRES_SECONDS


class ImportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: str = Field(min_length=1, max_length=200, description="List id or name.")
    mode: ImportMode = ImportMode.SUBSCRIBE
    mapping: dict[str, str] = Field(
        default_factory=dict, description="CSV column -> field (email, name, or a custom field)."
    )


def _with_links(view: dict[str, Any]) -> dict[str, Any]:
    report = view.get("error_report")
    view["error_report_url"] = f"/v1/imports/{view['id']}/errors" if report else None
    return view


@router.post("", status_code=201, response_model=ImportOut, responses=error_responses(404), summary="Declare an import and get the URL to upload its CSV to")
def create_import(body: ImportCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return _with_links(audience.declare_import(ctx.env, actor, body.list, mode=body.mode, mapping=body.mapping))


@router.post("/{import_id}/start", response_model=ImportOut, responses=error_responses(404, 409), summary="Start importing the uploaded file (idempotent)")
def start_import(import_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return _with_links(audience.start_import(ctx.env, actor, import_id))


@router.get("/{import_id}", response_model=ImportOut, responses=error_responses(404), summary="Status, progress and counters of an import")
def get_import(import_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return _with_links(audience.get_import(ctx.env, actor, import_id))


@router.get(
    "/{import_id}/errors",
    summary="The rejected rows of an import, as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The rejected rows."}, **error_responses(404)},
)
def get_import_errors(import_id: str, ctx: Ctx, actor: Acting) -> Response:
    key = audience.import_error_report(ctx.env, actor, import_id)
    if key is None:
        raise ApiError(404, "not_found", "this import has no error report", {"import": import_id})
    try:
        stream = ctx.deps.blobs.open(key)
    except (BlobNotFound, KeyError, FileNotFoundError) as exc:
        raise ApiError(404, "not_found", "the error report is gone", {"import": import_id}) from exc

    def chunks() -> Iterator[bytes]:
        with stream:  # a report can be large: never read it whole
            yield from iter(lambda: stream.read(64 * 1024), b"")

    return StreamingResponse(chunks(), media_type="text/csv")
