"""Consent records: the account-level opt-out and each mailbox's history.

So that anyone can answer "why was this person mailed?", every change of a subscriber's
consent leaves a record under the mailbox (``A#{account}#H#{mailbox}``): what happened,
when, on which list and through which door (import, api, cli, console, link, one-click,
feedback, migration), with the detail that tells which one (the import, the campaign,
the reason given).  The record is written in the same transaction as the change where
the change is one item, so a redelivered event that changes nothing records nothing.

Being *added* is not written twice: the subscriber item itself says when and through
which door it was created (``created_at``, ``source``: ``api``, ``cli``, ``console`` or
``import:{id}``), and :func:`history` turns it into the first entry.  That keeps a
million-row import at one write per row.

"Unsubscribe from all lists" writes an opt-out item (``A#{account}#OPT``): later
imports skip the address (counted as ``opted_out``) and a subscribe refuses it unless
the caller says ``resubscribe`` and gives a reason, which is recorded.
"""

from __future__ import annotations

import secrets
from typing import Any

from lunamail.domain import audience as dom
from lunamail.domain.addresses import mailbox_key
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import Item, query_all

#: Events of a history record.
EVENTS = (
    "subscribed", "imported", "confirmed", "unsubscribed", "opted_out", "resubscribed",
    "suppressed", "unsuppressed", "bounced", "complained", "merged",
)  # fmt: skip
MAX_RECORDS = 1000  # the newest records one history read returns
_DETAIL_MAX = 300


def record(
    account: str, email: str, event: str, at: float, *, door: str, list_id: str = "", detail: str = ""
) -> Item:
    """A history item (not written: callers put it in the transaction of the change)."""
    return {
        "pk": dom.history_pk(account, email), "sk": dom.history_sk(at, secrets.token_hex(4)),
        "email": email, "event": event, "at": at, "door": door, "list": list_id,
        "detail": detail[:_DETAIL_MAX],
    }  # fmt: skip


def door_of(source: str) -> tuple[str, str]:
    """(door, detail) of a subscriber's ``source`` or an event's: ``import:ID`` ->
    ("import", "ID"), ``one-click:CAMPAIGN`` -> ("one-click", "campaign CAMPAIGN"),
    ``page:CAMPAIGN`` -> ("link", ...), ``bounce:ses`` -> ("feedback", "bounce (ses)"), ..."""
    door, _, rest = source.partition(":")
    if door in ("one-click", "page") and rest:
        return ("link" if door == "page" else door), f"campaign {rest}"
    if door in ("bounce", "complaint"):
        return "feedback", f"{door} ({rest})" if rest else door
    return door or "api", rest


def optout_item(account: str, email: str, at: float, *, door: str, detail: str) -> Item:
    return {
        "pk": dom.optout_pk(account), "sk": dom.optout_sk(email), "email": email, "at": at,
        "door": door, "detail": detail[:_DETAIL_MAX],
    }  # fmt: skip


def opted_out(deps: Deps, account: str, email: str) -> Item | None:
    """The account-level opt-out of this mailbox, or None."""
    return deps.store.get(dom.optout_pk(account), dom.optout_sk(email))


def _entry(item: Item, names: dict[str, str]) -> dict[str, Any]:
    lid = str(item.get("list", ""))
    return {
        "at": float(item.get("at", 0.0)), "event": str(item["event"]), "list": lid,
        "list_name": names.get(lid, ""), "door": str(item.get("door", "")),
        "detail": str(item.get("detail", "")),
    }  # fmt: skip


def history(deps: Deps, account: str, email: str) -> dict[str, Any]:
    """Everything the account knows about one mailbox's consent: its state on each list,
    suppression, opt-out, and the records (oldest first; at most the newest
    ``MAX_RECORDS``).  ``email`` is compared by mailbox (any case)."""
    lists = list(query_all(deps.store, dom.account_pk(account), prefix="LIST#"))
    names = {str(i["id"]): str(i["name"]) for i in lists}
    keys = [(dom.subscribers_pk(account, str(i["id"])), dom.subscriber_sk(email)) for i in lists]
    subs = [s for s in deps.store.get_many(keys) if s is not None]
    page = deps.store.query(dom.history_pk(account, email), prefix="E#", limit=MAX_RECORDS, reverse=True)
    entries = [_entry(i, names) for i in reversed(page.items)]  # the newest page, oldest first
    recorded = {(e["list"], e["at"]) for e in entries}
    for s in subs:  # being added, from the subscriber item itself (see the module docstring)
        at = float(s.get("created_at", 0.0))
        if (str(s.get("list", "")), at) in recorded:
            continue  # added by a change that has its own record (a resubscribe)
        door, detail = door_of(str(s.get("source", "")))
        entries.append(_entry({"at": at, "list": s.get("list", ""),
                               "event": "imported" if door == "import" else "subscribed",
                               "door": door, "detail": detail}, names))  # fmt: skip
    entries.sort(key=lambda e: e["at"])
    sup = deps.store.get(dom.suppression_pk(account), dom.suppression_sk(email))
    opt = opted_out(deps, account, email)
    shown = next((str(x["email"]) for x in (*subs, sup, opt) if x is not None), email)
    return {
        "email": shown,
        "mailbox": mailbox_key(email),
        "lists": [{"list": str(s["list"]), "list_name": names.get(str(s["list"]), ""),
                   "email": str(s["email"]), "status": str(s["status"])} for s in subs],
        "suppressed": None if sup is None else {"reason": str(sup.get("reason", "")),
                                                "at": float(sup.get("created_at", 0.0))},
        "opted_out": None if opt is None else {"at": float(opt.get("at", 0.0)), "door": str(opt.get("door", "")),
                                               "detail": str(opt.get("detail", ""))},
        "events": entries,
    }  # fmt: skip
