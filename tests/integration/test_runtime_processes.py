"""Real ``lunamail worker`` processes on one data folder: crash recovery, graceful stop,
and two workers sharing the queue without handling a message twice at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lunamail.adapters.queue.sqlite import SqliteQueue
from lunamail.config import Settings
from lunamail.domain.messages import Message
from lunamail.runtime.bus import Bus

from . import runtime_fixtures as fx

WAIT = 60.0  # generous upper bound for slow machines; tests normally finish in seconds
_IMPORT_ROOT = Path(fx.__file__).resolve().parents[fx.__name__.count(".")]


class Workers:
    """Starts worker subprocesses over one data folder and always stops them."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self, *, concurrency: int = 4, visibility_timeout: float = 1.5
    ) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUNAMAIL_")}
        env.update(
            LUNAMAIL_DATA_DIR=str(self.data_dir),
            LUNAMAIL_VISIBILITY_TIMEOUT=str(visibility_timeout),
            LUNAMAIL_ROUTER=f"{fx.__name__}:ROUTER",
            PYTHONPATH=os.pathsep.join(filter(None, [str(_IMPORT_ROOT), env.get("PYTHONPATH")])),
        )
        log = self.data_dir / f"worker-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lunamail.entrypoints.cli.main",
                    "worker",
                    "-c",
                    str(concurrency),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the worker has its signal handlers (it prints its banner then)."""
        log = self.logs[self.procs.index(proc)]
        self.wait_for(lambda: b"lunamail worker:" in log.read_bytes(), "the worker to start")

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.logs if p.exists()
        )

    def wait_for(self, cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}\n{self.output()}")
            dead = [p for p in self.procs if p.poll() not in (None, -signal.SIGKILL)]
            if dead:
                raise AssertionError(
                    f"worker exited early while waiting for {what}\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.close()


def _publish(data_dir: Path, messages: list[Message]) -> None:
    with SqliteQueue(Settings(data_dir=data_dir).queue_path) as q:
        Bus(q, fx.ROUTER).publish(messages)


def _queue_state(data_dir: Path) -> tuple[dict[str, int], int]:
    with SqliteQueue(Settings(data_dir=data_dir).queue_path) as q:
        return q.depth(), len(q.dead_letters())


def test_killed_worker_loses_nothing(workers: Workers, tmp_path: Path) -> None:
    _publish(tmp_path, [fx.Slow(account="acc", key="k", seconds=120)])
    first = workers.start(visibility_timeout=1.5)
    workers.wait_for(lambda: bool(fx.lines(tmp_path, "started-k")), "the handler to start")
    first.kill()  # SIGKILL mid-message: no cleanup, no ack, no fail
    assert first.wait(timeout=WAIT) == -signal.SIGKILL
    assert not fx.lines(tmp_path, "done-k")

    second = workers.start(visibility_timeout=1.5)
    workers.wait_ready(second)
    workers.wait_for(lambda: bool(fx.lines(tmp_path, "done-k")), "the redelivered message")
    assert workers.stop(second) == 0
    assert fx.lines(tmp_path, "started-k") == [str(first.pid), str(second.pid)]
    assert fx.lines(tmp_path, "done-k") == [str(second.pid)]
    assert _queue_state(tmp_path) == ({}, 0)


def test_sigterm_finishes_the_message_in_flight(workers: Workers, tmp_path: Path) -> None:
    _publish(tmp_path, [fx.Slow(account="acc", key="g", seconds=1.0)])
    proc = workers.start()
    workers.wait_ready(proc)
    workers.wait_for(lambda: bool(fx.lines(tmp_path, "started-g")), "the handler to start")
    assert workers.stop(proc) == 0
    assert fx.lines(tmp_path, "done-g") == [str(proc.pid)]
    assert _queue_state(tmp_path) == ({}, 0)
    assert "stopped" in workers.output()


def test_two_workers_share_the_queue(workers: Workers, tmp_path: Path) -> None:
    n = 200
    _publish(tmp_path, [])  # the folder exists before the workers start (they refuse an empty one)
    procs = [workers.start(concurrency=4, visibility_timeout=30) for _ in range(2)]
    for p in procs:
        workers.wait_ready(p)
    _publish(tmp_path, [fx.Work(account="acc", key=f"w{i}", pause=0.005) for i in range(n)])
    workers.wait_for(lambda: len(fx.lines(tmp_path, "work.log")) >= n, f"{n} messages")
    assert [workers.stop(p) for p in procs] == [0, 0], workers.output()
    done = [line.split() for line in fx.lines(tmp_path, "work.log")]
    assert fx.lines(tmp_path, "duplicates") == [], workers.output()
    handled = Counter(key for key, _ in done)
    assert handled == Counter(f"w{i}" for i in range(n)), workers.output()
    assert {pid for _, pid in done} <= {str(p.pid) for p in procs}
    assert _queue_state(tmp_path) == ({}, 0)
