"""Console pages for admins: users and roles, API keys, dead letters (use cases of the
application layer, so only admins and owners get past them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from lunamail.app import accounts, runtime_ops
from lunamail.app import users as users_app
from lunamail.app.base import Permission
from lunamail.domain.accounts import ROLES
from lunamail.entrypoints.web.common import (
    ConsoleRoute,
    Viewer,
    ViewerDep,
    WriterDep,
    env_of,
    redirect,
    render,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _grantable(viewer: Viewer) -> list[str]:
    return [r for r in ROLES if r != "owner" or viewer.actor.can(Permission.OWN)]


def _users(request: Request, viewer: Viewer, link: users_app.InvitedUser | None = None) -> Response:
    found = users_app.list_users(env_of(request), viewer.actor)
    return render(request, "users.html", viewer, nav="users", users=found, roles=_grantable(viewer), link=link)


@router.get("/users")
def users_page(request: Request, viewer: ViewerDep) -> Response:
    return _users(request, viewer)


@router.post("/users")
def add_user(request: Request, viewer: WriterDep, email: Annotated[str, Form(max_length=320)],
             role: Annotated[str, Form(max_length=20)], name: Annotated[str, Form(max_length=200)] = "") -> Response:
    invited = users_app.add_user(env_of(request), viewer.actor, email, role, name=name)
    return _users(request, viewer, invited)


@router.post("/users/{email}/role")
def set_role(request: Request, viewer: WriterDep, email: str, role: Annotated[str, Form(max_length=20)]) -> Response:
    users_app.set_role(env_of(request), viewer.actor, email, role)
    return redirect("/users", request)


@router.post("/users/{email}/delete")
def remove_user(request: Request, viewer: WriterDep, email: str) -> Response:
    users_app.remove_user(env_of(request), viewer.actor, email)
    return redirect("/users", request)


def _keys(request: Request, viewer: Viewer, issued: accounts.NewKey | None = None) -> Response:
    found = accounts.list_keys(env_of(request), viewer.actor)
    return render(request, "keys.html", viewer, nav="keys", keys=found, roles=_grantable(viewer), issued=issued)


@router.get("/keys")
def keys_page(request: Request, viewer: ViewerDep) -> Response:
    return _keys(request, viewer)


@router.post("/keys")
def create_key(request: Request, viewer: WriterDep, label: Annotated[str, Form(max_length=200)] = "",
               role: Annotated[str, Form(max_length=20)] = "viewer") -> Response:
    issued = accounts.create_key(env_of(request), viewer.actor, label=label, role=role)
    return _keys(request, viewer, issued)


@router.post("/keys/{prefix}/revoke")
def revoke_key(request: Request, viewer: WriterDep, prefix: str) -> Response:
    accounts.revoke_key(env_of(request), viewer.actor, prefix)
    return redirect("/keys", request)


def _dead_letters(request: Request, viewer: Viewer, replayed: runtime_ops.Replayed | None = None) -> Response:
    found = runtime_ops.dead_letters(env_of(request), viewer.actor, limit=DEAD_LETTERS_SHOWN)
    return render(request, "dead_letters.html", viewer, nav="dead-letters", letters=found.items, replayed=replayed,
                  shown=DEAD_LETTERS_SHOWN)


DEAD_LETTERS_SHOWN = 200


@router.get("/dead-letters")
def dead_letters_page(request: Request, viewer: ViewerDep) -> Response:
    return _dead_letters(request, viewer)


@router.post("/dead-letters/replay")
def replay_dead_letters(request: Request, viewer: WriterDep,
                        ids: Annotated[list[str] | None, Form(max_length=DEAD_LETTERS_SHOWN)] = None,
                        every: Annotated[str, Form(max_length=10)] = "") -> Response:
    """Put the chosen dead letters (or all of this account's) back on their queues."""
    done = runtime_ops.replay(env_of(request), viewer.actor, [i[:200] for i in ids or []] or None,
                              replay_all=every == "all")
    return _dead_letters(request, viewer, done)
