"""Synchronous audience API for the CLI and HTTP: one call, one small piece of work.

Every function takes ``deps`` and ``account`` first.  Mutations that other
services care about append their events to ``events`` when the caller passes
a list, so the caller publishes them once its own work has succeeded.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from lunamail.domain import audience as dom
from lunamail.domain.audience import FieldType, ImportChunk, ImportMode, Status
from lunamail.domain.messages import Message
from lunamail.lib import emails
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    IF_EXISTS,
    ConditionFailed,
    Delete,
    Item,
    LimitExceeded,
    Put,
    TransactionCancelled,
    Update,
    WriteOp,
    attr_equals,
)

from . import consent
from .csv_import import coerce_field, plan_import
from .errors import Conflict, InvalidInput, NotFound, OptedOut

_MAX_SCAN_PAGES = 20  # a filtered listing reads at most this many store pages per call


def new_id() -> str:
    """Short random id: unguessable enough for URLs, short enough for keys."""
    return secrets.token_hex(8)


def _emit(events: list[Message] | None, *msgs: Message) -> None:
    if events is not None:
        events.extend(msgs)


# ---------------------------------------------------------------- lists


def _list_view(item: Item) -> dict[str, Any]:
    return {
        "id": item["id"],
        "name": item["name"],
        "description": item.get("description", ""),
        "fields": item.get("fields", []),
        "double_opt_in": bool(item.get("double_opt_in", False)),
        "created_at": item.get("created_at", 0.0),
        "counts": {s: int(item.get(dom.count_attr(s), 0)) for s in dom.STATUSES},
    }


def _check_fields(fields: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for f in fields or ():
        name, typ = (f.name, str(f.type)) if isinstance(f, dom.FieldDef) else (f["name"], f.get("type", "text"))
        if not name or name in ("email", "name", "status"):
            raise InvalidInput(f"invalid field name {name!r}", {"fields": "reserved or empty name"})
        if typ not in {t.value for t in FieldType}:
            raise InvalidInput(
                f"field {name!r}: unknown type {typ!r} (text, number, bool, date)",
                {"fields": f"{name}: bad type"},
            )
        if name in seen:
            raise InvalidInput(f"field {name!r} defined twice", {"fields": name})
        seen.add(name)
        out.append({"name": name, "type": typ})
    return out


def create_list(
    deps: Deps,
    account: str,
    name: str,
    *,
    description: str = "",
    fields: Any = (),
    double_opt_in: bool = False,
    events: list[Message] | None = None,
) -> dict[str, Any]:
    """Create a list; the name index item makes names unique per account atomically."""
    name = name.strip()
    if not name:
        raise InvalidInput("a list needs a name", {"name": "empty"})
    list_id = new_id()
    item: Item = {
        "pk": dom.account_pk(account),
        "sk": dom.list_sk(list_id),
        "id": list_id,
        "name": name,
        "description": description,
        "fields": _check_fields(fields),
        "double_opt_in": double_opt_in,
        "created_at": deps.clock.now(),
    }
    index: Item = {"pk": dom.account_pk(account), "sk": dom.list_name_sk(name), "list": list_id}
    try:
        deps.store.transact([Put(item, IF_ABSENT), Put(index, IF_ABSENT)])
    except TransactionCancelled as e:
        raise Conflict(f"a list named {name!r} already exists") from e
    _emit(events, dom.ListCreated(account=account, list=list_id, name=name))
    return _list_view(item)


def _list_item(deps: Deps, account: str, ref: str) -> Item:
    """The list item by id, else by name."""
    pk = dom.account_pk(account)
    item = deps.store.get(pk, dom.list_sk(ref))
    if item is None:
        index = deps.store.get(pk, dom.list_name_sk(ref.strip()))
        if index is not None:
            item = deps.store.get(pk, dom.list_sk(index["list"]))
    if item is None:
        raise NotFound(f"no list {ref!r}")
    return item


def get_list(deps: Deps, account: str, ref: str) -> dict[str, Any]:
    """A list by id or by name, with its counts."""
    return _list_view(_list_item(deps, account, ref))


def list_lists(deps: Deps, account: str) -> list[dict[str, Any]]:
    """Every list of the account with its counts (lists are few; subscribers are not read)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = deps.store.query(dom.account_pk(account), prefix="LIST#", limit=1000, cursor=cursor)
        out.extend(_list_view(i) for i in page.items)
        cursor = page.cursor
        if cursor is None:
            return sorted(out, key=lambda x: x["name"].casefold())


def update_list(
    deps: Deps,
    account: str,
    ref: str,
    *,
    name: str | None = None,
    description: str | None = None,
    fields: Any = None,
    double_opt_in: bool | None = None,
) -> dict[str, Any]:
    item = _list_item(deps, account, ref)
    pk = dom.account_pk(account)
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if fields is not None:
        changes["fields"] = _check_fields(fields)
    if double_opt_in is not None:
        changes["double_opt_in"] = double_opt_in
    ops: list[WriteOp] = []
    if name is not None and name.strip() and name.strip() != item["name"]:
        new = name.strip()
        changes["name"] = new
        if new.casefold() != item["name"].casefold():
            ops.append(Put({"pk": pk, "sk": dom.list_name_sk(new), "list": item["id"]}, IF_ABSENT))
            ops.append(Delete(pk, dom.list_name_sk(item["name"])))
    if not changes:
        return _list_view(item)
    ops.append(Update(pk, item["sk"], set=changes, condition=IF_EXISTS))
    try:
        deps.store.transact(ops)
    except TransactionCancelled as e:
        raise Conflict(f"a list named {name!r} already exists") from e
    return get_list(deps, account, item["id"])


def delete_list(
    deps: Deps, account: str, ref: str, *, events: list[Message] | None = None
) -> list[Message]:
    """Remove the list and its name; returns the PurgeList command that deletes its
    subscribers page by page (a list may be far too big for one call)."""
    item = _list_item(deps, account, ref)
    pk = dom.account_pk(account)
    deps.store.transact([Delete(pk, item["sk"]), Delete(pk, dom.list_name_sk(item["name"]))])
    _emit(events, dom.ListDeleted(account=account, list=item["id"], name=item["name"]))
    return [dom.PurgeList(account=account, list=item["id"])]


# ---------------------------------------------------------------- subscribers


def valid_email(raw: str) -> str:
    """The normalised address, or InvalidInput saying what is wrong with it."""
    return _email(raw)


def _email(raw: str) -> str:
    try:
        return emails.normalize(raw)
    except emails.InvalidEmail as e:
        raise InvalidInput(f"invalid email address {raw!r}: {e}", {"email": str(e)}) from e


def subscriber_view(item: Item) -> dict[str, Any]:
    return {
        "email": item["email"],
        "name": item.get("name", ""),
        "fields": item.get("fields", {}),
        "status": item["status"],
        "source": item.get("source", ""),
        "role": bool(item.get("role", False)),
        "list": item.get("list", ""),
        "created_at": item.get("created_at", 0.0),
        "updated_at": item.get("updated_at", 0.0),
    }


def _counter_update(account: str, list_id: str, deltas: Mapping[str, int]) -> Update:
    add = {dom.count_attr(s): n for s, n in deltas.items() if n}
    return Update(dom.account_pk(account), dom.list_sk(list_id), add=add, condition=IF_EXISTS)


def _write_subscriber(
    deps: Deps, account: str, list_id: str, item: Item, old: Item | None, extra: Sequence[WriteOp] = ()
) -> None:
    """Write a subscriber and move the list's status counters in one transaction, so the
    counters stay exact even under concurrent writers; ``extra`` joins the transaction
    (the consent record of the change, an opt-out lifted)."""
    cond = IF_ABSENT if old is None else attr_equals(status=old["status"], updated_at=old.get("updated_at"))
    deltas: dict[str, int] = {item["status"]: 1}
    if old is not None:
        deltas[old["status"]] = deltas.get(old["status"], 0) - 1
    ops: list[WriteOp] = [Put(item, cond), *extra]
    if any(deltas.values()):
        ops.append(_counter_update(account, list_id, deltas))
    try:
        deps.store.transact(ops)
    except TransactionCancelled as e:
        raise Conflict("the subscriber changed concurrently; try again") from e
    except LimitExceeded as e:  # merged fields over the store's item size
        raise InvalidInput("the subscriber would be larger than the store allows", {"fields": str(e)}) from e


#: Longest custom field value and all of one subscriber's fields together (characters): the
#: store's item limit is 400 KB, and an over-long value is the caller's error, not a 500.
MAX_FIELD_CHARS = 65_536
MAX_FIELDS_CHARS = 200_000
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean_name(name: str) -> str:
    """A display name without control characters (they would end up in a ``To:`` header):
    each run of them becomes one space."""
    return _CONTROLS.sub(" ", name).strip() if _CONTROLS.search(name) else name


def _validate_fields(list_item: Item, fields: Mapping[str, Any]) -> dict[str, Any]:
    types = {f["name"]: f["type"] for f in list_item.get("fields", [])}
    out: dict[str, Any] = {}
    bad: dict[str, str] = {}
    total = sum(len(str(k)) + len(v) if isinstance(v, str) else len(str(k)) for k, v in fields.items())
    if total > MAX_FIELDS_CHARS:
        raise InvalidInput(f"the custom fields are longer than {MAX_FIELDS_CHARS} characters together",
                           {"fields": f"at most {MAX_FIELDS_CHARS} characters"})
    for k, v in fields.items():
        if isinstance(v, str) and len(v) > MAX_FIELD_CHARS:
            bad[k] = f"longer than {MAX_FIELD_CHARS} characters"
            continue
        typ = types.get(k, "text")
        if isinstance(v, str) and typ != "text" and v.strip():  # form and CLI values arrive as text
            v, why = coerce_field(v, typ)
            if why:
                bad[k] = why
                continue
        ok = (
            (typ == "text" and isinstance(v, str))
            or (typ == "number" and isinstance(v, int | float) and not isinstance(v, bool))
            or (typ == "bool" and isinstance(v, bool))
            or (typ == "date" and isinstance(v, str))
            or v is None
        )
        if not ok:
            bad[k] = f"expected {typ}"
        out[k] = v
    if bad:
        raise InvalidInput("invalid custom field value(s)", bad)
    return out


def subscribe(
    deps: Deps,
    account: str,
    list_ref: str,
    email: str,
    *,
    name: str | None = None,
    fields: Mapping[str, Any] | None = None,
    source: str = "api",
    resubscribe: bool = False,
    reason: str = "",
    events: list[Message] | None = None,
) -> dict[str, Any]:
    """Add someone: ``subscribed``, or ``unconfirmed`` on a double opt-in list.

    A person who said no -- unsubscribed from this list, or from all lists of the
    account (the opt-out) -- is refused with :class:`OptedOut` unless the call says
    ``resubscribe`` with a ``reason`` (they asked again, say); the reason, the door and
    the time are recorded in the history.  A suppressed address is refused until
    unsuppressed.  Addresses compare by mailbox (case-insensitively): an existing
    subscriber keeps the spelling it was first added with.
    """
    lst = _list_item(deps, account, list_ref)
    addr = _email(email)
    reason = reason.strip()
    if resubscribe and not reason:
        raise InvalidInput("a resubscribe needs a reason (why this person may be mailed again)",
                           {"reason": "required with resubscribe"})
    sup = deps.store.get(dom.suppression_pk(account), dom.suppression_sk(addr))
    if sup is not None:
        raise Conflict(f"{addr} is suppressed ({sup.get('reason', '')}); unsuppress it first")
    pk = dom.subscribers_pk(account, lst["id"])
    old = deps.store.get(pk, dom.subscriber_sk(addr))
    opt = consent.opted_out(deps, account, addr)
    said_no = old is not None and old["status"] == Status.UNSUBSCRIBED
    if (opt is not None or said_no) and not resubscribe:
        where = "from all lists of this account" if opt is not None else "from this list"
        raise OptedOut(
            f"{addr} unsubscribed {where}; add them again only if they asked to, with "
            "resubscribe and a reason", {"email": addr, "scope": "all" if opt is not None else "list"},
        )
    now = deps.clock.now()
    status = Status.UNCONFIRMED if lst.get("double_opt_in") else Status.SUBSCRIBED
    if old is not None and old["status"] == Status.SUBSCRIBED:
        status = Status.SUBSCRIBED  # already confirmed: no second confirmation round
    item: Item = dict(old) if old is not None else {
        "pk": pk, "sk": dom.subscriber_sk(addr), "email": addr, "list": lst["id"],
        "name": "", "fields": {}, "created_at": now,
    }  # fmt: skip
    if name is not None:
        item["name"] = clean_name(name)
    if fields:
        item["fields"] = {**item.get("fields", {}), **_validate_fields(lst, fields)}
    item.update(status=str(status), source=source if old is None else item.get("source", source), updated_at=now)
    if emails.is_role(addr):
        item["role"] = True
    door, _ = consent.door_of(source)
    extra: list[WriteOp] = []
    if opt is not None or said_no:
        extra.append(Put(consent.record(account, item["email"], "resubscribed", now, door=door,
                                        list_id=lst["id"], detail=reason)))  # fmt: skip
        if opt is not None:
            extra.append(Delete(dom.optout_pk(account), dom.optout_sk(addr)))
    elif old is not None and old["status"] != item["status"]:
        confirmed = old["status"] == Status.UNCONFIRMED and item["status"] == Status.SUBSCRIBED
        event = "confirmed" if confirmed else "subscribed"
        extra.append(Put(consent.record(account, item["email"], event, now, door=door, list_id=lst["id"])))
    _write_subscriber(deps, account, lst["id"], item, old, extra)
    if old is None or old["status"] != item["status"]:
        _emit(events, dom.SubscriberSubscribed(
            account=account, list=lst["id"], email=item["email"], status=item["status"], source=source
        ))  # fmt: skip
    return subscriber_view(item)


def _subscriber_item(deps: Deps, account: str, list_id: str, email: str) -> Item:
    addr = _email(email)
    item = deps.store.get(dom.subscribers_pk(account, list_id), dom.subscriber_sk(addr))
    if item is None:
        raise NotFound(f"{addr} is not on this list")
    return item


def get_subscriber(deps: Deps, account: str, list_ref: str, email: str) -> dict[str, Any]:
    lst = _list_item(deps, account, list_ref)
    return subscriber_view(_subscriber_item(deps, account, lst["id"], email))


def unsubscribe(
    deps: Deps,
    account: str,
    list_ref: str,
    email: str,
    *,
    source: str = "api",
    events: list[Message] | None = None,
) -> dict[str, Any]:
    lst = _list_item(deps, account, list_ref)
    old = _subscriber_item(deps, account, lst["id"], email)
    if old["status"] in dom.OPTED_OUT:
        return subscriber_view(old)  # already out: unsubscribing twice is a no-op
    now = deps.clock.now()
    item = {**old, "status": str(Status.UNSUBSCRIBED), "updated_at": now}
    door, detail = consent.door_of(source)
    history = consent.record(account, item["email"], "unsubscribed", now, door=door, list_id=lst["id"],
                             detail=detail)  # fmt: skip
    _write_subscriber(deps, account, lst["id"], item, old, [Put(history)])
    _emit(events, dom.SubscriberUnsubscribed(
        account=account, list=lst["id"], email=item["email"], source=source
    ))  # fmt: skip
    return subscriber_view(item)


def update_subscriber(
    deps: Deps,
    account: str,
    list_ref: str,
    email: str,
    *,
    name: str | None = None,
    fields: Mapping[str, Any] | None = None,
    replace_fields: bool = False,
) -> dict[str, Any]:
    """Change name and/or custom fields (merged unless ``replace_fields``); status untouched."""
    lst = _list_item(deps, account, list_ref)
    old = _subscriber_item(deps, account, lst["id"], email)
    item = dict(old)
    if name is not None:
        item["name"] = clean_name(name)
    if fields is not None:
        checked = _validate_fields(lst, fields)
        item["fields"] = checked if replace_fields else {**old.get("fields", {}), **checked}
    item["updated_at"] = deps.clock.now()
    try:
        deps.store.put(item, condition=attr_equals(updated_at=old.get("updated_at")))
    except ConditionFailed as e:
        raise Conflict("the subscriber changed concurrently; try again") from e
    except LimitExceeded as e:  # merged fields over the store's item size
        raise InvalidInput("the subscriber would be larger than the store allows", {"fields": str(e)}) from e
    return subscriber_view(item)


def delete_subscriber(
    deps: Deps, account: str, list_ref: str, email: str, *, events: list[Message] | None = None
) -> None:
    lst = _list_item(deps, account, list_ref)
    old = _subscriber_item(deps, account, lst["id"], email)
    ops: list[WriteOp] = [
        Delete(old["pk"], old["sk"], condition=attr_equals(status=old["status"])),
        _counter_update(account, lst["id"], {old["status"]: -1}),
    ]
    try:
        deps.store.transact(ops)
    except TransactionCancelled as e:
        raise Conflict("the subscriber changed concurrently; try again") from e
    except LimitExceeded as e:  # merged fields over the store's item size
        raise InvalidInput("the subscriber would be larger than the store allows", {"fields": str(e)}) from e
    _emit(events, dom.SubscriberDeleted(account=account, list=lst["id"], email=old["email"]))


def search_subscribers(
    deps: Deps, account: str, list_ref: str, prefix: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    """Subscribers whose address starts with ``prefix`` (a sort-key prefix query)."""
    lst = _list_item(deps, account, list_ref)
    page = deps.store.query(
        dom.subscribers_pk(account, lst["id"]),
        prefix=dom.subscriber_sk(prefix.strip()),
        limit=max(1, min(limit, 1000)),
    )
    return [subscriber_view(i) for i in page.items]


def list_subscribers(
    deps: Deps,
    account: str,
    list_ref: str,
    *,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of subscribers, optionally of one status, and the cursor for the next.

    Status is filtered after reading, so a page may be shorter than ``limit``
    while a cursor is still returned; callers loop on the cursor, not on length.
    """
    if status is not None and status not in dom.STATUSES:
        raise InvalidInput(f"unknown status {status!r}", {"status": "one of " + ", ".join(dom.STATUSES)})
    limit = max(1, min(limit, 1000))
    lst = _list_item(deps, account, list_ref)
    pk = dom.subscribers_pk(account, lst["id"])
    out: list[dict[str, Any]] = []
    for _ in range(_MAX_SCAN_PAGES):
        page = deps.store.query(pk, prefix="S#", limit=limit - len(out), cursor=cursor)
        out.extend(subscriber_view(i) for i in page.items if status is None or i["status"] == status)
        cursor = page.cursor
        if cursor is None or len(out) >= limit:
            break
    return out, cursor


def count_by_status(deps: Deps, account: str, list_ref: str) -> dict[str, int]:
    """The list's counters (kept by atomic adds, so this is one read)."""
    counts: dict[str, int] = _list_view(_list_item(deps, account, list_ref))["counts"]
    return counts


# ---------------------------------------------------------------- suppression


def suppress(
    deps: Deps,
    account: str,
    email: str,
    *,
    reason: str = "manual",
    door: str = "api",
    events: list[Message] | None = None,
) -> dict[str, Any]:
    """Never send to this address again from this account (every send path checks).
    ``door`` (api, cli, console, feedback, ...) goes into the history with the reason."""
    addr = _email(email)
    now = deps.clock.now()
    item: Item = {
        "pk": dom.suppression_pk(account), "sk": dom.suppression_sk(addr),
        "email": addr, "reason": reason, "created_at": now,
    }  # fmt: skip
    history = consent.record(account, addr, "suppressed", now, door=door, detail=reason)
    try:
        deps.store.transact([Put(item, IF_ABSENT), Put(history)])
    except TransactionCancelled:
        existing = deps.store.get(item["pk"], item["sk"])
        return _suppression_view(existing or item)
    _emit(events, dom.AddressSuppressed(account=account, email=addr, reason=reason))
    return _suppression_view(item)


def _suppression_view(item: Item) -> dict[str, Any]:
    return {"email": item["email"], "reason": item.get("reason", ""), "created_at": item.get("created_at", 0.0)}


def unsuppress(
    deps: Deps, account: str, email: str, *, door: str = "api", events: list[Message] | None = None
) -> None:
    addr = _email(email)
    history = consent.record(account, addr, "unsuppressed", deps.clock.now(), door=door)
    try:
        deps.store.transact([Delete(dom.suppression_pk(account), dom.suppression_sk(addr), IF_EXISTS),
                             Put(history)])  # fmt: skip
    except TransactionCancelled as e:
        raise NotFound(f"{addr} is not suppressed") from e
    _emit(events, dom.AddressUnsuppressed(account=account, email=addr))


def is_suppressed(deps: Deps, account: str, email: str) -> bool:
    addr = _email(email)
    return deps.store.get(dom.suppression_pk(account), dom.suppression_sk(addr)) is not None


def list_suppressions(
    deps: Deps, account: str, *, limit: int = 100, cursor: str | None = None, prefix: str = ""
) -> tuple[list[dict[str, Any]], str | None]:
    page = deps.store.query(
        dom.suppression_pk(account), prefix=dom.suppression_sk(prefix), limit=max(1, min(limit, 1000)), cursor=cursor
    )
    return [_suppression_view(i) for i in page.items], page.cursor


# ---------------------------------------------------------------- imports


def start_import(
    deps: Deps,
    account: str,
    list_ref: str,
    blob_key: str,
    *,
    mode: str = ImportMode.SUBSCRIBE,
    mapping: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], ImportChunk]:
    """Inspect the file once (encoding, delimiter, header, columns), record the import job
    and return it with the first chunk command.  Whole-file problems raise InvalidInput
    and nothing is imported."""
    try:
        mode = ImportMode(mode)
    except ValueError as e:
        raise InvalidInput(f"unknown import mode {mode!r}", {"mode": "subscribe, overwrite, skip-existing or blocklist"}) from e
    lst = _list_item(deps, account, list_ref)
    layout = plan_import(deps.blobs, blob_key, lst.get("fields", []), mapping or {})
    import_id = new_id()
    now = deps.clock.now()
    job: Item = {
        "pk": dom.account_pk(account), "sk": dom.import_sk(import_id), "id": import_id,
        "list": lst["id"], "list_name": lst["name"], "blob": blob_key, "mode": str(mode),
        "status": "running", "layout": layout, "offset": layout["data_offset"],
        "line": layout["data_line"], "seq": 0, "bytes_total": deps.blobs.size(blob_key),
        "created_at": now, "updated_at": now, "error_report": None,
        **{k: 0 for k in IMPORT_COUNTERS},
    }  # fmt: skip
    deps.store.put(job, condition=IF_ABSENT)
    first = ImportChunk(account=account, import_id=import_id, offset=job["offset"], line=job["line"])
    return import_view(job), first


IMPORT_COUNTERS = (
    "rows", "imported", "updated", "skipped", "rejected", "duplicates", "suppressed", "opted_out", "role",
)  # fmt: skip


def import_view(job: Item) -> dict[str, Any]:
    layout = job.get("layout", {})
    return {
        "id": job["id"],
        "list": job["list"],
        "status": job["status"],
        "mode": job["mode"],
        "bytes_done": job["offset"],
        "bytes_total": job["bytes_total"],
        **{k: int(job.get(k, 0)) for k in IMPORT_COUNTERS},
        "error_report": job.get("error_report"),
        "columns": layout.get("columns_view", {}),
        "encoding": layout.get("encoding"),
        "delimiter": layout.get("delimiter"),
    }


def get_import(deps: Deps, account: str, import_id: str) -> dict[str, Any]:
    job = deps.store.get(dom.account_pk(account), dom.import_sk(import_id))
    if job is None:
        raise NotFound(f"no import {import_id!r}")
    return import_view(job)
