"""Feedback policy: when repeated soft bounces mean the address is as good as dead.

One soft bounce (full mailbox, a timeout) says nothing about the address; several
spread over days do -- three in one afternoon are one bad afternoon.  Like
Mailman's bounce score, ``count_soft_bounce`` counts at most one soft bounce per
address per day (UTC), keeps those of the last ``window_days`` in one
feedback-owned item (``A#{account}#FB#SB`` / ``E#{email}``), and emits
``SoftBounceLimitReached`` when there are ``limit`` of them spread over at least
``spread_days`` (defaults: 3 over 7 days, forgotten after 30).  The audience reacts
to that event as to a hard bounce.  Sender-side bounces (``bounce_type="sender"``)
are never counted here: they say nothing about the address.  Hard bounces and
complaints need no policy: the audience reacts to them directly.

The limit comes from a per-account policy item (``A#{account}#FB`` / ``POLICY``,
see :func:`set_policy`), else the settings (``soft_bounce_limit``,
``soft_bounce_spread_days``, ``soft_bounce_window_days``), else the defaults.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from lunamail.domain.feedback import Bounced, SoftBounceLimitReached
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, Item, attr_equals

from .ingest import feedback_pk

__all__ = [
    "DEFAULT_SOFT_BOUNCE_LIMIT",
    "DEFAULT_SOFT_BOUNCE_SPREAD_DAYS",
    "DEFAULT_SOFT_BOUNCE_WINDOW_DAYS",
    "SoftBouncePolicy",
    "count_soft_bounce",
    "get_policy",
    "set_policy",
    "soft_bounce_pk",
]

DEFAULT_SOFT_BOUNCE_LIMIT = 3
DEFAULT_SOFT_BOUNCE_SPREAD_DAYS = 7.0
DEFAULT_SOFT_BOUNCE_WINDOW_DAYS = 30.0
POLICY_SK = "POLICY"
_SEEN_KEPT = 64  # ids of recent soft bounces remembered to ignore redeliveries
_RETRIES = 5
_DAY = 86400.0


@dataclass(frozen=True)
class SoftBouncePolicy:
    limit: int = DEFAULT_SOFT_BOUNCE_LIMIT
    window_days: float = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS
    spread_days: float = DEFAULT_SOFT_BOUNCE_SPREAD_DAYS

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_days <= 0 or self.spread_days < 0:
            raise ValueError("soft bounce limit must be >= 1, the window > 0 days, the spread >= 0 days")
        if self.spread_days >= self.window_days:
            raise ValueError("the soft bounce window must be longer than the spread")


def soft_bounce_pk(account: str) -> str:
    return f"A#{account}#FB#SB"


def _soft_bounce_sk(email: str) -> str:
    return f"E#{email.lower()}"


def get_policy(deps: Deps, account: str) -> SoftBouncePolicy:
    """The account's policy item, else the installation's settings, else the defaults."""
    limit: Any = deps.settings.soft_bounce_limit
    window: Any = deps.settings.soft_bounce_window_days
    spread: Any = deps.settings.soft_bounce_spread_days
    item = deps.store.get(feedback_pk(account), POLICY_SK)
    if item is not None:
        limit = item.get("soft_bounce_limit", limit)
        window = item.get("soft_bounce_window_days", window)
        spread = item.get("soft_bounce_spread_days", spread)
    return SoftBouncePolicy(int(limit), float(window), float(spread))


def set_policy(
    deps: Deps, account: str, *, soft_bounce_limit: int | None = None,
    soft_bounce_window_days: float | None = None, soft_bounce_spread_days: float | None = None,
) -> SoftBouncePolicy:  # fmt: skip
    """Override the soft-bounce limit for one account (validated before it is stored)."""
    current = get_policy(deps, account)
    new = SoftBouncePolicy(
        soft_bounce_limit if soft_bounce_limit is not None else current.limit,
        soft_bounce_window_days if soft_bounce_window_days is not None else current.window_days,
        soft_bounce_spread_days if soft_bounce_spread_days is not None else current.spread_days,
    )
    deps.store.update(
        feedback_pk(account), POLICY_SK,
        set={"soft_bounce_limit": new.limit, "soft_bounce_window_days": new.window_days,
             "soft_bounce_spread_days": new.spread_days},
    )  # fmt: skip
    return new


def _bounce_id(msg: Bounced) -> str:
    """The event's own id, else one derived from its content (stable across redeliveries)."""
    if msg.id:
        return msg.id
    text = "\x1f".join([msg.campaign, msg.email.lower(), str(msg.status), repr(msg.at), msg.source])
    return "h:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _reached(msg: Bounced, item: Item) -> SoftBounceLimitReached:
    return SoftBounceLimitReached(
        account=msg.account, email=msg.email, campaign=msg.campaign,
        count=int(item["tripped_count"]), window_days=float(item["window_days"]),
        status=msg.status, diagnostic=msg.diagnostic, at=msg.at,
        id=f"sbl:{item['tripped_by']}",
    )  # fmt: skip


def count_soft_bounce(msg: Bounced, deps: Deps) -> list[Message]:
    """Count one soft bounce; at the limit, emit ``SoftBounceLimitReached`` and start a
    new window.  A redelivered bounce is not counted again; a redelivery of the bounce
    that reached the limit emits the event again (the audience reaction is idempotent)."""
    if msg.bounce_type != "soft" or not msg.email:
        return []
    policy = get_policy(deps, msg.account)
    window = policy.window_days * _DAY
    bid = _bounce_id(msg)
    pk, sk = soft_bounce_pk(msg.account), _soft_bounce_sk(msg.email)
    for _ in range(_RETRIES):
        old = deps.store.get(pk, sk)
        if old is not None and old.get("tripped_by") == bid:
            return [_reached(msg, old)]
        seen: list[str] = list(old.get("seen", [])) if old else []
        if bid in seen:
            return []
        hits: list[float] = [float(h) for h in (old.get("hits", []) if old else [])]
        day = int(msg.at // _DAY)
        if all(int(h // _DAY) != day for h in hits):  # at most one per address per day
            hits.append(msg.at)
        newest = max(hits)
        hits = sorted(h for h in hits if h > newest - window)
        item: Item = {
            "pk": pk, "sk": sk, "email": msg.email, "hits": hits,
            "seen": [*seen, bid][-_SEEN_KEPT:], "v": int(old.get("v", 0)) + 1 if old else 1,
            "tripped_by": old.get("tripped_by") if old else None,
            "tripped_count": old.get("tripped_count", 0) if old else 0,
            "window_days": policy.window_days,
            "ttl": int(max(newest, deps.clock.now()) + window + _DAY),
        }  # fmt: skip
        tripped = len(hits) >= policy.limit and hits[-1] - hits[0] >= policy.spread_days * _DAY
        if tripped:
            item.update(hits=[], tripped_by=bid, tripped_count=len(hits), tripped_at=msg.at)
        try:
            deps.store.put(
                item, condition=IF_ABSENT if old is None else attr_equals(v=old.get("v"))
            )
        except ConditionFailed:
            continue  # a concurrent soft bounce of the same address: count again on fresh state
        return [_reached(msg, item)] if tripped else []
    raise ConditionFailed(f"soft bounce counter of {msg.email} kept changing; retry later")
