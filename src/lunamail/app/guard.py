"""Reputation-guard use cases: the account's score and rates, thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lunamail.domain.guard import GuardThresholds
from lunamail.services.guard import api as guard_api

from .base import Actor, Emitted, Env, Permission, command, query


@dataclass(frozen=True)
class ThresholdChanges:
    """None keeps a value; rates are fractions (0.05 = 5 %)."""

    campaign_bounce: float | None = None
    campaign_complaint: float | None = None
    account_bounce: float | None = None
    account_complaint: float | None = None
    min_sample: int | None = None
    window_hours: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in self.__dict__.values())


@query()
def status(env: Env, actor: Actor, *, campaign: str | None = None) -> dict[str, Any]:
    """The account's score over its window and why; with ``campaign`` that campaign's numbers."""
    doc = guard_api.score(env.deps, actor.account)
    if campaign:
        doc = {**doc, "campaign": guard_api.campaign_status(env.deps, actor.account, campaign)}
    return doc


@query()
def thresholds(env: Env, actor: Actor) -> GuardThresholds:
    return guard_api.get_thresholds(env.deps, actor.account)


@command(Permission.ADMIN)
def set_thresholds(env: Env, actor: Actor, changes: ThresholdChanges) -> Emitted[GuardThresholds]:
    """Change some thresholds; InvalidInput names every bad field.  They apply to the next
    event counted."""
    return Emitted(guard_api.set_thresholds(env.deps, actor.account, **changes.__dict__))


@query()
def recent_actions(env: Env, actor: Actor, *, since: float | None = None) -> list[dict[str, Any]]:
    """Campaign trips and account locks since ``since``, oldest first."""
    return guard_api.recent_actions(env.deps, actor.account, since=since)
