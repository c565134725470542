"""Whether a send is stalled: the relay refuses connections, times out or defers everything.

Each batch run reports what its replies were.  A run in which not one message was
accepted but some were refused for now (4xx: no connection, a timeout, a dropped
connection, "try again later") says the send is stalled, with the last reply as the
reason; the first run that gets a ``250`` says it is not.  The state is one small item
(``HEALTH``), written only when it changes, so the worker logs each change once and a
report reads it with one key lookup.  The deferred recipients are retried with backoff
as always, so a send recovers by itself when the relay is back.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, attr_equals
from lunamail.services.delivery import keys

log = logging.getLogger(__name__)


# the relay itself, not one mailbox: no connection (4.4.1), no greeting or reply in time,
# "closing" or "slow down" (421 / 454), a system problem (4.3.x)
_RELAY_LEVEL = re.compile(r"^(421|454)\b|\b4\.4\.1\b|\b4\.3\.\d+\b|timeout|relay greeting", re.I)
SOME = 10
"""Temporary refusals in one run, none accepted, that say the relay defers everything even
when they name no relay-level cause (one greylisted mailbox retried alone says nothing)."""


def observe(deps: Deps, account: str, campaign: str, *, accepted: int, temporary: int, reply: str) -> None:
    """Record one batch run's replies: stalled when it got only temporary refusals, either
    about the relay (no connection, no reply in time, 421 closing, 454 / 421 slow down, a
    4.3.x system problem) or many of them."""
    stalled = accepted == 0 and temporary > 0 and (temporary >= SOME or bool(_RELAY_LEVEL.search(reply)))
    if accepted == 0 and not stalled:
        return  # a few recipients deferred on their own: no news about the relay
    pk = keys.campaign_pk(account, campaign)
    cur = deps.store.get(pk, keys.HEALTH)
    if bool(cur and cur.get("stalled")) == stalled:
        return  # no change (the first reason and time are kept)
    now = deps.clock.now()
    item: dict[str, Any] = {"pk": pk, "sk": keys.HEALTH, "stalled": stalled, "at": now,
                            "reason": reply if stalled else "", "since": now if stalled else None}
    cond = IF_ABSENT if cur is None else attr_equals(stalled=cur.get("stalled"), at=cur.get("at"))
    try:
        deps.store.put(item, condition=cond)
    except ConditionFailed:
        return  # another batch recorded a change meanwhile
    if stalled:
        log.warning("campaign %s of account %s is stalled: %s", campaign, account, reply)
    else:
        log.warning("campaign %s of account %s sends again", campaign, account)


def stalled(deps: Deps, account: str, campaign: str) -> dict[str, Any] | None:
    """``{"reason", "since"}`` while the campaign's send is stalled, else None."""
    item = deps.store.get(keys.campaign_pk(account, campaign), keys.HEALTH)
    if not item or not item.get("stalled"):
        return None
    return {"reason": str(item.get("reason", "")), "since": float(item.get("since") or item.get("at") or 0)}


def reset(deps: Deps, account: str, campaign: str) -> None:
    """Forget the state (a new round of the send starts)."""
    deps.store.delete(keys.campaign_pk(account, campaign), keys.HEALTH)
