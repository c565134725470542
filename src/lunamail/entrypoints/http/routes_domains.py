"""Sending domains: add one (its DKIM keys and the DNS records to publish), check its
records against DNS, list and show them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import domains
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page
from lunamail.entrypoints.http.schemas import Page, SendingDomainOut, error_responses

router = APIRouter(prefix="/domains", tags=["domains"], route_class=ErrorRoute)

DomainName = Annotated[str, Path(max_length=253, description="The domain, e.g. `example.com`.")]


class DomainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str = Field(min_length=1, max_length=253, description="The domain mail is sent From.")
    ed25519: bool = Field(False, description="Also sign with an ed25519 key (a second signature).")


@router.get("", response_model=Page[SendingDomainOut], summary="The account's sending domains")
def list_domains(ctx: Ctx, actor: Acting, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> dict[str, Any]:
    inner = decode_cursor(ctx.deps, actor.account, "domains", cursor)
    got = domains.list_domains(ctx.env, actor, limit=limit, cursor=inner)
    return page(ctx.deps, actor.account, "domains", [d.to_dict() for d in got.items], got.next_cursor)


@router.post("", status_code=201, response_model=SendingDomainOut,
             summary="Add a sending domain: its DKIM keys and the DNS records to publish (idempotent)")
def add_domain(body: DomainCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return domains.add(ctx.env, actor, body.domain, ed25519=body.ed25519).to_dict()


@router.get("/{domain}", response_model=SendingDomainOut, responses=error_responses(404),
            summary="A sending domain's state and records")
def get_domain(domain: DomainName, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return domains.get(ctx.env, actor, domain).to_dict()


@router.post("/{domain}/check", response_model=SendingDomainOut, responses=error_responses(404),
             summary="Check a sending domain's records against DNS")
def check_domain(domain: DomainName, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return domains.check(ctx.env, actor, domain).to_dict()
