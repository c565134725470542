"""``retry --failed``: send again to the recipients whose last outcome is a retryable failure.

A retry is a round of the campaign: the campaigns service moves the campaign back to
``sending`` and announces it (``CampaignRetryStarted``); delivery then walks the 16
record partitions one page per handler run (``ReopenFailed``), turns each retryable
failure back into a planned recipient (a conditional update: a page handled twice
reopens nobody twice) and hands those to ordinary batches.  Recipients with any other
outcome are never touched, so a recipient already sent is never sent again, however
often the retry is asked for.  While the walk is under way the campaign cannot be
declared delivered (``reopening``); after it the usual completion check ends the round.
"""

from __future__ import annotations

import zlib
from typing import Any

from lunamail.domain.campaigns import CampaignRetryStarted
from lunamail.domain.delivery import ReopenFailed, SendBatch
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import ConditionFailed, TransactionCancelled, Update, attr_equals
from lunamail.services.delivery import health, keys, ledger
from lunamail.services.delivery.planning import check_progress, load_meta, totals

PAGE = 500  # records read per run
_GROUP = 90  # records reopened per transaction (DynamoDB: 100 operations at most)


def retryable_count(deps: Deps, account: str, campaign: str) -> int:
    """How many recipients' last outcome is a retryable failure (a counter: one read)."""
    return max(0, totals(deps, account, campaign)["retryable"])


def finished(deps: Deps, account: str, campaign: str) -> bool:
    """Whether every planned recipient of the campaign's last round has an outcome."""
    meta = deps.store.get(keys.campaign_pk(account, campaign), keys.META)
    return bool(meta and meta.get("delivered"))


def handle_reopen_failed(msg: CampaignRetryStarted | ReopenFailed, deps: Deps) -> list[Message]:
    """The retry's start (open the round, then walk) or one step of its walk: one handler
    (and so one queue and one function on AWS) for both."""
    if isinstance(msg, CampaignRetryStarted):
        return _open_round(msg, deps)
    return _reopen_page(msg, deps)


def _open_round(msg: CampaignRetryStarted, deps: Deps) -> list[Message]:
    """Open round ``n`` (once: a redelivered start finds its own round on record) and start
    the walk over the records."""
    pk = keys.campaign_pk(msg.account, msg.campaign)
    for _ in range(5):
        meta = load_meta(deps, msg.account, msg.campaign)
        if meta.get("retry_at") == msg.at:
            return [ReopenFailed(account=msg.account, campaign=msg.campaign, round=int(meta["retries"]))]
        if float(meta.get("retry_at") or 0) > msg.at or not meta.get("delivered"):
            return []  # an older retry than the one on record, or still sending: nothing to start
        health.reset(deps, msg.account, msg.campaign)  # the last round's stall is over
        try:
            deps.store.update(pk, keys.META, condition=attr_equals(delivered=True),
                              set={"delivered": False, "status": "sending", "reopening": True,
                                   "retry_at": msg.at, "retries": int(meta.get("retries") or 0) + 1})
        except ConditionFailed:
            continue  # another run of this event (or a late completion) moved it: look again
    return []


def _reopen_op(pk: str, item: dict[str, Any], round_: int) -> tuple[Update, dict[str, int]]:
    code = int(item.get("code") or 0)
    reason = ledger.REASON_PREFIX + ledger.failure_reason(code, str(item.get("reply", "")))
    op = Update(pk, str(item["sk"]),
                set={"status": "planned", "final": False, "deferred": False, "attempts": 0, "slowed": 0,
                     "reopened": round_},
                condition=attr_equals(status="failed", final=True))
    return op, {"failed": -1, "retryable": -1, reason: -1}


def _reopen(deps: Deps, stats: tuple[str, str], ops: list[tuple[Update, dict[str, int]]]) -> list[str]:
    """Apply the reopenings with the counters in one transaction; when one of them was
    reopened meanwhile, one by one.  Returns the sort keys reopened here."""
    total: dict[str, int] = {}
    for _, adds in ops:
        for name, n in adds.items():
            total[name] = total.get(name, 0) + n
    try:
        deps.store.transact([op for op, _ in ops] + [Update(stats[0], stats[1], add=total)])
        return [op.sk for op, _ in ops]
    except TransactionCancelled:
        done: list[str] = []
        for op, adds in ops:  # each with its counts: a fault half-way counts nothing twice
            try:
                deps.store.transact([op, Update(stats[0], stats[1], add=adds)])
            except TransactionCancelled:
                continue
            done.append(op.sk)
        return done


def _reopen_page(msg: ReopenFailed, deps: Deps) -> list[Message]:
    """One page of one record partition: reopen its retryable failures, send them in
    batches, and chain to what follows."""
    meta = load_meta(deps, msg.account, msg.campaign)
    if int(meta.get("retries") or 0) != msg.round:
        return []  # a later round (or none) is on record
    pk = f"{keys.campaign_pk(msg.account, msg.campaign)}#{msg.shard}"
    page = deps.store.query(pk, prefix="R#", limit=PAGE, cursor=msg.cursor)
    ops = [_reopen_op(pk, i, msg.round) for i in page.items
           if i.get("status") == "failed" and i.get("final") and ledger.retryable(i)]
    stats = (keys.campaign_pk(msg.account, msg.campaign), keys.stats_sk(f"x{msg.round}-{msg.shard}"))
    reopened: set[str] = set()
    for n in range(0, len(ops), _GROUP):
        reopened.update(_reopen(deps, stats, ops[n:n + _GROUP]))
    # this round's recipients of the page still without an outcome: reopened now, or by an
    # earlier run of this page whose batches may never have been published
    todo = [dict(i.get("rcpt") or {"email": str(i.get("email") or str(i["sk"])[2:])}) for i in page.items
            if i["sk"] in reopened or (i.get("reopened") == msg.round and not i.get("final")
                                       and i.get("status") == "planned")]
    size = max(1, deps.settings.batch_size)
    token = zlib.crc32((msg.cursor or "").encode("utf-8"))
    out: list[Message] = [
        SendBatch(account=msg.account, campaign=msg.campaign, batch=f"x{msg.round}-{msg.shard}-{token}-{n // size}",
                  recipients=tuple(todo[n:n + size]))
        for n in range(0, len(todo), size)
    ]
    if page.cursor is not None:
        out.append(ReopenFailed(account=msg.account, campaign=msg.campaign, round=msg.round,
                                shard=msg.shard, cursor=page.cursor))
    elif msg.shard + 1 < keys.RECORD_SHARDS:
        out.append(ReopenFailed(account=msg.account, campaign=msg.campaign, round=msg.round, shard=msg.shard + 1))
    else:
        try:
            deps.store.update(keys.campaign_pk(msg.account, msg.campaign), keys.META, set={"reopening": False},
                              condition=attr_equals(retries=msg.round))
        except ConditionFailed:
            return out
        out += check_progress(deps, msg.account, msg.campaign)
    return out
