"""Event consumers that keep each campaign's report items up to date.

Every counted event carries a natural id (page seq, batch id, tracking event id) or
counts once per recipient (deliveries, bounces, complaints, unsubscribes, unique
opens).  The counter update and a marker for that id commit in one transaction, so
an event delivered twice is counted once (the queue is at-least-once).  Per-recipient
counters go to the recipient's ``STATS#nn`` shard (see :mod:`.keys`), so the hot
opens and clicks of one campaign are spread over several items.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lunamail.domain.campaigns import (
    CampaignCancelled,
    CampaignPaused,
    CampaignResumed,
    CampaignSendStarted,
)
from lunamail.domain.delivery import (
    BatchSent,
    CampaignDelivered,
    PlanningCompleted,
    RecipientsPlanned,
)
from lunamail.domain.feedback import Bounced, Complained, Delivered
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.lib import emails
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    ConditionFailed,
    Item,
    Put,
    TransactionCancelled,
    Update,
    WriteOp,
    attr_equals,
)

from . import keys as k
from .keys import report_pk

__all__ = [
    "MARKER_TTL",
    "on_batch_sent",
    "on_bounced",
    "on_cancelled",
    "on_clicked",
    "on_complained",
    "on_delivered",
    "on_feedback_delivered",
    "on_opened",
    "on_paused",
    "on_planning_completed",
    "on_recipients_planned",
    "on_resumed",
    "on_send_started",
    "on_unsubscribed",
    "report_pk",
]

MARKER_TTL = 45 * 86400  # dedupe markers outlive any redelivery by far
_CONDITION = "ConditionalCheckFailed"


def _only_conditions(exc: TransactionCancelled) -> None:
    """Re-raise a cancellation that is not a failed condition (e.g. a DynamoDB
    transaction conflict): the queue retries it, instead of it being taken for a duplicate."""
    if any(r and r != _CONDITION for r in exc.reasons):
        raise exc


# ---------------------------------------------------------------- send lifecycle


def _count_once(deps: Deps, account: str, campaign: str, marker: str,
                add: dict[str, int | float], set_: dict[str, Any] | None = None,
                minute_add: dict[str, int] | None = None, at: float = 0.0) -> bool:
    pk = report_pk(account, campaign)
    now = deps.clock.now()
    ops: list[WriteOp] = [
        Put({"pk": pk, "sk": f"{k.SEEN}{marker}", "ttl": int(now + MARKER_TTL)}, IF_ABSENT),
        Update(pk, k.STATS, add={**add, "v": 1}, set=set_ or {}),
    ]
    if minute_add:
        minute = k.minute_of(at)
        ops.append(Update(pk, k.ts_sk(minute), add=minute_add, set={"minute": minute}))
    try:
        deps.store.transact(ops)
        return True
    except TransactionCancelled as e:
        _only_conditions(e)
        return False


def _set_status(deps: Deps, account: str, campaign: str, status: str,
                allowed: Callable[[str | None], bool] = lambda _cur: True, **fields: Any) -> None:
    """Move the report's status when ``allowed(current)``; ``fields`` are set either way.

    Lifecycle events may be redelivered late or out of order (a start delivered again
    after a pause must not make the campaign look "sending"), so the status changes by
    compare-and-set on the item's version ``v``."""
    pk = report_pk(account, campaign)
    for _ in range(10):
        item = deps.store.get(pk, k.STATS)
        current = None if item is None else item.get("status")
        if not allowed(current):
            if fields:
                deps.store.update(pk, k.STATS, set=fields, add={"v": 1})
            return
        cond = IF_ABSENT if item is None else attr_equals(v=item.get("v"))
        try:
            deps.store.update(pk, k.STATS, set={"status": status, **fields}, add={"v": 1},
                              condition=cond)
            return
        except ConditionFailed:
            continue  # a concurrent write: read again
    raise ConditionFailed(f"report status of {campaign} keeps changing; retry later")


def on_send_started(msg: CampaignSendStarted, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "sending", lambda cur: cur is None,
                started_at=msg.started_at, subject=str(msg.content.get("subject", "")),
                name=str(msg.content.get("name", "")))
    return []


def on_recipients_planned(msg: RecipientsPlanned, deps: Deps) -> list[Message]:
    _count_once(deps, msg.account, msg.campaign, f"page#{msg.seq}", {"planned": msg.count})
    return []


def on_planning_completed(msg: PlanningCompleted, deps: Deps) -> list[Message]:
    deps.store.update(report_pk(msg.account, msg.campaign), k.STATS,
                      set={"planning_done": True, "planned_total": msg.total}, add={"v": 1})
    return []


def on_batch_sent(msg: BatchSent, deps: Deps) -> list[Message]:
    """Counts the batch once, and records who was sent to (``U#sent#`` markers, plain puts:
    writing one twice is harmless) so the non-opener export never reads delivery's items.
    Markers go first: a crash between the two steps is repaired by the redelivery."""
    sent_emails: Sequence[str] = getattr(msg, "sent_emails", ()) or ()
    if sent_emails:
        pk = report_pk(msg.account, msg.campaign)
        deps.store.put_many([{"pk": pk, "sk": k.marker_sk(k.SENT, e), "email": e, "at": msg.at}
                             for e in dict.fromkeys(_addr(x) for x in sent_emails)])
    # deferred now = deferrals - retried recipients that got an answer (see BatchSent)
    resolved = (msg.sent + msg.failed + msg.deferred) if msg.attempt > 0 else 0
    _count_once(
        deps, msg.account, msg.campaign, f"batch#{msg.batch}",
        {"sent": msg.sent, "failed": msg.failed, "deferred": msg.deferred - resolved},
        set_={"last_batch_at": msg.at},
        minute_add={"sent": msg.sent, "failed": msg.failed}, at=msg.at,
    )
    return []


def on_delivered(msg: CampaignDelivered, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "sent", lambda cur: cur != "cancelled",
                finished_at=msg.at)
    return []


def on_paused(msg: CampaignPaused, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "paused", lambda cur: cur in (None, "sending"),
                paused_reason=msg.reason)
    return []


def on_resumed(msg: CampaignResumed, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "sending", lambda cur: cur == "paused")
    return []


def on_cancelled(msg: CampaignCancelled, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "cancelled", lambda cur: cur != "sent")
    return []


# ---------------------------------------------------------------- per-recipient events


@dataclass(frozen=True)
class _First:
    """A count that happens once per marker (e.g. the first human open of an address)."""

    sk: str
    add: Mapping[str, int]
    ts: Mapping[str, int] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)


def _addr(raw: str) -> str:
    """The address as the audience stores it, so markers of every source line up."""
    normalized, _why = emails.check(raw)
    return normalized or raw.strip()


def _event_id(kind: str, given: str, *parts: object) -> str:
    """The event's own id, or (for producers that sent none) one derived from its content."""
    if given:
        return f"{kind}#{given}"
    digest = hashlib.sha1("\x1f".join(map(str, parts)).encode(), usedforsecurity=False)
    return f"{kind}#h{digest.hexdigest()[:24]}"


def _project(deps: Deps, account: str, campaign: str, email: str, at: float, *,
             event_id: str | None, add: Mapping[str, int] | None = None,
             ts: Mapping[str, int] | None = None, firsts: Sequence[_First] = ()) -> bool:
    """Count one event in the recipient's shard: ``add``/``ts`` once per ``event_id`` (None:
    the event has only per-marker counts), each ``_First`` once per marker.  One
    transaction; when a marker already exists it is dropped and the rest retried.
    Returns whether anything was counted."""
    pk = report_pk(account, campaign)
    shard = k.shard_of(email)
    minute = k.minute_of(at)
    remaining = list(firsts)
    if event_id is not None and remaining:
        # Repeat opens and clicks are common: a cheap read of the markers spares the failed
        # transaction and its retry.  A marker written in between still cancels the
        # transaction, and the loop below handles that.
        found = deps.store.get_many([(pk, f.sk) for f in remaining])
        remaining = [f for f, item in zip(remaining, found, strict=True) if item is None]
    while event_id is not None or remaining:
        ops: list[WriteOp] = []
        if event_id is not None:
            ops.append(Put({"pk": pk, "sk": f"{k.SEEN}{event_id}",
                            "ttl": int(deps.clock.now() + MARKER_TTL)}, IF_ABSENT))
        counts: dict[str, int] = dict(add or {}) if event_id is not None else {}
        per_minute: dict[str, int] = dict(ts or {}) if event_id is not None else {}
        for f in remaining:
            ops.append(Put({"pk": pk, "sk": f.sk, "email": email, "at": at, **f.attrs}, IF_ABSENT))
            for name, n in f.add.items():
                counts[name] = counts.get(name, 0) + n
            for name, n in f.ts.items():
                per_minute[name] = per_minute.get(name, 0) + n
        counts["v"] = 1
        ops.append(Update(pk, k.shard_sk(shard), add=counts))
        if per_minute:
            ops.append(Update(pk, k.ts_sk(minute, shard % k.TS_SHARDS), add=per_minute,
                              set={"minute": minute}))
        try:
            deps.store.transact(ops)
            return True
        except TransactionCancelled as e:
            _only_conditions(e)
            reasons = list(e.reasons) + [""] * (len(ops) - len(e.reasons))
            if event_id is not None:
                if reasons[0]:
                    return False  # this very event was counted before
                reasons = reasons[1:]
            still = [f for f, r in zip(remaining, reasons, strict=False) if not r]
            if len(still) == len(remaining):
                raise
            remaining = still
    return False


_known_links: set[tuple[int, str, str, int]] = set()


def _remember_link(deps: Deps, account: str, campaign: str, link: int, url: str) -> None:
    """Write the link's URL once (counts live in the shards); a per-process memo keeps
    this to one conditional put per link and process."""
    key = (id(deps.store), account, campaign, link)
    if key in _known_links:
        return
    item: Item = {"pk": report_pk(account, campaign), "sk": k.link_sk(link), "link": link, "url": url}
    with contextlib.suppress(ConditionFailed):
        deps.store.put(item, condition=IF_ABSENT)
    if len(_known_links) > 50_000:
        _known_links.clear()
    _known_links.add(key)


def on_opened(msg: Opened, deps: Deps) -> list[Message]:
    """Human opens: total and unique; machine opens (privacy proxies, scanners) apart."""
    email = _addr(msg.email)
    eid = _event_id("open", msg.id, msg.campaign, email, msg.at, msg.machine)
    if msg.machine:
        _project(deps, msg.account, msg.campaign, email, msg.at, event_id=eid,
                 add={"opened_machine": 1},
                 firsts=[_First(k.marker_sk(k.OPEN_MACHINE, email), {"opened_machine_unique": 1})])
    else:
        _project(deps, msg.account, msg.campaign, email, msg.at, event_id=eid,
                 add={"opened_total": 1}, ts={"opens": 1},
                 firsts=[_First(k.marker_sk(k.OPEN, email), {"opened_unique": 1})])
    return []


def on_clicked(msg: Clicked, deps: Deps) -> list[Message]:
    """Clicks like opens, plus per-link total/unique (human) and machine counts."""
    email = _addr(msg.email)
    eid = _event_id("click", msg.id, msg.campaign, email, msg.link, msg.at, msg.machine)
    total_attr, unique_attr = k.link_attrs(msg.link)
    _remember_link(deps, msg.account, msg.campaign, msg.link, msg.url)
    if msg.machine:
        _project(deps, msg.account, msg.campaign, email, msg.at, event_id=eid,
                 add={"clicked_machine": 1, f"link_{msg.link}_machine": 1},
                 firsts=[_First(k.marker_sk(k.CLICK_MACHINE, email), {"clicked_machine_unique": 1})])
    else:
        _project(deps, msg.account, msg.campaign, email, msg.at, event_id=eid,
                 add={"clicked_total": 1, total_attr: 1}, ts={"clicks": 1},
                 firsts=[_First(k.marker_sk(k.CLICK, email), {"clicked_unique": 1}),
                         _First(k.link_marker_sk(msg.link, email), {unique_attr: 1})])
    return []


def on_feedback_delivered(msg: Delivered, deps: Deps) -> list[Message]:
    """A provider's delivery notification: once per recipient."""
    email = _addr(msg.email)
    _project(deps, msg.account, msg.campaign, email, msg.at, event_id=None,
             firsts=[_First(k.marker_sk(k.DELIVERED, email), {"delivered": 1}, {"delivered": 1})])
    return []


def on_bounced(msg: Bounced, deps: Deps) -> list[Message]:
    """Once per recipient and bounce type (a soft bounce may later turn hard)."""
    email = _addr(msg.email)
    hard = msg.bounce_type == "hard"
    kind, counter = (k.BOUNCE_HARD, "bounced_hard") if hard else (k.BOUNCE_SOFT, "bounced_soft")
    attrs = {"type": msg.bounce_type, "status": msg.status or ""}
    _project(deps, msg.account, msg.campaign, email, msg.at, event_id=None,
             firsts=[_First(k.marker_sk(kind, email), {counter: 1}, {"bounces": 1}, attrs)])
    return []


def on_complained(msg: Complained, deps: Deps) -> list[Message]:
    email = _addr(msg.email)
    _project(deps, msg.account, msg.campaign, email, msg.at, event_id=None,
             firsts=[_First(k.marker_sk(k.COMPLAINT, email), {"complained": 1}, {"complaints": 1},
                            {"feedback_type": msg.feedback_type})])
    return []


def on_unsubscribed(msg: Unsubscribed, deps: Deps) -> list[Message]:
    email = _addr(msg.email)
    _project(deps, msg.account, msg.campaign, email, msg.at, event_id=None,
             firsts=[_First(k.marker_sk(k.UNSUB, email), {"unsubscribed": 1}, {"unsubscribes": 1},
                            {"scope": msg.scope, "method": msg.method})])
    return []
