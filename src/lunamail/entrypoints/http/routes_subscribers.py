"""Subscribers of a list: page through (by status), search by prefix, and change one."""

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

router = APIRouter(prefix="/lists/{list_id}/subscribers", tags=["subscribers"], route_class=ErrorRoute)

Email = Annotated[str, Field(min_length=3, max_length=320)]


class SubscriberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: str | None = Field(None, max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)


class SubscriberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    fields: dict[str, Any] | None = None
    replace_fields: bool = False


@router.get("", response_model=PageOut, summary="Subscribers of a list, page by page")
def list_subscribers(
    list_id: str,
    ctx: Ctx,
    account: AccountId,
    status: Annotated[str | None, Query(description="Only this status.")] = None,
    prefix: Annotated[
        str | None, Query(max_length=320, description="Search: addresses starting with this.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    if prefix:
        found = audience.search_subscribers(ctx.deps, account, list_id, prefix, limit=limit)
        return page(ctx.deps, account, "", found, None)
    scope = f"subscribers:{list_id}:{status or ''}"
    inner = decode_cursor(ctx.deps, account, scope, cursor)
    items, nxt = audience.list_subscribers(
        ctx.deps, account, list_id, status=status, limit=limit, cursor=inner
    )
    return page(ctx.deps, account, scope, items, nxt)


@router.post("", status_code=201, summary="Subscribe someone (re-subscribes an unsubscribed address)")
def subscribe(list_id: str, body: SubscriberCreate, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    events: list[Message] = []
    out = audience.subscribe(
        ctx.deps, account, list_id, body.email, name=body.name, fields=body.fields, events=events
    )
    ctx.emit(events)
    return out


@router.get("/{email}", summary="One subscriber")
def get_subscriber(list_id: str, email: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    return audience.get_subscriber(ctx.deps, account, list_id, email)


@router.patch("/{email}", summary="Change a subscriber's name or custom fields")
def update_subscriber(
    list_id: str, email: str, body: SubscriberUpdate, ctx: Ctx, account: AccountId
) -> dict[str, Any]:
    return audience.update_subscriber(
        ctx.deps,
        account,
        list_id,
        email,
        name=body.name,
        fields=body.fields,
        replace_fields=body.replace_fields,
    )


@router.post("/{email}/unsubscribe", summary="Unsubscribe (idempotent)")
def unsubscribe(list_id: str, email: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    events: list[Message] = []
    out = audience.unsubscribe(ctx.deps, account, list_id, email, events=events)
    ctx.emit(events)
    return out


@router.delete("/{email}", status_code=204, summary="Forget a subscriber entirely")
def delete_subscriber(list_id: str, email: str, ctx: Ctx, account: AccountId) -> Response:
    events: list[Message] = []
    audience.delete_subscriber(ctx.deps, account, list_id, email, events=events)
    ctx.emit(events)
    return Response(status_code=204)
