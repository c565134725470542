"""Pacer shared by every process on one data folder, through one SQLite (WAL) row.

Each ``reserve`` is one short ``BEGIN IMMEDIATE`` transaction, so callers reserve
chunks of slots (tens at a time), not one per message.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from lunamail.adapters.sqlite_writer import WriterLock
from lunamail.lib import pacing
from lunamail.ports.clock import Clock, SystemClock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pace (
    name TEXT PRIMARY KEY,
    state BLOB NOT NULL
)
"""


class SqlitePacer:
    """``name`` keys the schedule, so one database can pace several senders apart."""

    def __init__(
        self,
        path: str | Path,
        config: pacing.PaceConfig,
        *,
        name: str = "default",
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.name = name
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._writer = WriterLock(path, timeout=timeout)  # processes sharing the row take turns without sleeps
        self._db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def _load(self) -> pacing.PaceState:
        row = self._db.execute("SELECT state FROM pace WHERE name = ?", (self.name,)).fetchone()
        return pacing.PaceState.from_json(orjson.loads(row[0])) if row else pacing.PaceState()

    def _save(self, state: pacing.PaceState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pace (name, state) VALUES (?, ?)",
            (self.name, orjson.dumps(state.to_json())),
        )

    def reserve(self, n: int) -> tuple[float, float]:
        if not self.config.limited:
            if n <= 0:
                raise ValueError("reserve at least one slot")
            return self._clock.now(), 0.0
        with self._lock, self._writer.hold():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                state = self._load()
                out = pacing.reserve(self.config, state, n, self._clock.now())
                self._save(state)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    def throttled(self) -> None:
        with self._lock, self._writer.hold():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                state = self._load()
                pacing.throttle(self.config, state, self._clock.now())
                self._save(state)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def current_rate(self) -> float:
        with self._lock:
            return pacing.current_rate(self.config, self._load(), self._clock.now())

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._writer.close()
