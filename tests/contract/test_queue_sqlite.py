"""SqliteQueue against the Queue contract, plus what only a file-backed queue can show."""

from __future__ import annotations

import multiprocessing
import sqlite3
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


def _drain_one_by_one(q: SqliteQueue, n: int) -> list[bytes]:
    """What ``n`` claims of one message each get (acked at once, like a worker with one slot)."""
    out = []
    for _ in range(n):
        [m] = q.receive(["send"], max_messages=1)
        out.append(m.body)
        q.ack(m)
    return out


def test_a_backlog_of_one_group_does_not_hold_back_another(tmp_path: Path) -> None:
    with SqliteQueue(tmp_path / "q.db", clock=FakeClock()) as q:
        q.send_many([("send", b"a%d" % i, "a") for i in range(50)])
        q.send_many([("send", b"b%d" % i, "b") for i in range(3)])
        q.send_many([("send", b"c0", "c")])
        got = _drain_one_by_one(q, 10)
        # turns: each group in order of its oldest message, then whoever waited longest
        assert got == [b"a0", b"b0", b"c0", b"a1", b"b1", b"a2", b"b2", b"a3", b"a4", b"a5"]


def test_a_claim_is_shared_between_groups(tmp_path: Path) -> None:
    with SqliteQueue(tmp_path / "q.db", clock=FakeClock()) as q:
        q.send_many([("r", b"a%03d" % i, "a") for i in range(100)])
        q.send_many([("r", b"b%d" % i, "b") for i in range(10)])
        q.send_many([("r", b"c%d" % i, "c") for i in range(3)])
        got = q.receive(["r"], max_messages=30)
        by_group: dict[str, list[bytes]] = {}
        for m in got:
            by_group.setdefault(m.group, []).append(m.body)
        assert {g: len(v) for g, v in by_group.items()} == {"a": 17, "b": 10, "c": 3}
        assert by_group["a"] == [b"a%03d" % i for i in range(17)]  # in order within a group
        # the next claim starts with the group served longest ago ("a" was served first)
        [m] = q.receive(["r"], max_messages=1)
        assert m.group == "a"


def test_turns_are_shared_by_every_process_on_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    with SqliteQueue(tmp_path / "q.db", clock=clock) as one, SqliteQueue(tmp_path / "q.db", clock=clock) as two:
        one.send_many([("send", b"a%d" % i, "a") for i in range(5)])
        one.send_many([("send", b"b%d" % i, "b") for i in range(5)])
        got = [m.group for q in (one, two, one, two, one, two) for m in q.receive(["send"], max_messages=1)]
        assert got == ["a", "b", "a", "b", "a", "b"]


def test_groups_survive_retries_and_dead_letters(tmp_path: Path) -> None:
    clock = FakeClock()
    retry = RetryPolicy(max_attempts=2, base_delay=1, max_delay=1, jitter=0)
    with SqliteQueue(tmp_path / "q.db", clock=clock, retry=retry) as q:
        q.send("a", b"x", group="acct")
        [m] = q.receive(["a"])
        assert not q.fail(m, "boom")
        clock.advance(2)
        [m] = q.receive(["a"])
        assert m.group == "acct"
        assert q.fail(m, "boom again")
        assert q.replay() == 1
        [m] = q.receive(["a"])
        assert (m.body, m.group) == (b"x", "acct")


def test_a_queue_file_from_before_groups_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,"
        " body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, visible_at REAL NOT NULL,"
        " receipt TEXT, enqueued_at REAL NOT NULL, last_error TEXT);"
        "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL,"
        " attempts INTEGER NOT NULL, error TEXT NOT NULL, failed_at REAL NOT NULL,"
        " enqueued_at REAL NOT NULL);"
        "INSERT INTO messages (queue, body, visible_at, enqueued_at) VALUES ('a', X'6f6c64', 0, 0);"
    )
    db.close()
    with SqliteQueue(path) as q:
        q.send("a", b"new", group="g")
        assert {(m.body, m.group) for m in q.receive(["a"])} == {(b"old", ""), (b"new", "g")}
