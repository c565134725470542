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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lunamail.domain.campaigns import (
    CampaignCancelled,
    CampaignPaused,
    CampaignResumed,
    CampaignRetryStarted,
    CampaignSendStarted,
)
from lunamail.domain.delivery import (
    BatchSent,
    CampaignDelivered,
    PlanningCompleted,
    RecipientsPlanned,
)
from lunamail.domain.feedback import Bounced, Complained, Delivered, receiving_domain
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.lib import emails
from lunamail.ports.deps import Deps
from lunamail.ports.handlers import batch_handler
from lunamail.ports.itemstore import (
    IF_ABSENT,
    MAX_TRANSACTION,
    Condition,
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
    "BATCH_SIZE",
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
BATCH_SIZE = 200  # messages per call of a batch handler (usually one transaction)
# Marks one update of an ``EV#`` item carries: one condition each, and DynamoDB caps a
# condition expression at 4 KB (~85 characters per condition here).
MARKS_PER_OP = 16
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
    _count_once(deps, msg.account, msg.campaign, f"page#{msg.seq}", {"planned": msg.count, "skipped": msg.skipped})
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
    # a recipient sent again by ``retry --failed`` had its failure counted: it is replaced
    _count_once(
        deps, msg.account, msg.campaign, f"batch#{msg.batch}",
        {"sent": msg.sent, "failed": msg.failed - msg.retried, "deferred": msg.deferred - resolved},
        set_={"last_batch_at": msg.at},
        minute_add={"sent": msg.sent, "failed": msg.failed}, at=msg.at,
    )
    _finish_when_counted(deps, msg.account, msg.campaign)
    return []


def on_delivered(msg: CampaignDelivered, deps: Deps) -> list[Message]:
    """Delivery has an outcome for everybody.  Its batches' counts may still be on their
    way (other queues), so the report says ``sent`` only once it has counted them all.
    The end of a round older than the last retry, delivered late, changes nothing."""
    item = deps.store.get(report_pk(msg.account, msg.campaign), k.STATS)
    if item is not None and msg.at < float(item.get("retry_at") or 0):
        return []
    deps.store.update(report_pk(msg.account, msg.campaign), k.STATS,
                      set={"finished_at": msg.at, "outcomes": msg.sent + msg.failed}, add={"v": 1})
    _finish_when_counted(deps, msg.account, msg.campaign)
    return []


def _finish_when_counted(deps: Deps, account: str, campaign: str) -> None:
    """``sent`` (``failed`` when nobody was sent to) once every outcome is counted."""
    item = deps.store.get(report_pk(account, campaign), k.STATS)
    if item is None or "outcomes" not in item or item.get("status") in ("sent", "failed", "cancelled"):
        return
    if float(item.get("finished_at") or 0) < float(item.get("retry_at") or 0):
        return  # a retry is under way: its round has not ended yet
    sent, failed = int(item.get("sent", 0)), int(item.get("failed", 0))
    if sent + failed >= int(item["outcomes"]):
        _set_status(deps, account, campaign, "sent" if sent or not failed else "failed",
                    lambda cur: cur not in ("sent", "failed", "cancelled"))


def on_paused(msg: CampaignPaused, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "paused", lambda cur: cur in (None, "sending"),
                paused_reason=msg.reason)
    return []


def on_resumed(msg: CampaignResumed | CampaignRetryStarted, deps: Deps) -> list[Message]:
    """Sending again: after a pause, or for ``retry --failed`` until delivery ends the new
    round (one handler, so one queue and one function on AWS, for both)."""
    if isinstance(msg, CampaignRetryStarted):
        _set_status(deps, msg.account, msg.campaign, "sending", lambda cur: cur in ("sent", "failed"),
                    retry_at=msg.at)
        return []
    _set_status(deps, msg.account, msg.campaign, "sending", lambda cur: cur == "paused")
    return []


def on_cancelled(msg: CampaignCancelled, deps: Deps) -> list[Message]:
    _set_status(deps, msg.account, msg.campaign, "cancelled", lambda cur: cur != "sent")
    return []


# ---------------------------------------------------------------- per-recipient events


@dataclass(slots=True)
class _First:
    """A count that happens once per marker (e.g. the first human open of an address)."""

    sk: str
    add: Mapping[str, int]
    ts: Mapping[str, int] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)


_addrs: dict[str, str] = {}


def _addr(raw: str) -> str:
    """The address as the audience stores it, so markers of every source line up.  Memoised:
    tracking events repeat the same few readers, and the check is a regex match."""
    got = _addrs.get(raw)
    if got is None:
        normalized, _why = emails.check(raw)
        got = normalized or raw.strip()
        if len(_addrs) >= 50_000:
            _addrs.clear()
        _addrs[raw] = got
    return got


def _event_id(kind: str, given: str, *parts: object) -> str:
    """The event's own id, or (for producers that sent none) one derived from its content."""
    if given:
        return f"{kind}#{given}"
    digest = hashlib.sha1("\x1f".join(map(str, parts)).encode(), usedforsecurity=False)
    return f"{kind}#h{digest.hexdigest()[:24]}"


def _mark_op(pk: str, sk: str, names: Iterable[str], ttl: int) -> Update:
    """Record events as counted in their shared ``EV#`` item (:func:`.keys.event_mark`),
    on the condition that none of them is recorded yet: the exactly-once check of a
    tracking event, as a conditional put of its own marker item was."""
    marks = dict.fromkeys(names, 1)
    return Update(pk, sk, set={**marks, "ttl": ttl}, condition=Condition(not_equals=marks))


def _marked(item: Item | None, name: str) -> bool:
    return item is not None and item.get(name) == 1


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
    mark_sk = mark = ""
    if event_id is not None:
        mark_sk, mark = k.event_mark(event_id)
        # Repeat opens and clicks are common: a cheap read of the markers spares the failed
        # transaction and its retry.  A marker written in between still cancels the
        # transaction, and the loop below handles that.
        found = deps.store.get_many([(pk, mark_sk), *((pk, f.sk) for f in remaining)])
        if _marked(found[0], mark):
            return False
        remaining = [f for f, item in zip(remaining, found[1:], strict=True) if item is None]
    while event_id is not None or remaining:
        ops: list[WriteOp] = []
        if event_id is not None:
            ops.append(_mark_op(pk, mark_sk, (mark,), int(deps.clock.now() + MARKER_TTL)))
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


@dataclass(slots=True)
class _Plan:
    """What one per-recipient event counts: ``add``/``ts`` once per ``event_id`` (None: only
    per-marker counts), each ``_First`` once per marker."""

    account: str
    campaign: str
    email: str
    at: float
    event_id: str | None
    add: Mapping[str, int] = field(default_factory=dict)
    ts: Mapping[str, int] = field(default_factory=dict)
    firsts: tuple[_First, ...] = ()


def _run(deps: Deps, plan: _Plan) -> bool:
    return _project(deps, plan.account, plan.campaign, plan.email, plan.at,
                    event_id=plan.event_id, add=plan.add, ts=plan.ts, firsts=plan.firsts)


_Todo = tuple[str, _Plan, list[_First]]
"""(pk, plan, the first-markers it writes) of an event still to count."""


def _project_many(deps: Deps, plans: Sequence[_Plan]) -> int:
    """Count a batch of events with the outcome of :func:`_project` once per event, in a few
    transactions.  Returns how many events counted something.

    1. One ``get_many`` reads every marker the batch would write: the ``EV#`` items that
       record counted events (:func:`.keys.event_mark`) and the ``U#`` first-markers.
       Events already counted, and firsts already marked (or claimed by an earlier event
       of the same batch), are dropped.
    2. What is left is packed into transactions of at most ``MAX_TRANSACTION`` operations:
       one conditional update per ``EV#`` item recording its events (at most
       ``MARKS_PER_OP``), the first-markers (``IF_ABSENT``), and the summed counts as one
       update of one shard item and one of one minute item per report (and minute).
       Sixteen events share an ``EV#`` item, so a batch of 200 usually takes one
       transaction of ~15 operations.

    The shard a count lands in does not matter (reads sum every shard); sharding is there
    so that concurrent writers rarely touch one item.  A batch therefore adds everything
    to a single shard, picked by its first recipient, instead of to each recipient's own:
    two updates per transaction rather than up to twenty (each re-reads, re-checks and
    re-writes a whole counter item), which is most of the cost of a small batch.

    Why marks and counters share each transaction (rather than writing the marks first):
    a crash between the two steps would leave marks whose counts are lost, and a
    redelivery cannot tell them from counted ones.  With both in one transaction, a
    transaction that committed is skipped by the redelivery's read, one that did not
    left nothing behind: each event counts once however the batch is retried or
    regrouped.  A mark or marker written by someone else between the read and the write
    (a concurrent redelivery) cancels that transaction only; its events then go through
    :func:`_project` one by one, which settles each exactly."""
    pk_of: dict[tuple[str, str], str] = {}
    pks: list[str] = []
    reads: dict[tuple[str, str], None] = {}
    for plan in plans:
        pk = pk_of.get((plan.account, plan.campaign))
        if pk is None:
            pk = pk_of[(plan.account, plan.campaign)] = report_pk(plan.account, plan.campaign)
        pks.append(pk)
        eid = plan.event_id
        if eid is not None:
            reads[(pk, k.event_mark(eid)[0])] = None
        for f in plan.firsts:
            reads[(pk, f.sk)] = None
    keys = list(reads)
    taken: set[tuple[str, str]] = set()  # markers that exist: U# firsts
    counted_ids: set[tuple[str, str]] = set()  # (pk, event id) recorded in EV# items
    for (pk, sk), item in zip(keys, deps.store.get_many(keys), strict=True):
        if item is None:
            continue
        if sk.startswith(k.EVENTS):
            counted_ids.update((pk, eid) for eid in k.marked_events(sk, item))
        else:
            taken.add((pk, sk))
    todo: list[_Todo] = []
    for plan, pk in zip(plans, pks, strict=True):
        eid = plan.event_id
        if eid is not None:
            key = (pk, eid)
            if key in counted_ids:
                continue  # counted before (or earlier in this batch)
            counted_ids.add(key)
        firsts = [f for f in plan.firsts if (pk, f.sk) not in taken]
        taken.update((pk, f.sk) for f in firsts)
        if eid is None and not firsts:
            continue
        todo.append((pk, plan, firsts))
    # By report, then by event id: the marks of one EV# item go together.
    todo.sort(key=lambda t: (t[0], t[1].event_id or ""))
    counted = 0
    chunk: list[_Todo] = []
    counters: set[tuple[str, int]] = set()  # (pk, -1): its shard; (pk, minute): a minute
    items: dict[tuple[str, str], int] = {}  # EV# item -> marks in this chunk
    markers = 0
    for entry in todo:
        pk, plan, firsts = entry
        eid = plan.event_id
        shard_key = (pk, -1)
        ts_key = None
        if (eid is not None and plan.ts) or any(f.ts for f in firsts):
            ts_key = (pk, k.minute_of(plan.at))
        holder = None if eid is None else (pk, eid[:-1])
        in_item = items.get(holder, 0) if holder is not None else 0
        ops = (markers + len(firsts) + len(items) + int(holder is not None and not in_item)
               + len(counters) + (shard_key not in counters)
               + (ts_key is not None and ts_key not in counters))
        if chunk and (in_item >= MARKS_PER_OP or ops > MAX_TRANSACTION):
            counted += _commit_chunk(deps, chunk)
            chunk, counters, items, markers, in_item = [], set(), {}, 0, 0
        chunk.append(entry)
        counters.add(shard_key)
        if ts_key is not None:
            counters.add(ts_key)
        markers += len(firsts)
        if holder is not None:
            items[holder] = in_item + 1
    if chunk:
        counted += _commit_chunk(deps, chunk)
    return counted


def _commit_chunk(deps: Deps, chunk: Sequence[_Todo]) -> int:
    """One transaction: the chunk's marks and markers (conditional) and its summed counts,
    in one shard item per report (the shard of its first recipient; see
    :func:`_project_many`) and one minute item per report and minute."""
    ttl = int(deps.clock.now() + MARKER_TTL)
    ops: list[WriteOp] = []
    marks: dict[tuple[str, str], list[str]] = {}
    shard_add: dict[str, tuple[int, dict[str, int]]] = {}
    ts_add: dict[tuple[str, int], dict[str, int]] = {}
    for pk, plan, firsts in chunk:
        held = shard_add.get(pk)
        if held is None:
            held = shard_add[pk] = (k.shard_of(plan.email), {})
        shard, counts = held
        per_minute: dict[str, int] | None = None
        eid = plan.event_id
        if eid is not None:
            sk, name = k.event_mark(eid)
            marks.setdefault((pk, sk), []).append(name)
            for attr, n in plan.add.items():
                counts[attr] = counts.get(attr, 0) + n
            if plan.ts:
                per_minute = ts_add.setdefault((pk, k.minute_of(plan.at)), {})
                for attr, n in plan.ts.items():
                    per_minute[attr] = per_minute.get(attr, 0) + n
        for f in firsts:
            ops.append(Put({"pk": pk, "sk": f.sk, "email": plan.email, "at": plan.at, **f.attrs},
                           IF_ABSENT))
            for attr, n in f.add.items():
                counts[attr] = counts.get(attr, 0) + n
            if f.ts:
                if per_minute is None:
                    per_minute = ts_add.setdefault((pk, k.minute_of(plan.at)), {})
                for attr, n in f.ts.items():
                    per_minute[attr] = per_minute.get(attr, 0) + n
    for (pk, sk), names in marks.items():
        ops.append(_mark_op(pk, sk, names, ttl))
    for pk, (shard, counts) in shard_add.items():
        ops.append(Update(pk, k.shard_sk(shard), add={**counts, "v": 1}))
        for (ts_pk, minute), acc in ts_add.items():
            if ts_pk == pk:
                ops.append(Update(pk, k.ts_sk(minute, shard % k.TS_SHARDS), add=acc,
                                  set={"minute": minute}))
    try:
        deps.store.transact(ops)
        return len(chunk)
    except TransactionCancelled as e:
        _only_conditions(e)
    return sum(_run(deps, plan) for _pk, plan, _firsts in chunk)


def _plan_opened(msg: Opened) -> _Plan:
    email = _addr(msg.email)
    eid = _event_id("open", msg.id, msg.campaign, email, msg.at, msg.machine)
    if msg.machine:
        return _Plan(msg.account, msg.campaign, email, msg.at, eid, {"opened_machine": 1},
                     firsts=(_First(k.marker_sk(k.OPEN_MACHINE, email), {"opened_machine_unique": 1}),))
    return _Plan(msg.account, msg.campaign, email, msg.at, eid, {"opened_total": 1}, {"opens": 1},
                 (_First(k.marker_sk(k.OPEN, email), {"opened_unique": 1}),))


def _plan_clicked(msg: Clicked, deps: Deps) -> _Plan:
    email = _addr(msg.email)
    eid = _event_id("click", msg.id, msg.campaign, email, msg.link, msg.at, msg.machine)
    total_attr, unique_attr = k.link_attrs(msg.link)
    _remember_link(deps, msg.account, msg.campaign, msg.link, msg.url)
    if msg.machine:
        return _Plan(msg.account, msg.campaign, email, msg.at, eid,
                     {"clicked_machine": 1, f"link_{msg.link}_machine": 1},
                     firsts=(_First(k.marker_sk(k.CLICK_MACHINE, email), {"clicked_machine_unique": 1}),))
    return _Plan(msg.account, msg.campaign, email, msg.at, eid,
                 {"clicked_total": 1, total_attr: 1}, {"clicks": 1},
                 (_First(k.marker_sk(k.CLICK, email), {"clicked_unique": 1}),
                  _First(k.link_marker_sk(msg.link, email), {unique_attr: 1})))


def _plan_feedback_delivered(msg: Delivered) -> _Plan:
    email = _addr(msg.email)
    return _Plan(msg.account, msg.campaign, email, msg.at, None,
                 firsts=(_First(k.marker_sk(k.DELIVERED, email), {"delivered": 1}, {"delivered": 1}),))


def _plan_bounced(msg: Bounced) -> _Plan:
    email = _addr(msg.email)
    attrs = {"type": msg.bounce_type, "status": msg.status or ""}
    if msg.bounce_type == "sender":
        # Counted per receiving domain and status: "gmail.com rejected 1,200: 5.7.26".
        domain = receiving_domain(email)
        status = (msg.status or "-")[:16]
        add = {"bounced_sender": 1, f"{k.REJECTED}{domain}": 1, f"{k.REJECTED}{domain}|{status}": 1}
        return _Plan(msg.account, msg.campaign, email, msg.at, None,
                     firsts=(_First(k.marker_sk(k.BOUNCE_SENDER, email), add, {"rejections": 1}, attrs),))
    hard = msg.bounce_type == "hard"
    kind, counter = (k.BOUNCE_HARD, "bounced_hard") if hard else (k.BOUNCE_SOFT, "bounced_soft")
    return _Plan(msg.account, msg.campaign, email, msg.at, None,
                 firsts=(_First(k.marker_sk(kind, email), {counter: 1}, {"bounces": 1}, attrs),))


def _plan_complained(msg: Complained) -> _Plan:
    email = _addr(msg.email)
    return _Plan(msg.account, msg.campaign, email, msg.at, None,
                 firsts=(_First(k.marker_sk(k.COMPLAINT, email),
                                {"complained": 1, f"{k.COMPLAINT_SOURCE}{msg.source}": 1}, {"complaints": 1},
                                {"feedback_type": msg.feedback_type}),))


def _plan_unsubscribed(msg: Unsubscribed) -> _Plan:
    email = _addr(msg.email)
    return _Plan(msg.account, msg.campaign, email, msg.at, None,
                 firsts=(_First(k.marker_sk(k.UNSUB, email), {"unsubscribed": 1}, {"unsubscribes": 1},
                                {"scope": msg.scope, "method": msg.method}),))


def on_opened_batch(msgs: Sequence[Opened], deps: Deps) -> list[Message]:
    """:func:`on_opened` for many events in a few transactions (see :func:`_project_many`)."""
    _project_many(deps, [_plan_opened(m) for m in msgs])
    return []


def on_clicked_batch(msgs: Sequence[Clicked], deps: Deps) -> list[Message]:
    _project_many(deps, [_plan_clicked(m, deps) for m in msgs])
    return []


def on_feedback_delivered_batch(msgs: Sequence[Delivered], deps: Deps) -> list[Message]:
    _project_many(deps, [_plan_feedback_delivered(m) for m in msgs])
    return []


def on_bounced_batch(msgs: Sequence[Bounced], deps: Deps) -> list[Message]:
    _project_many(deps, [_plan_bounced(m) for m in msgs])
    return []


def on_complained_batch(msgs: Sequence[Complained], deps: Deps) -> list[Message]:
    _project_many(deps, [_plan_complained(m) for m in msgs])
    return []


def on_unsubscribed_batch(msgs: Sequence[Unsubscribed], deps: Deps) -> list[Message]:
    _project_many(deps, [_plan_unsubscribed(m) for m in msgs])
    return []


@batch_handler(on_opened_batch, max_size=BATCH_SIZE)
def on_opened(msg: Opened, deps: Deps) -> list[Message]:
    """Human opens: total and unique; machine opens (privacy proxies, scanners) apart."""
    _run(deps, _plan_opened(msg))
    return []


@batch_handler(on_clicked_batch, max_size=BATCH_SIZE)
def on_clicked(msg: Clicked, deps: Deps) -> list[Message]:
    """Clicks like opens, plus per-link total/unique (human) and machine counts."""
    _run(deps, _plan_clicked(msg, deps))
    return []


@batch_handler(on_feedback_delivered_batch, max_size=BATCH_SIZE)
def on_feedback_delivered(msg: Delivered, deps: Deps) -> list[Message]:
    """A provider's delivery notification: once per recipient."""
    _run(deps, _plan_feedback_delivered(msg))
    return []


@batch_handler(on_bounced_batch, max_size=BATCH_SIZE)
def on_bounced(msg: Bounced, deps: Deps) -> list[Message]:
    """Once per recipient and bounce type (a soft bounce may later turn hard)."""
    _run(deps, _plan_bounced(msg))
    return []


@batch_handler(on_complained_batch, max_size=BATCH_SIZE)
def on_complained(msg: Complained, deps: Deps) -> list[Message]:
    _run(deps, _plan_complained(msg))
    return []


@batch_handler(on_unsubscribed_batch, max_size=BATCH_SIZE)
def on_unsubscribed(msg: Unsubscribed, deps: Deps) -> list[Message]:
    _run(deps, _plan_unsubscribed(msg))
    return []
