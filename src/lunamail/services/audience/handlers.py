"""Queue handlers of the audience service: one chunk or one page per run, chained.

Each handler is safe to run twice.  An import chunk commits its counters and
its new offset in one transaction conditioned on the offset it started from,
so a redelivered chunk is a no-op; recipient pages are pure reads.
"""

from __future__ import annotations

from typing import Any

from lunamail.domain import audience as dom
from lunamail.domain.audience import ImportChunk, ImportCompleted, ImportProgressed, PurgeList
from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.domain.delivery import Recipient, RecipientsSelected, SelectRecipients
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    MAX_BATCH_WRITE,
    MAX_QUERY_LIMIT,
    TransactionCancelled,
    Update,
    attr_equals,
)

from .api import IMPORT_COUNTERS
from .csv_import import assemble_error_report, encode_rejects, error_part_key, run_chunk
from .errors import NotFound

# ---------------------------------------------------------------- imports


def import_chunk(msg: ImportChunk, deps: Deps) -> list[Message]:
    """Import one chunk; emit progress and the next chunk, or the completion event."""
    pk, sk = dom.account_pk(msg.account), dom.import_sk(msg.import_id)
    job = deps.store.get(pk, sk)
    if job is None:
        raise NotFound(f"no import {msg.import_id!r}")
    if job["status"] != "running" or job["offset"] != msg.offset:
        return _resume(msg, job)
    now = deps.clock.now()
    res = run_chunk(
        deps.store, deps.blobs, job, msg.account, msg.offset, msg.line,
        max(1, deps.settings.import_chunk_rows), now,
    )  # fmt: skip
    if res.rejects:
        deps.blobs.put(
            error_part_key(msg.account, msg.import_id, msg.seq),
            encode_rejects(res.rejects),
            content_type="text/csv",
        )
    report = assemble_error_report(deps.blobs, msg.account, msg.import_id) if res.eof else None
    changes: dict[str, Any] = {"offset": res.offset, "line": res.line, "seq": msg.seq + 1, "updated_at": now}
    if res.eof:
        changes.update(status="completed", completed_at=now, error_report=report)
    ops: list[Any] = [
        Update(pk, sk, add={k: v for k, v in res.counts.items() if v}, set=changes,
               condition=attr_equals(offset=msg.offset, status="running")),
    ]  # fmt: skip
    list_add = {dom.count_attr(s): n for s, n in res.list_deltas.items() if n}
    if list_add and deps.store.get(pk, dom.list_sk(job["list"])) is not None:
        ops.append(Update(pk, dom.list_sk(job["list"]), add=list_add))
    try:
        deps.store.transact(ops)
    except TransactionCancelled:
        return []  # a concurrent run of this very chunk committed first; it continues the chain
    job = {**job, **changes, **{k: job.get(k, 0) + res.counts.get(k, 0) for k in IMPORT_COUNTERS}}
    return _after(msg, job)


def _counts(job: dict[str, Any]) -> dict[str, int]:
    return {k: int(job.get(k, 0)) for k in IMPORT_COUNTERS if k != "rows"}


def _after(msg: ImportChunk, job: dict[str, Any]) -> list[Message]:
    progress = ImportProgressed(
        account=msg.account, import_id=msg.import_id, list=job["list"], rows=int(job.get("rows", 0)),
        bytes_done=job["offset"], bytes_total=job["bytes_total"], counts=_counts(job),
    )  # fmt: skip
    if job["status"] == "completed":
        done = ImportCompleted(
            account=msg.account, import_id=msg.import_id, list=job["list"], rows=int(job.get("rows", 0)),
            counts=_counts(job), error_report=job.get("error_report"),
        )  # fmt: skip
        return [progress, done]
    nxt = ImportChunk(
        account=msg.account, import_id=msg.import_id, offset=job["offset"], line=job["line"], seq=job["seq"]
    )
    return [progress, nxt]


def _resume(msg: ImportChunk, job: dict[str, Any]) -> list[Message]:
    """A redelivered chunk that already committed: re-emit what its first run emitted (the
    runtime may have lost those messages if it stopped before publishing them).  A stale
    copy of an older chunk emits nothing."""
    if job["seq"] != msg.seq + 1:
        return []
    return _after(msg, job)


# ---------------------------------------------------------------- recipients

_SCAN_FACTOR = 4


def on_campaign_send_started(msg: CampaignSendStarted, deps: Deps) -> list[Message]:
    """Start the fan-out: page 0 of the first list."""
    return [SelectRecipients(account=msg.account, campaign=msg.campaign, lists=tuple(msg.lists))]


def select_recipients(msg: SelectRecipients, deps: Deps) -> list[Message]:
    """One page: up to ``page_size`` subscribed, unsuppressed members of lists[list_index]
    from ``cursor``; then the command for the next page (or nothing after the last)."""
    page_size = max(1, deps.settings.page_size)
    list_index, cursor = msg.list_index, msg.cursor
    recipients: list[Recipient] = []
    skipped: list[dict[str, str]] = []  # suppressed members: in the campaign's ledger, never sent
    exhausted = list_index >= len(msg.lists)
    if not exhausted:
        list_id = msg.lists[list_index]
        pk = dom.subscribers_pk(msg.account, list_id)
        scanned: list[dict[str, Any]] = []
        budget = page_size * _SCAN_FACTOR  # bounds the work when most members opted out
        while len(scanned) < page_size and budget > 0:
            want = min(MAX_QUERY_LIMIT, page_size - len(scanned), budget)
            page = deps.store.query(pk, prefix="S#", limit=want, cursor=cursor)
            budget -= len(page.items)
            scanned.extend(i for i in page.items if i.get("status") == "subscribed")
            cursor = page.cursor
            if cursor is None:
                exhausted = True
                break
            if not page.items:
                break
        if scanned:
            sup_pk = dom.suppression_pk(msg.account)
            sups = deps.store.get_many([(sup_pk, dom.suppression_sk(i["email"])) for i in scanned])
            recipients = [
                {"email": i["email"], "name": i.get("name", ""), "fields": i.get("fields", {}), "list": list_id}
                for i, s in zip(scanned, sups, strict=True)
                if s is None
            ]
            skipped = [{"email": i["email"], "reason": f"suppressed: {s.get('reason') or 'manual'}"}
                       for i, s in zip(scanned, sups, strict=True) if s is not None]
    if exhausted:
        list_index, cursor = list_index + 1, None
    last = list_index >= len(msg.lists)
    out: list[Message] = [
        RecipientsSelected(
            account=msg.account, campaign=msg.campaign, seq=msg.seq, recipients=tuple(recipients), last=last,
            skipped=tuple(skipped),
        )
    ]
    if not last:
        out.append(SelectRecipients(
            account=msg.account, campaign=msg.campaign, lists=msg.lists,
            list_index=list_index, cursor=cursor, seq=msg.seq + 1,
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------- list deletion


def purge_list(msg: PurgeList, deps: Deps) -> list[Message]:
    """Delete up to 1000 subscribers of a deleted list; chain until the partition is empty."""
    pk = dom.subscribers_pk(msg.account, msg.list)
    page = deps.store.query(pk, limit=MAX_QUERY_LIMIT)
    keys = [(i["pk"], i["sk"]) for i in page.items]
    for start in range(0, len(keys), MAX_BATCH_WRITE):
        deps.store.batch_write(deletes=keys[start : start + MAX_BATCH_WRITE])
    return [msg] if page.cursor is not None else []
