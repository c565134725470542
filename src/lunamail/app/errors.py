"""The stable error codes, in one place for every door.

A client of the REST API and a script reading ``lunamail ... --json`` see the same
``{"error": {"code", "message", "details"}}`` with a code from :data:`CODES`.
Services keep their own exception classes (they never import one another); they
are mapped here by class name, and the layer's own errors are defined here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Code:
    status: int  # the HTTP status
    meaning: str


#: Every error code a client may see.  Adding one is fine; renaming one breaks clients.
CODES: dict[str, Code] = {
    "bad_request": Code(400, "the request could not be read"),
    "unauthorized": Code(401, "no valid API key"),
    "forbidden": Code(403, "the key or role may not do this"),
    "not_found": Code(404, "no such resource (or route)"),
    "method_not_allowed": Code(405, "the route does not take this method"),
    "conflict": Code(409, "the resource exists or is in the way"),
    "illegal_transition": Code(409, "the campaign's state does not allow this action"),
    "opted_out": Code(409, "the address unsubscribed; only resubscribe with a reason adds it again"),
    "payload_too_large": Code(413, "the body is too large"),
    "unsupported_media_type": Code(415, "the body's content type is not accepted"),
    "invalid_input": Code(422, "a field is wrong; details.fields names it"),
    "invalid_template": Code(422, "a template does not compile; details say part and line"),
    "pre_send_check_failed": Code(422, "the campaign cannot be sent; details.reasons say why"),
    "not_initialised": Code(409, "the data folder was never set up (run lunamail init)"),
    "usage_error": Code(400, "the command line is wrong (CLI only)"),
    "invalid_settings": Code(500, "a setting is unknown or wrong; the message names it"),
    "too_many_requests": Code(429, "slow down"),
    "internal_error": Code(500, "an unexpected error; the log has it"),
}

#: Service (and layer) error class name -> code.  Looked up along the class's MRO.
ERROR_CLASSES: dict[str, str] = {
    "NotFound": "not_found",
    "Conflict": "conflict",
    "OptedOut": "opted_out",
    "InvalidInput": "invalid_input",
    "IllegalTransition": "illegal_transition",
    "PreSendCheckFailed": "pre_send_check_failed",
    "InvalidTemplate": "invalid_template",
    "Forbidden": "forbidden",
    "NotInitialised": "not_initialised",
    "TooManyRequests": "too_many_requests",
}


class AppError(Exception):
    """An error of the application layer itself (not of one service)."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = dict(details or {})


class NotFound(AppError):
    pass


class Conflict(AppError):
    pass


class InvalidInput(AppError):
    """``fields`` maps each wrong input to what is wrong with it."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields: dict[str, str] = dict(fields or {})


class Forbidden(AppError):
    pass


class NotInitialised(AppError):
    pass


@dataclass(frozen=True)
class Problem:
    """An exception as every door reports it."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return CODES[self.code].status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": dict(self.details)}}


def code_of(exc: BaseException) -> str | None:
    """The stable code of a known service or layer error, else None."""
    for cls in type(exc).__mro__:
        found = ERROR_CLASSES.get(cls.__name__)
        if found is not None:
            return found
    return None


def _details(exc: BaseException) -> dict[str, Any]:
    """Whatever structured detail an error carries, under stable names."""
    details: dict[str, Any] = {}
    raw = getattr(exc, "details", None)
    if isinstance(raw, Mapping):
        details.update(raw)
    fields = getattr(exc, "fields", None)
    if isinstance(fields, Mapping) and fields:
        details["fields"] = dict(fields)
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, list | tuple) and reasons:
        details["reasons"] = list(reasons)
    for name in ("part", "line"):  # template errors say where
        value = getattr(exc, name, None)
        if value is not None:
            details[name] = value
    if code_of(exc) == "invalid_template":
        details["message"] = str(getattr(exc, "message", exc))
        details.setdefault("fields", {})
    if code_of(exc) == "illegal_transition":  # which state refused which action
        for name, attr in (("status", "from_status"), ("action", "action")):
            value = getattr(exc, attr, None)
            if value is not None:
                details[name] = str(value)
    return details


def describe(exc: BaseException) -> Problem | None:
    """A known error as a :class:`Problem`; None for anything else (a bug: 500 / exit 1)."""
    code = code_of(exc)
    if code is None:
        return None
    return Problem(code, str(exc) or code, _details(exc))
