"""The per-recipient ledger: every planned recipient's current outcome, from the send records.

A send record is written when a recipient is planned and updated, in the same
transaction as the counters, each time a reply arrives: so the ledger and the
counters always agree.  Listing reads the 16 record partitions one after the other;
a status filter reads at most ``SCAN`` records per call and hands back a cursor, so a
call costs the same however large the campaign.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lunamail.ports.deps import Deps
from lunamail.services.delivery import keys

STATUSES = ("planned", "sent", "deferred", "failed", "skipped")
SCAN = 2000  # records read per call at most when a filter skips most of them
REASON_PREFIX = "why "  # counter names of failure reasons on the stats items
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_status(reply: str) -> str:
    """The RFC 3463 enhanced status code in a reply (``5.1.1``), or ''."""
    m = _ENHANCED.search(reply or "")
    return m.group(1) if m else ""


def failure_reason(code: int, reply: str) -> str:
    """What a failure is counted under in the report: the code and the enhanced status."""
    enhanced = enhanced_status(reply)
    return f"{code} {enhanced}" if enhanced else str(code)


def retryable_code(code: int) -> bool:
    """A temporary refusal (4xx: mailbox full, greylisting, the relay unreachable or the
    connection dropped, once the send's own retries ran out) is worth another try later;
    a permanent one (5xx: no such user, policy) is not."""
    return 400 <= code < 500


def retryable(rec: dict[str, Any]) -> bool:
    """A failure worth another try later: a temporary (4xx) one that ran out of attempts."""
    return rec.get("status") == "failed" and retryable_code(int(rec.get("code") or 0))


def row(email: str, rec: dict[str, Any]) -> dict[str, Any]:
    """One ledger line: the outcome and what the relay said (``skipped``: why it was left out)."""
    status = str(rec.get("status", "planned"))
    reply = str(rec.get("reply", ""))
    out: dict[str, Any] = {"email": email, "status": status, "at": rec.get("at")}
    if status == "sent":
        out["reply"] = f"{rec.get('code', 250)}" + (f" queued as {rec['relay_id']}" if rec.get("relay_id") else "")
    elif status in ("failed", "deferred"):
        out.update(code=int(rec.get("code") or 0), enhanced=enhanced_status(reply), reply=reply)
        if status == "deferred":
            out["attempts"] = int(rec.get("attempts") or 0)
        else:
            out["retryable"] = retryable(rec)
    elif status == "skipped":
        out["reason"] = str(rec.get("reason", ""))
    return out


def _decode(cursor: str | None) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    shard, _, inner = cursor.partition(":")
    if not shard.isdigit() or int(shard) >= keys.RECORD_SHARDS:
        raise ValueError("bad cursor")
    return int(shard), inner or None


def page(deps: Deps, account: str, campaign: str, *, status: str | None = None, limit: int = 100,
         cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` ledger lines (of ``status`` when given) and the cursor of the next page."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    shard, inner = _decode(cursor)
    limit = max(1, min(limit, 1000))
    out: list[dict[str, Any]] = []
    scanned = 0
    while shard < keys.RECORD_SHARDS and len(out) < limit and scanned < SCAN:
        pk = f"A#{account}#D#{campaign}#{shard}"
        # never more than the page has room for: the store's cursor resumes after the last read
        got = deps.store.query(pk, prefix="R#", limit=min(1000, limit - len(out), SCAN - scanned), cursor=inner)
        scanned += len(got.items)
        for item in got.items:
            if status is None or item.get("status") == status:
                out.append(row(str(item.get("email") or str(item["sk"])[2:]), item))
        if got.cursor is None:
            shard, inner = shard + 1, None
        else:
            inner = got.cursor
    nxt = None if shard >= keys.RECORD_SHARDS else f"{shard}:{inner or ''}"
    return out, nxt


def iterate(deps: Deps, account: str, campaign: str, *, status: str | None = None) -> Iterator[dict[str, Any]]:
    """Every ledger line (of ``status``), one page in memory at a time."""
    cursor: str | None = None
    while True:
        rows, cursor = page(deps, account, campaign, status=status, limit=1000, cursor=cursor)
        yield from rows
        if cursor is None:
            return


def failure_reasons(deps: Deps, account: str, campaign: str) -> list[dict[str, Any]]:
    """Failures by reason (code and enhanced status), most frequent first (the counters)."""
    pk = keys.campaign_pk(account, campaign)
    counts: dict[str, int] = {}
    for item in deps.store.get_many([(pk, sk) for sk in keys.all_stats_sks()]):
        for name, value in (item or {}).items():
            if name.startswith(REASON_PREFIX) and isinstance(value, int) and value:
                reason = name[len(REASON_PREFIX):]
                counts[reason] = counts.get(reason, 0) + value
    # a failure sent again by retry --failed is counted off on another shard: sum, then drop zeros
    return [{"reason": r, "count": n} for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n > 0]
