"""What every use case runs with, and the two decorators that make a function one.

* :class:`Env` — the dependencies and ``publish`` (the bus locally, SQS on AWS, a
  recorder in tests).
* :class:`Actor` — who acts: the account (always checked to exist by the door
  that builds it) and a role (of the API key, the signed-in user, or ``owner`` for
  the CLI); :data:`ROLES` says what each role may do.
* ``@command(permission)`` — a use case that changes something.  Its body returns
  ``Emitted(result, messages)``; the decorator checks the permission, publishes the
  messages only after the body succeeded, and hands back the bare result.  This is
  the one way the layer emits messages.
* ``@query(permission)`` — a use case that only reads.

Both register the function in :data:`USE_CASES` (for the parity test and docs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Concatenate, Generic, ParamSpec, TypeVar

from lunamail.domain.messages import Later, Message
from lunamail.ports.deps import Deps
from lunamail.ports.queue import Queue

from .errors import Forbidden

P = ParamSpec("P")
T = TypeVar("T")
Item = TypeVar("Item")

Publish = Callable[[Sequence[Message | Later]], object]


@dataclass(frozen=True)
class Env:
    """The wired dependencies of one process and how its messages leave it."""

    deps: Deps
    publish: Publish
    queue: Queue | None = None  # for the dead-letter use cases; a door without one refuses them


class Permission(StrEnum):
    READ = "read"  # look at lists, campaigns, reports
    AUDIENCE = "audience"  # change lists, subscribers, suppressions, imports
    CAMPAIGNS = "campaigns"  # write drafts, preview, test
    SEND = "send"  # send, schedule, pause, resume, cancel, resend
    ADMIN = "admin"  # users, keys, accounts, guard thresholds, dead letters
    OWN = "own"  # make and remove owners


_WRITE = frozenset({Permission.READ, Permission.AUDIENCE, Permission.CAMPAIGNS})

#: Role -> what it may do (the roles are ``lunamail.domain.accounts.ROLES``).
ROLES: dict[str, frozenset[Permission]] = {
    "owner": frozenset(Permission),
    "admin": frozenset(Permission) - {Permission.OWN},
    "sender": _WRITE | {Permission.SEND},
    "editor": _WRITE,
    "viewer": frozenset({Permission.READ}),
}


@dataclass(frozen=True)
class Actor:
    """Who performs a use case.  Build it through :func:`lunamail.app.accounts.actor`
    (which checks the account exists) or, in HTTP, from a verified API key."""

    account: str
    role: str = "owner"
    #: True for whoever holds the whole installation (the CLI on the data folder): sees
    #: installation-wide things (every account's dead letters) on top of its role.
    installation: bool = False
    #: The signed-in console user's address ("" for API keys and the CLI): whose own
    #: settings (the second factor) a use case changes.
    email: str = ""

    def can(self, permission: Permission | str) -> bool:
        return Permission(permission) in ROLES.get(self.role, frozenset())

    def require(self, permission: Permission) -> None:
        if permission not in ROLES.get(self.role, frozenset()):
            raise Forbidden(f"role {self.role!r} may not {permission.value}", {"permission": permission.value})


@dataclass(frozen=True)
class Emitted(Generic[T]):
    """A command's result and the messages it emits (published by ``@command``)."""

    result: T
    messages: Sequence[Message | Later] = ()


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a listing; pass ``next_cursor`` back for the next (None = the end)."""

    items: list[Item]
    next_cursor: str | None = None


@dataclass(frozen=True)
class UseCase:
    name: str  # "<area>.<function>", e.g. "campaigns.send"
    permission: Permission
    changes: bool  # a command (True) or a query (False)
    function: Callable[..., object] = field(compare=False)


#: Every use case of the layer by name, filled by the decorators at import time.
USE_CASES: dict[str, UseCase] = {}


def _register(fn: Callable[..., object], permission: Permission, changes: bool) -> None:
    area = fn.__module__.rsplit(".", 1)[-1]
    name = f"{area}.{fn.__name__}"
    USE_CASES[name] = UseCase(name, permission, changes, fn)


def command(
    permission: Permission,
) -> Callable[[Callable[Concatenate[Env, Actor, P], Emitted[T]]], Callable[Concatenate[Env, Actor, P], T]]:
    """Mark a use case that changes something (see the module docstring)."""

    def wrap(fn: Callable[Concatenate[Env, Actor, P], Emitted[T]]) -> Callable[Concatenate[Env, Actor, P], T]:
        @functools.wraps(fn)
        def run(env: Env, actor: Actor, /, *args: P.args, **kwargs: P.kwargs) -> T:
            actor.require(permission)
            out = fn(env, actor, *args, **kwargs)
            if out.messages:
                env.publish(list(out.messages))
            return out.result

        _register(run, permission, True)
        return run

    return wrap


def query(
    permission: Permission = Permission.READ,
) -> Callable[[Callable[Concatenate[Env, Actor, P], T]], Callable[Concatenate[Env, Actor, P], T]]:
    """Mark a use case that only reads."""

    def wrap(fn: Callable[Concatenate[Env, Actor, P], T]) -> Callable[Concatenate[Env, Actor, P], T]:
        @functools.wraps(fn)
        def run(env: Env, actor: Actor, /, *args: P.args, **kwargs: P.kwargs) -> T:
            actor.require(permission)
            return fn(env, actor, *args, **kwargs)

        _register(run, permission, False)
        return run

    return wrap
