"""The one Lambda handler behind every queue: SQS batch in, partial batch response out.

Each routed queue has its own function (see ``deploy/template.yaml``), all with
this handler; ``LUNAMAIL_LAMBDA_QUEUE`` names the logical queue (the event
source ARN is the fallback).  Per record: decode the message, run the routed
handler, publish what it returns through the bus (SQS), and report the
record in ``batchItemFailures`` when anything raised, so one bad record never
makes Lambda retry the good ones.  A failing record also gets the queue's
backoff (its visibility is set to the retry delay) and, on its last attempt,
is copied to its dead-letter queue with the error, exactly as the local
worker does; see :mod:`lunamail.adapters.queue.sqs`.

The wired system (clients, secrets) is built on the first event and kept for
the container's life: cold start pays once, warm invocations pay nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from lunamail.adapters.events.eventbridge import message_of
from lunamail.adapters.queue.sqs import SqsQueue, logical_name, name_from_arn
from lunamail.domain.messages import from_json
from lunamail.entrypoints.aws.system import build_system, lambda_queue, sqs_prefix
from lunamail.runtime.bootstrap import System
from lunamail.runtime.worker import describe_error

log = logging.getLogger("lunamail.entrypoints.aws")


class SqsApp:
    """Holds one container's system; ``handle`` is the Lambda entry."""

    def __init__(self, build: Callable[[], System] = build_system) -> None:
        self._build = build
        self._system: System | None = None
        self._lock = threading.Lock()

    @property
    def system(self) -> System:
        with self._lock:
            if self._system is None:
                self._system = self._build()
            return self._system

    def reset(self) -> None:
        """Close and forget the system (tests; a new one is built on the next event)."""
        with self._lock:
            system, self._system = self._system, None
        if system is not None:
            system.close()

    def handle(self, event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
        system = self.system
        failures: list[dict[str, str]] = []
        for record in event.get("Records") or []:
            message_id = str(record.get("messageId", ""))
            try:
                self._record(system, record)
            except Exception:
                failures.append({"itemIdentifier": message_id})
        return {"batchItemFailures": failures}

    def _queue_of(self, system: System, record: Mapping[str, Any]) -> str:
        configured = lambda_queue(system.settings)
        if configured:
            return configured
        arn = str(record.get("eventSourceARN", ""))
        name = logical_name(sqs_prefix(system.settings), name_from_arn(arn))
        if name is None:
            raise LookupError(f"cannot tell the logical queue of {arn!r}")
        return name

    def _record(self, system: System, record: Mapping[str, Any]) -> None:
        queue = system.queue
        if not isinstance(queue, SqsQueue):
            raise TypeError("the AWS entrypoint needs the SQS queue adapter")
        name = self._queue_of(system, record)
        received = queue.received_from_record(record, name)
        if received is None:
            return  # an early copy of a long-delayed message: re-delayed, done
        try:
            message = from_json(message_of(received.body))  # events arrive from EventBridge
            handler = system.router.handler_for_queue(name)
            emitted = handler(message, system.deps)
            if emitted:
                system.bus.publish(emitted)
        except Exception as exc:
            error = describe_error(exc)
            try:
                dead = queue.fail(received, error)
            except Exception:
                log.exception("could not schedule the retry of %s on %s", received.id, name)
                dead = False
            log.log(
                logging.ERROR if dead else logging.WARNING,
                "%s on %s (attempt %d)%s: %s",
                received.id,
                name,
                received.attempts,
                " dead-lettered" if dead else "",
                error,
            )
            raise


_app = SqsApp()


def sqs_handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda entry for every queue's function (``lunamail.entrypoints.aws.sqs_handler``)."""
    return _app.handle(event, context)


def reset() -> None:
    """Forget this container's system (tests change the environment between events)."""
    _app.reset()
