"""Reads shared by the guard's handlers and API: thresholds, the account's rolling window,
a campaign's totals.  Each is a handful of item reads, never a scan."""

from __future__ import annotations

from typing import Any

from lunamail.domain.guard import Counts, GuardThresholds
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import Item

from . import keys


def load_thresholds(deps: Deps, account: str) -> GuardThresholds:
    """The account's thresholds (the defaults where none were set)."""
    item = deps.store.get(keys.account_pk(account), keys.SETTINGS_SK)
    return GuardThresholds.from_dict(item or {})


def account_state(deps: Deps, account: str) -> Item:
    """The account's trip state item ({} when the guard never acted)."""
    return deps.store.get(keys.account_pk(account), keys.STATE_SK) or {}


def account_window(deps: Deps, account: str, window_hours: int, now: float,
                   state: Item | None = None) -> Counts:
    """Counters of the last ``window_hours`` clock hours (the current one included).

    After an operator unlocked the account, only what came after the unlock counts: buckets
    before the unlock hour are skipped and the unlock hour's counters at that moment (the
    baseline) are subtracted, so the lock is not re-tripped by the mail that caused it.
    """
    last = keys.hour_of(now)
    first = last - window_hours + 1
    baseline = Counts()
    base: dict[str, Any] | None = (state or {}).get("base")
    if base and int(base.get("hour", 0)) >= first:
        first = int(base["hour"])
        baseline = Counts.from_item(base)
    if first > last:
        return Counts()
    page = deps.store.query(
        keys.account_pk(account), prefix=keys.BUCKET_PREFIX,
        start=keys.bucket_sk(first), end=keys.bucket_sk(last), limit=last - first + 1,
    )  # fmt: skip
    total = Counts()
    for item in page.items:
        total = total.plus(Counts.from_item(item))
    return total.minus(baseline)


def campaign_total(deps: Deps, account: str, campaign: str) -> Item:
    """The campaign's counter item ({} before anything was counted)."""
    return deps.store.get(keys.campaign_pk(account, campaign), keys.TOTAL_SK) or {}


def campaign_counts(total: Item) -> Counts:
    """The whole campaign's counters, minus the baseline taken when a person resumed it
    after a guard pause (so the resumed send gets a fresh sample)."""
    return Counts.from_item(total).minus(Counts.from_item(total.get("base")))
