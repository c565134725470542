"""Planning: turn audience pages into claimed recipients and batches, and detect completion.

Every step is safe to run twice.  A recipient is claimed by a conditional put of
its send record, so an address found in two lists (or a page handled twice) is
sent once.  A page's recipients are counted in the same transaction that writes
the page's marker, so a retried page is never counted twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from lunamail.domain.campaigns import (
    CampaignCancelled,
    CampaignPaused,
    CampaignResumed,
    CampaignSendStarted,
)
from lunamail.domain.delivery import (
    CampaignDelivered,
    PlanningCompleted,
    Recipient,
    RecipientsPlanned,
    RecipientsSelected,
    ResumeParked,
    SelectRecipients,
    SendBatch,
)
from lunamail.domain.guard import CampaignGuardTripped
from lunamail.domain.messages import Message
from lunamail.lib import emails
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    IF_EXISTS,
    ConditionFailed,
    Put,
    TransactionCancelled,
    Update,
    attr_equals,
)
from lunamail.services.delivery import control, keys, ledger


class CampaignNotStarted(LookupError):
    """A delivery message arrived for a campaign whose start was not recorded (yet)."""


def load_meta(deps: Deps, account: str, campaign: str) -> dict[str, Any]:
    meta = deps.store.get(keys.campaign_pk(account, campaign), keys.META)
    if meta is None:
        raise CampaignNotStarted(f"campaign {campaign} has no delivery record")
    return meta


def totals(deps: Deps, account: str, campaign: str) -> dict[str, int]:
    """Sum of the sharded counters: planned, sent, failed, deferred, skipped, retryable."""
    pk = keys.campaign_pk(account, campaign)
    out = {"planned": 0, "sent": 0, "failed": 0, "deferred": 0, "skipped": 0, "retryable": 0}
    for item in deps.store.get_many([(pk, sk) for sk in keys.all_stats_sks()]):
        if item:
            for k in out:
                out[k] += int(item.get(k, 0))
    return out


def on_campaign_send_started(msg: CampaignSendStarted, deps: Deps) -> list[Message]:
    """Keep delivery's own copy of what to send, then ask the audience for page 0
    (in that order, so no page can arrive before the copy exists)."""
    item = {
        "pk": keys.campaign_pk(msg.account, msg.campaign),
        "sk": keys.META,
        "content": msg.content,
        "lists": list(msg.lists),
        "status": "sending",
        "started_at": msg.started_at,
        "pages_expected": -1,
        "pages_done": 0,
        "planning_done": False,
        "delivered": False,
    }
    with contextlib.suppress(ConditionFailed):  # a redelivery: ask again, pages are idempotent
        deps.store.put(item, condition=IF_ABSENT)
    return [SelectRecipients(account=msg.account, campaign=msg.campaign, lists=tuple(msg.lists))]


def _one_per_mailbox(recipients: Sequence[Recipient]) -> list[Recipient]:
    """The page without case variants of an address already on it (the first stays): one
    mailbox gets one message, and a page's own claims must not count twice as ours."""
    seen: set[str] = set()
    out: list[Recipient] = []
    for r in recipients:
        sk = keys.record_sk(r["email"])
        if sk not in seen:
            seen.add(sk)
            out.append(r)
    return out


def on_recipients_selected(msg: RecipientsSelected, deps: Deps) -> list[Message]:
    """Claim one page of recipients and cut it into batches."""
    store = deps.store
    account, campaign, seq = msg.account, msg.campaign, msg.seq
    meta = load_meta(deps, account, campaign)
    size = max(1, deps.settings.batch_size)
    now = deps.clock.now()

    recipients: list[dict[str, Any]] = []
    skipped = list(msg.skipped)
    for r in _one_per_mailbox(msg.recipients):
        if emails.check(r["email"])[0] is None:  # unsendable at send time (e.g. imported before a rule)
            skipped.append({"email": r["email"], "reason": f"invalid: {emails.check(r['email'])[1]}"})
        else:
            recipients.append(r)
    records: list[dict[str, Any]] = []
    for i, r in enumerate(recipients):
        pk, sk = keys.record_key(account, campaign, r["email"])
        rec: dict[str, Any] = {"pk": pk, "sk": sk, "status": "planned", "final": False, "deferred": False,
                               "seq": seq, "batch": f"{seq}-{i // size}", "at": now}
        if sk[2:] != r["email"]:  # the key is case-folded: keep the address as written
            rec["email"] = r["email"]
        records.append(rec)
    written = store.put_many(records, condition=IF_ABSENT)
    skipped_here = _record_skipped(deps, account, campaign, seq, skipped, now)
    mine = list(written)
    lost = [i for i, ok in enumerate(written) if not ok]
    if lost:  # claimed before: ours only when an earlier run of this same page claimed it
        found = store.get_many([(records[i]["pk"], records[i]["sk"]) for i in lost])
        for i, got in zip(lost, found, strict=True):
            mine[i] = got is not None and got.get("seq") == seq

    batches: dict[str, list[dict[str, Any]]] = {}
    for i, ok in enumerate(mine):
        if ok:
            batches.setdefault(records[i]["batch"], []).append(recipients[i])
    claimed = sum(len(b) for b in batches.values())

    pk = keys.campaign_pk(account, campaign)
    with contextlib.suppress(TransactionCancelled):  # counted by an earlier run of this page
        store.transact([
            Put({"pk": pk, "sk": keys.page_sk(seq), "count": claimed, "last": msg.last}, IF_ABSENT),
            Update(pk, keys.stats_sk(f"page{seq}"), add={"planned": claimed, "skipped": skipped_here}),
            Update(pk, keys.META, add={"pages_done": 1},
                   set={"pages_expected": seq + 1} if msg.last else {}),
        ])

    out: list[Message] = [RecipientsPlanned(account=account, campaign=campaign, seq=seq, count=claimed,
                                            skipped=skipped_here)]
    if control.read(deps, account, campaign, meta) != "cancelled":
        out += [
            SendBatch(account=account, campaign=campaign, batch=b, recipients=tuple(rs))
            for b, rs in batches.items()
        ]
    out += check_progress(deps, account, campaign)
    return out


def _record_skipped(deps: Deps, account: str, campaign: str, seq: int, skipped: list[dict[str, str]],
                    now: float) -> int:
    """Write a final ``skipped`` record (with its reason) for each member left out of page
    ``seq``; how many are this page's (written now, or by an earlier run of this page).  An
    address already claimed (sent through another list) keeps its record."""
    if not skipped:
        return 0
    where = [keys.record_key(account, campaign, s["email"]) for s in skipped]
    records: list[dict[str, Any]] = [
        {"pk": pk, "sk": sk, "status": "skipped", "final": True, "deferred": False, "seq": seq,
         "reason": str(s.get("reason", ""))[:300], "at": now,
         **({"email": s["email"]} if sk[2:] != s["email"] else {})}  # the address as written
        for s, (pk, sk) in zip(skipped, where, strict=True)]
    written = deps.store.put_many(records, condition=IF_ABSENT)
    lost = [key for key, ok in zip(where, written, strict=True) if not ok]
    mine = len(records) - len(lost)
    if lost:
        for rec in deps.store.get_many(lost):
            mine += rec is not None and rec.get("status") == "skipped" and rec.get("seq") == seq
    return mine


def check_progress(deps: Deps, account: str, campaign: str) -> list[Message]:
    """Emit PlanningCompleted and CampaignDelivered once each, when their time has come.

    Called after every page and every batch; whichever run sees the condition first
    flips the flag with a conditional update, so each event is emitted exactly once.
    """
    store = deps.store
    pk = keys.campaign_pk(account, campaign)
    meta = load_meta(deps, account, campaign)
    out: list[Message] = []
    t = totals(deps, account, campaign)
    expected = int(meta.get("pages_expected", -1))
    if not meta.get("planning_done") and expected >= 0 and int(meta.get("pages_done", 0)) >= expected:
        try:
            store.update(pk, keys.META, set={"planning_done": True, "planned": t["planned"]},
                         condition=attr_equals(planning_done=False))
            out.append(PlanningCompleted(account=account, campaign=campaign, total=t["planned"]))
            meta["planning_done"] = True
        except ConditionFailed:
            meta = load_meta(deps, account, campaign)
    if (meta.get("planning_done") and not meta.get("delivered") and not meta.get("reopening")
            and t["sent"] + t["failed"] >= t["planned"]):
        try:
            store.update(pk, keys.META, set={"delivered": True, "status": "delivered"},
                         condition=attr_equals(delivered=False))
            out.append(CampaignDelivered(account=account, campaign=campaign, planned=t["planned"],
                                         sent=t["sent"], failed=t["failed"], at=deps.clock.now(),
                                         reason=nothing_delivered(deps, account, campaign, t)))
        except ConditionFailed:
            pass
    return out


def nothing_delivered(deps: Deps, account: str, campaign: str, t: dict[str, int]) -> str:
    """Why a campaign that reached nobody failed: how many failed, and the top reasons."""
    if t["sent"] or not t["failed"]:
        return ""
    top = ledger.failure_reasons(deps, account, campaign)[:3]
    why = ", ".join(f"{r['reason']} ({r['count']})" for r in top)
    return f"nothing could be delivered: all {t['failed']} recipients failed" + (f"; replies {why}" if why else "")


# ------------------------------------------------------------ pause / resume / cancel


def set_status(deps: Deps, account: str, campaign: str, status: control.State, at: float,
                reason: str = "") -> bool:
    """Record the decision in the control item (what running batches read) and, for
    readers of the delivery copy, in its status.  False when the campaign is unknown,
    already delivered, or a later decision is on record."""
    meta = deps.store.get(keys.campaign_pk(account, campaign), keys.META)
    if meta is None or meta.get("delivered"):
        return False  # unknown or already delivered: nothing to pause
    if not control.decide(deps, account, campaign, status, at, reason):
        return False
    try:
        deps.store.update(keys.campaign_pk(account, campaign), keys.META, set={"status": status},
                          condition=attr_equals(delivered=False))
        return True
    except ConditionFailed:
        return False


def on_campaign_paused(msg: CampaignPaused, deps: Deps) -> list[Message]:
    """Running batches stop within a control interval; batches that start later park."""
    set_status(deps, msg.account, msg.campaign, "paused", msg.at, msg.reason)
    return []


def on_campaign_cancelled(msg: CampaignCancelled, deps: Deps) -> list[Message]:
    set_status(deps, msg.account, msg.campaign, "cancelled", msg.at)
    return []


def on_guard_tripped(msg: CampaignGuardTripped, deps: Deps) -> list[Message]:
    """Stop the campaign's batches at once; the campaigns service records the pause too
    (and a person resumes it), but through a queue hop that may wait behind batches."""
    set_status(deps, msg.account, msg.campaign, "paused", msg.at,
                f"paused by the reputation guard: {msg.reason}")
    return []


def on_campaign_resumed(msg: CampaignResumed, deps: Deps) -> list[Message]:
    if not set_status(deps, msg.account, msg.campaign, "sending", msg.at):
        return []
    return resume_parked(ResumeParked(account=msg.account, campaign=msg.campaign), deps)


PARKED_PAGE = 25


def resume_parked(msg: ResumeParked, deps: Deps) -> list[Message]:
    """Re-issue up to 25 parked batches, then chain to the next page."""
    pk = keys.campaign_pk(msg.account, msg.campaign)
    page = deps.store.query(pk, prefix="PARK#", limit=PARKED_PAGE)
    out: list[Message] = [
        SendBatch(account=msg.account, campaign=msg.campaign, batch=p["batch"],
                  recipients=tuple(p["recipients"]), attempt=int(p.get("attempt", 0)))
        for p in page.items
    ]
    if page.items:
        deps.store.batch_write(deletes=[(pk, p["sk"]) for p in page.items])
    if page.cursor is not None:
        out.append(ResumeParked(account=msg.account, campaign=msg.campaign))
    return out


def park(deps: Deps, msg: SendBatch) -> bool:
    """Park a batch of a paused campaign.  Returns False when the campaign was resumed
    meanwhile (the caller then sends), so a resume racing a park never strands a batch."""
    pk = keys.campaign_pk(msg.account, msg.campaign)
    deps.store.put({"pk": pk, "sk": keys.park_sk(msg.batch), "batch": msg.batch,
                    "recipients": list(msg.recipients), "attempt": msg.attempt})
    if control.read(deps, msg.account, msg.campaign, load_meta(deps, msg.account, msg.campaign)) != "sending":
        return True
    try:
        deps.store.delete(pk, keys.park_sk(msg.batch), condition=IF_EXISTS)
    except ConditionFailed:
        return True  # a concurrent resume already re-issued it
    return False
