"""Which worker processes serve a data folder, so a CLI command knows whether to run the
workers itself (``campaigns send --wait``) or only watch progress."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lunamail.config import Settings


def _dir(settings: Settings) -> Path:
    return settings.data_dir / "workers"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workers_running(settings: Settings) -> list[int]:
    """PIDs of live worker processes on this data folder (stale entries are removed)."""
    found = []
    folder = _dir(settings)
    if not folder.is_dir():
        return []
    for entry in folder.glob("*.pid"):
        try:
            pid = int(entry.stem)
        except ValueError:
            continue
        if pid != os.getpid() and _alive(pid):
            found.append(pid)
        elif pid != os.getpid():
            entry.unlink(missing_ok=True)
    return sorted(found)


@contextlib.contextmanager
def announce(settings: Settings) -> Iterator[None]:
    """Mark this process as a worker of the data folder while the block runs."""
    folder = _dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / f"{os.getpid()}.pid"
    entry.write_text(str(os.getpid()))
    try:
        yield
    finally:
        entry.unlink(missing_ok=True)
