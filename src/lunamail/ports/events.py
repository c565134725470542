"""EventPublisher: domain events to an event bus that routes them to their consumers.

On AWS it is EventBridge: one rule per consuming handler carries each event type into
that handler's queue, so the publisher sends an event once, whoever listens.  Without
one (the local runtime) the bus fans events out onto the queue itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class EventPublisher(Protocol):
    def put(self, events: Sequence[tuple[str, bytes]]) -> list[str]:
        """Publish ``(message name, message JSON)`` pairs; returns the bus's event ids.
        Raises when any of them could not be published (callers retry the whole call:
        consumers are idempotent)."""
        ...

    def close(self) -> None:
        ...
