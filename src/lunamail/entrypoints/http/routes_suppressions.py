"""The account's suppression list: addresses never mailed again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import audience
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_cursor,
    page,
)
from lunamail.entrypoints.http.schemas import Page, SuppressionOut, error_responses

router = APIRouter(prefix="/suppressions", tags=["suppressions"], route_class=ErrorRoute)


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    reason: str = Field("manual", max_length=200)


@router.get("", response_model=Page[SuppressionOut], summary="Suppressed addresses, page by page")
def list_suppressions(
    ctx: Ctx,
    actor: Acting,
    prefix: Annotated[str, Query(max_length=320)] = "",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = f"suppressions:{prefix}"
    inner = decode_cursor(ctx.deps, actor.account, scope, cursor)
    got = audience.list_suppressions(ctx.env, actor, limit=limit, cursor=inner, prefix=prefix)
    return page(ctx.deps, actor.account, scope, got.items, got.next_cursor)


@router.post("", status_code=201, response_model=SuppressionOut, summary="Suppress an address (idempotent)")
def suppress(body: SuppressionCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return audience.suppress(ctx.env, actor, body.email, reason=body.reason)


@router.delete("/{email}", status_code=204, responses=error_responses(404), summary="Lift a suppression")
def unsuppress(email: str, ctx: Ctx, actor: Acting) -> Response:
    audience.unsuppress(ctx.env, actor, email)
    return Response(status_code=204)
