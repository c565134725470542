"""Users, passwords, sessions and one-time links of the accounts service.

Items (this service's prefixes only):

- ``ACCT#{account}`` / ``USER#{email}``: the user, its role, its argon2 password hash,
  its failed sign-in count and lock-out time.
- ``USER#{email}`` / ``LOGIN``: which account an address signs in to (addresses are
  unique across the installation, so sign-in needs the address alone).
- ``SESSION#{sha256 of the cookie}`` / ``SESSION``: a console session; the cookie value
  itself is never stored, so a copy of the store signs nobody in.
- ``LINK#{sha256 of the token}`` / ``LINK``: a one-time link (set or reset a password),
  used at most once through a conditional update.
- ``THROTTLE#{key}`` / ``W#{window}``: attempt counters for rate limits (TTL'd).
- ``SIGNIN#{sha256 of an address}`` / ``FAILS``: failed sign-ins of an address that has no
  user, so it locks out like one that has (TTL'd).

Passwords are hashed with argon2id (``argon2-cffi``) at OWASP's recommended minimum cost
(19 MiB, 2 passes, 1 lane): ~50 ms per sign-in on one core, and little memory per
concurrent sign-in on a small server.  Hashes with other parameters are upgraded at the
next successful sign-in.  A sign-in for an
unknown address still verifies against a dummy hash, so timing does not tell whether an
address has a user.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lunamail.domain.accounts import (
    MAX_EMAIL,
    MAX_NAME,
    MAX_PASSWORD,
    MIN_PASSWORD,
    Role,
    User,
    valid_role,
)
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import (
    IF_ABSENT,
    IF_EXISTS,
    Check,
    ConditionFailed,
    Delete,
    Item,
    Put,
    TransactionCancelled,
    Update,
    WriteOp,
    attr_equals,
    query_all,
)
from lunamail.services.accounts.api import get_account
from lunamail.services.accounts.errors import (
    Conflict,
    InvalidInput,
    LockedOut,
    NotFound,
    SignInRefused,
)

MAX_FAILURES = 5  # failed sign-ins in a row before the address is locked
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 12 * 3600
LINK_SECONDS = 24 * 3600
PURPOSE_SET_PASSWORD = "set-password"

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _acct_pk(account: str) -> str:
    return f"ACCT#{account}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased; InvalidInput unless it looks like one address."""
    value = (email or "").strip().lower()
    local, _, domain = value.partition("@")
    if (not local or not domain or "." not in domain or len(value) > MAX_EMAIL
            or any(c.isspace() or c in "#<>,;\"" for c in value)):
        raise InvalidInput(f"{email!r} is not an e-mail address", details={"field": "email"})
    return value


def _user_from(item: Item) -> User:
    role = item.get("role", "viewer")
    return User(
        email=item["email"],
        account=item["account"],
        role=role if valid_role(role) else "viewer",
        name=item.get("name", ""),
        created_at=float(item.get("created_at", 0.0)),
        has_password=bool(item.get("pw_hash")),
        locked_until=item.get("locked_until"),
    )


def _check_role(role: str) -> Role:
    if not valid_role(role):
        raise InvalidInput(
            f"unknown role {role!r}: owner, admin, sender, editor or viewer",
            details={"field": "role", "value": role},
        )
    return role  # type: ignore[return-value]


# ---------------------------------------------------------------- users


def add_user(deps: Deps, account: str, email: str, role: str, name: str = "") -> User:
    """Add a user to the account (no password yet: issue a link to set one).
    Conflict when the address already has a user in any account."""
    email = normalise_email(email)
    role = _check_role(role)
    name = (name or "").strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name must be at most {MAX_NAME} characters", details={"field": "name"})
    get_account(deps, account)
    item: Item = {
        "pk": _acct_pk(account), "sk": f"USER#{email}", "email": email, "account": account,
        "role": role, "name": name, "created_at": deps.clock.now(), "pw_hash": None,
        "failures": 0, "locked_until": None,
    }  # fmt: skip
    index: Item = {"pk": f"USER#{email}", "sk": "LOGIN", "email": email, "account": account}
    try:
        deps.store.transact([Put(index, IF_ABSENT), Put(item, IF_ABSENT)])
    except TransactionCancelled as exc:
        raise Conflict(f"{email} already has a user", details={"email": email}) from exc
    return _user_from(item)


def _user_item(deps: Deps, account: str, email: str) -> Item:
    item = deps.store.get(_acct_pk(account), f"USER#{email.strip().lower()}")
    if item is None:
        raise NotFound(f"no user {email!r} in this account", details={"email": email})
    return item


def get_user(deps: Deps, account: str, email: str) -> User:
    return _user_from(_user_item(deps, account, email))


def find_user(deps: Deps, email: str) -> User | None:
    """The user of an address in whichever account it belongs to, or None."""
    try:
        email = normalise_email(email)
    except InvalidInput:
        return None
    index = deps.store.get(f"USER#{email}", "LOGIN")
    if index is None:
        return None
    item = deps.store.get(_acct_pk(index["account"]), f"USER#{email}")
    return _user_from(item) if item is not None else None


def list_users(deps: Deps, account: str) -> list[User]:
    """The account's users by address (an account has a handful)."""
    return [_user_from(i) for i in query_all(deps.store, _acct_pk(account), prefix="USER#")]


def _change_user(deps: Deps, account: str, email: str, change: Delete | Update, refusal: str,
                 also: Sequence[WriteOp] = ()) -> User:
    """Apply ``change`` to a user; when it takes an owner away, in one transaction with a
    check that another owner still is one.  Two admins demoting the last two owners at
    once: the second transaction finds its other owner gone and is refused, so the
    account always keeps one (a read-then-write check would let both through)."""
    for _ in range(5):  # another owner changing meanwhile: read again
        user = get_user(deps, account, email)
        ops: list[WriteOp] = [change, *also]
        if user.role == "owner" and (isinstance(change, Delete) or change.set.get("role") != "owner"):
            others = [u for u in list_users(deps, account) if u.role == "owner" and u.email != user.email]
            if not others:
                raise Conflict(refusal)
            ops = [
                replace(change, condition=attr_equals(role="owner")),
                Check(_acct_pk(account), f"USER#{others[0].email}", attr_equals(role="owner")),
                *also,
            ]
        try:
            deps.store.transact(ops)
        except TransactionCancelled:
            continue
        return user
    raise Conflict("the account's owners changed while this ran; try again")


def remove_user(deps: Deps, account: str, email: str) -> None:
    """Remove a user; their sessions stop working at their next request.  The last owner
    cannot be removed (the account would have nobody to manage it)."""
    user = get_user(deps, account, email)
    _change_user(deps, account, email, Delete(_acct_pk(account), f"USER#{user.email}", IF_EXISTS),
                 "the last owner cannot be removed; make someone else owner first",
                 also=[Delete(f"USER#{user.email}", "LOGIN")])


def set_role(deps: Deps, account: str, email: str, role: str) -> User:
    """Change a user's role; takes effect at their next request."""
    role = _check_role(role)
    user = get_user(deps, account, email)
    _change_user(deps, account, email,
                 Update(_acct_pk(account), f"USER#{user.email}", set={"role": role}, condition=IF_EXISTS),
                 "the last owner cannot stop being owner; make someone else owner first")
    return get_user(deps, account, email)


# ---------------------------------------------------------------- passwords


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters", details={"field": "password"})
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters", details={"field": "password"})


def set_password(deps: Deps, account: str, email: str, password: str) -> User:
    """Hash and store a new password; clears failures and any lock-out, and ends every
    session opened before it (a stolen cookie dies with a reset)."""
    check_password_rules(password)
    user = get_user(deps, account, email)
    item = deps.store.update(
        _acct_pk(account), f"USER#{user.email}",
        set={"pw_hash": _hasher.hash(password), "failures": 0, "locked_until": None,
             "pw_changed_at": deps.clock.now()},
        condition=IF_EXISTS,
    )  # fmt: skip
    return _user_from(item)


def verify_password(deps: Deps, email: str, password: str) -> User:
    """The user when the address and password match.  SignInRefused otherwise (one message
    whatever was wrong); LockedOut after MAX_FAILURES failures in a row, until the lock
    expires, even with the right password."""
    now = deps.clock.now()
    user = find_user(deps, email)
    if user is None or len(password) > MAX_PASSWORD:
        _burn(password[:MAX_PASSWORD])
        if user is None:
            _unknown_address_failed(deps, email, now)
        raise SignInRefused("wrong e-mail address or password")
    if user.locked_until is not None and user.locked_until > now:
        _locked_out(user.locked_until)
    item = _user_item(deps, user.account, user.email)
    stored = item.get("pw_hash")
    ok = False
    if stored:
        try:
            ok = _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _burn(password)
    key = (_acct_pk(user.account), f"USER#{user.email}")
    if not ok:
        after = deps.store.update(*key, add={"failures": 1}, condition=IF_EXISTS)
        if int(after.get("failures", 0)) >= MAX_FAILURES:
            deps.store.update(*key, set={"locked_until": now + LOCK_SECONDS, "failures": 0}, condition=IF_EXISTS)
        raise SignInRefused("wrong e-mail address or password")
    if stored and _hasher.check_needs_rehash(stored):
        deps.store.update(*key, set={"pw_hash": _hasher.hash(password)}, condition=IF_EXISTS)
    if item.get("failures") or item.get("locked_until"):
        deps.store.update(*key, set={"failures": 0, "locked_until": None}, condition=IF_EXISTS)
    return user


def _locked_out(until: float) -> NoReturn:
    raise LockedOut(
        "too many failed sign-ins: this address is locked for a while; reset the password or wait",
        details={"until": until},
    )


def _unknown_address_failed(deps: Deps, email: str, now: float) -> None:
    """Count failures for an address that has no user exactly as for one that has, so the
    lock-out answer does not tell which addresses are users."""
    key = (f"SIGNIN#{_digest(email.strip().lower()[:MAX_EMAIL])}", "FAILS")
    item = deps.store.get(*key)
    if item is not None and float(item.get("locked_until") or 0) > now:
        _locked_out(float(item["locked_until"]))
    after = deps.store.update(*key, add={"failures": 1}, set={"ttl": int(now + LOCK_SECONDS) + 60})
    if int(after.get("failures", 0)) >= MAX_FAILURES:
        deps.store.update(*key, set={"locked_until": now + LOCK_SECONDS, "failures": 0})


def _burn(password: str) -> None:
    """Spend what a real verification costs, so a missing user is not faster to refuse."""
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_DUMMY_HASH, password)


# ---------------------------------------------------------------- one-time links


def issue_link(deps: Deps, account: str, email: str, purpose: str = PURPOSE_SET_PASSWORD,
               ttl: int = LINK_SECONDS) -> str:
    """A one-time token for the user (put it in a URL).  Only its hash is stored."""
    user = get_user(deps, account, email)
    token = secrets.token_urlsafe(32)
    now = deps.clock.now()
    deps.store.put({
        "pk": f"LINK#{_digest(token)}", "sk": "LINK", "account": account, "email": user.email,
        "purpose": purpose, "expires_at": now + ttl, "ttl": int(now + ttl) + 60, "used": False,
    }, condition=IF_ABSENT)  # fmt: skip
    return token


def _link_item(deps: Deps, token: str, purpose: str) -> Item | None:
    if not token or len(token) > 200:
        return None
    item = deps.store.get(f"LINK#{_digest(token)}", "LINK")
    if item is None or item.get("used") or item.get("purpose") != purpose:
        return None
    if float(item.get("expires_at", 0)) <= deps.clock.now():
        return None
    return item


def peek_link(deps: Deps, token: str, purpose: str = PURPOSE_SET_PASSWORD) -> User | None:
    """The user a link is for, without using it (a GET of the link must not spend it:
    mail scanners follow links)."""
    item = _link_item(deps, token, purpose)
    if item is None:
        return None
    try:
        return get_user(deps, item["account"], item["email"])
    except NotFound:
        return None


def use_link(deps: Deps, token: str, purpose: str = PURPOSE_SET_PASSWORD) -> User:
    """Spend a link (at most once, even under concurrent use) and return its user.
    SignInRefused for an unknown, used or expired link."""
    item = _link_item(deps, token, purpose)
    refused = SignInRefused("this link is not valid any more: ask for a new one")
    if item is None:
        raise refused
    try:
        deps.store.update(item["pk"], "LINK", set={"used": True}, condition=attr_equals(used=False))
    except ConditionFailed:
        raise refused from None
    try:
        return get_user(deps, item["account"], item["email"])
    except NotFound:
        raise refused from None


# ---------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Session:
    account: str
    email: str
    csrf: str
    created_at: float
    expires_at: float


def create_session(deps: Deps, user: User, ttl: int = SESSION_SECONDS) -> tuple[str, Session]:
    """A new session for the user: (the cookie value, the session).  Always a new value,
    so signing in rotates the session."""
    token = secrets.token_urlsafe(32)
    now = deps.clock.now()
    session = Session(user.account, user.email, secrets.token_urlsafe(32), now, now + ttl)
    deps.store.put({
        "pk": f"SESSION#{_digest(token)}", "sk": "SESSION", "account": user.account,
        "email": user.email, "csrf": session.csrf, "created_at": now,
        "expires_at": session.expires_at, "ttl": int(session.expires_at) + 60,
    }, condition=IF_ABSENT)  # fmt: skip
    return token, session


def get_session(deps: Deps, token: str | None) -> tuple[Session, User] | None:
    """The live session of a cookie and its user as they are now (a removed user or a
    changed role counts at once), or None."""
    if not token or len(token) > 200:
        return None
    item = deps.store.get(f"SESSION#{_digest(token)}", "SESSION")
    if item is None or float(item.get("expires_at", 0)) <= deps.clock.now():
        return None
    user_item = deps.store.get(_acct_pk(item["account"]), f"USER#{item['email']}")
    if user_item is None or float(user_item.get("pw_changed_at") or 0) > float(item["created_at"]):
        return None
    session = Session(item["account"], item["email"], item["csrf"], float(item["created_at"]),
                      float(item["expires_at"]))
    return session, _user_from(user_item)


def end_session(deps: Deps, token: str | None) -> None:
    """Sign out: the cookie stops working everywhere at once.  Idempotent."""
    if token and len(token) <= 200:
        deps.store.delete(f"SESSION#{_digest(token)}", "SESSION")


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())


# ---------------------------------------------------------------- throttling


def throttle(deps: Deps, key: str, *, limit: int, window: int, cost: int = 1) -> bool:
    """Count ``cost`` attempts under ``key`` in the current ``window`` seconds; False once
    more than ``limit`` were made in it (the caller answers 429)."""
    now = deps.clock.now()
    slot = int(now // window)
    item = deps.store.update(
        f"THROTTLE#{_digest(key)}", f"W#{slot}", add={"n": cost}, set={"ttl": (slot + 2) * window}
    )
    return int(item.get("n", 0)) <= limit
