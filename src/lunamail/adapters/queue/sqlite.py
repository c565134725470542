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
* fair between groups: a claim is shared out round-robin between the fairness
  groups (accounts) with visible messages, the ``(queue, group)`` served longest
  ago first (a small table of turns), so one account's backlog of batches
  cannot hold back another account's; order is kept within a group.

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
from lunamail.ports.queue import DeadLetter, Outgoing, QueueError, Received, RetryPolicy, parts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    visible_at  REAL NOT NULL,
    receipt     TEXT,
    enqueued_at REAL NOT NULL,
    last_error  TEXT,
    grp         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at, queue);
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT NOT NULL,
    failed_at   REAL NOT NULL,
    enqueued_at REAL NOT NULL,
    grp         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (failed_at);
"""

# After the columns exist (files from before groups get them added first).
_FAIR_SCHEMA = """
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (queue, grp, visible_at);
CREATE TABLE IF NOT EXISTS turns (
    queue TEXT NOT NULL,
    grp   TEXT NOT NULL,
    turn  INTEGER NOT NULL,
    PRIMARY KEY (queue, grp)
) WITHOUT ROWID;
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


def _add_groups(db: sqlite3.Connection) -> None:
    """Give a queue file from before fairness groups its ``grp`` columns, index and turns
    (once, under the write lock: other processes may open the file at the same time)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in ("messages", "dead_letters"):
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if "grp" not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN grp TEXT NOT NULL DEFAULT ''")
        for statement in filter(str.strip, _FAIR_SCHEMA.split(";")):
            db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _receipt() -> str:
    return os.urandom(8).hex()


def _key(message_id: str) -> int | None:
    """Ids are the table's integer keys (short for humans to type into ``dlq replay``,
    and twice as fast to delete as random text keys); a foreign id matches nothing."""
    try:
        return int(message_id)
    except ValueError:
        return None


_FIRST_GROUP = (
    "SELECT grp, visible_at FROM messages INDEXED BY messages_by_group WHERE queue = ?"
    " ORDER BY grp, visible_at LIMIT 1"
)
_NEXT_GROUP = (
    "SELECT grp, visible_at FROM messages INDEXED BY messages_by_group WHERE queue = ? AND grp > ?"
    " ORDER BY grp, visible_at LIMIT 1"
)
_PRUNE_EVERY = 256  # claims of one process between prunes of the turns table


def _queue_names(db: sqlite3.Connection) -> list[str]:
    """The queues that hold messages (a skip scan of the group index)."""
    names: list[str] = []
    row = db.execute("SELECT MIN(queue) FROM messages").fetchone()
    while row is not None and row[0] is not None:
        names.append(row[0])
        row = db.execute(
            "SELECT queue FROM messages INDEXED BY messages_by_group WHERE queue > ?"
            " ORDER BY queue LIMIT 1",
            (row[0],),
        ).fetchone()
    return names


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
        self._claims = 0
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
                    _add_groups(db)
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

    def send(self, queue: str, body: bytes, *, delay: float = 0.0, group: str = "") -> str:
        return self.send_many([(queue, body, group)], delay=delay)[0]

    def send_many(self, items: Sequence[Outgoing], *, delay: float = 0.0) -> list[str]:
        if not items:
            return []
        if delay < 0:
            raise ValueError("delay must be >= 0")
        now = self._clock.now()
        visible_at = now + delay
        rows = [(q, bytes(body), visible_at, now, g) for q, body, g in map(parts, items)]
        with self._tx() as db:
            # AUTOINCREMENT keys of one insert run are consecutive while we hold the
            # write lock, so the ids follow from the last one without a query per row.
            db.executemany(
                "INSERT INTO messages (queue, body, attempts, visible_at, enqueued_at, grp)"
                " VALUES (?, ?, 0, ?, ?, ?)",
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
            self._claim_fairly(db, queues, now, max_messages, receipt, visible_at, out)
        return out

    def _claim_fairly(
        self,
        db: sqlite3.Connection,
        queues: Sequence[str] | None,
        now: float,
        max_messages: int,
        receipt: str,
        visible_at: float,
        out: list[Received],
    ) -> None:
        """Share ``max_messages`` between the visible ``(queue, group)`` pairs: equal shares
        in rounds, the pairs served longest ago first (so a claim of one message goes to the
        group whose turn it is), what a pair cannot use going to the others."""
        pending = self._visible_groups(db, queues, now)
        served: dict[tuple[str, str], None] = {}
        while len(out) < max_messages and pending:
            share = max(1, (max_messages - len(out)) // len(pending))
            still = []
            for q, g in pending:
                want = min(share, max_messages - len(out))
                if want <= 0:
                    break
                before = len(out)
                if self._take(db, q, g, now, want, receipt, visible_at, out) == want:
                    still.append((q, g))  # may have more
                if len(out) > before:
                    served[(q, g)] = None
            pending = still
        if served:
            (turn,) = db.execute("SELECT COALESCE(MAX(turn), 0) FROM turns").fetchone()
            db.executemany(
                "INSERT INTO turns (queue, grp, turn) VALUES (?, ?, ?)"
                " ON CONFLICT (queue, grp) DO UPDATE SET turn = excluded.turn",
                [(q, g, int(turn) + i) for i, (q, g) in enumerate(served, 1)],
            )
        self._claims += 1
        if self._claims % _PRUNE_EVERY == 0:  # forget the turns of groups gone quiet
            db.execute(
                "DELETE FROM turns WHERE NOT EXISTS (SELECT 1 FROM messages INDEXED BY"
                " messages_by_group m WHERE m.queue = turns.queue AND m.grp = turns.grp)"
            )

    @staticmethod
    def _visible_groups(
        db: sqlite3.Connection, queues: Sequence[str] | None, now: float
    ) -> list[tuple[str, str]]:
        """The ``(queue, group)`` pairs with a visible message, in serving order: the turn
        they were last served (never: first), then their oldest message.  One index step per
        group (a skip scan), however many messages each group has waiting."""
        names = list(queues) if queues is not None else _queue_names(db)
        found: list[tuple[str, str, float]] = []
        for q in names:
            row = db.execute(_FIRST_GROUP, (q,)).fetchone()
            while row is not None:
                g, oldest = row
                if oldest <= now:
                    found.append((q, g, oldest))
                row = db.execute(_NEXT_GROUP, (q, g)).fetchone()
        if not found:
            return []
        if len(found) == 1:
            return [found[0][:2]]
        turns = {(q, g): t for q, g, t in db.execute("SELECT queue, grp, turn FROM turns")}
        found.sort(key=lambda f: (turns.get((f[0], f[1]), 0), f[2]))
        return [(q, g) for q, g, _ in found]

    def _take(
        self,
        db: sqlite3.Connection,
        q: str,
        g: str,
        now: float,
        want: int,
        receipt: str,
        visible_at: float,
        out: list[Received],
    ) -> int:
        """Claim up to ``want`` of the oldest visible messages of one group of one queue into
        ``out``; returns how many rows were looked at (a poison message is buried, not
        claimed)."""
        rows = db.execute(
            "SELECT id, body, attempts, enqueued_at FROM messages INDEXED BY messages_by_group"
            " WHERE queue = ? AND grp = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?",
            (q, g, now, want),
        ).fetchall()
        claims: list[int] = []
        for mid, body, attempts, enqueued_at in rows:
            if attempts >= self.retry.max_attempts:
                self._bury(db, mid, _TIMED_OUT.format(n=attempts), now)
                continue
            claims.append(mid)
            out.append(Received(str(mid), q, bytes(body), attempts + 1, receipt, enqueued_at, g))
        for part in _chunks(claims):
            db.execute(
                "UPDATE messages SET visible_at = ?, receipt = ?, attempts = attempts + 1"
                f" WHERE id IN ({','.join('?' * len(part))})",
                [visible_at, receipt, *part],
            )
        return len(rows)

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
            " enqueued_at, grp) SELECT id, queue, body, attempts, ?, ?, enqueued_at, grp FROM messages"
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
        select = "SELECT id, queue, body, ?, 0, enqueued_at, grp FROM dead_letters"
        with self._tx() as db:
            if ids is None:
                cur = db.execute(
                    "INSERT OR REPLACE INTO messages (id, queue, body, visible_at, attempts,"
                    f" enqueued_at, grp) {select}",
                    (now,),
                )
                moved = cur.rowcount
                db.execute("DELETE FROM dead_letters")
                return moved
            moved = 0
            for mid in dict.fromkeys(k for k in map(_key, ids) if k is not None):
                cur = db.execute(
                    "INSERT OR REPLACE INTO messages (id, queue, body, visible_at, attempts,"
                    f" enqueued_at, grp) {select} WHERE id = ?",
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
