"""Operator use cases of the runtime: dead letters (messages that failed every attempt).

An account owner sees and replays only its own dead letters; the installation's
operator (the CLI on the data folder) sees every account's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lunamail.ports.queue import Queue
from lunamail.runtime.dlq import DeadLetterView, list_dead_letters

from .base import Actor, Emitted, Env, Page, Permission, command, query
from .errors import AppError, InvalidInput


@dataclass(frozen=True)
class Replayed:
    replayed: int
    not_found: int  # ids given that were not (or no longer) dead letters


class NoQueue(AppError):
    """The door has no queue to inspect (a misconfiguration, not a user error)."""


def _queue(env: Env) -> Queue:
    if env.queue is None:
        raise NoQueue("this entrypoint has no queue for dead letters")
    return env.queue


def _sees_all(actor: Actor) -> bool:
    return actor.installation


#: How many dead letters (oldest first, every account's) a tenant's view looks through:
#: the queue port lists them installation-wide, so a tenant's own are filtered from a
#: window wide enough that other tenants' older ones do not hide them.
TENANT_WINDOW = 10_000


def _visible(env: Env, actor: Actor, limit: int) -> list[DeadLetterView]:
    if _sees_all(actor):
        return list_dead_letters(_queue(env), limit=limit)
    views = list_dead_letters(_queue(env), limit=max(limit, TENANT_WINDOW))
    return [v for v in views if v.account == actor.account][:limit]


@query(Permission.ADMIN)
def dead_letters(env: Env, actor: Actor, *, limit: int = 100) -> Page[DeadLetterView]:
    """Dead letters, oldest first: id, queue, message name, attempts, error, when."""
    return Page(_visible(env, actor, limit))


@command(Permission.ADMIN)
def replay(env: Env, actor: Actor, ids: Sequence[str] | None = None, *, replay_all: bool = False) -> Emitted[Replayed]:
    """Put dead letters back on their queue with attempts reset (after fixing the cause):
    the ``ids`` given, or every one with ``replay_all``."""
    if bool(ids) == replay_all:
        raise InvalidInput("give dead-letter ids or all (not both)", {"ids": "ids or all, not both"})
    queue = _queue(env)
    if _sees_all(actor):
        moved = queue.replay(None if replay_all else list(ids or ()))
        return Emitted(Replayed(moved, 0 if replay_all else len(set(ids or ())) - moved))
    mine = {v.id for v in _visible(env, actor, TENANT_WINDOW)}
    wanted = list(dict.fromkeys(mine if replay_all else [i for i in ids or () if i in mine]))
    moved = queue.replay(wanted) if wanted else 0
    missing = 0 if replay_all else len(set(ids or ())) - moved
    return Emitted(Replayed(moved, missing))
