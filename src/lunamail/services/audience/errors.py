"""Errors of the audience service: what callers (CLI, HTTP) map to exit codes and statuses."""

from __future__ import annotations

from collections.abc import Mapping


class AudienceError(Exception):
    """Base of every audience error."""


class NotFound(AudienceError):
    """The list, subscriber, suppression or import does not exist (in this account)."""


class Conflict(AudienceError):
    """The request clashes with the current state (duplicate list name, suppressed address)."""


class OptedOut(Conflict):
    """The address unsubscribed (from this list or all of them); only an explicit,
    reasoned resubscribe adds it again.  ``details`` says which and for whom."""

    def __init__(self, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, str] = dict(details or {})


class InvalidInput(AudienceError):
    """The input is malformed; ``fields`` maps each offending field to what is wrong."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields: dict[str, str] = dict(fields or {})
