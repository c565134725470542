"""Bring data written before the one-identity-per-mailbox rule in line with it.

Before the rule, subscriber and suppression keys held the address as typed, so
``Dave@example.com`` and ``dave@example.com`` could be two subscribers of one list (and
get two messages), and a suppression in one case missed the other.  This pass walks
every list and the suppression list of an account page by page (never a whole list in
memory) and moves each item whose key is not its mailbox key:

* alone, it is re-keyed (the address as written stays what it was);
* onto an item already under the mailbox key (a case duplicate), the two are merged:
  the spelling, ``created_at`` and ``source`` of the one added first stay; custom
  fields are joined with the more recently updated item's values winning; the name is
  the more recent one unless empty; the status is the strictest of the two
  (``complained`` > ``bounced`` > ``unsubscribed`` > ``unconfirmed`` > ``subscribed``).
  The list's counters move in the same transaction, and a ``merged`` record goes into
  the mailbox's history.

Running it again finds nothing to do.  Run it while no campaign is sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lunamail.domain import audience as dom
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    Delete,
    Item,
    Put,
    TransactionCancelled,
    Update,
    WriteOp,
    attr_equals,
    query_all,
)

from . import consent
from .errors import Conflict

_PAGE = 500
_RETRIES = 5


@dataclass
class Merge:
    """One mailbox's case duplicates on one list (or in the suppression list)."""

    list_id: str  # "" for the suppression list
    kept: str  # the address as kept
    merged: list[str]  # the other spellings folded into it
    status: str  # the status kept ("suppressed" for the suppression list)


@dataclass
class MigrationReport:
    account: str
    lists: int = 0
    rekeyed: int = 0  # items moved to their mailbox key onto nothing
    folded: int = 0  # items merged into another record of their mailbox
    #: (list, mailbox key) -> what was merged there; only mailboxes that had duplicates
    merges: dict[tuple[str, str], Merge] = field(default_factory=dict)

    def merged(self, list_id: str, key: str, kept: str, spellings: list[str], status: str) -> None:
        found = self.merges.get((list_id, key))
        names = set(spellings) | ({found.kept, *found.merged} if found else set())
        self.merges[(list_id, key)] = Merge(list_id, kept, sorted(names - {kept}), status)
        self.folded += 1

    def view(self) -> dict[str, Any]:
        return {
            "account": self.account, "lists": self.lists, "rekeyed": self.rekeyed,
            "folded": self.folded, "mailboxes_merged": len(self.merges),
            "merges": [{"list": m.list_id, "kept": m.kept, "merged": m.merged, "status": m.status}
                       for m in self.merges.values()],
        }  # fmt: skip


def merge_subscribers(a: Item, b: Item, now: float) -> Item:
    """One subscriber from two records of one mailbox on one list (see the module doc)."""
    first, second = (a, b) if float(a.get("created_at", 0.0)) <= float(b.get("created_at", 0.0)) else (b, a)
    older, newer = (a, b) if float(a.get("updated_at", 0.0)) <= float(b.get("updated_at", 0.0)) else (b, a)
    strict = max((a, b), key=lambda i: dom.STRICTNESS.get(str(i["status"]), 0))
    out: Item = {**second, **first}
    out.update(
        sk=dom.subscriber_sk(str(first["email"])),
        fields={**(older.get("fields") or {}), **(newer.get("fields") or {})},
        name=str(newer.get("name") or older.get("name") or ""),
        status=strict["status"],
        updated_at=now,
    )
    if strict.get("status_reason"):
        out["status_reason"] = strict["status_reason"]
    if a.get("role") or b.get("role"):
        out["role"] = True
    return out


def _subscriber_ops(account: str, list_id: str, variant: Item, target: Item | None, now: float) -> tuple[Item, list[WriteOp]]:
    if target is None:
        merged = {**variant, "sk": dom.subscriber_sk(str(variant["email"]))}
    else:
        merged = merge_subscribers(target, variant, now)
    deltas: dict[str, int] = {str(variant["status"]): -1}
    if target is not None:
        deltas[str(target["status"])] = deltas.get(str(target["status"]), 0) - 1
    deltas[str(merged["status"])] = deltas.get(str(merged["status"]), 0) + 1
    cond = IF_ABSENT if target is None else attr_equals(status=target["status"], updated_at=target.get("updated_at"))
    ops: list[WriteOp] = [
        Put(merged, cond),
        Delete(variant["pk"], variant["sk"], condition=attr_equals(status=variant["status"])),
    ]
    add = {dom.count_attr(s): n for s, n in deltas.items() if n}
    if add:
        ops.append(Update(dom.account_pk(account), dom.list_sk(list_id), add=add))
    return merged, ops


def _migrate_list(deps: Deps, account: str, list_id: str, report: MigrationReport) -> None:
    pk = dom.subscribers_pk(account, list_id)
    cursor: str | None = None
    while True:
        page = deps.store.query(pk, prefix="S#", limit=_PAGE, cursor=cursor)
        for item in page.items:
            if item["sk"] == dom.subscriber_sk(str(item["email"])):
                continue
            _move_subscriber(deps, account, list_id, item, report)
        cursor = page.cursor
        if cursor is None:
            return


def _move_subscriber(deps: Deps, account: str, list_id: str, variant: Item, report: MigrationReport) -> None:
    key = dom.subscriber_sk(str(variant["email"]))
    for _ in range(_RETRIES):
        target = deps.store.get(variant["pk"], key)
        merged, ops = _subscriber_ops(account, list_id, variant, target, deps.clock.now())
        if target is not None:
            other = variant["email"] if merged["email"] == target["email"] else target["email"]
            ops.append(Put(consent.record(
                account, str(merged["email"]), "merged", deps.clock.now(), door="migration", list_id=list_id,
                detail=f"case duplicate {other} merged into {merged['email']} ({merged['status']})",
            )))  # fmt: skip
        try:
            deps.store.transact(ops)
        except TransactionCancelled:
            fresh = deps.store.get(variant["pk"], variant["sk"])
            if fresh is None:
                return  # someone else moved it
            variant = fresh
            continue
        break
    else:
        raise Conflict(f"{variant['email']} on list {list_id} kept changing; run the migration again")
    if target is None:
        report.rekeyed += 1
    else:
        report.merged(list_id, key, str(merged["email"]), [str(variant["email"]), str(target["email"])],
                      str(merged["status"]))  # fmt: skip


def _migrate_suppressions(deps: Deps, account: str, report: MigrationReport) -> None:
    pk = dom.suppression_pk(account)
    cursor: str | None = None
    while True:
        page = deps.store.query(pk, prefix="SUP#", limit=_PAGE, cursor=cursor)
        for item in page.items:
            key = dom.suppression_sk(str(item["email"]))
            if item["sk"] == key:
                continue
            target = deps.store.get(pk, key)
            first = item if target is None or float(item.get("created_at", 0.0)) < float(target.get("created_at", 0.0)) else target
            ops: list[WriteOp] = [Delete(pk, item["sk"])]
            if first is item:
                ops.append(Put({**item, "sk": key}))
            deps.store.transact(ops)
            if target is None:
                report.rekeyed += 1
            else:
                report.merged("", key, str(first["email"]), [str(item["email"]), str(target["email"])],
                              "suppressed")  # fmt: skip
        cursor = page.cursor
        if cursor is None:
            return


def merge_case_duplicates(deps: Deps, account: str) -> MigrationReport:
    """Re-key and merge every subscriber and suppression of ``account`` (see the module doc)."""
    report = MigrationReport(account)
    for lst in query_all(deps.store, dom.account_pk(account), prefix="LIST#"):
        report.lists += 1
        _migrate_list(deps, account, str(lst["id"]), report)
    _migrate_suppressions(deps, account, report)
    return report
