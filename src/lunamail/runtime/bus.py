"""The bus: turns published messages into queue entries, one per consuming handler."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from lunamail.domain.messages import Later, Message
from lunamail.ports.events import EventPublisher
from lunamail.ports.queue import Outgoing, Queue
from lunamail.runtime.routing import Router

log = logging.getLogger("lunamail.runtime.bus")


class Bus:
    """Fan-out publisher over the Queue port.

    Every message of one ``publish`` call goes out in a single ``send_many``,
    so a handler's emitted events become durable together (all or none).
    Each queue entry names its message's account as its fairness group: a worker
    shares its claims between accounts, so one account's backlog (a huge or hostile
    campaign) never holds back another account's sending or reporting.
    A message nobody consumes is dropped on purpose (events are facts; having
    no listener yet is normal) and only counted.

    With an ``events`` publisher (EventBridge on AWS), an undelayed event is put on the
    event bus once and the bus's rules carry it to each consumer's queue; commands and
    delayed messages still go straight to the queues.  Those are then two writes, each
    all-or-none: a failure raises, and the handler's retry publishes both again.
    """

    def __init__(self, queue: Queue, router: Router, events: EventPublisher | None = None) -> None:
        self.queue = queue
        self.router = router
        self.events = events
        self.dropped = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def publish(
        self, messages: Message | Later | Iterable[Message | Later], delay: float = 0.0
    ) -> list[str]:
        """Enqueue each message for each consumer; returns the queue entry ids.

        A :class:`Later` item is delayed by its own ``delay`` (added to ``delay``).
        Items sharing a delay go out in one ``send_many``; distinct delays need one call
        each, since a queue write has one delay (a retried handler re-publishes anyway).
        """
        if isinstance(messages, Message | Later):
            messages = (messages,)
        groups: dict[float, list[Outgoing]] = {}
        on_bus: list[tuple[str, bytes]] = []
        dropped = 0
        for item in messages:
            msg, extra = (item.message, item.delay) if isinstance(item, Later) else (item, 0.0)
            handlers = self.router.handlers_for(msg)
            if not handlers:
                dropped += 1
                log.debug("no consumer for %s; dropped", msg.NAME)
                continue
            body = msg.to_json()
            wait = max(0.0, delay + extra)
            if self.events is not None and msg.KIND == "event" and wait == 0.0:
                on_bus.append((msg.NAME, body))
                continue
            group = groups.setdefault(wait, [])
            group.extend((self.router.queue_name(h), body, msg.account) for h in handlers)
        if dropped:
            with self._lock:
                self.dropped += dropped
        ids: list[str] = []
        for wait, items in groups.items():
            ids.extend(self.queue.send_many(items, delay=wait))
        if on_bus and self.events is not None:
            ids.extend(self.events.put(on_bus))
        if 0.0 in groups:
            for notify in tuple(self._listeners):
                notify()
        return ids

    def on_publish(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each immediate publish (the local runtime uses it to
        wake its idle poller); returns a function that removes the listener."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove
