"""The account's suppression list: addresses never mailed again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from lunamail.domain.messages import Message
from lunamail.entrypoints.http.auth import AccountId
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    PageOut,
    decode_cursor,
    page,
)
from lunamail.services.audience import api as audience

router = APIRouter(prefix="/suppressions", tags=["suppressions"], route_class=ErrorRoute)


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    reason: str = Field("manual", max_length=200)


@router.get("", response_model=PageOut, summary="Suppressed addresses, page by page")
def list_suppressions(
    ctx: Ctx,
    account: AccountId,
    prefix: Annotated[str, Query(max_length=320)] = "",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = f"suppressions:{prefix}"
    inner = decode_cursor(ctx.deps, account, scope, cursor)
    items, nxt = audience.list_suppressions(ctx.deps, account, limit=limit, cursor=inner, prefix=prefix)
    return page(ctx.deps, account, scope, items, nxt)


@router.post("", status_code=201, summary="Suppress an address (idempotent)")
def suppress(body: SuppressionCreate, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    events: list[Message] = []
    out = audience.suppress(ctx.deps, account, body.email, reason=body.reason, events=events)
    ctx.emit(events)
    return out


@router.delete("/{email}", status_code=204, summary="Lift a suppression")
def unsuppress(email: str, ctx: Ctx, account: AccountId) -> Response:
    events: list[Message] = []
    audience.unsuppress(ctx.deps, account, email, events=events)
    ctx.emit(events)
    return Response(status_code=204)
