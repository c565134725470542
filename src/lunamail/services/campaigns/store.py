"""The campaigns service's items: ``pk = A#{account}``, ``sk = CAMP#{id}``, and the
service's projection of the account's sending state, ``sk = CAMPSTATE#sending`` (kept from
the accounts service's events: this service never reads another service's items).

Every change is a compare-and-set on the item's ``version``, so two writers
(a user pausing while the scheduler starts the send) never overwrite each
other: the loser re-reads and re-decides from the state it finds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from lunamail.domain.campaign_model import Campaign
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, Item, attr_equals

from .errors import Conflict, NotFound

SK_PREFIX = "CAMP#"
SENDING_SK = "CAMPSTATE#sending"
_CAS_ATTEMPTS = 5


def pk(account: str) -> str:
    return f"A#{account}"


def sk(campaign_id: str) -> str:
    return f"{SK_PREFIX}{campaign_id}"


def new_id(now: float) -> str:
    """Time-ordered (so a reverse query lists newest first) and unguessable."""
    return f"{int(now * 1000):011x}{secrets.token_hex(4)}"


def to_item(c: Campaign) -> Item:
    return {"pk": pk(c.account), "sk": sk(c.id), "type": "campaign", **c.to_dict()}


def from_item(item: Item) -> Campaign:
    return Campaign.from_dict(item)


def find(deps: Deps, account: str, campaign_id: str) -> Campaign | None:
    item = deps.store.get(pk(account), sk(campaign_id))
    return None if item is None else from_item(item)


def load(deps: Deps, account: str, campaign_id: str) -> Campaign:
    found = find(deps, account, campaign_id)
    if found is None:
        raise NotFound(f"campaign {campaign_id!r} not found")
    return found


def insert(deps: Deps, c: Campaign) -> None:
    try:
        deps.store.put(to_item(c), condition=IF_ABSENT)
    except ConditionFailed:
        raise Conflict(f"campaign {c.id!r} already exists") from None


def change(
    deps: Deps, account: str, campaign_id: str, step: Callable[[Campaign], Campaign]
) -> tuple[Campaign, Campaign]:
    """Read, apply ``step`` (which may raise to refuse), write if nobody changed the item
    meanwhile; retry on a race.  Returns (before, after)."""
    for _ in range(_CAS_ATTEMPTS):
        before = load(deps, account, campaign_id)
        after = step(before)
        try:
            deps.store.put(to_item(after), condition=attr_equals(version=before.version))
        except ConditionFailed:
            continue
        return before, after
    raise Conflict(f"campaign {campaign_id!r} keeps changing concurrently; try again")


def remove(deps: Deps, c: Campaign) -> None:
    try:
        deps.store.delete(pk(c.account), sk(c.id), condition=attr_equals(version=c.version))
    except ConditionFailed:
        raise Conflict(f"campaign {c.id!r} changed meanwhile; try again") from None


def sending_lock(deps: Deps, account: str) -> str | None:
    """The reason the account's sending is locked, or None when it may send."""
    item = deps.store.get(pk(account), SENDING_SK)
    if item is None or not item.get("locked"):
        return None
    return str(item.get("reason") or "locked")


def record_sending_state(deps: Deps, account: str, *, locked: bool, reason: str, at: float) -> bool:
    """Apply a lock/unlock event to the projection unless a later one is already applied
    (events may arrive out of order).  Returns whether the projection changed."""
    for _ in range(_CAS_ATTEMPTS):
        current = deps.store.get(pk(account), SENDING_SK)
        if current is not None and float(current.get("at") or 0.0) > at:
            return False
        if current is not None and bool(current.get("locked")) == locked and current.get("at") == at:
            return False
        item: Item = {"pk": pk(account), "sk": SENDING_SK, "type": "sending_state",
                      "locked": locked, "reason": reason if locked else "", "at": at}
        cond = IF_ABSENT if current is None else attr_equals(at=current.get("at"))
        try:
            deps.store.put(item, condition=cond)
        except ConditionFailed:
            continue
        return True
    raise Conflict(f"sending state of account {account!r} keeps changing concurrently; try again")
