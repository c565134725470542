"""Bearer-key authentication: the account of a request comes from its key and nothing else.

No route takes an account from the URL or body, so a key of one account can
never name another account's data; every service call is scoped by the
account returned here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lunamail.app.base import Actor
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ApiError
from lunamail.services.accounts import api as accounts

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `lunamail keys create`, sent as `Authorization: Bearer lm_...`.",
)


def require_account(
    ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The caller's account id, or 401 (one message for every failure: no oracle)."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'")
    account = accounts.authenticate(ctx.deps, creds.credentials.strip())
    if account is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key")
    return account


AccountId = Annotated[str, Depends(require_account)]


def acting_actor(account: AccountId) -> Actor:
    """The actor of a request: the account of its verified key (every key is an owner's today)."""
    return Actor(account)


Acting = Annotated[Actor, Depends(acting_actor)]

