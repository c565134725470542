"""Reactions of the audience to feedback and tracking events: statuses and suppression.

A hard bounce (or a run of soft bounces the feedback policy calls hard) and a
complaint suppress the address account-wide and mark it ``bounced`` /
``complained`` on every list of the account that has it.  An unsubscribe marks
it ``unsubscribed`` on one list or on all of them -- "from all lists" is the
person's no to this sender's lists, not a verdict on the address, so it does not
suppress.

Each status change goes through ``api._write_subscriber`` (subscriber and list
counters in one conditional transaction), so the counters stay exact.  Every
reaction is idempotent: a redelivered event finds the status already set and
writes nothing.  An account has few lists, so iterating them is one short query
plus one batched read of the subscriber items.
"""

from __future__ import annotations

import contextlib
import logging

from lunamail.domain import audience as dom
from lunamail.domain.audience import Status
from lunamail.domain.feedback import Bounced, Complained, SoftBounceLimitReached
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Unsubscribed
from lunamail.lib import emails
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, Put, TransactionCancelled, query_all

from . import api, consent
from .errors import Conflict

__all__ = ["on_bounced", "on_complained", "on_soft_bounce_limit", "on_unsubscribed"]

log = logging.getLogger("lunamail.audience.reactions")

_RETRIES = 5
_REASON_MAX = 300
# Statuses a reaction to ``target`` leaves alone: the same one, or a stronger verdict.
_KEEP: dict[Status, frozenset[str]] = {
    Status.COMPLAINED: frozenset({Status.COMPLAINED}),
    Status.BOUNCED: frozenset({Status.BOUNCED, Status.COMPLAINED}),
    Status.UNSUBSCRIBED: dom.OPTED_OUT,
}


def _address(raw: str) -> str | None:
    found, reason = emails.check(raw)
    if found is None:
        log.warning("ignoring feedback for unusable address %r: %s", raw[:100], reason)
    return found


def _list_ids(deps: Deps, account: str) -> list[str]:
    return [str(i["id"]) for i in query_all(deps.store, dom.account_pk(account), prefix="LIST#")]


def _set_status(
    deps: Deps, account: str, email: str, status: Status, list_ids: list[str], *,
    reason: str, source: str,
) -> list[Message]:  # fmt: skip
    """Move ``email`` to ``status`` on each of ``list_ids`` that has it (and has a weaker
    status); returns ``SubscriberUnsubscribed`` for each list an unsubscribe changed.  Each
    change records itself in the mailbox's history (same transaction)."""
    events: list[Message] = []
    door, detail = consent.door_of(source)
    keys = [(dom.subscribers_pk(account, lid), dom.subscriber_sk(email)) for lid in list_ids]
    for lid, key, old in zip(list_ids, keys, deps.store.get_many(keys), strict=True):
        for _ in range(_RETRIES):
            if old is None or old["status"] in _KEEP[status]:
                break
            now = deps.clock.now()
            item = {**old, "status": str(status), "status_reason": reason[:_REASON_MAX],
                    "updated_at": now}  # fmt: skip
            history = consent.record(account, str(old["email"]), str(status), now, door=door, list_id=lid,
                                     detail=reason if door == "feedback" else detail or reason)  # fmt: skip
            try:
                api._write_subscriber(deps, account, lid, item, old, [Put(history)])
            except Conflict:
                old = deps.store.get(*key)  # changed meanwhile: look again
                continue
            if status is Status.UNSUBSCRIBED:
                events.append(
                    dom.SubscriberUnsubscribed(
                        account=account, list=lid, email=email, source=source
                    )
                )
            break
        else:
            raise Conflict(f"{email} on list {lid} kept changing; retry later")
    return events


def _opt_out_everywhere(
    deps: Deps, account: str, raw_email: str, status: Status, reason: str, source: str
) -> list[Message]:
    email = _address(raw_email)
    if email is None:
        return []
    events: list[Message] = []
    api.suppress(deps, account, email, reason=reason[:_REASON_MAX], door="feedback", events=events)
    events += _set_status(deps, account, email, status, _list_ids(deps, account),
                          reason=reason, source=source)  # fmt: skip
    return events


def _why(prefix: str, status: str | None, diagnostic: str | None) -> str:
    return " ".join(p for p in (prefix, status or "", (diagnostic or "")[:200]) if p).strip()


def on_bounced(msg: Bounced, deps: Deps) -> list[Message]:
    """Hard bounce: suppress and mark ``bounced`` everywhere.  Soft bounces are counted by
    the feedback policy, which says so with ``SoftBounceLimitReached`` at its limit."""
    if msg.bounce_type != "hard":
        return []
    reason = _why("hard bounce:", msg.status, msg.diagnostic)
    return _opt_out_everywhere(
        deps, msg.account, msg.email, Status.BOUNCED, reason, f"bounce:{msg.source}"
    )


def on_soft_bounce_limit(msg: SoftBounceLimitReached, deps: Deps) -> list[Message]:
    """Repeated soft bounces: treated exactly like a hard bounce."""
    reason = _why(
        f"soft bounces: {msg.count} in {msg.window_days:g} days, last", msg.status, msg.diagnostic
    )
    return _opt_out_everywhere(
        deps, msg.account, msg.email, Status.BOUNCED, reason, "bounce:soft-limit"
    )


def on_complained(msg: Complained, deps: Deps) -> list[Message]:
    """A complaint: suppress and mark ``complained`` everywhere (it outranks ``bounced``)."""
    reason = f"complaint: {msg.feedback_type} ({msg.source})"
    return _opt_out_everywhere(
        deps, msg.account, msg.email, Status.COMPLAINED, reason, f"complaint:{msg.source}"
    )


def on_unsubscribed(msg: Unsubscribed, deps: Deps) -> list[Message]:
    """``scope="list"``: that list only; ``"all"`` (or no list named): every list of the
    account.  Never suppresses, and never overrides ``bounced`` / ``complained``."""
    email = _address(msg.email)
    if email is None:
        return []
    if msg.scope == "list" and msg.list:
        if deps.store.get(dom.account_pk(msg.account), dom.list_sk(msg.list)) is None:
            log.info("unsubscribe of %s from list %s: the list is gone", email, msg.list)
            return []
        lists = [msg.list]
    else:
        lists = _list_ids(deps, msg.account)
        _record_opt_out(deps, msg, email)
    reason = f"unsubscribed ({msg.method}, {msg.scope})"
    return _set_status(deps, msg.account, email, Status.UNSUBSCRIBED, lists,
                       reason=reason, source=f"{msg.method}:{msg.campaign}")  # fmt: skip


def _record_opt_out(deps: Deps, msg: Unsubscribed, email: str) -> None:
    """"All lists" is the person's no to the account: later imports skip them and a
    subscribe needs an explicit resubscribe.  Written once (a redelivery finds it)."""
    door, detail = consent.door_of(f"{msg.method}:{msg.campaign}")
    item = consent.optout_item(msg.account, email, msg.at, door=door, detail=detail)
    history = consent.record(msg.account, email, "opted_out", msg.at, door=door, detail=detail)
    with contextlib.suppress(TransactionCancelled):  # opted out before: nothing to record
        deps.store.transact([Put(item, IF_ABSENT), Put(history)])
