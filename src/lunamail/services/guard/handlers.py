"""Queue handlers of the guard: count outcomes, judge the rates, trip once.

Counting.  Every counted event has a natural id (a batch id; a recipient's hard bounce or
complaint within a campaign; a soft bounce's time).  Its dedupe marker, the account's
hourly bucket and the campaign's total commit in one transaction, so a redelivered event
is counted once.  Sends are counted per batch (``BatchSent``), so the hot path adds one
transaction per batch, not per recipient.

Windows.  A campaign is judged on its whole send: its sample only grows, and a pause
must stop the send that causes the damage.  An account is judged on the last
``window_hours`` (default 24) clock hours of hourly buckets, because providers judge a
sender on recent mail and an old bad send should stop weighing once it is old.
Bounces are bucketed by when they arrive, so they trail their sends slightly; over a
day-long window that evens out.

Tripping.  A trip is a conditional write of a flag (``tripped`` not yet true) together
with an entry in the action log; only the writer that wins emits the event, so each trip
is announced once however many bounces follow.  The flag remembers which message
tripped it: if that very message is redelivered (the runtime died before publishing),
the same events are emitted again.  The flag is re-armed when a person resumes the
campaign or unlocks the account, with a baseline so the old numbers do not trip it again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lunamail.domain.accounts import AccountSendingUnlocked, LockAccountSending
from lunamail.domain.campaigns import CampaignResumed
from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced, Complained, receiving_domain, sender_reason
from lunamail.domain.guard import (
    REJECTED_PREFIX,
    REJECTED_STATUS_PREFIX,
    AccountGuardTripped,
    CampaignGuardTripped,
    Counts,
    GuardThresholds,
    judge_account,
    judge_campaign,
    judge_domains,
)
from lunamail.domain.messages import Message, from_dict
from lunamail.lib.bounces import bounce_type_for, status_of
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    Condition,
    ConditionFailed,
    Item,
    Put,
    TransactionCancelled,
    Update,
    attr_equals,
)

from . import keys
from .state import account_state, account_window, campaign_counts, campaign_total, load_thresholds

_NOT_TRIPPED = Condition(not_equals={"tripped": True})
_CONDITION_FAILED = "ConditionalCheckFailed"


def _lost_race(exc: TransactionCancelled, index: int) -> bool:
    """Whether operation ``index`` was refused by its condition (anything else -- a
    conflicting transaction, throttling -- is re-raised so the queue retries)."""
    return len(exc.reasons) > index and exc.reasons[index] == _CONDITION_FAILED


def _record(deps: Deps, account: str, campaign: str, marker: str, add: dict[str, int],
            at: float, campaign_set: dict[str, Any] | None = None) -> bool:
    """Count ``add`` once for ``marker``: False when it was counted before."""
    now = deps.clock.now()
    # Per-domain rejection counters live on the campaign only, not in the hourly buckets.
    campaign_add = {k: v for k, v in add.items() if k.startswith(REJECTED_PREFIX)}
    add = {k: v for k, v in add.items() if not k.startswith(REJECTED_PREFIX)}
    hour = keys.hour_of(at if 0 < at <= now else now)
    marker_pk = keys.campaign_pk(account, campaign) if campaign else keys.account_pk(account)
    ops: list[Put | Update] = [
        Put({"pk": marker_pk, "sk": f"SEEN#{marker}", "ttl": int(now + keys.MARKER_TTL)}, IF_ABSENT),
        Update(keys.account_pk(account), keys.bucket_sk(hour), add=add,
               set={"hour": hour, "ttl": (hour + 1) * keys.HOUR + keys.BUCKET_TTL}),
    ]
    if campaign:
        ops.append(Update(keys.campaign_pk(account, campaign), keys.TOTAL_SK, add={**add, **campaign_add},
                          set={"campaign": campaign, "updated_at": now,
                               "ttl": int(now + keys.TOTAL_TTL), **(campaign_set or {})}))
    try:
        deps.store.transact(ops)
    except TransactionCancelled as exc:
        if _lost_race(exc, 0):
            return False
        raise
    return True


def _replay(flagged: Item, key: str) -> list[Message]:
    """The events of a trip made by the message ``key`` (it is being redelivered)."""
    if not flagged.get("tripped") or flagged.get("trip_by") != key:
        return []
    return [from_dict(e) for e in flagged.get("trip_events") or ()]


def _trip(deps: Deps, pk: str, sk: str, key: str, events: list[Message], action: Item) -> list[Message]:
    """Set the trip flag and log the action; the events only if this call set it."""
    now = deps.clock.now()
    account = events[0].account
    log: Item = {"pk": keys.account_pk(account), "sk": keys.action_sk(now, str(action.get("campaign", ""))),
                 **action, "at": now, "ttl": int(now + keys.ACTION_TTL)}
    flag = Update(pk, sk, set={"tripped": True, "trip_by": key, "tripped_at": now,
                               "trip_events": [e.to_dict() for e in events]},
                  condition=_NOT_TRIPPED)
    try:
        deps.store.transact([flag, Put(log)])
    except TransactionCancelled as exc:
        if _lost_race(exc, 0):
            return []
        raise
    return events


def _check_campaign(deps: Deps, account: str, campaign: str, t: GuardThresholds, key: str) -> list[Message]:
    total = campaign_total(deps, account, campaign)
    if total.get("tripped"):
        return _replay(total, key)
    counts = campaign_counts(total)
    verdict = judge_campaign(counts, t)
    domain = ""
    if verdict is None:
        found = judge_domains(_rejections(total), counts.sent + counts.failed, t, sender_reason)
        if found is None:
            return []
        domain, verdict = found
    event = CampaignGuardTripped(
        account=account, campaign=campaign, reason=verdict.reason, metric=verdict.metric,
        bounce_rate=counts.bounce_rate, complaint_rate=counts.complaint_rate, sent=counts.sent,
        bounces=counts.bounces, complaints=counts.complaints, threshold=verdict.threshold,
        at=deps.clock.now(), domain=domain,
    )  # fmt: skip
    action = {"kind": "campaign_tripped", "campaign": campaign, "reason": verdict.reason}
    return _trip(deps, keys.campaign_pk(account, campaign), keys.TOTAL_SK, key, [event], action)


def _numbers(event: AccountGuardTripped) -> dict[str, Any]:
    return {
        "metric": event.metric, "bounce_rate": event.bounce_rate,
        "complaint_rate": event.complaint_rate, "sent": event.sent, "bounces": event.bounces,
        "complaints": event.complaints, "threshold": event.threshold,
        "window_hours": event.window_hours,
    }  # fmt: skip


def _check_account(deps: Deps, account: str, t: GuardThresholds, key: str) -> list[Message]:
    state = account_state(deps, account)
    if state.get("tripped"):
        return _replay(state, key)
    now = deps.clock.now()
    counts = account_window(deps, account, t.window_hours, now, state)
    verdict = judge_account(counts, t)
    if verdict is None:
        return []
    reason = f"{verdict.reason} over the last {t.window_hours} h"
    event = AccountGuardTripped(
        account=account, reason=reason, metric=verdict.metric, bounce_rate=counts.bounce_rate,
        complaint_rate=counts.complaint_rate, sent=counts.sent, bounces=counts.bounces,
        complaints=counts.complaints, threshold=verdict.threshold, window_hours=t.window_hours,
        at=now,
    )  # fmt: skip
    lock = LockAccountSending(account=account, reason=reason, numbers=_numbers(event))
    action = {"kind": "account_locked", "campaign": "", "reason": reason}
    return _trip(deps, keys.account_pk(account), keys.STATE_SK, key, [event, lock], action)


def _evaluate(deps: Deps, account: str, campaign: str, key: str) -> list[Message]:
    t = load_thresholds(deps, account)
    out: list[Message] = []
    if campaign:
        out.extend(_check_campaign(deps, account, campaign, t, key))
    out.extend(_check_account(deps, account, t, key))
    return out


# ---------------------------------------------------------------- counting


def _rejections(total: Item) -> dict[str, Any]:
    """The campaign's per-domain rejection counters, minus the baseline of a resume."""
    base = total.get("base") or {}
    return {k: (max(0, int(v) - int(base.get(k, 0))) if k.startswith(REJECTED_PREFIX) else v)
            for k, v in total.items()
            if k.startswith(REJECTED_PREFIX) or k.startswith(REJECTED_STATUS_PREFIX)}


def _sender_side(failures: Any) -> tuple[dict[str, int], dict[str, Any]]:
    """Per receiving domain, the replies refused at send time that judge the sender (DMARC,
    policy, reputation, rate limits ...) -- never the address -- and their last status."""
    add: dict[str, int] = {}
    last: dict[str, Any] = {}
    for f in failures or ():
        if not isinstance(f, dict):
            continue
        reply = str(f.get("reply") or "")
        status = status_of(reply)
        if bounce_type_for(status, reply) != "sender":
            continue
        domain = receiving_domain(str(f.get("email") or ""))
        if domain:
            add[REJECTED_PREFIX + domain] = add.get(REJECTED_PREFIX + domain, 0) + 1
            last[REJECTED_STATUS_PREFIX + domain] = status or str(f.get("code") or "")
    return add, last


def on_batch_sent(msg: BatchSent, deps: Deps) -> list[Message]:
    """Add a batch's sent (and refused) counts, once per batch id, then judge.  Refusals
    that judge the sender are also counted per receiving domain."""
    if msg.sent <= 0 and msg.failed <= 0:
        return []
    marker = f"batch#{msg.batch}"
    rejected, statuses = _sender_side(msg.failures)
    _record(deps, msg.account, msg.campaign, marker,
            {"sent": max(0, msg.sent), "failed": max(0, msg.failed), **rejected}, msg.at, statuses)
    return _evaluate(deps, msg.account, msg.campaign, f"{msg.campaign}#{marker}")


def on_bounced(msg: Bounced, deps: Deps) -> list[Message]:
    """A hard bounce counts once per recipient and campaign and is judged; a soft bounce
    is only counted (it says nothing certain about the address)."""
    email = msg.email.strip().lower()
    if msg.bounce_type == "sender":
        # The receiver refused us, not the address: counted for the receiving domain.
        domain = receiving_domain(email)
        if not msg.campaign or not domain:
            return []
        if not _record(deps, msg.account, msg.campaign, f"sender#{email}", {REJECTED_PREFIX + domain: 1},
                       msg.at, {REJECTED_STATUS_PREFIX + domain: msg.status or ""}):
            return []
        return _evaluate(deps, msg.account, msg.campaign, f"{msg.campaign}#sender#{email}")
    if msg.bounce_type != "hard":
        _record(deps, msg.account, msg.campaign, f"soft#{email}#{msg.at!r}", {"soft_bounces": 1}, msg.at)
        return []
    marker = f"hard#{email}" if msg.campaign else f"hard#{email}#{msg.at!r}"
    _record(deps, msg.account, msg.campaign, marker, {"bounces": 1}, msg.at)
    return _evaluate(deps, msg.account, msg.campaign, f"{msg.campaign}#{marker}")


def on_complained(msg: Complained, deps: Deps) -> list[Message]:
    """A complaint counts once per recipient and campaign, then the rates are judged."""
    email = msg.email.strip().lower()
    marker = f"complaint#{email}" if msg.campaign else f"complaint#{email}#{msg.at!r}"
    _record(deps, msg.account, msg.campaign, marker, {"complaints": 1}, msg.at)
    return _evaluate(deps, msg.account, msg.campaign, f"{msg.campaign}#{marker}")


# ---------------------------------------------------------------- re-arming


def _rearm(deps: Deps, pk: str, sk: str, flagged: Item, base: dict[str, Any]) -> None:
    with contextlib.suppress(ConditionFailed):  # re-armed meanwhile by a copy of this message
        deps.store.update(
            pk, sk,
            set={"tripped": False, "base": base, "last_trip_events": flagged.get("trip_events") or [],
                 "rearmed_at": deps.clock.now()},
            remove=("trip_by", "trip_events"),
            condition=attr_equals(tripped=True),
        )  # fmt: skip


def on_campaign_resumed(msg: CampaignResumed, deps: Deps) -> list[Message]:
    """A person resumed the campaign: if the guard had paused it, watch it again on a fresh
    sample (what was counted so far becomes the baseline).  A resume after a manual pause
    leaves the guard's numbers alone."""
    total = campaign_total(deps, msg.account, msg.campaign)
    if total.get("tripped"):
        base: dict[str, Any] = {**Counts.from_item(total).to_dict(),
                                **{k: v for k, v in total.items() if k.startswith(REJECTED_PREFIX)}}
        _rearm(deps, keys.campaign_pk(msg.account, msg.campaign), keys.TOTAL_SK, total, base)
    return []


def on_account_sending_unlocked(msg: AccountSendingUnlocked, deps: Deps) -> list[Message]:
    """An operator unlocked the account: watch it again, counting only what follows."""
    state = account_state(deps, msg.account)
    if state.get("tripped"):
        hour = keys.hour_of(deps.clock.now())
        bucket = deps.store.get(keys.account_pk(msg.account), keys.bucket_sk(hour))
        _rearm(deps, keys.account_pk(msg.account), keys.STATE_SK, state,
               {"hour": hour, **Counts.from_item(bucket).to_dict()})
    return []
