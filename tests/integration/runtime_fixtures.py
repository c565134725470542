"""Handlers and a Router for the runtime tests; worker subprocesses load ``ROUTER`` too.

Handlers leave marker files under ``<data_dir>/marks`` so a test (in another
process) can see what ran, how often, and in which process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lunamail.domain.messages import Command, Event, message
from lunamail.ports.deps import Deps
from lunamail.runtime.routing import Router


@message("runtime_test.Flaky")
class Flaky(Command):
    key: str
    failures: int


@message("runtime_test.Doomed")
class Doomed(Command):
    key: str


@message("runtime_test.Slow")
class Slow(Command):
    key: str
    seconds: float


@message("runtime_test.Start")
class Start(Command):
    key: str


@message("runtime_test.Started")
class Started(Event):
    key: str


@message("runtime_test.Work")
class Work(Command):
    key: str
    pause: float = 0.0


@message("runtime_test.Unrouted")
class Unrouted(Event):
    key: str


def marks(data_dir: Path) -> Path:
    path = data_dir / "marks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lines(data_dir: Path, name: str) -> list[str]:
    """Lines of a marker file ([] when absent)."""
    path = marks(data_dir) / name
    return path.read_text().splitlines() if path.exists() else []


def _append(deps: Deps, name: str, line: str) -> int:
    """Append one line; returns how many lines the file now has."""
    path = marks(deps.settings.data_dir) / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
    return len(path.read_text().splitlines())


def flaky(msg: Flaky, deps: Deps) -> None:
    calls = _append(deps, f"flaky-{msg.key}", str(os.getpid()))
    if calls <= msg.failures:
        raise RuntimeError(f"flaky failure {calls} of {msg.failures}")


def doomed(msg: Doomed, deps: Deps) -> None:
    _append(deps, f"doomed-{msg.key}", str(os.getpid()))
    if not (marks(deps.settings.data_dir) / f"heal-{msg.key}").exists():
        raise ValueError(f"doomed {msg.key} cannot be handled\nsecond line of detail")
    _append(deps, f"healed-{msg.key}", str(os.getpid()))


def slow(msg: Slow, deps: Deps) -> None:
    """Sleeps on its first run only, so a redelivered copy completes at once."""
    first = _append(deps, f"started-{msg.key}", str(os.getpid())) == 1
    if first:
        time.sleep(msg.seconds)
    _append(deps, f"done-{msg.key}", str(os.getpid()))


def start(msg: Start, deps: Deps) -> list[Started]:
    _append(deps, f"a-{msg.key}", str(os.getpid()))
    return [Started(account=msg.account, key=msg.key)]


def on_started_b(msg: Started, deps: Deps) -> None:
    _append(deps, f"b-{msg.key}", str(os.getpid()))


def on_started_c(msg: Started, deps: Deps) -> None:
    _append(deps, f"c-{msg.key}", str(os.getpid()))


def work(msg: Work, deps: Deps) -> None:
    """Flags a duplicate if another copy of the same message is running right now."""
    base = marks(deps.settings.data_dir)
    flag = base / f"inflight-{msg.key}"
    try:
        os.close(os.open(flag, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        _append(deps, "duplicates", msg.key)
        return
    try:
        if msg.pause:
            time.sleep(msg.pause)
        _append(deps, "work.log", f"{msg.key} {os.getpid()}")
    finally:
        flag.unlink()


ROUTER = Router(
    {
        Flaky: (flaky,),
        Doomed: (doomed,),
        Slow: (slow,),
        Start: (start,),
        Started: (on_started_b, on_started_c),
        Work: (work,),
    }
)
