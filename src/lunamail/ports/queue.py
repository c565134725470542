"""Queue: at-least-once delivery with retries, backoff and a dead-letter queue.

Shaped after SQS: a message is received with a visibility timeout, and comes
back if it is not acknowledged in time (a crashed worker loses nothing).
``fail`` schedules a retry with exponential backoff and jitter; after the
last attempt the message moves to the dead-letter queue with its error.

A message may name a fairness *group* (the account it belongs to), like the
``MessageGroupId`` of an SQS fair queue: receivers share a queue's work between
the groups that have messages waiting instead of serving the oldest first, so one
group's backlog cannot starve another's.  Order is kept within a group only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Outgoing = tuple[str, bytes] | tuple[str, bytes, str]
"""What ``send_many`` takes: ``(queue, body)``, or ``(queue, body, group)`` with a
fairness group."""


def parts(item: Outgoing) -> tuple[str, bytes, str]:
    """``(queue, body, group)`` of an item (group "" when it names none)."""
    return (item[0], item[1], item[2]) if len(item) > 2 else (item[0], item[1], "")


@dataclass(frozen=True)
class Received:
    """One received message.  ``receipt`` is valid until the visibility timeout ends."""

    id: str
    queue: str
    body: bytes
    attempts: int
    receipt: str
    enqueued_at: float
    group: str = ""  # the fairness group it was sent with ("" for none)


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
    def send(self, queue: str, body: bytes, *, delay: float = 0.0, group: str = "") -> str:
        """Enqueue one message; returns its id."""
        ...

    def send_many(self, items: Sequence[Outgoing], *, delay: float = 0.0) -> list[str]:
        """Enqueue several ``(queue, body)`` or ``(queue, body, group)`` items in one
        durable write."""
        ...

    def receive(
        self,
        queues: Sequence[str] | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: float = 30.0,
    ) -> list[Received]:
        """Messages now visible on the named queues (all queues if None), hidden for
        ``visibility_timeout`` seconds.  Returns at once (possibly empty).  The claim is
        shared out between the fairness groups with visible messages, the groups served
        longest ago first."""
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
