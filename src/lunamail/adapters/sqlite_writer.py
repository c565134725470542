"""One writer at a time on a SQLite file, handed over without sleeping.

SQLite lets one connection write at a time and makes the others retry: its busy
handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries.  When two processes
write the same file often (``lunamail serve --no-workers`` publishing tracking
events while a ``lunamail worker`` claims and acks them), most of the time goes
into those sleeps: the writes take ~1 ms, the waits up to 25 ms each.

:class:`WriterLock` queues the writers before SQLite sees them: threads of one
process on a ``threading.Lock``, processes on an exclusive ``flock`` of a small
file next to the database (``<file>-writer``).  A blocked ``flock`` wakes the
moment the holder lets go, and the kernel drops the lock of a process that dies,
so a crash never leaves the file locked.  SQLite's own locking stays underneath
as the safety net (for writers that do not take this lock, and on systems
without ``flock``, where only the thread lock applies).
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: threads are still ordered, processes by SQLite alone
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """Serialises the write transactions of every thread and process on one database
    file.  Hold it around ``BEGIN IMMEDIATE`` ... ``COMMIT``."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        name = os.fspath(db_path)
        # An in-memory database belongs to one connection: no other process can write it.
        self.path: Path | None = None if name in ("", ":memory:") else Path(f"{name}-writer")
        self._threads = threading.Lock()
        self._fd: int | None = None
        _ALL.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh thread lock (the parent's may have been held by a
        thread that does not exist here) and no descriptor (the inherited one shares the
        parent's open file, and so the parent's ``flock``; closing it releases nothing)."""
        self._threads = threading.Lock()
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def _file(self) -> int | None:
        """This process's descriptor of the lock file, opened on first use."""
        if fcntl is None or self.path is None:
            return None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def hold(self) -> WriterLock:
        """``with lock.hold():`` waits for the other writers (threads first, then
        processes), then writes.  (The lock is its own context manager: no generator per
        transaction, this runs for every write.)"""
        return self

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        """Close the descriptor (a later ``hold`` opens it again)."""
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None


_ALL: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for lock in list(_ALL):
        lock._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
