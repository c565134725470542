"""The local runtime: asyncio consumers that run the routed handlers off the queue.

One poller task claims up to ``concurrency`` messages at a time from every
routed queue and starts one task per message; each task runs the (sync)
handler in a thread, publishes what it returns, then acks.

A handler with a batch form (:func:`lunamail.ports.handlers.batch_handler`) gets
its queue's messages in batches instead, on a lane of its own: one claim of up
to ``max_size`` messages, one call, one publish, one ack transaction (the queue's
optional ``ack_many``).  Batches grow with the backlog: a queue has at most
``batch_parallel`` batches in flight, and what arrives meanwhile waits for the
next claim.  After a batch that was not full, its queue waits ``batch_window`` (50 ms)
before the next claim, so batches grow with the traffic instead of each paying its
fixed costs for a few events.  With a queue that offers ``ack_and_receive``, a full
batch's ack claims its queue's next batch in the same transaction, so a backlog drains
without a poll round per batch.  A batch that raises is retried message by message at once, so a
poison message fails (and dead-letters) alone, with its own attempts.

The poller backs off from ``poll_min`` to ``poll_max`` while idle (CPU ~0) and
is woken at once when a handler of this process publishes (low latency for chains).  Several
processes may consume the same queue file at once: the queue's atomic claim
keeps them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import traceback
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from lunamail.domain.messages import from_json
from lunamail.lib.redact import redact
from lunamail.ports.deps import Deps
from lunamail.ports.handlers import BatchSpec, batch_of, is_long_running
from lunamail.ports.queue import Queue, QueueError, Received
from lunamail.runtime.bus import Bus
from lunamail.runtime.routing import Router

log = logging.getLogger("lunamail.runtime.worker")

MAX_ERROR_CHARS = 8000
TRACEBACK_FRAMES = 6


def describe_error(exc: BaseException) -> str:
    """``"Type: first line"`` then the innermost frames: short enough for a DLQ listing,
    enough to find the failing line."""
    text = str(exc).strip()
    first = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-TRACEBACK_FRAMES))
    rest = [text] if "\n" in text else []
    out = "\n".join([first, *rest, frames.rstrip()]) if frames else "\n".join([first, *rest])
    return redact(out)[:MAX_ERROR_CHARS]  # dead letters and logs never hold a password


@dataclass
class RuntimeStats:
    """Counters since start (updated from handler threads under a lock)."""

    processed: int = 0  # handled and acked
    failed: int = 0  # raised; scheduled for retry or dead-lettered
    dead_lettered: int = 0
    in_flight: int = 0


class Runtime:
    """Runs routed handlers from the queue in this process.

    ``serve()`` blocks until SIGINT/SIGTERM (the ``lunamail worker`` command);
    ``run_until(predicate)`` runs until a condition holds (``--wait`` commands,
    the demo, tests).  Both finish in-flight handlers before returning; a
    second SIGINT exits at once (the queue redelivers what was in flight); a repeated
    SIGTERM does not, as a service manager and ``lunamail serve`` may both send one.
    """

    def __init__(
        self,
        queue: Queue,
        router: Router,
        deps: Deps,
        *,
        bus: Bus | None = None,
        concurrency: int = 4,
        visibility_timeout: float = 120.0,
        poll_min: float = 0.01,
        poll_max: float = 0.2,
        queues: Sequence[str] | None = None,
        batches: bool = True,
        batch_parallel: int = 1,
        batch_threads: int = 1,
        batch_window: float = 0.05,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if visibility_timeout <= 0:
            raise ValueError("visibility_timeout must be positive")
        self.queue = queue
        self.router = router
        self.deps = deps
        self.bus = bus or Bus(queue, router)
        self.concurrency = concurrency
        self.visibility_timeout = visibility_timeout
        self.poll_min = poll_min
        self.poll_max = max(poll_max, poll_min)
        self.queues = list(queues) if queues is not None else router.queues()
        # Queues whose handler has a batch form get claims of their own (``batch_parallel``
        # batches of one queue at most in flight); the rest share per-message claims.
        self.batch_parallel = max(1, batch_parallel)
        self.batch_threads = max(1, batch_threads)
        # After a batch that was not full, its queue is claimed again only this many seconds
        # later (SQS's batching window): while events trickle in, batches grow instead of
        # each costing its claim, transaction and ack for a few events.
        self.batch_window = max(0.0, batch_window)
        self._last_claim: dict[str, tuple[float, bool]] = {}  # queue -> (loop time, full)
        self._batch_specs: dict[str, BatchSpec] = {}
        if batches:
            for q in self.queues:
                spec = batch_of(router.handler_for_queue(q))
                if spec is not None:
                    self._batch_specs[q] = spec
        self._plain_queues = [q for q in self.queues if q not in self._batch_specs]
        # Long-running handlers (batch sends) may hold all but one slot: the last one is for
        # the short handlers (a guard trip must not wait until a batch finishes).
        self._long_queues = [q for q in self._plain_queues if is_long_running(router.handler_for_queue(q))]
        self._short_queues = [q for q in self._plain_queues if q not in self._long_queues]
        self._long_limit = max(1, concurrency - 1) if self._short_queues else concurrency
        self._long_in_flight = 0
        self._batches_in_flight: dict[str, int] = dict.fromkeys(self._batch_specs, 0)
        self.stats = RuntimeStats()
        self._lock = threading.Lock()
        self._idle = False
        self._tasks: set[asyncio.Task[None]] = set()  # handler and batch tasks in flight
        self._stop: asyncio.Event | None = None
        self._handler_pool: ThreadPoolExecutor | None = None
        self._batch_pool: ThreadPoolExecutor | None = None
        self._queue_pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------ public API

    @property
    def idle(self) -> bool:
        """True after a poll found nothing visible while nothing was in flight."""
        return self._idle

    def status_line(self) -> str:
        s = self.stats
        return (
            f"{s.processed} processed, {s.failed} failed, {s.dead_lettered} dead-lettered, "
            f"{s.in_flight} in flight"
        )

    def serve(self, *, on_ready: Callable[[], None] | None = None) -> RuntimeStats:
        """Consume until SIGINT/SIGTERM, then finish in-flight handlers and return.
        ``on_ready`` runs once the signal handlers are in place (a supervisor or test may
        signal from then on without killing the process mid-startup)."""
        asyncio.run(self._serve(on_ready))
        return self.stats

    def run_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float | None = None,
        on_tick: Callable[[], None] | None = None,
        interval: float = 0.15,
    ) -> bool:
        """Run workers in this process until ``predicate()`` is true (checked every
        ``interval`` s, off the event loop; ``on_tick`` is called before each check).
        Returns False when ``timeout`` passed first.  Must not be called from inside a
        running event loop."""
        return asyncio.run(self._run_until(predicate, timeout, on_tick, interval))

    def run_until_idle(self, *, timeout: float | None = None) -> bool:
        """Run until nothing is visible and nothing is in flight.  Delayed messages and
        retries waiting out their backoff do not count as work."""
        return self.run_until(lambda: self.idle, timeout=timeout, interval=0.05)

    async def run(self, stop: asyncio.Event) -> None:
        """The poller: claim, dispatch, back off when idle; drain in-flight on stop."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)

        # Handlers get exactly `concurrency` threads of their own; queue calls (receive,
        # heartbeats) get a separate pair, so a heartbeat never waits behind slow handlers
        # (the loop's default pool has only cpu+4 threads).
        self._handler_pool = ThreadPoolExecutor(self.concurrency, "lunamail-handler")
        self._queue_pool = ThreadPoolExecutor(2, "lunamail-queue")
        # Batch handlers get a lane of their own (one thread by default): they write many
        # items per call, and two of them at once in one process mostly wait for each
        # other's store transactions (and for the GIL) instead of adding throughput.
        self._batch_pool = ThreadPoolExecutor(self.batch_threads, "lunamail-batch")
        remove_listener = self.bus.on_publish(notify)
        stopping = asyncio.ensure_future(stop.wait())
        self._stop = stop
        in_flight = self._tasks
        delay = self.poll_min
        try:
            while not stop.is_set():
                free = self.concurrency - len(in_flight)
                if free <= 0:
                    await asyncio.wait({*in_flight, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                wake.clear()
                busy = {q for q, n in self._batches_in_flight.items() if n >= self.batch_parallel}
                now = loop.time()
                held = {q: t + self.batch_window - now for q, (t, full) in self._last_claim.items()
                        if not full and now - t < self.batch_window}
                busy.update(held)
                claimed: list[tuple[str | None, list[Received]]] = []
                if self._plain_queues or len(busy) < len(self._batch_specs):
                    try:
                        claimed = await loop.run_in_executor(
                            self._queue_pool, partial(self._claim, free, busy)
                        )
                    except Exception:
                        log.exception("receive failed; retrying in %.1fs", self.poll_max)
                if claimed:
                    self._idle = False
                    delay = self.poll_min
                    for queue, recs in claimed:
                        if queue is None:
                            for rec in recs:
                                self._start(self._handle(rec))
                        else:
                            self._start_batch(queue, recs)
                    continue
                # A batch queue skipped as busy was not asked, so it may hold work: not idle.
                self._idle = not in_flight and not busy
                woken = asyncio.ensure_future(wake.wait())
                # A batch queue at its limit is polled again as soon as a batch finishes.
                waits = {woken, stopping, *(in_flight if busy else ())}
                timeout = min(delay, *held.values()) if held else delay
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                delay = min(delay * 2, self.poll_max)
        finally:
            remove_listener()
            stopping.cancel()
            if in_flight:
                log.info("finishing %d in-flight handler(s)", len(in_flight))
            while in_flight:  # a batch that claimed its successor before the stop adds a task
                await asyncio.gather(*in_flight, return_exceptions=True)
            for pool in (self._handler_pool, self._queue_pool, self._batch_pool):
                pool.shutdown(wait=False)  # idle by now; a cancelled heartbeat may still finish

    # ------------------------------------------------------------ internals

    async def _serve(self, on_ready: Callable[[], None] | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            received.append(signum)
            if len(received) == 1:
                log.info("stopping after %d in-flight handler(s)", self.stats.in_flight)
                stop.set()
            elif signum == signal.SIGINT:  # Ctrl-C again: leave now; the queue redelivers
                os._exit(128 + signum)
            else:  # another SIGTERM (a service manager and a supervisor both sent one)
                log.info("already stopping; Ctrl-C (SIGINT) to leave at once")

        installed: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal, int(sig))
                installed.append(sig)
        if on_ready is not None:
            on_ready()
        try:
            await self.run(stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _run_until(
        self,
        predicate: Callable[[], bool],
        timeout: float | None,
        on_tick: Callable[[], None] | None,
        interval: float,
    ) -> bool:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop))
        deadline = None if timeout is None else loop.time() + timeout
        met = False
        try:
            while True:
                if on_tick is not None:
                    on_tick()
                if await asyncio.to_thread(predicate):
                    met = True
                    break
                if runner.done() or (deadline is not None and loop.time() >= deadline):
                    break
                await asyncio.wait({runner}, timeout=interval)
        finally:
            stop.set()
            await runner
        return met

    def _claim(
        self, free: int, busy: set[str]
    ) -> list[tuple[str | None, list[Received]]]:
        """One poll round (in a queue thread): a batch from each batch queue with room, then
        up to the remaining slots of per-message work.  ``(None, recs)`` is per-message."""
        out: list[tuple[str | None, list[Received]]] = []
        for queue, spec in self._batch_specs.items():
            if free <= 0:
                break
            if queue in busy:
                continue
            recs = self.queue.receive(
                [queue], max_messages=spec.max_size, visibility_timeout=self.visibility_timeout
            )
            if recs:
                out.append((queue, recs))
                free -= 1
        if free > 0 and self._short_queues:
            recs = self.queue.receive(
                self._short_queues, max_messages=free, visibility_timeout=self.visibility_timeout
            )
            if recs:
                out.append((None, recs))
                free -= len(recs)
        with self._lock:
            room = min(free, self._long_limit - self._long_in_flight)
        if room > 0 and self._long_queues:
            recs = self.queue.receive(
                self._long_queues, max_messages=room, visibility_timeout=self.visibility_timeout
            )
            if recs:
                with self._lock:
                    self._long_in_flight += len(recs)
                out.append((None, recs))
        return out

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as an in-flight task (the poller waits for these, and drains them
        on stop)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_batch(self, queue: str, recs: list[Received]) -> None:
        """Count the batch against its queue's ``batch_parallel`` now, not when its task
        first runs: a poll round in between must see the queue busy."""
        self._batches_in_flight[queue] += 1
        spec = self._batch_specs[queue]
        self._last_claim[queue] = (asyncio.get_running_loop().time(), len(recs) >= spec.max_size)
        self._start(self._handle_batch(queue, spec, recs))

    async def _handle_batch(self, queue: str, spec: BatchSpec, recs: list[Received]) -> None:
        finished = threading.Event()
        beat = asyncio.create_task(self._heartbeat_batch(recs, finished))
        with self._lock:
            self.stats.in_flight += len(recs)
        try:
            following = await asyncio.get_running_loop().run_in_executor(
                self._batch_pool, self._process_batch, spec, recs, finished
            )
            if following:  # claimed with this batch's ack: its queue's next batch
                self._start_batch(queue, following)
        except Exception:
            log.exception("queue error while settling a batch of %d on %s", len(recs), queue)
        finally:
            finished.set()
            beat.cancel()
            self._batches_in_flight[queue] -= 1
            with self._lock:
                self.stats.in_flight -= len(recs)

    def _process_batch(
        self, spec: BatchSpec, recs: list[Received], finished: threading.Event
    ) -> list[Received]:
        """Decode, handle the batch, publish, ack all in one go (in a worker thread).  When
        the batch raises, each message is retried on its own right away (handlers are safe
        to run twice), so only the messages that fail alone are failed, with their own
        attempts and dead-lettering.

        After a full batch (a backlog), with a queue that can (``ack_and_receive``), the
        ack's transaction also claims the queue's next batch, which is returned to be
        handled at once: a backlog drains with one queue transaction per batch, and its
        claims never wait for the poller (nor compete with the handler thread for the GIL).
        After a smaller batch the poller claims the next one, after ``batch_window``."""
        try:
            messages = [from_json(rec.body) for rec in recs]
            emitted = spec.handle(messages, self.deps)
            if emitted:
                self.bus.publish(emitted)
        except Exception as exc:
            if len(recs) == 1:
                finished.set()
                self._settle_failure(recs[0], exc)
                return []
            log.warning(
                "batch of %d on %s failed (%s); retrying its messages one by one",
                len(recs), recs[0].queue, describe_error(exc).splitlines()[0],
            )
            for rec in recs:
                try:
                    self._process(rec, threading.Event())
                except Exception:
                    log.exception("queue error while settling message %s on %s", rec.id, rec.queue)
            return []
        finished.set()
        following: list[Received] = []
        ack_and_receive = getattr(self.queue, "ack_and_receive", None)
        ack_many = getattr(self.queue, "ack_many", None)
        stopping = self._stop is not None and self._stop.is_set()
        if callable(ack_and_receive) and len(recs) >= spec.max_size and not stopping:
            following = ack_and_receive(
                recs, [recs[0].queue], max_messages=spec.max_size,
                visibility_timeout=self.visibility_timeout,
            )
        elif callable(ack_many):
            ack_many(recs)
        else:
            for rec in recs:
                self.queue.ack(rec)
        with self._lock:
            self.stats.processed += len(recs)
        return following

    async def _handle(self, rec: Received) -> None:
        finished = threading.Event()
        beat = asyncio.create_task(self._heartbeat(rec, finished))
        with self._lock:
            self.stats.in_flight += 1
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._handler_pool, self._process, rec, finished
            )
        except Exception:
            # ack/fail itself failed: the message reappears after its visibility timeout
            log.exception("queue error while settling message %s on %s", rec.id, rec.queue)
        finally:
            finished.set()
            beat.cancel()
            with self._lock:
                self.stats.in_flight -= 1
                if rec.queue in self._long_queues:
                    self._long_in_flight -= 1

    async def _heartbeat(self, rec: Received, finished: threading.Event) -> None:
        """Keep the message hidden while its handler runs longer than a fraction of the
        visibility timeout, so a slow handler is not mistaken for a dead one."""
        every = max(self.visibility_timeout / 3.0, 0.05)
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._queue_pool, self.queue.extend, rec, self.visibility_timeout
                )
            except QueueError:
                if not finished.is_set():
                    log.warning("lost message %s on %s: its receipt expired", rec.id, rec.queue)
                return
            except Exception:
                log.exception("heartbeat for %s failed", rec.id)

    async def _heartbeat_batch(self, recs: list[Received], finished: threading.Event) -> None:
        """:meth:`_heartbeat` for a whole batch: one task, the receipts extended in turn."""
        every = max(self.visibility_timeout / 3.0, 0.05)
        live = list(recs)
        loop = asyncio.get_running_loop()
        while live:
            await asyncio.sleep(every)
            kept = []
            for rec in live:
                try:
                    await loop.run_in_executor(
                        self._queue_pool, self.queue.extend, rec, self.visibility_timeout
                    )
                    kept.append(rec)
                except QueueError:
                    if not finished.is_set():
                        log.warning("lost message %s on %s: its receipt expired", rec.id, rec.queue)
                except Exception:
                    log.exception("heartbeat for %s failed", rec.id)
                    kept.append(rec)
            live = kept

    def _settle_failure(self, rec: Received, exc: BaseException) -> None:
        """Retry later or dead-letter ``rec`` after its handler raised ``exc``."""
        error = describe_error(exc)
        dead = self.queue.fail(rec, error)
        with self._lock:
            self.stats.failed += 1
            self.stats.dead_lettered += int(dead)
        log.log(
            logging.ERROR if dead else logging.WARNING,
            "%s on %s (attempt %d)%s: %s",
            rec.id,
            rec.queue,
            rec.attempts,
            " dead-lettered" if dead else "",
            error.splitlines()[0],
        )

    def _process(self, rec: Received, finished: threading.Event) -> None:
        """Decode, handle, publish, ack (runs in a worker thread)."""
        try:
            message = from_json(rec.body)
            handler = self.router.handler_for_queue(rec.queue)
            emitted = handler(message, self.deps)
            if emitted:
                self.bus.publish(emitted)
        except Exception as exc:
            finished.set()
            self._settle_failure(rec, exc)
            return
        finished.set()
        self.queue.ack(rec)
        with self._lock:
            self.stats.processed += 1
