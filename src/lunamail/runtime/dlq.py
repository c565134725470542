"""Dead-letter views for operators: what failed, where, how often, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from lunamail.ports.queue import DeadLetter, Queue


@dataclass(frozen=True)
class DeadLetterView:
    """One dead letter as the CLI and API show it (the body stays in the queue)."""

    id: str
    queue: str
    message: str  # the message NAME from the body, or "?" when it cannot be read
    account: str
    attempts: int
    error: str  # the first line; ``detail`` has the short traceback
    detail: str
    failed_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def view(dead: DeadLetter) -> DeadLetterView:
    name, account = "?", ""
    try:
        doc = orjson.loads(dead.body)
        name = str(doc.get("name") or "?")
        account = str((doc.get("body") or {}).get("account") or "")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    lines = dead.error.splitlines() or [""]
    return DeadLetterView(
        id=dead.id,
        queue=dead.queue,
        message=name,
        account=account,
        attempts=dead.attempts,
        error=lines[0],
        detail=dead.error,
        failed_at=dead.failed_at,
    )


def list_dead_letters(queue: Queue, *, limit: int = 100) -> list[DeadLetterView]:
    return [view(d) for d in queue.dead_letters(limit=limit)]

