"""Signed uploads: the local stand-in for an S3 presigned PUT.

No API key here: the URL's signature is the authorisation, exactly as with a
presigned URL, so a browser or ``curl -T`` can upload without holding a key.
An expired or tampered signature is a 403.  The body is spooled (memory up
to a small threshold, then a temporary file) and copied into the blob store
as a stream, so a large CSV never sits in memory.
"""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ApiError, ErrorRoute
from lunamail.entrypoints.http.schemas import UploadOut, error_responses

router = APIRouter(tags=["uploads"], route_class=ErrorRoute)

SPOOL_IN_MEMORY = 1 << 20  # bytes kept in memory before spilling to a temporary file
DEFAULT_MAX_UPLOAD = 1 << 30  # 1 GiB unless the max_upload_bytes setting says otherwise


def _verify(ctx: Ctx, key: str, expires: int, sig: str) -> bool:
    """Check the signature with the blob adapter's own rule (one place decides)."""
    from lunamail.adapters.blobs.files import verify_upload

    if ctx.upload_signing_key is None:
        return False
    return bool(verify_upload(ctx.upload_signing_key, key, expires, sig, ctx.deps.clock.now()))


@router.put(
    "/uploads/{key:path}",
    summary="Upload the bytes of a signed upload URL",
    response_model=UploadOut,
    responses=error_responses(403, 404, 409, 413, 422),
)
async def put_upload(
    key: str,
    request: Request,
    ctx: Ctx,
    expires: Annotated[int, Query()],
    sig: Annotated[str, Query(max_length=256)],
) -> dict[str, Any]:
    if not _verify(ctx, key, expires, sig):
        raise ApiError(403, "forbidden", "the upload URL is expired or its signature is invalid")
    if await run_in_threadpool(ctx.deps.blobs.exists, key):
        raise ApiError(409, "conflict", "this upload URL was already used", {"key": key})
    limit = int(ctx.deps.settings.max_upload_bytes)
    content_type = request.headers.get("content-type") or "application/octet-stream"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes")
            if received > SPOOL_IN_MEMORY:  # on disk now: keep file I/O off the event loop
                await run_in_threadpool(spool.write, chunk)
            else:
                spool.write(chunk)
        spool.seek(0)
        size = await run_in_threadpool(ctx.deps.blobs.put_stream, key, spool, content_type=content_type)  # type: ignore[arg-type]
    return {"key": key, "size_bytes": size}
