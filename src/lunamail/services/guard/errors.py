"""Errors of the guard service (the HTTP layer maps them by class name)."""

from __future__ import annotations

from collections.abc import Mapping


class GuardError(Exception):
    """Base of this service's errors."""


class InvalidInput(GuardError):
    """Bad thresholds; ``fields`` maps each offending field to what is wrong."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        detail = "; ".join(f"{k}: {v}" for k, v in (fields or {}).items())
        super().__init__(f"{message} ({detail})" if detail else message)
        self.fields: dict[str, str] = dict(fields or {})
