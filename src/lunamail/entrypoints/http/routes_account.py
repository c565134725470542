"""The calling account itself (who am I, may I send)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lunamail.app import accounts
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.schemas import AccountOut

router = APIRouter(tags=["account"], route_class=ErrorRoute)


@router.get("/account", response_model=AccountOut, summary="The account the key belongs to, with its sending state")
def get_account(ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return accounts.me(ctx.env, actor).to_dict()
