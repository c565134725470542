"""The one Lambda handler behind every queue: SQS batch in, partial batch response out.

Each routed queue has its own function (see ``deploy/template.yaml``), all with
this handler; ``LUNAMAIL_LAMBDA_QUEUE`` names the logical queue (the event
source ARN is the fallback).  Per record: decode the message, run the routed
handler, publish what it returns through the bus (SQS), and report the
record in ``batchItemFailures`` when anything raised, so one bad record never
makes Lambda retry the good ones.  A failing record also gets the queue's
backoff (its visibility is set to the retry delay) and, on its last attempt,
is copied to its dead-letter queue with the error, exactly as the local
worker does; see :mod:`lunamail.adapters.queue.sqs`.  A handler with a batch form
(:func:`lunamail.ports.handlers.batch_handler`: the report's counters) gets the whole
event in one call instead, as the local worker gives it its claims; when that raises,
the records are handled one by one as above.

The wired system (clients, secrets) is built on the first event and kept for
the container's life: cold start pays once, warm invocations pay nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lunamail.adapters.events.eventbridge import message_of
from lunamail.adapters.queue.sqs import SqsQueue, incoming_from_record, logical_name, name_from_arn
from lunamail.domain.messages import from_json
from lunamail.entrypoints.aws.system import build_system, lambda_queue, sqs_prefix
from lunamail.ports.handlers import batch_of
from lunamail.runtime.bootstrap import System
from lunamail.runtime.routing import RoutingError
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

    #: Whether the routed handlers' batch forms may take a whole event (the SES and upload
    #: functions' bodies are not routed messages).
    batch_forms = True

    def handle(self, event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
        system = self.system
        failures: list[dict[str, str]] = []
        records = list(event.get("Records") or [])
        if self.batch_forms and len(records) > 1 and self._batch(system, records):
            return {"batchItemFailures": failures}
        for record in records:
            message_id = str(record.get("messageId", ""))
            try:
                self._record(system, record)
            except Exception:
                failures.append({"itemIdentifier": message_id})
        return {"batchItemFailures": failures}

    def _batch(self, system: System, records: list[Mapping[str, Any]]) -> bool:
        """The records through their handler's batch form (one call per ``max_size``, e.g.
        one transaction for many counter updates), when it has one; True when it ran.  A
        batch that raises, or one with an early copy of a long-delayed message, is left to
        the per-record path (handlers are safe to run twice), so a poison record still
        fails alone, with its own attempts."""
        try:
            name = self._queue_of(system, records[0])
            spec = batch_of(system.router.handler_for_queue(name))
        except (LookupError, RoutingError):
            return False  # the per-record path reports each record
        if spec is None:
            return False
        incoming = [incoming_from_record(name, r) for r in records]
        if any(i.due is not None and i.due > time.time() for i in incoming):
            return False
        try:
            messages = [from_json(message_of(i.received.body)) for i in incoming]
            for start in range(0, len(messages), spec.max_size):
                emitted = spec.handle(messages[start : start + spec.max_size], system.deps)
                if emitted:
                    system.bus.publish(emitted)
        except Exception as exc:
            log.warning("batch of %d on %s failed (%s); each record is tried on its own",
                        len(records), name, describe_error(exc))
            return False
        return True

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
