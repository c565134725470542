"""Queue: at-least-once delivery with retries, backoff and a dead-letter queue.

Shaped after SQS: a message is received with a visibility timeout, and comes
back if it is not acknowledged in time (a crashed worker loses nothing).
``fail`` schedules a retry with exponential backoff and jitter; after the
last attempt the message moves to the dead-letter queue with its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Received:
    """One received message.  ``receipt`` is valid until the visibility timeout ends."""

    id: str
    queue: str
    body: bytes
    attempts: int
    receipt: str
    enqueued_at: float


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    body: bytes
    attempts: int
    error: str
    failed_at: float


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.5  # fraction of the delay drawn at random, so retries spread out


class QueueError(Exception):
    """Base of queue errors (e.g. an expired receipt)."""


@runtime_checkable
class Queue(Protocol):
    def send(self, queue: str, body: bytes, *, delay: float = 0.0) -> str:
        """Enqueue one message; returns its id."""
        ...

    def send_many(self, items: Sequence[tuple[str, bytes]], *, delay: float = 0.0) -> list[str]:
        """Enqueue several (queue, body) pairs in one durable write."""
        ...

    def receive(
        self,
        queues: Sequence[str] | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: float = 30.0,
    ) -> list[Received]:
        """Messages now visible on the named queues (all queues if None), hidden for
        ``visibility_timeout`` seconds.  Returns at once (possibly empty)."""
        ...

    def ack(self, msg: Received) -> None:
        """Done: remove the message.  A stale receipt is ignored (another worker has it)."""
        ...

    def fail(self, msg: Received, error: str) -> bool:
        """Retry later with backoff, or dead-letter after the last attempt.
        Returns True when the message was dead-lettered."""
        ...

    def extend(self, msg: Received, visibility_timeout: float) -> None:
        """Keep a long-running message hidden for longer (heartbeat)."""
        ...

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        ...

    def replay(self, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all if ``ids`` is None) back to their queue with attempts reset."""
        ...

    def depth(self) -> dict[str, int]:
        """Messages waiting or in flight per queue (not counting dead letters)."""
        ...

    def close(self) -> None:
        ...
