"""Pacer: hands out send slots so all workers together never exceed the sending rate."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Pacer(Protocol):
    def reserve(self, n: int) -> tuple[float, float]:
        """Reserve ``n`` send slots: returns ``(start, spacing)`` in wall-clock seconds;
        the caller sends slot i at ``start + i * spacing`` (never earlier).  Unlimited
        pacing returns ``(now, 0.0)``."""
        ...

    def throttled(self) -> None:
        """The provider said slow down (421/454, SES Throttling): lower the rate for a while."""
        ...

    def current_rate(self) -> float:
        """Sends per second the schedule currently allows (0 = unlimited)."""
        ...
