"""An optional batch form of a handler.

A handler is ``handle(message, deps)``: that is what the routing table names and
what every runtime can call.  A handler may also carry a *batch form*
``handle_batch(messages, deps)`` that does the same work for many messages of its
queue at once (e.g. one transaction for a hundred counter updates).  A runtime
that receives several messages of one queue per call (SQS event source mappings,
the local runtime) may use it; one that does not ignores it.  The batch form must
give the same result as calling the handler once per message, in any grouping,
and stay safe to run twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lunamail.domain.messages import Later, Message
from lunamail.ports.deps import Deps

BatchHandler = Callable[[Sequence[Any], Deps], Sequence[Message | Later] | None]
"""``handle_batch(messages, deps)``: the messages of one queue, in receive order."""

BATCH_ATTR = "__lunamail_batch__"

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class BatchSpec:
    """The batch form of a handler and how many messages it takes per call."""

    handle: BatchHandler
    max_size: int


def batch_handler(batch: BatchHandler, *, max_size: int = 100) -> Callable[[H], H]:
    """Decorate a per-message handler with its batch form::

        @batch_handler(on_opened_batch, max_size=200)
        def on_opened(msg, deps): ...

    The handler itself is returned unchanged (routing and per-message runtimes see
    the same function)."""
    if max_size < 1:
        raise ValueError("max_size must be at least 1")

    def mark(handler: H) -> H:
        setattr(handler, BATCH_ATTR, BatchSpec(batch, max_size))
        return handler

    return mark


def batch_of(handler: Callable[..., Any]) -> BatchSpec | None:
    """The batch form of ``handler``, or None when it has none."""
    spec = getattr(handler, BATCH_ATTR, None)
    return spec if isinstance(spec, BatchSpec) else None


LONG_ATTR = "__lunamail_long__"


def long_running(handler: H) -> H:
    """Mark a handler whose runs may take many seconds (sending a batch over a slow relay).
    A runtime that shares a few handler slots between queues keeps one slot free of such
    handlers, so short ones (a guard trip, a report count) never wait behind them."""
    setattr(handler, LONG_ATTR, True)
    return handler


def is_long_running(handler: Callable[..., Any]) -> bool:
    return bool(getattr(handler, LONG_ATTR, False))
