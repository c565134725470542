"""SqliteItemStore: the embedded ItemStore, one WAL-mode SQLite file.

Items live in a rowid table with a UNIQUE index on (partition, sk): a
partition is a contiguous range of that index, so a query is an index range
scan, and a put appends the (large) row to the table and inserts a (small)
entry into the index.  Keyed by (pk, sk) WITHOUT ROWID instead, every
random-order insert lands in a B-tree whose rows carry the whole item, which
splits pages and dirties one ~4 KB page per item per commit; a million-row
import in random key order was four times slower that way.

The index holds a small integer per partition (table ``partitions``) rather
than the pk text, and the stored value leaves out pk and sk (the columns hold
them): index entries half as long and rows ~60 bytes shorter mean fewer pages
to split, dirty and write back.  Partition rows are never deleted, so an id
once committed stays right for every process; a thread caches only ids that
it read from the file or whose transaction committed (an id created in a
transaction that rolls back may be handed to another pk later).

Each thread (and each process) gets its own connection; read-modify-write
operations run under ``BEGIN IMMEDIATE`` so they are atomic across threads and
processes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lunamail.adapters.sqlite_writer import WriterLock
from lunamail.ports.clock import Clock, SystemClock
from lunamail.ports.itemstore import (
    IF_ABSENT,
    Check,
    Condition,
    ConditionFailed,
    Delete,
    Item,
    Page,
    Put,
    TransactionCancelled,
    Update,
    ValidationError,
    WriteOp,
)

from . import _limits
from ._logic import (
    BodyEncoder,
    apply_update,
    bounds,
    condition_holds,
    decode_body,
    decode_cursor,
    encode_cursor,
    vouched,
)

# Version 2 of the file layout: items keyed by (partition id, sk), values without the key.
# Version 1 keyed the items by (pk, sk) text; version 0 was one WITHOUT ROWID table.
_LAYOUT = 2
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS partitions (id INTEGER PRIMARY KEY, pk TEXT NOT NULL UNIQUE)",
    """CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    part INTEGER NOT NULL,
    sk TEXT NOT NULL,
    data BLOB NOT NULL,
    ttl INTEGER
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (part, sk)",
)
_REPLACE = "INSERT OR REPLACE INTO items (part, sk, data, ttl) VALUES (?, ?, ?, ?)"
# Insert unless a live item holds the key: an expired item counts as absent.
_INSERT_IF_ABSENT = (
    "INSERT INTO items (part, sk, data, ttl) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (part, sk) DO UPDATE SET data = excluded.data, ttl = excluded.ttl "
    "WHERE items.ttl IS NOT NULL AND items.ttl < {now}"
)
_DELETE = "DELETE FROM items WHERE part = ? AND sk = ?"
_Row = tuple[int, str, bytes, int | None]
_PAGE_SIZE = 16384  # bytes per page of a new file (SQLite's default is 4096)
_CHUNK = 500  # bound parameters per IN (...) query, well under SQLite's limit


class _Expired(Exception):
    """An IF_ABSENT batch holds an already expired item: the slow path orders it right."""


class SqliteItemStore:
    """ItemStore on a SQLite file; safe for many threads and processes on the same file."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        cache_mb: int = 16,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._busy_ms = int(busy_timeout * 1000)
        self._cache_kb = max(1, cache_mb) * 1024
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._parts: dict[str, int] = {}  # pk -> partition id, committed ids only
        self._bodies = BodyEncoder()
        self._writer = WriterLock(self.path, timeout=busy_timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._ensure_layout(self._conn())

    # ------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        # Takes effect only on a file not written yet (an existing file keeps its own):
        # 16 KB pages mean shallower B-trees and fewer page splits on random inserts.
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # The page cache is a ceiling, filled only by pages a connection touches; an
        # import's random-order index inserts keep the index's hot pages in memory.
        conn.execute(f"PRAGMA cache_size = -{self._cache_kb}")
        # Checkpoint every ~40 MB of WAL rather than every 4 MB: a page that several
        # consecutive commits dirty is then copied back into the file once.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        self._local.conn = conn
        self._local.pid = os.getpid()
        self._local.fresh = {}
        with self._lock:
            self._conns.append(conn)
        return conn

    @staticmethod
    def _ensure_layout(conn: sqlite3.Connection) -> None:
        """Create the tables, or move an older file (items keyed by pk text) to the current
        layout; its values keep their copy of the key, which reads tolerate.  Under the
        write lock, so processes opening one new file at once agree."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == _LAYOUT:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != _LAYOUT:
                old = conn.execute(
                    "SELECT 1 FROM pragma_table_info('items') WHERE name = 'pk'"
                ).fetchone()
                if old is not None:
                    conn.execute("DROP INDEX IF EXISTS items_key")
                    conn.execute("ALTER TABLE items RENAME TO items_old")
                for statement in _SCHEMA:
                    conn.execute(statement)
                if old is not None:
                    conn.execute(
                        "INSERT INTO partitions (pk) SELECT DISTINCT pk FROM items_old ORDER BY pk"
                    )
                    conn.execute(
                        "INSERT INTO items (part, sk, data, ttl) "
                        "SELECT p.id, o.sk, o.data, o.ttl FROM items_old o "
                        "JOIN partitions p ON p.pk = o.pk ORDER BY p.id, o.sk"
                    )
                    conn.execute("DROP TABLE items_old")
                conn.execute(f"PRAGMA user_version = {_LAYOUT}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no upgrade deadlocks),
        after the other writers of this file (:class:`WriterLock`: no busy-handler sleeps).
        Partition ids it created join the cache once it has committed."""
        conn = self._conn()
        with self._writer.hold():
            conn.execute("BEGIN IMMEDIATE")
            fresh: dict[str, int] = self._local.fresh
            try:
                yield conn
            except BaseException:
                fresh.clear()
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if fresh:
            self._parts.update(fresh)
            fresh.clear()

    def _restart(self, conn: sqlite3.Connection) -> None:
        """Roll the current write transaction back and open a new one."""
        self._local.fresh.clear()
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")

    def _now(self) -> int:
        return int(self._clock.now())

    # ------------------------------------------------------------ partition ids

    def _find_part(self, conn: sqlite3.Connection, pk: str) -> int | None:
        """The id of partition ``pk``, or None if it was never written."""
        pid = self._parts.get(pk)
        if pid is not None:
            return pid
        fresh: dict[str, int] = self._local.fresh
        pid = fresh.get(pk)
        if pid is not None:  # created by the open transaction: not committed yet
            return pid
        row = conn.execute("SELECT id FROM partitions WHERE pk = ?", (pk,)).fetchone()
        if row is None:
            return None
        # Not created by this thread's open transaction, so another one committed it.
        self._parts[pk] = row[0]
        return int(row[0])

    def _part(self, conn: sqlite3.Connection, pk: str) -> int:
        """The id of partition ``pk``, created if needed; inside a write transaction."""
        pid = self._parts.get(pk)
        if pid is not None:
            return pid
        pid = self._find_part(conn, pk)
        if pid is None:
            cur = conn.execute("INSERT INTO partitions (pk) VALUES (?)", (pk,))
            pid = cur.lastrowid
            assert pid is not None
            self._local.fresh[pk] = pid
        return pid

    # ------------------------------------------------------------ rows

    def _live(self, conn: sqlite3.Connection, pk: str, sk: str, now: int) -> Item | None:
        pid = self._find_part(conn, pk)
        if pid is None:
            return None
        row = conn.execute(
            "SELECT data, ttl FROM items WHERE part = ? AND sk = ?", (pid, sk)
        ).fetchone()
        if row is None or (row[1] is not None and row[1] < now):
            return None
        return decode_body(pk, sk, row[0])

    def _row(self, conn: sqlite3.Connection, item: Item) -> _Row:
        """The row of a valid item; inside a write transaction."""
        pk, sk, body, ttl = self._bodies.encode(item)
        return self._part(conn, pk), sk, body, ttl

    # ------------------------------------------------------------ reads

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        _limits.check_key(pk, sk)
        return self._live(self._conn(), pk, sk, self._now())

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item | None]:
        for pk, sk in keys:
            _limits.check_key(pk, sk)
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for every chunk
        try:
            found = self._fetch(conn, keys, self._now())
        finally:
            conn.execute("COMMIT")
        return [found.get(key) for key in keys]

    def _fetch(
        self, conn: sqlite3.Connection, keys: Iterable[tuple[str, str]], now: int
    ) -> dict[tuple[str, str], Item]:
        """Live items for many keys: one ``sk IN (...)`` query per partition and chunk."""
        by_pk: dict[str, dict[str, None]] = {}
        for pk, sk in keys:
            by_pk.setdefault(pk, {})[sk] = None
        found: dict[tuple[str, str], Item] = {}
        for pk, sk_set in by_pk.items():
            pid = self._find_part(conn, pk)
            if pid is None:
                continue
            sks = list(sk_set)
            for i in range(0, len(sks), _CHUNK):
                part = sks[i : i + _CHUNK]
                sql = (
                    "SELECT sk, data FROM items WHERE part = ? AND sk IN ("
                    + ",".join("?" * len(part))
                    + ") AND (ttl IS NULL OR ttl >= ?)"
                )
                for sk, data in conn.execute(sql, (pid, *part, now)):
                    found[(pk, sk)] = decode_body(pk, sk, data)
        return found

    def query(
        self,
        pk: str,
        *,
        prefix: str = "",
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> Page:
        _limits.check_query_limit(limit)
        if not isinstance(pk, str) or not pk:
            raise ValidationError("pk must be a non-empty string")
        rng = bounds(prefix, start, end)
        after = decode_cursor(cursor) if cursor is not None else None
        if rng.empty():
            return Page([], None)
        conn = self._conn()
        pid = self._find_part(conn, pk)
        if pid is None:
            return Page([], None)
        where = ["part = ?", "(ttl IS NULL OR ttl >= ?)"]
        args: list[Any] = [pid, self._now()]
        for clause, value in (("sk >= ?", rng.lo), ("sk <= ?", rng.hi), ("sk < ?", rng.below)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if after is not None:
            where.append("sk < ?" if reverse else "sk > ?")
            args.append(after)
        sql = (
            "SELECT sk, data FROM items WHERE "
            + " AND ".join(where)
            + (" ORDER BY sk DESC" if reverse else " ORDER BY sk")
            + " LIMIT ?"
        )
        args.append(limit + 1)
        rows = conn.execute(sql, args).fetchall()
        items = [decode_body(pk, sk, data) for sk, data in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1]["sk"]) if more else None)

    # ------------------------------------------------------------ writes

    def put(self, item: Item, *, condition: Condition | None = None) -> None:
        pk, sk, body, ttl = self._bodies.encode(item)
        pid = self._parts.get(pk)
        if pid is not None and condition is None:  # one statement: autocommit
            with self._writer.hold():
                self._conn().execute(_REPLACE, (pid, sk, body, ttl))
            return
        if pid is not None and condition == IF_ABSENT:
            with self._writer.hold():
                cur = self._conn().execute(
                    _INSERT_IF_ABSENT.format(now=self._now()), (pid, sk, body, ttl)
                )
            if cur.rowcount != 1:
                raise ConditionFailed(f"{pk!r}/{sk!r} already exists")
            return
        with self._write() as conn:
            if condition is not None and not condition_holds(
                self._live(conn, pk, sk, self._now()), condition
            ):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            conn.execute(_REPLACE, (self._part(conn, pk), sk, body, ttl))

    def update(
        self,
        pk: str,
        sk: str,
        *,
        add: Mapping[str, int | float] | None = None,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        condition: Condition | None = None,
    ) -> Item:
        add, set = add or {}, set or {}
        _limits.check_key(pk, sk)
        _limits.check_update(add, set, remove)
        with self._write() as conn:
            existing = self._live(conn, pk, sk, self._now())
            if not condition_holds(existing, condition):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            item = apply_update(existing, pk, sk, add, set, remove)
            conn.execute(_REPLACE, self._row(conn, item))
        return item

    def delete(self, pk: str, sk: str, *, condition: Condition | None = None) -> None:
        _limits.check_key(pk, sk)
        if condition is None:
            conn = self._conn()
            pid = self._find_part(conn, pk)
            if pid is not None:
                with self._writer.hold():
                    conn.execute(_DELETE, (pid, sk))
            return
        with self._write() as conn:
            if not condition_holds(self._live(conn, pk, sk, self._now()), condition):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            pid = self._find_part(conn, pk)
            if pid is not None:
                conn.execute(_DELETE, (pid, sk))

    def _delete_rows(
        self, conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]
    ) -> list[tuple[int, str]]:
        rows = []
        for pk, sk in keys:
            pid = self._find_part(conn, pk)
            if pid is not None:
                rows.append((pid, sk))
        return rows

    def batch_write(
        self, puts: Sequence[Item] = (), deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        _limits.check_batch(puts, deletes)
        with self._write() as conn:
            conn.executemany(_REPLACE, [self._row(conn, item) for item in puts])
            conn.executemany(_DELETE, self._delete_rows(conn, deletes))

    def put_many(self, items: Sequence[Item], *, condition: Condition | None = None) -> list[bool]:
        """One transaction for the whole sequence.

        Unconditional and IF_ABSENT puts stream: each item is encoded as SQLite asks
        for the next row, so a large batch never holds every encoded item at once (an
        invalid item raises mid-way and the transaction rolls back: nothing is written).
        An IF_ABSENT batch that meets a live key, or repeats one, is undone and redone
        item by item on the slow path (the row count tells).  ``items`` may therefore be read twice.
        """
        if not items:
            return []
        plain = vouched(items)
        if condition is None:
            with self._write() as conn:
                conn.executemany(_REPLACE, self._stream(conn, items, None, plain))
            return [True] * len(items)
        if condition == IF_ABSENT:
            now = self._now()
            with self._write() as conn:
                try:
                    cur = conn.executemany(
                        _INSERT_IF_ABSENT.format(now=now), self._stream(conn, items, now, plain)
                    )
                    if cur.rowcount == len(items):
                        return [True] * len(items)
                except _Expired:
                    pass
                self._restart(conn)
                return self._put_many_checked(conn, items, condition, plain)
        with self._write() as conn:
            return self._put_many_checked(conn, items, condition, plain)

    def _stream(
        self, conn: sqlite3.Connection, items: Iterable[Item], now: int | None, plain: bool = False
    ) -> Iterator[_Row]:
        """Rows for ``executemany``.  With ``now`` (an IF_ABSENT batch) it stops at an
        already expired item: a later item with its key would replace it and count as
        written, where the first item in a batch must win.  Otherwise a repeated key
        conflicts with its first copy, the row count comes up short and the batch is
        redone on the slow path.  ``plain``: the sequence vouches for its items
        (``_logic.PLAIN_ITEMS_ATTR``)."""
        encode = self._bodies.encode
        parts = self._parts
        last_pk, last_pid = "", 0
        for item in items:
            pk, sk, body, ttl = encode(item, plain)
            if pk != last_pk:
                pid = parts.get(pk)
                last_pk, last_pid = pk, pid if pid is not None else self._part(conn, pk)
            if now is not None and ttl is not None and ttl < now:
                raise _Expired
            yield last_pid, sk, body, ttl

    def _put_many_checked(
        self,
        conn: sqlite3.Connection,
        items: Sequence[Item],
        condition: Condition,
        plain: bool = False,
    ) -> list[bool]:
        """Slow path: read the current items, evaluate the condition per item in order."""
        encoded = [self._bodies.encode(item, plain) for item in items]
        keys = [(e[0], e[1]) for e in encoded]
        found = self._fetch(conn, dict.fromkeys(keys), self._now())
        current: dict[tuple[str, str], Item | None] = {key: found.get(key) for key in keys}
        result: list[bool] = []
        chosen: list[_Row] = []
        for pk, sk, body, ttl in encoded:
            ok = condition_holds(current[(pk, sk)], condition)
            result.append(ok)
            if ok:
                current[(pk, sk)] = decode_body(pk, sk, body)
                chosen.append((self._part(conn, pk), sk, body, ttl))
        conn.executemany(_REPLACE, chosen)
        return result

    def transact(self, ops: Sequence[WriteOp]) -> None:
        """All or nothing, in one write transaction with a fixed number of statements:
        one read of every key (per partition), one ``executemany`` of the rows written,
        one of the keys deleted (this runs once per batch of tracking events)."""
        # Every item is checked in full before anything is read, as DynamoDB refuses an
        # invalid request before it evaluates a condition.
        _limits.check_transaction(ops)
        if not ops:
            return
        encoded = {i: self._bodies.encode(op.item) for i, op in enumerate(ops) if isinstance(op, Put)}
        keys = [_limits.op_key(op) for op in ops]
        with self._write() as conn:
            found = self._fetch(conn, keys, self._now())
            current = [found.get(key) for key in keys]
            reasons = [
                "" if condition_holds(cur, op.condition) else "ConditionalCheckFailed"
                for op, cur in zip(ops, current, strict=True)
            ]
            if any(reasons):
                raise TransactionCancelled(reasons)
            rows: list[_Row] = []
            deletes: list[tuple[str, str]] = []
            for i, (op, cur) in enumerate(zip(ops, current, strict=True)):
                if isinstance(op, Put):
                    pk, sk, body, ttl = encoded[i]
                    rows.append((self._part(conn, pk), sk, body, ttl))
                elif isinstance(op, Update):
                    item = apply_update(cur, op.pk, op.sk, op.add, op.set, op.remove)
                    rows.append(self._row(conn, item))
                elif isinstance(op, Delete):
                    deletes.append(keys[i])
                else:
                    assert isinstance(op, Check)
            conn.executemany(_REPLACE, rows)
            if deletes:
                conn.executemany(_DELETE, self._delete_rows(conn, deletes))

    # ------------------------------------------------------------ housekeeping

    def purge_expired(self) -> int:
        """Delete expired items (reads already hide them); returns how many went."""
        with self._write() as conn:
            return conn.execute("DELETE FROM items WHERE ttl < ?", (self._now(),)).rowcount

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._writer.close()
        self._local = threading.local()
