"""Audience use cases: lists, subscribers, the suppression list and CSV imports.

Every change emits the audience service's events (``ListCreated``, ``SubscriberSubscribed``,
``AddressSuppressed``, ...) whichever door called; deleting a list also emits the
``PurgeList`` command whose handler removes its subscribers page by page.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from lunamail.domain.audience import ImportMode
from lunamail.domain.messages import Message
from lunamail.ports.blobs import BlobNotFound
from lunamail.services.audience import api as audience_api
from lunamail.services.audience import consent, migrate

from .base import Actor, Emitted, Env, Page, Permission, command, query
from .errors import Conflict, NotFound

View = dict[str, Any]  # the audience service's JSON-ready view of a list, subscriber, ...

UPLOAD_EXPIRES_SECONDS = 3600  # how long an import's upload URL stays valid


@dataclass(frozen=True)
class NewList:
    name: str
    description: str = ""
    fields: Sequence[Mapping[str, str]] = ()  # [{"name": "city", "type": "text"}]
    double_opt_in: bool = False


@dataclass(frozen=True)
class ListChanges:
    name: str | None = None
    description: str | None = None
    fields: Sequence[Mapping[str, str]] | None = None
    double_opt_in: bool | None = None


@dataclass(frozen=True)
class NewSubscriber:
    email: str
    name: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    source: str = "api"  # the door: api, cli, console (kept in the history)
    #: add someone who unsubscribed (from this list or all lists) again; needs ``reason``
    resubscribe: bool = False
    reason: str = ""


# ---------------------------------------------------------------- lists


@command(Permission.AUDIENCE)
def create_list(env: Env, actor: Actor, new: NewList) -> Emitted[View]:
    events: list[Message] = []
    out = audience_api.create_list(
        env.deps, actor.account, new.name, description=new.description,
        fields=[dict(f) for f in new.fields], double_opt_in=new.double_opt_in, events=events,
    )  # fmt: skip
    return Emitted(out, events)


@query()
def list_lists(env: Env, actor: Actor) -> list[View]:
    """Every list of the account with its counts, by name (lists are few)."""
    return audience_api.list_lists(env.deps, actor.account)


@query()
def get_list(env: Env, actor: Actor, ref: str) -> View:
    """A list by id or name, with its counts."""
    return audience_api.get_list(env.deps, actor.account, ref)


@command(Permission.AUDIENCE)
def update_list(env: Env, actor: Actor, ref: str, changes: ListChanges) -> Emitted[View]:
    fields = None if changes.fields is None else [dict(f) for f in changes.fields]
    out = audience_api.update_list(
        env.deps, actor.account, ref, name=changes.name, description=changes.description,
        fields=fields, double_opt_in=changes.double_opt_in,
    )  # fmt: skip
    return Emitted(out)


@command(Permission.AUDIENCE)
def delete_list(env: Env, actor: Actor, ref: str) -> Emitted[View]:
    """Delete a list; its subscribers are purged by the workers (``PurgeList``)."""
    lst = audience_api.get_list(env.deps, actor.account, ref)
    events: list[Message] = []
    purge = audience_api.delete_list(env.deps, actor.account, lst["id"], events=events)
    return Emitted({"id": lst["id"], "name": lst["name"]}, [*events, *purge])


# ---------------------------------------------------------------- subscribers


@query()
def list_subscribers(
    env: Env,
    actor: Actor,
    list_ref: str,
    *,
    status: str | None = None,
    prefix: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[View]:
    """One page of a list's subscribers, by status; ``prefix`` searches addresses instead
    (one page, no cursor)."""
    if prefix:
        rows = audience_api.search_subscribers(env.deps, actor.account, list_ref, prefix, limit=limit)
        return Page([r for r in rows if status is None or r["status"] == status])
    rows, nxt = audience_api.list_subscribers(
        env.deps, actor.account, list_ref, status=status, limit=limit, cursor=cursor
    )
    return Page(rows, nxt)


@command(Permission.AUDIENCE)
def subscribe(env: Env, actor: Actor, list_ref: str, new: NewSubscriber) -> Emitted[View]:
    """Add someone: subscribed, or unconfirmed on a double opt-in list.  Someone who
    unsubscribed is refused (``opted_out``) unless ``resubscribe`` with a reason."""
    events: list[Message] = []
    out = audience_api.subscribe(
        env.deps, actor.account, list_ref, new.email, name=new.name,
        fields=dict(new.fields) or None, source=new.source, resubscribe=new.resubscribe,
        reason=new.reason, events=events,
    )  # fmt: skip
    return Emitted(out, events)


@query()
def get_subscriber(env: Env, actor: Actor, list_ref: str, email: str) -> View:
    return audience_api.get_subscriber(env.deps, actor.account, list_ref, email)


@command(Permission.AUDIENCE)
def update_subscriber(
    env: Env,
    actor: Actor,
    list_ref: str,
    email: str,
    *,
    name: str | None = None,
    fields: Mapping[str, Any] | None = None,
    replace_fields: bool = False,
) -> Emitted[View]:
    out = audience_api.update_subscriber(
        env.deps, actor.account, list_ref, email, name=name, fields=fields, replace_fields=replace_fields
    )
    return Emitted(out)


@command(Permission.AUDIENCE)
def unsubscribe(env: Env, actor: Actor, list_ref: str, email: str, *, source: str = "api") -> Emitted[View]:
    """Mark an address unsubscribed (kept, so no import re-adds it); idempotent."""
    events: list[Message] = []
    out = audience_api.unsubscribe(env.deps, actor.account, list_ref, email, source=source, events=events)
    return Emitted(out, events)


@command(Permission.AUDIENCE)
def remove_subscriber(env: Env, actor: Actor, list_ref: str, email: str) -> Emitted[None]:
    """Forget a subscriber entirely (prefer unsubscribe: it remembers the no)."""
    events: list[Message] = []
    audience_api.delete_subscriber(env.deps, actor.account, list_ref, email, events=events)
    return Emitted(None, events)


# ---------------------------------------------------------------- suppression


@query()
def list_suppressions(
    env: Env, actor: Actor, *, prefix: str = "", limit: int = 100, cursor: str | None = None
) -> Page[View]:
    rows, nxt = audience_api.list_suppressions(env.deps, actor.account, limit=limit, cursor=cursor, prefix=prefix)
    return Page(rows, nxt)


@command(Permission.AUDIENCE)
def suppress(env: Env, actor: Actor, email: str, *, reason: str = "manual", door: str = "api") -> Emitted[View]:
    """Never mail this address again from this account (idempotent; any letter case)."""
    events: list[Message] = []
    out = audience_api.suppress(env.deps, actor.account, email, reason=reason, door=door, events=events)
    return Emitted(out, events)


@command(Permission.AUDIENCE)
def unsuppress(env: Env, actor: Actor, email: str, *, door: str = "api") -> Emitted[None]:
    events: list[Message] = []
    audience_api.unsuppress(env.deps, actor.account, email, door=door, events=events)
    return Emitted(None, events)


# ---------------------------------------------------------------- consent and identity


@query()
def subscriber_history(env: Env, actor: Actor, email: str) -> View:
    """One mailbox's consent across the account (any letter case): its status on each list,
    suppression, opt-out, and every recorded change -- added where and how, imported by
    which import, unsubscribed through which campaign's link, suppressed, resubscribed
    (with the reason), bounced, complained, merged.  NotFound when the account has never
    seen the address."""
    found = consent.history(env.deps, actor.account, audience_api.valid_email(email))
    if not (found["lists"] or found["events"] or found["suppressed"] or found["opted_out"]):
        raise NotFound(f"this account knows nothing of {found['email']}", {"email": found["email"]})
    return found


@command(Permission.ADMIN)
def merge_case_duplicates(env: Env, actor: Actor) -> Emitted[View]:
    """The upgrade to one identity per mailbox: re-key the account's subscribers and
    suppressions by mailbox and merge case duplicates (the strictest status wins).
    Idempotent; run it while no campaign is sending."""
    return Emitted(migrate.merge_case_duplicates(env.deps, actor.account).view())


# ---------------------------------------------------------------- imports
#
# An import is declared (the list and mode are checked, an upload URL is returned),
# its CSV is uploaded to Blobs, then started: the audience service inspects the file
# once and the first ``ImportChunk`` command is emitted; the workers do the rest.
# Between declaring and starting, the import is a small JSON intent next to the upload.


def upload_key(account: str, upload_id: str) -> str:
    """Where an import's CSV lives (the account is part of the key: no cross-tenant reuse)."""
    return f"uploads/{account}/{upload_id}.csv"


def _intent_key(account: str, upload_id: str) -> str:
    return f"uploads/{account}/{upload_id}.json"


def _load_intent(env: Env, account: str, upload_id: str) -> dict[str, Any] | None:
    if not 0 < len(upload_id) <= 64 or not upload_id.isalnum():
        return None
    try:
        raw = env.deps.blobs.get(_intent_key(account, upload_id))
    except (BlobNotFound, KeyError, FileNotFoundError):
        return None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def _save_intent(env: Env, account: str, doc: dict[str, Any]) -> None:
    env.deps.blobs.put(_intent_key(account, doc["id"]), orjson.dumps(doc), content_type="application/json")


def _import_view(env: Env, account: str, intent: dict[str, Any]) -> View:
    """The import as clients see it, before and after it started."""
    if intent.get("import_id"):
        job = audience_api.get_import(env.deps, account, intent["import_id"])
        return {**job, "id": intent["id"], "import_id": intent["import_id"]}
    uploaded = env.deps.blobs.exists(intent["blob"])
    return {
        "id": intent["id"],
        "import_id": None,
        "list": intent["list"],
        "mode": intent["mode"],
        "status": "uploaded" if uploaded else "awaiting_upload",
        "created_at": intent["created_at"],
        "error_report": None,
    }


@command(Permission.AUDIENCE)
def declare_import(
    env: Env, actor: Actor, list_ref: str, *, mode: str = ImportMode.SUBSCRIBE, mapping: Mapping[str, str] | None = None
) -> Emitted[View]:
    """Check the list, remember the intent and return it with ``upload`` (URL, method, expiry)."""
    return Emitted(_declare(env, actor, list_ref, mode, mapping))


def _declare(env: Env, actor: Actor, list_ref: str, mode: str, mapping: Mapping[str, str] | None) -> View:
    lst = audience_api.get_list(env.deps, actor.account, list_ref)  # NotFound before anything is stored
    upload_id = secrets.token_hex(8)
    intent = {
        "id": upload_id, "list": lst["id"], "mode": str(ImportMode(mode)), "mapping": dict(mapping or {}),
        "blob": upload_key(actor.account, upload_id), "created_at": env.deps.clock.now(), "import_id": None,
    }  # fmt: skip
    _save_intent(env, actor.account, intent)
    url = env.deps.blobs.upload_url(intent["blob"], expires=UPLOAD_EXPIRES_SECONDS, content_type="text/csv")
    view = _import_view(env, actor.account, intent)
    view["upload"] = {"url": url, "method": "PUT", "expires_in_seconds": UPLOAD_EXPIRES_SECONDS}
    return view


@command(Permission.AUDIENCE)
def start_import(env: Env, actor: Actor, import_id: str) -> Emitted[View]:
    """Start a declared import whose file was uploaded (starting twice is a no-op)."""
    return _start(env, actor, import_id)


def _start(env: Env, actor: Actor, import_id: str) -> Emitted[View]:
    intent = _load_intent(env, actor.account, import_id)
    if intent is None:
        return Emitted(audience_api.get_import(env.deps, actor.account, import_id))  # a started job's id
    if intent.get("import_id"):
        return Emitted(_import_view(env, actor.account, intent))
    if not env.deps.blobs.exists(intent["blob"]):
        raise Conflict("upload the file to the upload URL first", {"import": import_id})
    job, first = audience_api.start_import(
        env.deps, actor.account, intent["list"], intent["blob"], mode=intent["mode"], mapping=intent["mapping"]
    )
    intent["import_id"] = job["id"]
    _save_intent(env, actor.account, intent)
    return Emitted({**job, "id": intent["id"], "import_id": job["id"]}, [first])


@command(Permission.AUDIENCE)
def import_file(
    env: Env,
    actor: Actor,
    list_ref: str,
    data: BinaryIO,
    *,
    mode: str = ImportMode.SUBSCRIBE,
    mapping: Mapping[str, str] | None = None,
) -> Emitted[View]:
    """Declare, upload (streamed, never read whole) and start an import in one call, for a
    caller that holds the file (the CLI).  Returns the started job."""
    declared = _declare(env, actor, list_ref, mode, mapping)
    env.deps.blobs.put_stream(upload_key(actor.account, declared["id"]), data, content_type="text/csv")
    return _start(env, actor, declared["id"])


@query()
def get_import(env: Env, actor: Actor, import_id: str) -> View:
    """Status, progress and counters of an import (by the declared id or the job id)."""
    intent = _load_intent(env, actor.account, import_id)
    if intent is None:
        return audience_api.get_import(env.deps, actor.account, import_id)
    return _import_view(env, actor.account, intent)


@query()
def import_error_report(env: Env, actor: Actor, import_id: str) -> str | None:
    """The blob key of an import's rejected rows (CSV), or None when it has none."""
    report = get_import(env, actor, import_id).get("error_report")
    if not report:
        return None
    return report if isinstance(report, str) else str(report.get("key", "")) or None
