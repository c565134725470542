"""The Queue port's contract: every adapter passes these tests unchanged.

An adapter's test module subclasses :class:`QueueContract` and only says how to
build the adapter over a given clock and retry policy.  Time is a FakeClock,
so visibility timeouts, backoff and delays are tested without sleeping.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lunamail.ports.clock import FakeClock
from lunamail.ports.queue import Queue, QueueError, RetryPolicy

MakeQueue = Callable[..., Queue]


class QueueContract(ABC):
    """Subclass as ``TestXxxQueue`` and implement :meth:`build`."""

    @abstractmethod
    def build(self, tmp_path: Path, *, clock: FakeClock, retry: RetryPolicy) -> Queue:
        """A fresh, empty queue (the same ``tmp_path`` may be asked for twice: share it)."""

    # ------------------------------------------------------------ fixtures

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def make(self, tmp_path: Path, clock: FakeClock) -> Iterator[MakeQueue]:
        built: list[Queue] = []

        def make(
            retry: RetryPolicy = RetryPolicy(
                max_attempts=3, base_delay=10, max_delay=100, jitter=0
            ),
        ) -> Queue:
            q = self.build(tmp_path, clock=clock, retry=retry)
            built.append(q)
            return q

        yield make
        for q in built:
            q.close()

    @pytest.fixture
    def q(self, make: MakeQueue) -> Queue:
        return make()

    # ------------------------------------------------------------ send / receive / ack

    def test_send_receive_round_trip(self, q: Queue, clock: FakeClock) -> None:
        mid = q.send("a", b"\x00hello\xff")
        [got] = q.receive(["a"])
        assert (got.id, got.queue, got.body, got.attempts) == (mid, "a", b"\x00hello\xff", 1)
        assert got.enqueued_at == clock.now()
        assert got.receipt

    def test_receive_only_named_queues(self, q: Queue) -> None:
        q.send_many([("a", b"1"), ("b", b"2"), ("c", b"3")])
        assert sorted(m.body for m in q.receive(["a", "c"])) == [b"1", b"3"]
        assert [m.body for m in q.receive(None)] == [b"2"]
        assert q.receive([]) == []

    def test_send_many_returns_ids_in_order(self, q: Queue) -> None:
        ids = q.send_many([("a", b"%d" % i) for i in range(30)])
        assert len(set(ids)) == 30
        got = {m.id: m.body for m in q.receive(["a"], max_messages=100)}
        assert got == {mid: b"%d" % i for i, mid in enumerate(ids)}
        assert q.send_many([]) == []

    def test_max_messages_is_respected(self, q: Queue) -> None:
        q.send_many([("a", b"x")] * 7)
        assert len(q.receive(["a"], max_messages=3)) == 3
        assert len(q.receive(["a"], max_messages=10)) == 4
        assert q.receive(["a"]) == []

    def test_a_message_keeps_its_fairness_group(self, q: Queue) -> None:
        q.send("a", b"1", group="acct-1")
        q.send_many([("a", b"2", "acct-2"), ("a", b"3")])
        got = {m.body: m.group for m in q.receive(["a"], max_messages=10)}
        assert got == {b"1": "acct-1", b"2": "acct-2", b"3": ""}

    def test_ack_removes(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"x")
        [m] = q.receive(["a"], visibility_timeout=5)
        q.ack(m)
        clock.advance(60)
        assert q.receive(["a"]) == []
        assert q.depth().get("a", 0) == 0

    def test_depth_counts_waiting_and_in_flight(self, q: Queue) -> None:
        q.send_many([("a", b"1"), ("a", b"2"), ("b", b"3")])
        q.receive(["a"], max_messages=1)
        assert q.depth() == {"a": 2, "b": 1}

    # ------------------------------------------------------------ visibility

    def test_received_message_is_hidden_until_timeout(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"x")
        [first] = q.receive(["a"], visibility_timeout=30)
        clock.advance(29)
        assert q.receive(["a"]) == []
        clock.advance(1.5)
        [again] = q.receive(["a"])
        assert again.id == first.id
        assert again.attempts == 2
        assert again.receipt != first.receipt

    def test_stale_receipt_ack_is_ignored(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"x")
        [old] = q.receive(["a"], visibility_timeout=1)
        clock.advance(2)
        [new] = q.receive(["a"], visibility_timeout=30)
        q.ack(old)  # the first worker finished late: must not delete the new claim
        assert q.depth() == {"a": 1}
        q.ack(new)
        assert q.depth().get("a", 0) == 0

    def test_extend_keeps_message_hidden(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"x")
        [m] = q.receive(["a"], visibility_timeout=10)
        clock.advance(8)
        q.extend(m, 10)
        clock.advance(8)
        assert q.receive(["a"]) == []
        clock.advance(3)
        assert len(q.receive(["a"])) == 1

    def test_extend_with_stale_receipt_raises(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"x")
        [old] = q.receive(["a"], visibility_timeout=1)
        clock.advance(2)
        q.receive(["a"])
        with pytest.raises(QueueError):
            q.extend(old, 10)

    # ------------------------------------------------------------ delay

    def test_delayed_message_waits(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"later", delay=3 * 3600)
        q.send_many([("a", b"also later")], delay=3 * 3600)
        q.send("a", b"now")
        [now] = q.receive(["a"])
        assert now.body == b"now"
        q.ack(now)
        clock.advance(3 * 3600 - 1)
        assert q.receive(["a"]) == []
        clock.advance(1)
        assert sorted(m.body for m in q.receive(["a"])) == [b"also later", b"later"]
        assert q.depth() == {"a": 2}

    # ------------------------------------------------------------ retries and dead letters

    def test_fail_backs_off_exponentially(self, q: Queue, clock: FakeClock) -> None:
        # policy of the `q` fixture: base 10 s, no jitter, 3 attempts
        q.send("a", b"x")
        [m] = q.receive(["a"])
        assert q.fail(m, "boom 1") is False
        clock.advance(9.9)
        assert q.receive(["a"]) == []
        clock.advance(0.2)
        [m] = q.receive(["a"])
        assert m.attempts == 2
        assert q.fail(m, "boom 2") is False
        clock.advance(19.9)
        assert q.receive(["a"]) == []
        clock.advance(0.2)
        [m] = q.receive(["a"])
        assert m.attempts == 3

    def test_backoff_is_capped(self, make: MakeQueue, clock: FakeClock) -> None:
        q = make(RetryPolicy(max_attempts=50, base_delay=1, max_delay=8, jitter=0.5))
        q.send("a", b"x")
        [m] = q.receive(["a"])
        waits: list[float] = []
        for _ in range(10):
            q.fail(m, "e")
            waited = 0.0
            while not (got := q.receive(["a"])):
                clock.advance(0.25)
                waited += 0.25
            [m] = got
            waits.append(waited)
        # attempt 1: 1 s +/- 50 %, attempt 2: 2 s +/- 50 %, from attempt 4 on: the 8 s cap
        assert 0.5 <= waits[0] <= 1.75
        assert 1.0 <= waits[1] <= 3.25
        assert all(4.0 <= w <= 8.25 for w in waits[3:])

    def test_backoff_is_jittered(self, make: MakeQueue, clock: FakeClock) -> None:
        q = make(RetryPolicy(max_attempts=5, base_delay=1, max_delay=60, jitter=0.5))
        q.send_many([("a", b"%d" % i) for i in range(40)])
        for m in q.receive(["a"], max_messages=40):
            q.fail(m, "e")
        early = 0
        clock.advance(0.5)
        for _ in range(9):
            clock.advance(0.05)
            early += len(q.receive(["a"], max_messages=40, visibility_timeout=300))
        clock.advance(0.6)
        late = len(q.receive(["a"], max_messages=40, visibility_timeout=300))
        # each retry lands somewhere in 0.5 .. 1.5 s, not all at the same instant
        assert early + late == 40
        assert 0 < early < 40

    def test_dead_letter_after_max_attempts_keeps_body_and_error(
        self, q: Queue, clock: FakeClock
    ) -> None:
        mid = q.send("a", b"payload")
        for attempt in range(1, 4):
            [m] = q.receive(["a"])
            assert m.attempts == attempt
            dead = q.fail(m, f"ValueError: boom {attempt}\n  traceback line")
            assert dead is (attempt == 3)
            clock.advance(1000)
        assert q.receive(["a"]) == []
        assert q.depth().get("a", 0) == 0
        [d] = q.dead_letters()
        assert (d.id, d.queue, d.body, d.attempts) == (mid, "a", b"payload", 3)
        assert d.error == "ValueError: boom 3\n  traceback line"
        assert d.failed_at == clock.now() - 1000

    def test_fail_with_stale_receipt_changes_nothing(self, q: Queue, clock: FakeClock) -> None:
        q.send("a", b"x")
        [old] = q.receive(["a"], visibility_timeout=1)
        clock.advance(2)
        [new] = q.receive(["a"], visibility_timeout=30)
        assert q.fail(old, "late failure") is False
        assert q.receive(["a"]) == []  # still hidden under the new claim
        q.ack(new)
        assert q.dead_letters() == []

    def test_message_that_keeps_timing_out_is_dead_lettered(
        self, q: Queue, clock: FakeClock
    ) -> None:
        q.send("a", b"poison")
        for _ in range(3):  # received, never acked nor failed (its worker crashed)
            assert len(q.receive(["a"], visibility_timeout=5)) == 1
            clock.advance(6)
        assert q.receive(["a"]) == []
        [d] = q.dead_letters()
        assert d.body == b"poison"
        assert "visibility timeout" in d.error

    def test_replay_all_resets_attempts(self, q: Queue, clock: FakeClock) -> None:
        self._bury(q, clock, [("a", b"1"), ("b", b"2")])
        assert len(q.dead_letters()) == 2
        assert q.replay() == 2
        assert q.dead_letters() == []
        got = q.receive(None)
        assert sorted((m.queue, m.body, m.attempts) for m in got) == [
            ("a", b"1", 1),
            ("b", b"2", 1),
        ]

    def test_replay_selected_ids(self, q: Queue, clock: FakeClock) -> None:
        self._bury(q, clock, [("a", b"1"), ("a", b"2")])
        first, second = q.dead_letters()
        assert q.replay([first.id, "no-such-id"]) == 1
        assert [d.id for d in q.dead_letters()] == [second.id]
        [m] = q.receive(["a"])
        assert (m.id, m.body) == (first.id, first.body)
        assert q.replay([]) == 0

    def test_dead_letters_limit(self, q: Queue, clock: FakeClock) -> None:
        self._bury(q, clock, [("a", b"%d" % i) for i in range(5)])
        assert len(q.dead_letters(limit=2)) == 2
        assert len(q.dead_letters()) == 5

    # ------------------------------------------------------------ concurrency

    def test_concurrent_receivers_never_share_a_message(self, q: Queue) -> None:
        q.send_many([("a", b"%d" % i) for i in range(400)])
        seen: list[bytes] = []
        lock = threading.Lock()

        def consume() -> None:
            while batch := q.receive(["a"], max_messages=3, visibility_timeout=300):
                with lock:
                    seen.extend(m.body for m in batch)
                for m in batch:
                    q.ack(m)

        threads = [threading.Thread(target=consume) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seen) == sorted(b"%d" % i for i in range(400))
        assert q.depth().get("a", 0) == 0

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _bury(q: Queue, clock: FakeClock, items: list[tuple[str, bytes]]) -> None:
        """Dead-letter every item through the public API (3 failed attempts each)."""
        q.send_many(items)
        while True:
            got = q.receive(None, max_messages=100)
            if not got:
                clock.advance(1000)
                if not (got := q.receive(None, max_messages=100)):
                    return
            for m in got:
                q.fail(m, "boom")
            clock.advance(0.001)
