"""Errors of the accounts service.

The HTTP layer maps errors by the name of their class (``NotFound`` -> 404,
``Conflict`` -> 409, ``InvalidInput`` -> 422), so each service may keep its own
classes without importing another service's.
"""

from __future__ import annotations

from typing import Any


class AccountsError(Exception):
    """Base of this service's errors."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class NotFound(AccountsError):
    code = "not_found"


class Conflict(AccountsError):
    code = "conflict"


class InvalidInput(AccountsError):
    code = "invalid_input"


class SignInRefused(AccountsError):
    """Wrong address or password, or an expired or used link: one message for all, on purpose."""

    code = "sign_in_refused"


class LockedOut(AccountsError):
    """Too many failed sign-ins for this address; it opens again at ``details["until"]``."""

    code = "locked_out"


class TooManyRequests(AccountsError):
    code = "too_many_requests"
