"""Single sign-on state of the accounts service: a sign-in in progress, and who an
identity from the provider is in Lunamail.

Items (this service's prefixes only):

- ``SSO#{sha256 of the state}`` / ``SSO``: a sign-in in progress: its nonce, PKCE code
  verifier, where to go afterwards; used at most once (a conditional update), for ten
  minutes (TTL'd).  The state itself is never stored, so a copy of the store cannot
  finish anybody's sign-in.

An identity signs in as the user of its e-mail address only when the provider says the
address is verified.  An address without a user is refused, unless the installation
allows it a role (``oidc_provision_role``, optionally for some domains only): then its
first sign-in makes the user in ``oidc_account``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from lunamail.domain.accounts import User
from lunamail.ports.deps import Deps
from lunamail.ports.identity import Identity
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, attr_equals
from lunamail.services.accounts import users
from lunamail.services.accounts.errors import Conflict, InvalidInput, SignInRefused

PENDING_SECONDS = 600
MAX_STATE = 200


@dataclass(frozen=True)
class Pending:
    state: str  # goes to the provider and back, and into the browser's cookie
    nonce: str
    code_verifier: str
    next: str  # the console path to open afterwards


def _key(state: str) -> str:
    return "SSO#" + hashlib.sha256(state.encode("utf-8")).hexdigest()


def begin(deps: Deps, next_path: str) -> Pending:
    """A new sign-in in progress, with fresh state, nonce and PKCE verifier."""
    pending = Pending(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48), next_path)
    now = deps.clock.now()
    deps.store.put({
        "pk": _key(pending.state), "sk": "SSO", "nonce": pending.nonce, "verifier": pending.code_verifier,
        "next": next_path, "expires_at": now + PENDING_SECONDS, "ttl": int(now + PENDING_SECONDS) + 60,
        "used": False,
    }, condition=IF_ABSENT)  # fmt: skip
    return pending


def take(deps: Deps, state: str) -> Pending | None:
    """The sign-in of ``state``, spent (at most once, even under concurrent use); None for
    an unknown, used or expired state."""
    if not state or len(state) > MAX_STATE:
        return None
    item = deps.store.get(_key(state), "SSO")
    if item is None or item.get("used") or float(item.get("expires_at", 0)) <= deps.clock.now():
        return None
    try:
        deps.store.update(item["pk"], "SSO", set={"used": True}, condition=attr_equals(used=False))
    except ConditionFailed:
        return None
    return Pending(state, str(item["nonce"]), str(item["verifier"]), str(item.get("next") or "/"))


def user_for(deps: Deps, identity: Identity) -> User:
    """The console user of a verified identity (made now when the installation allows
    its address a role); SignInRefused otherwise, saying what to do."""
    settings = deps.settings
    if not identity.email:
        raise SignInRefused("the identity provider gave no e-mail address: ask its administrator to share it")
    if not identity.email_verified:
        raise SignInRefused("the identity provider has not verified this e-mail address: verify it there first")
    try:
        email = users.normalise_email(identity.email)
    except InvalidInput:
        raise SignInRefused("the identity provider's e-mail address is not one Lunamail can use") from None
    found = users.find_user(deps, email)
    if found is not None:
        return found
    role = settings.oidc_provision_role
    domains = {d.strip().lower() for d in settings.oidc_provision_domains if d.strip()}
    if not role or (domains and email.rpartition("@")[2] not in domains):
        raise SignInRefused(f"{email} has no user in this console: ask an admin to add you")
    try:
        return users.add_user(deps, settings.oidc_account, email, role)
    except Conflict:  # a concurrent first sign-in made it
        again = users.find_user(deps, email)
        if again is None:
            raise
        return again
