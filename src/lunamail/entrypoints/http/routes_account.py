"""The calling account itself (who am I, may I send)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lunamail.entrypoints.http.auth import AccountId
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.services.accounts import api as accounts

router = APIRouter(tags=["account"], route_class=ErrorRoute)


@router.get("/account", summary="The account the key belongs to, with its sending state")
def get_account(ctx: Ctx, account: AccountId) -> dict[str, Any]:
    return accounts.get_account(ctx.deps, account).to_dict()
