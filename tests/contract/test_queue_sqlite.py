"""SqliteQueue against the Queue contract, plus what only a file-backed queue can show."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from lunamail.adapters.queue.sqlite import SqliteQueue
from lunamail.ports.clock import FakeClock
from lunamail.ports.queue import Queue, QueueError, RetryPolicy

try:  # works whether or not tests/contract is a package
    from .queue_contract import QueueContract
except ImportError:
    from queue_contract import QueueContract  # type: ignore[no-redef]


class TestSqliteQueue(QueueContract):
    def build(self, tmp_path: Path, *, clock: FakeClock, retry: RetryPolicy) -> Queue:
        return SqliteQueue(tmp_path / "queue.db", retry=retry, clock=clock)


def test_messages_and_dead_letters_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SqliteQueue(path, retry=RetryPolicy(max_attempts=1)) as q:
        q.send("a", b"kept")
        q.send("b", b"doomed")
        [m] = q.receive(["b"])
        assert q.fail(m, "RuntimeError: no") is True
    with SqliteQueue(path) as q:
        assert [m.body for m in q.receive(["a"])] == [b"kept"]
        assert [(d.body, d.error) for d in q.dead_letters()] == [(b"doomed", "RuntimeError: no")]


def _drain(path: str, out: multiprocessing.Queue[list[bytes]]) -> None:
    seen: list[bytes] = []
    with SqliteQueue(path) as q:
        while batch := q.receive(["work"], max_messages=5, visibility_timeout=300):
            for m in batch:
                seen.append(m.body)
                q.ack(m)
    out.put(seen)


def test_processes_never_share_a_message(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SqliteQueue(path) as q:
        q.send_many([("work", b"%d" % i) for i in range(600)])
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[bytes]] = ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(str(path), out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    seen = [body for r in results for body in r]
    assert sorted(seen) == sorted(b"%d" % i for i in range(600))


def test_closed_queue_refuses_work(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db")
    q.close()
    with pytest.raises(QueueError, match="closed"):
        q.send("a", b"x")


def test_ack_and_receive_acks_and_claims_in_one_go(tmp_path: Path) -> None:
    clock = FakeClock()
    with SqliteQueue(tmp_path / "q.db", clock=clock) as q:
        q.send_many([("a", b"%d" % i) for i in range(5)] + [("b", b"other")])
        first = q.receive(["a"], max_messages=2, visibility_timeout=30)
        nxt = q.ack_and_receive(first, ["a"], max_messages=2, visibility_timeout=30)
        assert [m.body for m in nxt] == [b"2", b"3"]
        assert q.depth() == {"a": 3, "b": 1}  # the first two are gone, the next two hidden
        last = q.ack_and_receive(nxt, ["a"], max_messages=10, visibility_timeout=30)
        assert [m.body for m in last] == [b"4"]
        assert q.ack_and_receive(last, ["a"], max_messages=10) == []  # nothing left: acks alone
        assert q.depth() == {"b": 1}


def test_ack_and_receive_ignores_a_stale_receipt(tmp_path: Path) -> None:
    clock = FakeClock()
    with SqliteQueue(tmp_path / "q.db", clock=clock) as q:
        q.send("a", b"x")
        [old] = q.receive(["a"], visibility_timeout=1)
        clock.advance(2)
        assert [m.body for m in q.receive(["a"], visibility_timeout=30)] == [b"x"]  # redelivered
        q.send("a", b"y")
        # the first worker finished late: its ack must not delete the new claim
        assert [m.body for m in q.ack_and_receive([old], ["a"], visibility_timeout=30)] == [b"y"]
        assert q.depth() == {"a": 2}
