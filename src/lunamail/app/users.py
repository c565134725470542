"""Use cases: the users of an account and their roles (``lunamail users``, ``/v1/users``,
the console's users screen), and a signed-in user's own second factor (the console's
settings screen).  Only owners make, change or remove owners, and only owners require a
second factor of everyone."""

from __future__ import annotations

from dataclasses import dataclass

from lunamail.domain.accounts import User
from lunamail.ports.deps import Deps
from lunamail.services.accounts import two_factor, users

from .base import Actor, Emitted, Env, Permission, command, query
from .errors import Conflict, Forbidden, InvalidInput

SET_PASSWORD_PATH = "/login/link/"


@dataclass(frozen=True)
class InvitedUser:
    user: User
    link: str  # one-time URL to set the password (shown or sent once)


def set_password_url(deps: Deps, token: str) -> str:
    return deps.settings.base_url.rstrip("/") + SET_PASSWORD_PATH + token


def _owner_rights(actor: Actor, *roles: str) -> None:
    if "owner" in roles:
        actor.require(Permission.OWN)


def invite(deps: Deps, account: str, email: str, role: str, name: str = "") -> InvitedUser:
    """Add the user and make their one-time link (no permission check: for callers that
    checked, and for ``initialise``, which makes the first owner)."""
    user = users.add_user(deps, account, email, role, name)
    return InvitedUser(user, set_password_url(deps, users.issue_link(deps, account, user.email)))


@command(Permission.ADMIN)
def add_user(env: Env, actor: Actor, email: str, role: str, *, name: str = "") -> Emitted[InvitedUser]:
    """Add a user and make their one-time set-password link."""
    _owner_rights(actor, role)
    return Emitted(invite(env.deps, actor.account, email, role, name))


@query(Permission.ADMIN)
def list_users(env: Env, actor: Actor) -> list[User]:
    return users.list_users(env.deps, actor.account)


@command(Permission.ADMIN)
def remove_user(env: Env, actor: Actor, email: str) -> Emitted[None]:
    """Remove a user; their sessions stop at their next request."""
    _owner_rights(actor, users.get_user(env.deps, actor.account, email).role)
    users.remove_user(env.deps, actor.account, email)
    return Emitted(None)


@command(Permission.ADMIN)
def set_role(env: Env, actor: Actor, email: str, role: str) -> Emitted[User]:
    _owner_rights(actor, role, users.get_user(env.deps, actor.account, email).role)
    return Emitted(users.set_role(env.deps, actor.account, email, role))


@command(Permission.ADMIN)
def new_link(env: Env, actor: Actor, email: str) -> Emitted[str]:
    """A fresh one-time set-password link for a user (e.g. the first one expired)."""
    _owner_rights(actor, users.get_user(env.deps, actor.account, email).role)
    return Emitted(set_password_url(env.deps, users.issue_link(env.deps, actor.account, email)))


# ---------------------------------------------------------------- two-factor sign-in (TOTP)


@dataclass(frozen=True)
class TwoFactorStatus:
    enabled: bool  # the signed-in user signs in with a code from an app
    required: bool  # the account requires it of every user
    recovery_left: int  # unused recovery codes
    pending: two_factor.Enrolment | None  # a set-up waiting for its first code


def _own(actor: Actor) -> str:
    """The signed-in person's address: a second factor is a person's, not a key's."""
    if not actor.email:
        raise Forbidden("only a signed-in console user has a second factor", {"permission": "user"})
    return actor.email


@query(Permission.READ)
def two_factor_status(env: Env, actor: Actor) -> TwoFactorStatus:
    email = _own(actor)
    deps = env.deps
    return TwoFactorStatus(two_factor.is_enabled(deps, actor.account, email),
                           two_factor.required(deps, actor.account),
                           two_factor.recovery_left(deps, actor.account, email),
                           two_factor.pending_enrolment(deps, actor.account, email))


@command(Permission.READ)
def start_two_factor(env: Env, actor: Actor) -> Emitted[two_factor.Enrolment]:
    """A new key for the signed-in user's app (its otpauth URI and base32 text); it
    replaces the current one only once a code from it is confirmed."""
    return Emitted(two_factor.begin_enrolment(env.deps, actor.account, _own(actor)))


@command(Permission.READ)
def confirm_two_factor(env: Env, actor: Actor, code: str) -> Emitted[list[str]]:
    """Turn the waiting key on with a code from it; the new recovery codes (shown once)."""
    return Emitted(two_factor.confirm_enrolment(env.deps, actor.account, _own(actor), code))


@command(Permission.READ)
def stop_two_factor(env: Env, actor: Actor, code: str) -> Emitted[None]:
    """Turn the signed-in user's second factor off (a current code or a recovery code
    proves it is them); refused while the account requires it."""
    email = _own(actor)
    if two_factor.required(env.deps, actor.account):
        raise Conflict("this account requires two-factor sign-in of every user")
    if not two_factor.verify(env.deps, actor.account, email, code):
        raise InvalidInput("that code is not right", {"field": "code"})
    two_factor.disable(env.deps, actor.account, email)
    return Emitted(None)


@command(Permission.OWN)
def require_two_factor(env: Env, actor: Actor, on: bool) -> Emitted[bool]:
    """Owners: every user of the account must sign in with a second factor (those without
    one set it up at their next sign-in)."""
    two_factor.set_required(env.deps, actor.account, on)
    return Emitted(bool(on))
