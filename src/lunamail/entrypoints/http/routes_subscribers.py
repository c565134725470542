"""Subscribers of a list: page through (by status), search by prefix, and change one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
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
from lunamail.entrypoints.http.schemas import (
    Page,
    SubscriberHistoryOut,
    SubscriberOut,
    error_responses,
)

router = APIRouter(
    prefix="/lists/{list_id}/subscribers",
    tags=["subscribers"],
    route_class=ErrorRoute,
    responses=error_responses(404),  # every route names a list
)

Email = Annotated[str, Field(min_length=3, max_length=320)]


class SubscriberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: str | None = Field(None, max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)
    resubscribe: bool = Field(
        False, description="Add someone who unsubscribed (from this list or all lists) again; needs reason."
    )
    reason: str = Field("", max_length=500, description="Why they may be mailed again (kept in the history).")


class SubscriberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    fields: dict[str, Any] | None = None
    replace_fields: bool = False


@router.get("", response_model=Page[SubscriberOut], summary="Subscribers of a list, page by page")
def list_subscribers(
    list_id: str,
    ctx: Ctx,
    actor: Acting,
    status: Annotated[str | None, Query(description="Only this status.")] = None,
    prefix: Annotated[
        str | None, Query(max_length=320, description="Search: addresses starting with this.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    if prefix:
        found = audience.list_subscribers(ctx.env, actor, list_id, prefix=prefix, limit=limit)
        return page(ctx.deps, actor.account, "", found.items, None)
    scope = f"subscribers:{list_id}:{status or ''}"
    inner = decode_cursor(ctx.deps, actor.account, scope, cursor)
    got = audience.list_subscribers(ctx.env, actor, list_id, status=status, limit=limit, cursor=inner)
    return page(ctx.deps, actor.account, scope, got.items, got.next_cursor)


@router.post("", status_code=201, response_model=SubscriberOut, responses=error_responses(409), summary="Subscribe someone (409 opted_out for someone who unsubscribed, unless resubscribe with a reason)")
def subscribe(list_id: str, body: SubscriberCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    new = audience.NewSubscriber(body.email, body.name, body.fields, resubscribe=body.resubscribe, reason=body.reason)
    return audience.subscribe(ctx.env, actor, list_id, new)


@router.get("/{email}", response_model=SubscriberOut, summary="One subscriber")
def get_subscriber(list_id: str, email: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return audience.get_subscriber(ctx.env, actor, list_id, email)


@router.patch("/{email}", response_model=SubscriberOut, responses=error_responses(409), summary="Change a subscriber's name or custom fields")
def update_subscriber(
    list_id: str, email: str, body: SubscriberUpdate, ctx: Ctx, actor: Acting
) -> dict[str, Any]:
    return audience.update_subscriber(
        ctx.env, actor, list_id, email, name=body.name, fields=body.fields, replace_fields=body.replace_fields
    )


@router.post("/{email}/unsubscribe", response_model=SubscriberOut, responses=error_responses(409), summary="Unsubscribe (idempotent)")
def unsubscribe(list_id: str, email: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return audience.unsubscribe(ctx.env, actor, list_id, email)


@router.delete("/{email}", status_code=204, summary="Forget a subscriber entirely")
def delete_subscriber(list_id: str, email: str, ctx: Ctx, actor: Acting) -> Response:
    audience.remove_subscriber(ctx.env, actor, list_id, email)
    return Response(status_code=204)


#: Account-wide views of one mailbox (every list), beside the per-list routes above.
mailbox_router = APIRouter(prefix="/subscribers", tags=["subscribers"], route_class=ErrorRoute)


@mailbox_router.get(
    "/{email}/history", response_model=SubscriberHistoryOut, responses=error_responses(404),
    summary="One address's consent history across the account (any letter case)",
)
def subscriber_history(email: Annotated[str, Path(min_length=3, max_length=320)], ctx: Ctx,
                       actor: Acting) -> dict[str, Any]:
    return audience.subscriber_history(ctx.env, actor, email)
