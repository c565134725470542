"""The embedded durable queue: one SQLite file (WAL) shared by every local process.

Semantics follow SQS so handlers behave the same locally and on AWS:

* at-least-once: ``receive`` claims messages by hiding them until
  ``now + visibility_timeout`` under a fresh receipt token, in one write
  transaction, so two processes never hold the same message at once;
* a message that is not acknowledged in time becomes visible again (a killed
  worker loses nothing);
* ``fail`` retries with exponential backoff and jitter, then dead-letters the
  message with its body and last error; ``replay`` brings it back;
* a message received ``max_attempts`` times without ever being acked or
  failed (it keeps crashing its worker) is dead-lettered on the next receive,
  like SQS's ``maxReceiveCount``, so a poison message cannot loop forever.

Time comes from an injectable :class:`~lunamail.ports.clock.Clock` (wall
clock, since several processes share the file), so tests move time instead of
sleeping.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lunamail.adapters.sqlite_writer import WriterLock
from lunamail.ports.clock import Clock, SystemClock
from lunamail.ports.queue import DeadLetter, QueueError, Received, RetryPolicy

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    visible_at  REAL NOT NULL,
    receipt     TEXT,
    enqueued_at REAL NOT NULL,
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at, queue);
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT NOT NULL,
    failed_at   REAL NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (failed_at);
"""

_TIMED_OUT = (
    "visibility timeout expired on each of {n} attempts without an ack or a failure "
    "(the handler crashed its worker or ran too long)"
)


class _Conn:
    """One thread's connection; closed when its thread ends (the thread-local holding
    it is dropped) or when the queue closes, so short-lived worker threads leak none."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._finalizer = weakref.finalize(self, _close_quietly, db)

    def close(self) -> None:
        self._finalizer()


def _close_quietly(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        db.close()


def _receipt() -> str:
    return os.urandom(8).hex()


def _key(message_id: str) -> int | None:
    """Ids are the table's integer keys (short for humans to type into ``dlq replay``,
    and twice as fast to delete as random text keys); a foreign id matches nothing."""
    try:
        return int(message_id)
    except ValueError:
        return None


_IN_CHUNK = 500  # ids per ``IN (...)``, well under SQLite's limit on bound parameters


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    """``ids`` in slices for one statement each: a statement over many rows is one call
    (one release of the GIL, one step) where ``executemany`` makes one per row, and in a
    busy worker each of those may wait for the GIL behind the handler thread."""
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]


def backoff_delay(policy: RetryPolicy, attempts: int, rng: random.Random) -> float:
    """Delay before the next try after ``attempts`` tries: base * 2^(attempts-1), capped,
    then spread by +/- ``jitter`` so a burst of failures does not retry in lock-step."""
    exp = min(max(attempts - 1, 0), 60)
    delay = min(policy.max_delay, policy.base_delay * (2.0**exp))
    if policy.jitter > 0:
        delay *= 1.0 + policy.jitter * rng.uniform(-1.0, 1.0)
    return max(0.0, min(policy.max_delay, delay))


class SqliteQueue:
    """The Queue port on one SQLite file; safe across threads and processes.

    Each thread gets its own connection (SQLite connections must not be shared
    across threads while in use); every state change is one short write
    transaction, so concurrent processes serialise on SQLite's write lock.
    ``synchronous="NORMAL"`` survives any process crash; pass ``"FULL"`` to
    also survive power loss at the cost of an fsync per commit.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retry: RetryPolicy = RetryPolicy(),
        clock: Clock | None = None,
        rng: random.Random | None = None,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.retry = retry
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._writer = WriterLock(self.path, timeout=busy_timeout)
        self._all: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._closed = False
        self._ready = False
        self._conn()  # create the file and schema now, so errors surface at startup

    # ------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        held: _Conn | None = getattr(self._local, "conn", None)
        if held is not None:
            return held.db
        if self._closed:
            raise QueueError("queue is closed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        if not self._ready:
            # Once per process: switching to WAL and creating tables need the write lock,
            # which per-thread connections opened under load should not wait for.
            with self._all_lock:
                if not self._ready:
                    (mode,) = db.execute("PRAGMA journal_mode").fetchone()
                    if str(mode).lower() != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                    self._ready = True
        held = _Conn(db)
        self._local.conn = held
        with self._all_lock:
            self._all.add(held)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front, so a
        read-then-update inside it cannot race another process.

        Writers queue on a :class:`WriterLock` first (threads, then processes): SQLite's
        own busy handler sleeps 1, 2, 5, 10... ms between tries, which under contention
        (HTTP publishing while workers claim and ack) costs far more than the
        transactions."""
        db = self._conn()
        with self._writer.hold():
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ------------------------------------------------------------ sending

    def send(self, queue: str, body: bytes, *, delay: float = 0.0) -> str:
        return self.send_many([(queue, body)], delay=delay)[0]

    def send_many(self, items: Sequence[tuple[str, bytes]], *, delay: float = 0.0) -> list[str]:
        if not items:
            return []
        if delay < 0:
            raise ValueError("delay must be >= 0")
        now = self._clock.now()
        visible_at = now + delay
        rows = [(q, bytes(body), visible_at, now) for q, body in items]
        with self._tx() as db:
            # AUTOINCREMENT keys of one insert run are consecutive while we hold the
            # write lock, so the ids follow from the last one without a query per row.
            db.executemany(
                "INSERT INTO messages (queue, body, attempts, visible_at, enqueued_at)"
                " VALUES (?, ?, 0, ?, ?)",
                rows,
            )
            (last,) = db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"
            ).fetchone()
        first = int(last) - len(rows) + 1
        return [str(first + i) for i in range(len(rows))]

    # ------------------------------------------------------------ receiving

    def receive(
        self,
        queues: Sequence[str] | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: float = 30.0,
    ) -> list[Received]:
        return self.ack_and_receive(
            (), queues, max_messages=max_messages, visibility_timeout=visibility_timeout
        )

    def ack_and_receive(
        self,
        done: Sequence[Received],
        queues: Sequence[str] | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: float = 30.0,
    ) -> list[Received]:
        """``ack_many(done)`` and ``receive(...)`` in one write transaction.  A worker that
        drains a queue batch after batch then commits once per batch instead of twice:
        on this file every commit also waits for the writers of other processes."""
        if max_messages <= 0 or (queues is not None and not queues):
            self.ack_many(done)
            return []
        now = self._clock.now()
        params: list[object] = [now]
        where = "visible_at <= ?"
        if queues is not None:
            where += f" AND queue IN ({','.join('?' * len(queues))})"
            params.extend(queues)
        db = self._conn()
        # An idle poller asks often: a plain read (no write lock, no transaction) answers
        # "nothing visible" without queueing behind writers of other processes.
        if db.execute(f"SELECT 1 FROM messages WHERE {where} LIMIT 1", params).fetchone() is None:
            self.ack_many(done)
            return []
        out: list[Received] = []
        # One receipt for the whole claim: a fresh random token per receive is all the
        # receipt check needs (it tells this claim from any later one of the same message).
        receipt = _receipt()
        visible_at = now + visibility_timeout
        with self._tx() as db:
            self._delete_acked(db, done)
            while len(out) < max_messages:
                rows = db.execute(
                    f"SELECT id, queue, body, attempts, enqueued_at FROM messages WHERE {where}"
                    " ORDER BY visible_at LIMIT ?",
                    [*params, max_messages - len(out)],
                ).fetchall()
                if not rows:
                    break
                claims: list[tuple[int]] = []
                for mid, q, body, attempts, enqueued_at in rows:
                    if attempts >= self.retry.max_attempts:
                        self._bury(db, mid, _TIMED_OUT.format(n=attempts), now)
                        continue
                    claims.append((mid,))
                    out.append(
                        Received(str(mid), q, bytes(body), attempts + 1, receipt, enqueued_at)
                    )
                for part in _chunks([mid for (mid,) in claims]):
                    db.execute(
                        "UPDATE messages SET visible_at = ?, receipt = ?, attempts = attempts + 1"
                        f" WHERE id IN ({','.join('?' * len(part))})",
                        [visible_at, receipt, *part],
                    )
        return out

    def ack_many(self, msgs: Sequence[Received]) -> None:
        """Ack several messages in one transaction (stale receipts are ignored, as in ``ack``)."""
        if not msgs:
            return
        with self._tx() as db:
            self._delete_acked(db, msgs)

    @staticmethod
    def _delete_acked(db: sqlite3.Connection, msgs: Sequence[Received]) -> None:
        by_receipt: dict[str, list[int]] = {}
        for m in msgs:
            key = _key(m.id)
            if key is not None:
                by_receipt.setdefault(m.receipt, []).append(key)
        for receipt, keys in by_receipt.items():
            for part in _chunks(keys):
                db.execute(
                    f"DELETE FROM messages WHERE receipt = ? AND id IN ({','.join('?' * len(part))})",
                    [receipt, *part],
                )

    def ack(self, msg: Received) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM messages WHERE id = ? AND receipt = ?", (_key(msg.id), msg.receipt)
            )

    def fail(self, msg: Received, error: str) -> bool:
        now = self._clock.now()
        with self._tx() as db:
            row = db.execute(
                "SELECT attempts FROM messages WHERE id = ? AND receipt = ?",
                (_key(msg.id), msg.receipt),
            ).fetchone()
            if row is None:
                return False  # stale receipt: another worker owns the message now
            attempts = int(row[0])
            if attempts >= self.retry.max_attempts:
                self._bury(db, _key(msg.id), error, now)
                return True
            with self._rng_lock:
                delay = backoff_delay(self.retry, attempts, self._rng)
            db.execute(
                "UPDATE messages SET visible_at = ?, receipt = NULL, last_error = ? WHERE id = ?",
                (now + delay, error, _key(msg.id)),
            )
        return False

    def extend(self, msg: Received, visibility_timeout: float) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE messages SET visible_at = ? WHERE id = ? AND receipt = ?",
                (self._clock.now() + visibility_timeout, _key(msg.id), msg.receipt),
            )
            if cur.rowcount == 0:
                raise QueueError(f"message {msg.id}: receipt is no longer valid")

    @staticmethod
    def _bury(db: sqlite3.Connection, mid: int | None, error: str, now: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO dead_letters (id, queue, body, attempts, error, failed_at,"
            " enqueued_at) SELECT id, queue, body, attempts, ?, ?, enqueued_at FROM messages"
            " WHERE id = ?",
            (error, now, mid),
        )
        db.execute("DELETE FROM messages WHERE id = ?", (mid,))

    # ------------------------------------------------------------ dead letters

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        rows = (
            self._conn()
            .execute(
                "SELECT id, queue, body, attempts, error, failed_at FROM dead_letters"
                " ORDER BY failed_at, id LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [DeadLetter(str(r[0]), r[1], bytes(r[2]), r[3], r[4], r[5]) for r in rows]

    def replay(self, ids: Sequence[str] | None = None) -> int:
        now = self._clock.now()
        select = "SELECT id, queue, body, ?, 0, enqueued_at FROM dead_letters"
        with self._tx() as db:
            if ids is None:
                cur = db.execute(
                    "INSERT OR REPLACE INTO messages (id, queue, body, visible_at, attempts,"
                    f" enqueued_at) {select}",
                    (now,),
                )
                moved = cur.rowcount
                db.execute("DELETE FROM dead_letters")
                return moved
            moved = 0
            for mid in dict.fromkeys(k for k in map(_key, ids) if k is not None):
                cur = db.execute(
                    "INSERT OR REPLACE INTO messages (id, queue, body, visible_at, attempts,"
                    f" enqueued_at) {select} WHERE id = ?",
                    (now, mid),
                )
                if cur.rowcount:
                    moved += 1
                    db.execute("DELETE FROM dead_letters WHERE id = ?", (mid,))
            return moved

    # ------------------------------------------------------------ introspection

    def depth(self) -> dict[str, int]:
        rows = (
            self._conn()
            .execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue ORDER BY queue")
            .fetchall()
        )
        return {q: int(n) for q, n in rows}

    def close(self) -> None:
        """Close every thread's connection; later calls raise QueueError."""
        self._closed = True
        with self._all_lock:
            conns = list(self._all)
            self._all = weakref.WeakSet()
        for held in conns:
            held.close()
        self._writer.close()
        self._local = threading.local()

    def __enter__(self) -> SqliteQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteQueue({str(self.path)!r})"
