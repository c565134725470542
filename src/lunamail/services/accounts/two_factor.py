"""Two-factor sign-in (TOTP, RFC 6238) of the accounts service: enrolment, verification,
recovery codes, the per-account rule that everyone must use it, and the short-lived
challenge between a right password and the second factor.

Items (this service's prefixes only):

- on the user item ``ACCT#{account}`` / ``USER#{email}``: ``totp`` (the key, sealed with
  AES-GCM under a key derived from the master key and bound to the account and address:
  never stored in the clear), ``totp_pending`` (the same, while an enrolment waits for its
  first code), ``totp_step`` (the last time step accepted: a code works once),
  ``recovery`` (HMAC-SHA256 of each unused recovery code under a derived key).
- on the account item ``ACCT#{account}`` / ``META``: ``require_two_factor``.
- ``MFA#{sha256 of the token}`` / ``MFA``: a password accepted, the second factor still
  to come (five minutes, once; TTL'd).  The token itself lives in the browser only.

Codes are throttled per user (and the sign-in door throttles per client): a few wrong
codes a minute, then 429 until the minute is over.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import pyotp

from lunamail.lib.sealing import Unsealable, seal, unseal
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, IF_EXISTS, ConditionFailed, Item, attr_equals
from lunamail.services.accounts import users
from lunamail.services.accounts.errors import Conflict, InvalidInput, NotFound, TooManyRequests

ISSUER = "Lunamail"
STEP_SECONDS = 30
RECOVERY_CODES = 10
CODES_PER_MINUTE = 10  # per user, right or wrong (a guesser gets ~3 in 100,000 a minute)
CHALLENGE_SECONDS = 300
_SEAL_PURPOSE = "two-factor-seal"
_RECOVERY_PURPOSE = "two-factor-recovery"


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for typing into an app by hand
    uri: str  # otpauth:// URI (the QR code's content)


@dataclass(frozen=True)
class Challenge:
    account: str
    email: str
    next: str
    enrol: bool  # the account requires a second factor this user has not set up yet


def _acct_pk(account: str) -> str:
    return f"ACCT#{account}"


def _user_key(account: str, email: str) -> tuple[str, str]:
    return _acct_pk(account), f"USER#{email}"


def _bound(account: str, email: str) -> str:
    return f"{account}\x00{email}"


def _user_item(deps: Deps, account: str, email: str) -> Item:
    item = deps.store.get(*_user_key(account, email))
    if item is None:
        raise NotFound(f"no user {email!r} in this account", details={"email": email})
    return item


def enabled(item: Item) -> bool:
    return bool(item.get("totp"))


def is_enabled(deps: Deps, account: str, email: str) -> bool:
    return enabled(_user_item(deps, account, email))


def _secret(deps: Deps, account: str, email: str, sealed: str) -> str:
    try:
        return unseal(deps.secrets.key(account, _SEAL_PURPOSE), sealed, _bound(account, email)).decode("ascii")
    except Unsealable as e:
        raise Conflict("this user's second factor cannot be read (was the master key replaced?)") from e


def _recovery_hash(deps: Deps, account: str, code: str) -> str:
    normal = "".join(ch for ch in code.lower() if ch.isalnum())
    return hmac.new(deps.secrets.key(account, _RECOVERY_PURPOSE), normal.encode(), hashlib.sha256).hexdigest()


def _throttle(deps: Deps, account: str, email: str) -> None:
    if not users.throttle(deps, f"totp:{account}:{email}", limit=CODES_PER_MINUTE, window=60):
        raise TooManyRequests("too many codes tried: wait a minute and try again")


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step (this one or a neighbour, for clock drift) whose code is ``code``."""
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    for offset in (0, -1, 1):
        at = now + offset * STEP_SECONDS
        if hmac.compare_digest(totp.at(int(at)).encode(), code.encode()):
            return int(at // STEP_SECONDS)
    return None


# ---------------------------------------------------------------- enrolment


def begin_enrolment(deps: Deps, account: str, email: str) -> Enrolment:
    """A new key waiting for its first code (replaces any other waiting one); the key in
    use, if any, keeps working until the new one is confirmed."""
    item = _user_item(deps, account, email)
    secret = pyotp.random_base32()
    sealed = seal(deps.secrets.key(account, _SEAL_PURPOSE), secret.encode("ascii"), _bound(account, item["email"]))
    deps.store.update(*_user_key(account, item["email"]), set={"totp_pending": sealed}, condition=IF_EXISTS)
    uri = pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=item["email"], issuer_name=ISSUER)
    return Enrolment(secret, uri)


def pending_enrolment(deps: Deps, account: str, email: str) -> Enrolment | None:
    """The enrolment waiting for its first code, if any (to show its QR code again)."""
    item = _user_item(deps, account, email)
    if not item.get("totp_pending"):
        return None
    secret = _secret(deps, account, item["email"], str(item["totp_pending"]))
    uri = pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=item["email"], issuer_name=ISSUER)
    return Enrolment(secret, uri)


def confirm_enrolment(deps: Deps, account: str, email: str, code: str) -> list[str]:
    """Switch to the waiting key once a code from it is right; returns new recovery codes
    (shown once: only their HMACs are kept).  InvalidInput for a wrong code."""
    _throttle(deps, account, email)
    item = _user_item(deps, account, email)
    pending = item.get("totp_pending")
    if not pending:
        raise Conflict("no two-factor set-up is waiting: start again")
    secret = _secret(deps, account, item["email"], str(pending))
    step = _matching_step(secret, _digits(code), deps.clock.now())
    if step is None:
        raise InvalidInput("that code is not right: type the current one from the app", details={"field": "code"})
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    deps.store.update(*_user_key(account, item["email"]), set={
        "totp": pending, "totp_pending": None, "totp_step": step,
        "recovery": [_recovery_hash(deps, account, c) for c in codes],
    }, condition=attr_equals(totp_pending=pending))  # fmt: skip
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def disable(deps: Deps, account: str, email: str) -> None:
    item = _user_item(deps, account, email)
    deps.store.update(*_user_key(account, item["email"]),
                      set={"totp": None, "totp_pending": None, "recovery": []}, condition=IF_EXISTS)


def _digits(code: str) -> str:
    return "".join(ch for ch in (code or "")[:64] if not ch.isspace())


# ---------------------------------------------------------------- verification


def verify(deps: Deps, account: str, email: str, code: str) -> bool:
    """True when ``code`` is the user's current TOTP code (not used before) or one of
    their unused recovery codes (used up now).  TooManyRequests past a few tries a minute."""
    _throttle(deps, account, email)
    item = _user_item(deps, account, email)
    if not enabled(item):
        return False
    given = _digits(code)
    key = _user_key(account, item["email"])
    if given.isdigit() and len(given) == 6:
        step = _matching_step(_secret(deps, account, item["email"], str(item["totp"])), given, deps.clock.now())
        last = int(item.get("totp_step") or 0)
        if step is None or step <= last:
            return False
        try:
            deps.store.update(*key, set={"totp_step": step}, condition=attr_equals(totp_step=item.get("totp_step")))
        except ConditionFailed:  # the same code raced in twice: one wins
            return False
        return True
    hashes = list(item.get("recovery") or [])
    wanted = _recovery_hash(deps, account, given)
    if not any(hmac.compare_digest(wanted, h) for h in hashes):
        return False
    left = [h for h in hashes if not hmac.compare_digest(wanted, h)]
    try:
        deps.store.update(*key, set={"recovery": left}, condition=attr_equals(recovery=hashes))
    except ConditionFailed:
        return False
    return True


def recovery_left(deps: Deps, account: str, email: str) -> int:
    return len(_user_item(deps, account, email).get("recovery") or [])


# ---------------------------------------------------------------- the account's rule


def required(deps: Deps, account: str) -> bool:
    item = deps.store.get(_acct_pk(account), "META")
    return bool(item and item.get("require_two_factor"))


def set_required(deps: Deps, account: str, on: bool) -> None:
    deps.store.update(_acct_pk(account), "META", set={"require_two_factor": bool(on)}, condition=IF_EXISTS)


# ---------------------------------------------------------------- the challenge


def _challenge_key(token: str) -> tuple[str, str]:
    return "MFA#" + hashlib.sha256(token.encode("utf-8")).hexdigest(), "MFA"


def open_challenge(deps: Deps, account: str, email: str, next_path: str, *, enrol: bool) -> str:
    """After a right password: a token (for the browser) that the second factor redeems."""
    token = secrets.token_urlsafe(32)
    now = deps.clock.now()
    pk, sk = _challenge_key(token)
    deps.store.put({
        "pk": pk, "sk": sk, "account": account, "email": email, "next": next_path, "enrol": enrol,
        "expires_at": now + CHALLENGE_SECONDS, "ttl": int(now + CHALLENGE_SECONDS) + 60, "used": False,
    }, condition=IF_ABSENT)  # fmt: skip
    return token


def challenge(deps: Deps, token: str | None) -> Challenge | None:
    if not token or len(token) > 200:
        return None
    item = deps.store.get(*_challenge_key(token))
    if item is None or item.get("used") or float(item.get("expires_at", 0)) <= deps.clock.now():
        return None
    return Challenge(str(item["account"]), str(item["email"]), str(item.get("next") or "/"), bool(item.get("enrol")))


def close_challenge(deps: Deps, token: str) -> bool:
    """Spend the challenge (once); False when it was spent already."""
    try:
        deps.store.update(*_challenge_key(token), set={"used": True}, condition=attr_equals(used=False))
    except ConditionFailed:
        return False
    return True
