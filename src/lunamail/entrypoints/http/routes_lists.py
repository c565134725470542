"""Lists: create, list (with counts), get, update, delete."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import audience
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import DEFAULT_LIMIT, Cursor, Limit, slice_page
from lunamail.entrypoints.http.schemas import ListOut, Page, error_responses

router = APIRouter(prefix="/lists", tags=["lists"], route_class=ErrorRoute)


class FieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    type: Literal["text", "number", "bool", "date"] = "text"


class ListCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    fields: list[FieldIn] = Field(default_factory=list, max_length=100)
    double_opt_in: bool = False


class ListUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    fields: list[FieldIn] | None = Field(None, max_length=100)
    double_opt_in: bool | None = None


def _fields(fields: list[FieldIn] | None) -> list[dict[str, str]] | None:
    return None if fields is None else [f.model_dump() for f in fields]


@router.post("", status_code=201, response_model=ListOut, responses=error_responses(409), summary="Create a list")
def create_list(body: ListCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    new = audience.NewList(body.name, body.description, _fields(body.fields) or [], body.double_opt_in)
    return audience.create_list(ctx.env, actor, new)


@router.get("", response_model=Page[ListOut], summary="The account's lists with their counts")
def list_lists(
    ctx: Ctx, actor: Acting, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    lists = audience.list_lists(ctx.env, actor)  # lists are few: the service reads them all
    return slice_page(ctx.deps, actor.account, "lists", lists, limit, cursor)


@router.get("/{list_id}", response_model=ListOut, responses=error_responses(404), summary="One list by id (or name)")
def get_list(list_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return audience.get_list(ctx.env, actor, list_id)


@router.patch("/{list_id}", response_model=ListOut, responses=error_responses(404, 409), summary="Change a list's name, description, fields or opt-in")
def update_list(list_id: str, body: ListUpdate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    changes = audience.ListChanges(body.name, body.description, _fields(body.fields), body.double_opt_in)
    return audience.update_list(ctx.env, actor, list_id, changes)


@router.delete("/{list_id}", status_code=204, responses=error_responses(404), summary="Delete a list (subscribers are purged in the background)")
def delete_list(list_id: str, ctx: Ctx, actor: Acting) -> Response:
    audience.delete_list(ctx.env, actor, list_id)
    return Response(status_code=204)
