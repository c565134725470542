"""Accounts (tenants) and API keys: the pure model and the messages about sending state.

An account is the tenant every item and query is scoped to.  Its ``sending``
state is the reputation guard's brake: "locked" stops new sends for the whole
account until an operator unlocks it, so the guard acts before a provider does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, dataclass_transform

from lunamail.domain.messages import Command, Event
from lunamail.domain.messages import message as _register

SendingState = Literal["active", "locked"]
SENDING_ACTIVE: SendingState = "active"
SENDING_LOCKED: SendingState = "locked"

DEFAULT_ACCOUNT = "default"
API_KEY_PREFIX = "lm_"
# Characters of the key shown back to people so they can tell keys apart ("lm_" + 8).
DISPLAY_PREFIX_LEN = len(API_KEY_PREFIX) + 8

# Account ids appear inside item keys (``ACCT#{id}``, ``A#{id}#...``) and URLs,
# so they are short, lower-case and free of the ``#`` separator.
ACCOUNT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_NAME = 200
MAX_LABEL = 200


def valid_account_id(value: str) -> bool:
    """True when ``value`` may be used as an account id."""
    return bool(ACCOUNT_ID_RE.match(value))


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    created_at: float
    sending: SendingState = SENDING_ACTIVE
    sending_reason: str = ""
    sending_numbers: dict[str, Any] = field(default_factory=dict)
    sending_changed_at: float | None = None

    @property
    def can_send(self) -> bool:
        return self.sending == SENDING_ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "sending": self.sending,
            "sending_reason": self.sending_reason,
            "sending_numbers": dict(self.sending_numbers),
            "sending_changed_at": self.sending_changed_at,
        }


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key after it was issued: never the secret itself."""

    prefix: str
    account: str
    label: str
    created_at: float
    revoked_at: float | None = None
    role: str = "owner"  # keys issued before roles existed act as owners

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "account": self.account,
            "label": self.label,
            "role": self.role,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
        }


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``secret`` is shown once and never stored."""

    secret: str
    key: ApiKey


# ---------------------------------------------------------------- messages

_T = TypeVar("_T")

if TYPE_CHECKING:
    # ``message`` makes the class a frozen keyword-only dataclass at run time, but its
    # signature hides the class from type checkers; these stand-ins show them that shape.
    @dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
    def message(name: str, version: int = 1) -> Callable[[_T], _T]: ...

else:
    message = _register


@message("accounts.LockAccountSending")
class LockAccountSending(Command):
    """Ask the accounts service to stop all sending for the account (sent by the guard)."""

    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


@message("accounts.AccountSendingLocked")
class AccountSendingLocked(Event):
    """The account may not start or continue sends until it is unlocked."""

    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


@message("accounts.AccountSendingUnlocked")
class AccountSendingUnlocked(Event):
    """An operator lifted the lock; sending may resume."""

    at: float = 0.0


# ---------------------------------------------------------------- users and roles

# What each role may do is the application layer's table (lunamail.app.base.ROLES).
Role = Literal["owner", "admin", "sender", "editor", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "sender", "editor", "viewer")
# What a key issued before roles existed acts as: it could do everything, so it still can.
LEGACY_KEY_ROLE: Role = "owner"

MAX_EMAIL = 320
MIN_PASSWORD = 10
MAX_PASSWORD = 1000  # argon2 takes any length; a bound keeps hostile input cheap


def valid_role(value: str) -> bool:
    return value in ROLES


@dataclass(frozen=True)
class User:
    """A person who signs in to an account's console.  Identified by e-mail address,
    which is unique across the installation (sign-in starts from the address alone)."""

    email: str
    account: str
    role: Role
    name: str = ""
    created_at: float = 0.0
    has_password: bool = False
    locked_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "account": self.account,
            "role": self.role,
            "name": self.name,
            "created_at": self.created_at,
            "has_password": self.has_password,
            "locked_until": self.locked_until,
        }
