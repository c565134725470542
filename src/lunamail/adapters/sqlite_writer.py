"""One writer at a time on a SQLite file, handed over without sleeping.

SQLite lets one connection write at a time and makes the others retry: its busy
handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries.  When two processes
write the same file often (``lunamail serve --no-workers`` publishing tracking
events while a ``lunamail worker`` claims and acks them), most of the time goes
into those sleeps: the writes take ~1 ms, the waits up to 25 ms each.

:class:`WriterLock` queues the writers before SQLite sees them: threads of one
process on a ``threading.Lock``, processes on an exclusive ``flock`` of a small
file next to the database (``<file>-writer``), polled every millisecond at most
(SQLite's handler: up to 25 ms), never for longer than the busy timeout.  The
kernel drops the lock of a process that dies, so a crash never leaves the file
locked.  SQLite's own locking stays underneath as the safety net (for writers that
do not take this lock, and on systems without ``flock``, where only the thread lock
applies).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("lunamail.adapters.sqlite_writer")

try:
    import fcntl
except ImportError:  # not POSIX: threads are still ordered, processes by SQLite alone
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """Serialises the write transactions of every thread and process on one database
    file.  Hold it around ``BEGIN IMMEDIATE`` ... ``COMMIT``."""

    def __init__(self, db_path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        name = os.fspath(db_path)
        # An in-memory database belongs to one connection: no other process can write it.
        self.path: Path | None = None if name in ("", ":memory:") else Path(f"{name}-writer")
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._closer: Callable[[], object] | None = None  # a weakref.finalize
        self._holder = 0  # pid of the process that holds it (a forked child does not)
        self._flocked = False
        _ALL.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh thread lock (the parent's may have been held by a
        thread that does not exist here) and no descriptor (the inherited one shares the
        parent's open file, and so the parent's ``flock``; closing it releases nothing)."""
        self._threads = threading.Lock()
        if self._closer is not None:
            self._closer()
        self._fd, self._closer, self._flocked = None, None, False

    def _file(self) -> int | None:
        """This process's descriptor of the lock file, opened on first use (and closed
        when the lock is garbage-collected without ``close``)."""
        if fcntl is None or self.path is None:
            return None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._closer = weakref.finalize(self, os.close, self._fd)
        return self._fd

    def hold(self) -> WriterLock:
        """``with lock.hold():`` waits for the other writers (threads first, then
        processes), then writes.  (The lock is its own context manager: no generator per
        transaction, this runs for every write.)"""
        return self

    def _flock(self, fd: int) -> bool:
        """Take the file lock, waiting at most ``timeout`` seconds: a holder that hangs (a
        stopped process, say) must not stop every writer for good.  Past the deadline the
        write goes ahead without it and SQLite's own locking decides (its busy timeout,
        then "database is locked").  Polled in steps of 50 µs to 1 ms, so a waiter starts
        within a millisecond of the release (SQLite's handler: up to 25 ms)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        deadline = time.monotonic() + self.timeout
        pause = 0.00005
        while True:
            time.sleep(pause)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("%s is held for more than %.0f s; writing without it",
                                self.path, self.timeout)
                    return False
                pause = min(pause * 2, 0.001)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fd = self._file()
            self._flocked = fd is not None and self._flock(fd)
            self._holder = os.getpid()
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        if self._holder != os.getpid():
            return  # a child forked inside the block: the parent's hold is the parent's
        try:
            if self._flocked and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._flocked = False
            self._threads.release()

    def close(self) -> None:
        """Close the descriptor (a later ``hold`` opens it again)."""
        with self._threads:
            if self._closer is not None:
                self._closer()
            self._fd, self._closer = None, None


_ALL: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for lock in list(_ALL):
        lock._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
