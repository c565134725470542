"""The local runtime with batch handlers: batches per call, one ack transaction, a poison
message failing (and dead-lettering) alone, per-message handlers alongside, and a queue
without ``ack_many``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lunamail.domain.messages import Command, Message, message
from lunamail.ports.deps import Deps
from lunamail.ports.handlers import batch_handler, batch_of
from lunamail.ports.queue import Queue, Received, RetryPolicy
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Router, queue_name
from lunamail.runtime.worker import Runtime

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1, jitter=0.2)


@message("runtime_batch_test.Item")
class Item(Command):
    n: int
    poison: bool = False


@message("runtime_batch_test.Single")
class Single(Command):
    n: int


class Seen:
    """What the handlers saw (shared by the handler threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[list[int]] = []  # one entry per call (batch or single)
        self.single: list[int] = []

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.single.clear()


SEEN = Seen()


def handle_items(msgs: Sequence[Item], deps: Deps) -> list[Message]:
    with SEEN.lock:
        SEEN.calls.append([m.n for m in msgs])
    if any(m.poison for m in msgs):
        raise ValueError("poison in the batch")
    return []


@batch_handler(handle_items, max_size=50)
def on_item(msg: Item, deps: Deps) -> list[Message]:
    return list(handle_items([msg], deps))


def on_single(msg: Single, deps: Deps) -> list[Message]:
    with SEEN.lock:
        SEEN.single.append(msg.n)
    return []


ROUTER = Router({Item: (on_item,), Single: (on_single,)})


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    SEEN.reset()
    with bootstrap_in(tmp_path, router=ROUTER, retry=FAST_RETRY) as s:
        yield s


def test_a_batch_handler_takes_many_messages_per_call(system: System) -> None:
    assert batch_of(on_item) is not None
    system.bus.publish([Item(account="a", n=i) for i in range(120)] + [Single(account="a", n=i) for i in range(5)])
    runtime = system.runtime(concurrency=4)
    assert runtime.run_until_idle(timeout=30)
    assert system.queue.depth() == {}
    assert sorted(n for call in SEEN.calls for n in call) == list(range(120))
    assert max(len(c) for c in SEEN.calls) == 50  # the handler's max_size
    assert len(SEEN.calls) <= 10
    assert sorted(SEEN.single) == list(range(5))  # per-message handlers run as before
    assert runtime.stats.processed == 125
    assert runtime.stats.failed == 0


def test_a_poison_message_fails_alone_and_is_dead_lettered(system: System) -> None:
    system.bus.publish([Item(account="a", n=i) for i in range(30)] + [Item(account="a", n=-1, poison=True)] +
                       [Item(account="a", n=i) for i in range(30, 60)])
    runtime = system.runtime(concurrency=2)
    assert runtime.run_until(lambda: bool(system.queue.dead_letters()), timeout=30)
    assert runtime.run_until_idle(timeout=30)
    [dead] = system.queue.dead_letters()
    assert dead.queue == queue_name(on_item)
    assert "poison" in dead.error
    assert dead.attempts == FAST_RETRY.max_attempts
    assert system.queue.depth() == {}
    # every good message completed once: alone (its batch held the poison) or in a clean batch
    done = sorted(n for c in SEEN.calls if -1 not in c for n in c)
    assert done == list(range(60))
    assert [len(c) for c in SEEN.calls if -1 in c].count(1) == FAST_RETRY.max_attempts
    assert runtime.stats.processed == 60
    assert runtime.stats.dead_lettered == 1


class NoAckMany:
    """A Queue without the optional ``ack_many`` and ``ack_and_receive`` (e.g. an adapter
    written before them)."""

    def __init__(self, inner: Queue) -> None:
        self.inner = inner
        self.acks = 0

    def __getattr__(self, name: str) -> Any:
        if name in ("ack_many", "ack_and_receive"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def ack(self, msg: Received) -> None:
        self.acks += 1
        self.inner.ack(msg)


def test_a_queue_without_ack_many_gets_one_ack_per_message(system: System) -> None:
    queue = NoAckMany(system.queue)
    assert not hasattr(queue, "ack_many")
    system.bus.publish([Item(account="a", n=i) for i in range(70)])
    runtime = Runtime(queue, ROUTER, system.deps, bus=system.bus, concurrency=2)
    assert runtime.run_until_idle(timeout=30)
    assert queue.acks == 70
    assert system.queue.depth() == {}
    assert sorted(n for call in SEEN.calls for n in call) == list(range(70))


def test_batches_can_be_switched_off(system: System) -> None:
    system.bus.publish([Item(account="a", n=i) for i in range(20)])
    runtime = system.runtime(concurrency=4, batches=False)
    assert runtime.run_until_idle(timeout=30)
    assert all(len(c) == 1 for c in SEEN.calls)
    assert sorted(c[0] for c in SEEN.calls) == list(range(20))


class CountingQueue:
    """The SQLite queue, counting how batches were claimed."""

    def __init__(self, inner: Queue) -> None:
        self.inner = inner
        self.fused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ack_and_receive(self, done: Sequence[Received], queues: Sequence[str] | None = None,
                        **kw: Any) -> list[Received]:
        got: list[Received] = self.inner.ack_and_receive(done, queues, **kw)  # type: ignore[attr-defined]
        self.fused += bool(got)
        return got


def test_a_batch_ack_claims_the_next_batch_of_its_queue(system: System) -> None:
    queue = CountingQueue(system.queue)
    system.bus.publish([Item(account="a", n=i) for i in range(230)])
    runtime = Runtime(queue, ROUTER, system.deps, bus=system.bus, concurrency=4)
    assert runtime.run_until_idle(timeout=30)
    assert system.queue.depth() == {}
    assert sorted(n for call in SEEN.calls for n in call) == list(range(230))
    assert [len(c) for c in SEEN.calls] == [50, 50, 50, 50, 30]
    assert queue.fused == 4  # every batch after the first came with the previous one's ack
    assert runtime.stats.processed == 230
