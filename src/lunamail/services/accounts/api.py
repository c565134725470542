"""Accounts and API keys: the operations the CLI and the HTTP API call.

Items (this service's prefixes only):

- ``ACCT#{account}`` / ``META``: the account, including its sending state.
- ``ACCT#{account}`` / ``KEY#{display prefix}``: a key's metadata, so an account's
  keys can be listed and revoked by the prefix people see.
- ``APIKEY#{sha256 hex}`` / ``KEY``: the lookup item ``authenticate`` reads; a key is
  found by the hash of what the caller sent, so the secret itself is never stored.
- ``ACCOUNTS`` / ``ACCT#{account}``: an index of accounts, because the store has
  no scan (DynamoDB semantics) and accounts are few.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from lunamail.domain.accounts import (
    API_KEY_PREFIX,
    DEFAULT_ACCOUNT,
    DISPLAY_PREFIX_LEN,
    LEGACY_KEY_ROLE,
    MAX_LABEL,
    MAX_NAME,
    SENDING_ACTIVE,
    SENDING_LOCKED,
    Account,
    AccountSendingLocked,
    AccountSendingUnlocked,
    ApiKey,
    IssuedKey,
    valid_account_id,
    valid_role,
)
from lunamail.domain.messages import Event
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    IF_EXISTS,
    ConditionFailed,
    Item,
    Put,
    TransactionCancelled,
    Update,
    attr_equals,
)
from lunamail.services.accounts.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "DEFAULT_ACCOUNT",
    "authenticate",
    "authenticate_key",
    "create_account",
    "create_api_key",
    "get_account",
    "hash_key",
    "list_accounts",
    "list_api_keys",
    "lock_sending",
    "revoke_api_key",
    "unlock_sending",
]

_INDEX_PK = "ACCOUNTS"
_KEY_BYTES = 32  # 256 bits of randomness: guessing is out of the question


def _acct_pk(account: str) -> str:
    return f"ACCT#{account}"


def _key_pk(digest: str) -> str:
    return f"APIKEY#{digest}"


def hash_key(key: str) -> str:
    """SHA-256 hex of a key: what is stored and looked up instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _new_account_id() -> str:
    # 40 random bits as lower-case base32: short, URL-safe and unambiguous to read aloud.
    return base64.b32encode(secrets.token_bytes(5)).decode("ascii").lower()


def _account_from(item: Item) -> Account:
    return Account(
        id=item["id"],
        name=item.get("name", ""),
        created_at=float(item.get("created_at", 0.0)),
        sending=SENDING_LOCKED if item.get("sending") == SENDING_LOCKED else SENDING_ACTIVE,
        sending_reason=item.get("sending_reason", "") or "",
        sending_numbers=dict(item.get("sending_numbers") or {}),
        sending_changed_at=item.get("sending_changed_at"),
    )


def _key_from(item: Item) -> ApiKey:
    return ApiKey(
        prefix=item["prefix"],
        account=item["account"],
        label=item.get("label", ""),
        created_at=float(item.get("created_at", 0.0)),
        revoked_at=item.get("revoked_at"),
        role=str(item.get("role") or LEGACY_KEY_ROLE),
    )


# ---------------------------------------------------------------- accounts


def create_account(deps: Deps, name: str, account_id: str | None = None) -> Account:
    """Create an account; ``account_id`` is random unless given.  Conflict if it exists."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(
            f"account name must be 1-{MAX_NAME} characters",
            details={"field": "name"},
        )
    if account_id is not None and not valid_account_id(account_id):
        raise InvalidInput(
            "account id must be 1-63 of a-z, 0-9, '-', '_' and start with a letter or digit",
            details={"field": "account_id", "value": account_id},
        )
    acct_id = account_id or _new_account_id()
    now = deps.clock.now()
    meta: Item = {
        "pk": _acct_pk(acct_id),
        "sk": "META",
        "type": "account",
        "id": acct_id,
        "name": name,
        "created_at": now,
        "sending": SENDING_ACTIVE,
        "sending_reason": "",
        "sending_numbers": {},
        "sending_changed_at": None,
    }
    index: Item = {"pk": _INDEX_PK, "sk": f"ACCT#{acct_id}", "id": acct_id, "name": name, "created_at": now}
    try:
        deps.store.transact([Put(meta, IF_ABSENT), Put(index)])
    except TransactionCancelled as exc:
        raise Conflict(f"account {acct_id!r} already exists", details={"account": acct_id}) from exc
    return _account_from(meta)


def get_account(deps: Deps, account: str) -> Account:
    """The account, or NotFound."""
    item = deps.store.get(_acct_pk(account), "META")
    if item is None:
        raise NotFound(f"account {account!r} not found", details={"account": account})
    return _account_from(item)


def list_accounts(deps: Deps, *, limit: int = 100, cursor: str | None = None) -> tuple[list[Account], str | None]:
    """One page of accounts ordered by id, and the cursor of the next page (None at the end)."""
    page = deps.store.query(_INDEX_PK, prefix="ACCT#", limit=limit, cursor=cursor)
    keys = [(_acct_pk(i["id"]), "META") for i in page.items]
    found = deps.store.get_many(keys) if keys else []
    return [_account_from(i) for i in found if i is not None], page.cursor


# ---------------------------------------------------------------- sending state


def lock_sending(deps: Deps, account: str, reason: str, numbers: dict[str, Any] | None = None) -> list[Event]:
    """Stop all sending for the account.  Idempotent: locking a locked account keeps the
    first reason and emits nothing.  Returns the events to publish."""
    current = get_account(deps, account)
    if current.sending == SENDING_LOCKED:
        return []
    now = deps.clock.now()
    nums = dict(numbers or {})
    try:
        deps.store.update(
            _acct_pk(account),
            "META",
            set={
                "sending": SENDING_LOCKED,
                "sending_reason": reason,
                "sending_numbers": nums,
                "sending_changed_at": now,
            },
            condition=attr_equals(sending=SENDING_ACTIVE),
        )
    except ConditionFailed:
        return []  # someone else locked it first; their event stands
    return [AccountSendingLocked(account=account, reason=reason, numbers=nums, at=now)]


def unlock_sending(deps: Deps, account: str) -> list[Event]:
    """Let the account send again.  Idempotent; returns the events to publish."""
    current = get_account(deps, account)
    if current.sending == SENDING_ACTIVE:
        return []
    now = deps.clock.now()
    try:
        deps.store.update(
            _acct_pk(account),
            "META",
            set={
                "sending": SENDING_ACTIVE,
                "sending_reason": "",
                "sending_numbers": {},
                "sending_changed_at": now,
            },
            condition=attr_equals(sending=SENDING_LOCKED),
        )
    except ConditionFailed:
        return []
    return [AccountSendingUnlocked(account=account, at=now)]


# ---------------------------------------------------------------- API keys


def create_api_key(deps: Deps, account: str, label: str = "", role: str = "admin") -> IssuedKey:
    """Issue a key for the account, acting with ``role``.  The plaintext is in the result
    only; the store keeps its SHA-256, the label, the role, the time and a short display
    prefix."""
    label = (label or "").strip()
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"label must be at most {MAX_LABEL} characters", details={"field": "label"})
    if not valid_role(role):
        raise InvalidInput(f"unknown role {role!r}", details={"field": "role", "value": role})
    get_account(deps, account)  # NotFound for an unknown account
    now = deps.clock.now()
    for _ in range(5):  # a display-prefix collision is ~2^-48; retrying is cheap insurance
        secret = API_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
        prefix = secret[:DISPLAY_PREFIX_LEN]
        digest = hash_key(secret)
        meta = {"prefix": prefix, "account": account, "label": label, "role": role,
                "created_at": now, "revoked_at": None}
        try:
            deps.store.transact(
                [
                    Put({"pk": _key_pk(digest), "sk": "KEY", "hash": digest, **meta}, IF_ABSENT),
                    Put({"pk": _acct_pk(account), "sk": f"KEY#{prefix}", "hash": digest, **meta}, IF_ABSENT),
                ]
            )
        except TransactionCancelled:
            continue
        return IssuedKey(secret=secret, key=_key_from(meta))
    raise Conflict("could not allocate a unique key prefix; try again")  # pragma: no cover


def list_api_keys(deps: Deps, account: str, *, include_revoked: bool = True) -> list[ApiKey]:
    """The account's keys (metadata only, never a secret or hash), oldest first."""
    out: list[ApiKey] = []
    cursor: str | None = None
    while True:  # an account has a handful of keys; paging keeps it honest anyway
        page = deps.store.query(_acct_pk(account), prefix="KEY#", limit=100, cursor=cursor)
        out.extend(_key_from(i) for i in page.items)
        cursor = page.cursor
        if cursor is None:
            break
    if not include_revoked:
        out = [k for k in out if k.active]
    return sorted(out, key=lambda k: (k.created_at, k.prefix))


def revoke_api_key(deps: Deps, account: str, prefix: str) -> ApiKey:
    """Revoke the account's key whose display prefix starts with ``prefix`` (the whole key
    works too).  NotFound when none matches, Conflict when several do.  Idempotent."""
    prefix = (prefix or "").strip()
    if len(prefix) > DISPLAY_PREFIX_LEN:
        prefix = prefix[:DISPLAY_PREFIX_LEN]
    if not prefix.startswith(API_KEY_PREFIX):
        raise InvalidInput(
            f"a key prefix starts with {API_KEY_PREFIX!r}", details={"field": "prefix", "value": prefix}
        )
    page = deps.store.query(_acct_pk(account), prefix=f"KEY#{prefix}", limit=3)
    if not page.items:
        raise NotFound(f"no key starting with {prefix!r}", details={"prefix": prefix})
    if len(page.items) > 1:
        raise Conflict(
            f"{prefix!r} matches several keys; give more characters",
            details={"matches": [i["prefix"] for i in page.items]},
        )
    item = page.items[0]
    if item.get("revoked_at") is not None:
        return _key_from(item)
    now = deps.clock.now()
    deps.store.transact(
        [
            Update(_key_pk(item["hash"]), "KEY", set={"revoked_at": now}, condition=IF_EXISTS),
            Update(item["pk"], item["sk"], set={"revoked_at": now}, condition=IF_EXISTS),
        ]
    )
    return _key_from({**item, "revoked_at": now})


def authenticate(deps: Deps, key: str | None) -> str | None:
    """The account id a key belongs to, or None for a missing, malformed, unknown or
    revoked key.  Callers learn nothing about why, on purpose."""
    found = authenticate_key(deps, key)
    return found[0] if found else None


def authenticate_key(deps: Deps, key: str | None) -> tuple[str, str] | None:
    """(account id, role) of a valid key, or None like :func:`authenticate`.  Keys issued
    before roles existed act as owners, so nothing that worked stops working."""
    if not key or not key.startswith(API_KEY_PREFIX) or len(key) > 256:
        return None
    digest = hash_key(key)
    item = deps.store.get(_key_pk(digest), "KEY")
    if item is None:
        return None
    # The lookup is by hash already; the comparison guards against a store that
    # matched loosely, and costs the same whether or not the bytes agree.
    if not hmac.compare_digest(str(item.get("hash", "")), digest):
        return None
    if item.get("revoked_at") is not None:
        return None
    account = item.get("account")
    if not account:
        return None
    return str(account), str(item.get("role") or LEGACY_KEY_ROLE)
