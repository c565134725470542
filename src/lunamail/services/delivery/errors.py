"""Errors of the delivery service that reach a door (sending domains)."""

from __future__ import annotations

from collections.abc import Mapping


class DeliveryError(Exception):
    """Base of the delivery service's errors."""


class NotFound(DeliveryError):
    """No such sending domain in this account."""


class InvalidInput(DeliveryError):
    """``fields`` maps each offending field to what is wrong."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        detail = "; ".join(f"{k}: {v}" for k, v in (fields or {}).items())
        super().__init__(f"{message} ({detail})" if detail else message)
        self.fields: dict[str, str] = dict(fields or {})
