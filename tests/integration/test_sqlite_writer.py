"""WriterLock: writers of one SQLite file take turns across threads and processes, a dead
holder frees the lock, and a forked child does not inherit its parent's hold.

Real files and real child processes; the waits are bounded and nothing is timed."""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.adapters.queue.sqlite import SqliteQueue
from lunamail.adapters.sqlite_writer import WriterLock
from lunamail.ports.itemstore import Put

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX file locks")

# A child that takes the lock, says so, and keeps it until its stdin closes (or it is killed).
_HOLDER = """
import sys
from lunamail.adapters.sqlite_writer import WriterLock
from lunamail.ports.itemstore import Put
lock = WriterLock(sys.argv[1])
with lock.hold():
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        pytest.fail("the holder did not take the lock")
    assert proc.stdout.readline().strip() == "held"
    return proc


def _try_in_thread(lock: WriterLock) -> tuple[threading.Thread, threading.Event]:
    entered = threading.Event()

    def take() -> None:
        with lock.hold():
            entered.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, entered


def test_threads_take_turns(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "x.db")
    inside: list[int] = []
    overlaps: list[int] = []
    pause = threading.Event()

    def work() -> None:
        for _ in range(50):
            with lock.hold():
                inside.append(1)
                pause.wait(0.0005)  # gives the others every chance to come in too
                if len(inside) > 1:
                    overlaps.append(len(inside))
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == []
    assert lock.path == tmp_path / "x.db-writer" and lock.path.exists()


def test_a_writer_in_another_process_waits_for_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    holder = _holder(db)
    try:
        thread, entered = _try_in_thread(WriterLock(db))
        assert not entered.wait(0.3), "took the lock while another process held it"
        assert holder.stdin is not None
        holder.stdin.close()  # the holder lets go and exits
        assert entered.wait(30)
        thread.join(30)
    finally:
        holder.kill()
        holder.wait(30)


def test_a_killed_holder_frees_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    holder = _holder(db)
    try:
        thread, entered = _try_in_thread(WriterLock(db))
        assert not entered.wait(0.3)
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert entered.wait(30), "a dead process still holds the lock"
        thread.join(30)
    finally:
        holder.kill()
        holder.wait(30)


def test_a_hung_holder_stops_no_writer_for_good(tmp_path: Path) -> None:
    holder = _holder(tmp_path / "q.db")
    try:
        thread, entered = _try_in_thread(WriterLock(tmp_path / "q.db", timeout=0.2))
        assert entered.wait(30), "waited past its timeout for a holder that never lets go"
        thread.join(30)
    finally:
        holder.kill()
        holder.wait(30)


def test_the_queue_and_the_store_wait_for_another_processs_writer(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.db")
    store = SqliteItemStore(tmp_path / "items.db")
    holders = [_holder(tmp_path / "queue.db"), _holder(tmp_path / "items.db")]
    try:
        done = {"send": threading.Event(), "put": threading.Event()}
        threads = [
            threading.Thread(target=lambda: (queue.send("q", b"x"), done["send"].set())),
            threading.Thread(target=lambda: (store.transact([Put({"pk": "p", "sk": "s"})]),
                                             done["put"].set())),
        ]
        for t in threads:
            t.start()
        assert not done["send"].wait(0.3) and not done["put"].is_set(), "wrote past the lock"
        for h in holders:
            assert h.stdin is not None
            h.stdin.close()
        assert done["send"].wait(30) and done["put"].wait(30)
        for t in threads:
            t.join(30)
        assert store.get("p", "s") == {"pk": "p", "sk": "s"}
    finally:
        for h in holders:
            h.kill()
            h.wait(30)
        queue.close()
        store.close()


def _forked_take(lock: WriterLock, took: multiprocessing.synchronize.Event) -> None:
    with lock.hold():
        took.set()


def test_a_forked_child_does_not_share_its_parents_hold(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "q.db")
    ctx = multiprocessing.get_context("fork")
    took = ctx.Event()
    with lock.hold():  # the parent's descriptor is open and locked before the fork
        child = ctx.Process(target=_forked_take, args=(lock, took))
        child.start()
        assert not took.wait(0.3), "the child took a lock its parent holds"
    assert took.wait(30)
    child.join(30)
    assert child.exitcode == 0


def test_in_memory_databases_need_no_file(tmp_path: Path) -> None:
    lock = WriterLock(":memory:")
    with lock.hold():
        pass
    assert lock.path is None


_SENDER = """
import sys
from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.adapters.queue.sqlite import SqliteQueue
q = SqliteQueue(sys.argv[1])
for i in range(int(sys.argv[3])):
    q.send_many([("q", f"{sys.argv[2]}-{i}-{j}".encode()) for j in range(5)])
q.close()
"""


def test_two_processes_writing_one_queue_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    SqliteQueue(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", _SENDER, str(db), name, "150"])
             for name in ("a", "b")]
    queue = SqliteQueue(db)
    try:
        claimed: list[bytes] = []
        pause = threading.Event()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = all(p.poll() is not None for p in procs)
            got = queue.receive(["q"], max_messages=100)
            if got:
                queue.ack_many(got)
                claimed.extend(r.body for r in got)
            elif done:  # both senders exited and nothing is left
                break
            else:
                pause.wait(0.005)
        assert [p.wait(60) for p in procs] == [0, 0]
        expected = {f"{n}-{i}-{j}".encode() for n in "ab" for i in range(150) for j in range(5)}
        assert sorted(claimed) == sorted(expected)
    finally:
        queue.close()
