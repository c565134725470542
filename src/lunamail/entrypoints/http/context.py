"""What every request handler gets: the wired dependencies and a way to publish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from lunamail.app.base import Env
from lunamail.domain.messages import Later, Message
from lunamail.ports.deps import Deps
from lunamail.ports.queue import Queue

Publish = Callable[[Sequence[Message | Later]], Any]


@dataclass
class ApiContext:
    """Shared by all requests of one app.  ``publish`` hands messages to the bus after a
    service call succeeded (the workers do the rest)."""

    deps: Deps
    publish: Publish
    upload_signing_key: bytes | None = None  # checks the signed upload URLs of the files blobs
    queue: Queue | None = None  # for the dead-letter routes (None: an app over bare Deps)
    # The tracking routes' group-commit publisher (``routes_tracking``), made on first use.
    tracking_commit: Any = field(default=None, repr=False, compare=False)

    def emit(self, messages: Sequence[Message | Later]) -> None:
        if messages:
            self.publish(list(messages))

    @property
    def env(self) -> Env:
        """What the application layer's use cases run with."""
        return Env(self.deps, self.emit, queue=self.queue)


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.lunamail
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]
