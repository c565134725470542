"""SqliteItemStore: the embedded ItemStore, one WAL-mode SQLite file.

Items live in a rowid table with a UNIQUE index on (pk, sk): a partition is a
contiguous range of that index, so a query is an index range scan, and a put
appends the (large) row to the table and inserts a (small) entry into the
index.  Keyed by (pk, sk) WITHOUT ROWID instead, every random-order insert
lands in a B-tree whose rows carry the whole item, which splits pages and
dirties one ~4 KB page per item per commit; a million-row import in random
key order was four times slower that way.  Each thread (and each process)
gets its own connection; read-modify-write operations run under ``BEGIN
IMMEDIATE`` so they are atomic across threads and processes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    apply_update,
    bounds,
    condition_holds,
    decode,
    decode_cursor,
    encode,
    encode_cursor,
    encode_item,
    ttl_of,
)

# Version 1 of the file layout; version 0 was one WITHOUT ROWID table keyed by (pk, sk).
_LAYOUT = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    data BLOB NOT NULL,
    ttl INTEGER
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (pk, sk)",
)
_REPLACE = "INSERT OR REPLACE INTO items (pk, sk, data, ttl) VALUES (?, ?, ?, ?)"
# Insert unless a live item holds the key: an expired item counts as absent.
_INSERT_IF_ABSENT = (
    "INSERT INTO items (pk, sk, data, ttl) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (pk, sk) DO UPDATE SET data = excluded.data, ttl = excluded.ttl "
    "WHERE items.ttl IS NOT NULL AND items.ttl < {now}"
)
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
        cache_mb: int = 64,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._busy_ms = int(busy_timeout * 1000)
        self._cache_kb = max(1, cache_mb) * 1024
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
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
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # The page cache is a ceiling, filled only by pages a connection touches; an
        # import's random-order index inserts stay in memory instead of re-reading pages.
        conn.execute(f"PRAGMA cache_size = -{self._cache_kb}")
        # Checkpoint every ~40 MB of WAL rather than every 4 MB: a page that several
        # consecutive commits dirty is then copied back into the file once.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._conns.append(conn)
        return conn

    @staticmethod
    def _ensure_layout(conn: sqlite3.Connection) -> None:
        """Create the tables, or move a version-0 file (WITHOUT ROWID) to the current layout.
        Under the write lock, so processes opening one new file at once agree."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == _LAYOUT:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != _LAYOUT:
                old = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'"
                ).fetchone()
                if old is not None and "WITHOUT ROWID" in old[0].upper():
                    conn.execute("ALTER TABLE items RENAME TO items_v0")
                for statement in _SCHEMA:
                    conn.execute(statement)
                if old is not None and "WITHOUT ROWID" in old[0].upper():
                    conn.execute(
                        "INSERT INTO items (pk, sk, data, ttl) "
                        "SELECT pk, sk, data, ttl FROM items_v0 ORDER BY pk, sk"
                    )
                    conn.execute("DROP TABLE items_v0")
                conn.execute(f"PRAGMA user_version = {_LAYOUT}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no upgrade deadlocks)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _now(self) -> int:
        return int(self._clock.now())

    def _live(self, conn: sqlite3.Connection, pk: str, sk: str, now: int) -> Item | None:
        row = conn.execute(
            "SELECT data, ttl FROM items WHERE pk = ? AND sk = ?", (pk, sk)
        ).fetchone()
        if row is None or (row[1] is not None and row[1] < now):
            return None
        return decode(row[0])

    @staticmethod
    def _row(item: Item) -> tuple[str, str, bytes, int | None]:
        return item["pk"], item["sk"], encode(item), ttl_of(item)

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
            sks = list(sk_set)
            for i in range(0, len(sks), _CHUNK):
                part = sks[i : i + _CHUNK]
                sql = (
                    "SELECT sk, data FROM items WHERE pk = ? AND sk IN ("
                    + ",".join("?" * len(part))
                    + ") AND (ttl IS NULL OR ttl >= ?)"
                )
                for sk, data in conn.execute(sql, (pk, *part, now)):
                    found[(pk, sk)] = decode(data)
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
        where = ["pk = ?", "(ttl IS NULL OR ttl >= ?)"]
        args: list[Any] = [pk, self._now()]
        for clause, value in (("sk >= ?", rng.lo), ("sk <= ?", rng.hi), ("sk < ?", rng.below)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if after is not None:
            where.append("sk < ?" if reverse else "sk > ?")
            args.append(after)
        sql = (
            "SELECT data FROM items WHERE "
            + " AND ".join(where)
            + (" ORDER BY sk DESC" if reverse else " ORDER BY sk")
            + " LIMIT ?"
        )
        args.append(limit + 1)
        rows = self._conn().execute(sql, args).fetchall()
        items = [decode(r[0]) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1]["sk"]) if more else None)

    # ------------------------------------------------------------ writes

    def put(self, item: Item, *, condition: Condition | None = None) -> None:
        pk, sk, raw = encode_item(item)
        row = (pk, sk, raw, ttl_of(item))
        if condition is None:
            self._conn().execute(_REPLACE, row)
            return
        if condition == IF_ABSENT:
            cur = self._conn().execute(_INSERT_IF_ABSENT.format(now=self._now()), row)
            if cur.rowcount != 1:
                raise ConditionFailed(f"{pk!r}/{sk!r} already exists")
            return
        with self._write() as conn:
            if not condition_holds(self._live(conn, pk, sk, self._now()), condition):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            conn.execute(_REPLACE, row)

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
            conn.execute(_REPLACE, self._row(item))
        return item

    def delete(self, pk: str, sk: str, *, condition: Condition | None = None) -> None:
        _limits.check_key(pk, sk)
        if condition is None:
            self._conn().execute("DELETE FROM items WHERE pk = ? AND sk = ?", (pk, sk))
            return
        with self._write() as conn:
            if not condition_holds(self._live(conn, pk, sk, self._now()), condition):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            conn.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (pk, sk))

    def batch_write(
        self, puts: Sequence[Item] = (), deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        _limits.check_batch(puts, deletes)
        rows = [self._row(item) for item in puts]
        with self._write() as conn:
            conn.executemany(_REPLACE, rows)
            conn.executemany("DELETE FROM items WHERE pk = ? AND sk = ?", deletes)

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
        if condition is None:
            with self._write() as conn:
                conn.executemany(_REPLACE, self._stream(items, None))
            return [True] * len(items)
        if condition == IF_ABSENT:
            now = self._now()
            with self._write() as conn:
                try:
                    cur = conn.executemany(
                        _INSERT_IF_ABSENT.format(now=now), self._stream(items, now)
                    )
                    if cur.rowcount == len(items):
                        return [True] * len(items)
                except _Expired:
                    pass
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                return self._put_many_checked(conn, items, condition)
        with self._write() as conn:
            return self._put_many_checked(conn, items, condition)

    @staticmethod
    def _stream(
        items: Iterable[Item], now: int | None
    ) -> Iterator[tuple[str, str, bytes, int | None]]:
        """Rows for ``executemany``.  With ``now`` (an IF_ABSENT batch) it stops at an
        already expired item: a later item with its key would replace it and count as
        written, where the first item in a batch must win.  Otherwise a repeated key
        conflicts with its first copy, the row count comes up short and the batch is
        redone on the slow path."""
        for item in items:
            pk, sk, raw = encode_item(item, compact=False)
            ttl = ttl_of(item)
            if now is not None and ttl is not None and ttl < now:
                raise _Expired
            yield pk, sk, raw, ttl

    def _put_many_checked(
        self, conn: sqlite3.Connection, items: Sequence[Item], condition: Condition
    ) -> list[bool]:
        """Slow path: read the current items, evaluate the condition per item in order."""
        rows = [(*encode_item(item), ttl_of(item)) for item in items]
        keys = [(r[0], r[1]) for r in rows]
        found = self._fetch(conn, dict.fromkeys(keys), self._now())
        current: dict[tuple[str, str], Item | None] = {key: found.get(key) for key in keys}
        result: list[bool] = []
        chosen = []
        for key, row in zip(keys, rows, strict=True):
            ok = condition_holds(current[key], condition)
            result.append(ok)
            if ok:
                current[key] = decode(row[2])
                chosen.append(row)
        conn.executemany(_REPLACE, chosen)
        return result

    def transact(self, ops: Sequence[WriteOp]) -> None:
        _limits.check_transaction(ops)
        if not ops:
            return
        with self._write() as conn:
            now = self._now()
            current = [self._live(conn, *_limits.op_key(op), now) for op in ops]
            reasons = [
                "" if condition_holds(cur, op.condition) else "ConditionalCheckFailed"
                for op, cur in zip(ops, current, strict=True)
            ]
            if any(reasons):
                raise TransactionCancelled(reasons)
            for op, cur in zip(ops, current, strict=True):
                if isinstance(op, Put):
                    conn.execute(_REPLACE, self._row(op.item))
                elif isinstance(op, Update):
                    item = apply_update(cur, op.pk, op.sk, op.add, op.set, op.remove)
                    conn.execute(_REPLACE, self._row(item))
                elif isinstance(op, Delete):
                    conn.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (op.pk, op.sk))
                else:
                    assert isinstance(op, Check)

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
        self._local = threading.local()
