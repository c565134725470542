"""Use cases: the users of an account and their roles (``lunamail users``, ``/v1/users``,
the console's users screen).  Only owners make, change or remove owners."""

from __future__ import annotations

from dataclasses import dataclass

from lunamail.domain.accounts import User
from lunamail.ports.deps import Deps
from lunamail.services.accounts import users

from .base import Actor, Emitted, Env, Permission, command, query

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
