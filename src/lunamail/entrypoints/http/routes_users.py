"""Users and roles over HTTP: the twins of ``lunamail users add/ls/rm/role``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import users as users_app
from lunamail.domain.accounts import Role
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.schemas import Page, UserInvited, UserOut, error_responses

router = APIRouter(prefix="/users", tags=["users"], route_class=ErrorRoute)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    role: Role = "viewer"
    name: str = Field("", max_length=200)


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


@router.get("", response_model=Page[UserOut], summary="The account's console users and their roles")
def list_users(ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return {"items": [u.to_dict() for u in users_app.list_users(ctx.env, actor)], "next_cursor": None}


@router.post("", status_code=201, response_model=UserInvited, responses=error_responses(409), summary="Add a user; the answer has their one-time set-password link")
def add_user(body: UserCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    invited = users_app.add_user(ctx.env, actor, body.email, body.role, name=body.name)
    return {**invited.user.to_dict(), "set_password_link": invited.link}


@router.patch("/{email}", response_model=UserOut, responses=error_responses(404), summary="Change a user's role")
def set_role(email: str, body: RoleIn, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return users_app.set_role(ctx.env, actor, email, body.role).to_dict()


@router.delete("/{email}", status_code=204, responses=error_responses(404), summary="Remove a user (their sessions end)")
def remove_user(email: str, ctx: Ctx, actor: Acting) -> Response:
    users_app.remove_user(ctx.env, actor, email)
    return Response(status_code=204)
