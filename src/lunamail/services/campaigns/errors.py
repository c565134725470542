"""Errors of the campaigns service: what callers (CLI, HTTP) map to exit codes and statuses.

``IllegalTransition`` lives in the domain (the state machine raises it) and is
re-exported here so callers import every campaigns error from one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lunamail.domain.campaign_model import IllegalTransition

__all__ = [
    "CampaignError",
    "Conflict",
    "IllegalTransition",
    "InvalidInput",
    "InvalidTemplate",
    "NotFound",
    "PreSendCheckFailed",
]


class CampaignError(Exception):
    """Base of every campaigns service error (except IllegalTransition, see above)."""


class NotFound(CampaignError):
    """The campaign does not exist in this account."""


class Conflict(CampaignError):
    """The request clashes with stored data (an id already taken, a concurrent change)."""


class InvalidInput(CampaignError):
    """The input is malformed; ``fields`` maps each offending field to what is wrong."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        detail = "; ".join(f"{k}: {v}" for k, v in (fields or {}).items())
        super().__init__(f"{message} ({detail})" if detail else message)
        self.fields: dict[str, str] = dict(fields or {})


class InvalidTemplate(InvalidInput):
    """A template part does not compile or tries to leave the sandbox.

    ``part`` is "subject", "html" or "text"; ``line`` is 1-based (None when unknown).
    """

    def __init__(self, part: str, line: int | None, message: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__("template error", {part: where + message})
        self.part = part
        self.line = line
        self.message = message


class PreSendCheckFailed(CampaignError):
    """The campaign may not be sent yet; ``reasons`` says every reason, one per item."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("the campaign cannot be sent: " + "; ".join(reasons))
        self.reasons: list[str] = list(reasons)
