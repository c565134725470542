"""The account's API keys and its dead letters (what ``lunamail keys`` and ``lunamail dlq``
do on the command line).

Dead letters live in the queue, which all accounts share: a key sees and replays only
the dead letters whose message names its own account (``lunamail.app.runtime_ops``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import accounts, runtime_ops
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import DEFAULT_LIMIT, Cursor, Limit, slice_page
from lunamail.entrypoints.http.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    DeadLetterOut,
    Page,
    ReplayOut,
    Role,
    error_responses,
)

router = APIRouter(route_class=ErrorRoute)

DLQ_SCAN = 1000  # dead letters read per listing (of every account; this one's are kept)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field("", max_length=200)
    role: Role = Field("admin", description="What the key may do (only an owner makes owner keys).")


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1, max_length=1000, description="Dead-letter ids.")


@router.get("/keys", response_model=Page[ApiKeyOut], tags=["keys"], summary="The account's API keys")
def list_keys(
    ctx: Ctx, actor: Acting, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    keys = [k.to_dict() for k in accounts.list_keys(ctx.env, actor)]
    return slice_page(ctx.deps, actor.account, "keys", keys, limit, cursor)


@router.post("/keys", status_code=201, response_model=ApiKeyCreated, tags=["keys"],
             summary="Create an API key (its secret is in this response only)")
def create_key(body: KeyCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    issued = accounts.create_key(ctx.env, actor, label=body.label, role=body.role)
    return {**issued.key.to_dict(), "secret": issued.secret}


@router.delete("/keys/{prefix}", response_model=ApiKeyOut, responses=error_responses(404, 409), tags=["keys"],
               summary="Revoke a key by its prefix (idempotent)")
def revoke_key(prefix: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return accounts.revoke_key(ctx.env, actor, prefix).to_dict()


@router.get("/dead-letters", response_model=Page[DeadLetterOut], tags=["dead letters"],
            summary="Messages that failed every attempt")
def list_dead_letters(ctx: Ctx, actor: Acting, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> dict[str, Any]:
    mine = [v.to_dict() for v in runtime_ops.dead_letters(ctx.env, actor, limit=DLQ_SCAN).items]
    return slice_page(ctx.deps, actor.account, "dead-letters", mine, limit, cursor)


@router.post("/dead-letters/replay", response_model=ReplayOut, tags=["dead letters"],
             summary="Put dead letters back on their queue")
def replay_dead_letters(body: ReplayIn, ctx: Ctx, actor: Acting) -> dict[str, int]:
    return asdict(runtime_ops.replay(ctx.env, actor, body.ids))
