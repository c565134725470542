"""Bearer-key authentication: the account of a request comes from its key and nothing else.

No route takes an account from the URL or body, so a key of one account can
never name another account's data; every service call is scoped by the
account returned here.  The key's role (a scoped key) is the actor's role, so the
use cases refuse with 403 what the key may not do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lunamail.app import accounts as account_cases
from lunamail.app.base import Actor
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ApiError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `lunamail keys create`, sent as `Authorization: Bearer lm_...`.",
)


def acting_actor(
    ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Actor:
    """The actor of a request: the account and role of its verified key, or 401 (one
    message for every failure: no oracle)."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'")
    actor = account_cases.actor_for_key(ctx.deps, creds.credentials.strip())
    if actor is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key")
    return actor


Acting = Annotated[Actor, Depends(acting_actor)]


def require_account(actor: Acting) -> str:
    """The caller's account id (routes that only read and call a service by account)."""
    return actor.account


AccountId = Annotated[str, Depends(require_account)]
