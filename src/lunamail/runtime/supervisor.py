"""Worker child processes for ``lunamail serve``.

Because of the GIL one process uses about one core.  The API and the handlers on one loop
therefore share that core, so ``serve`` runs the handlers in child processes: plain
``lunamail worker`` processes on the same data folder (the SQLite queue and store are
safe across processes).  This module starts them, restarts one that dies (with a
back-off, so a crash loop does not spin), and on stop lets them finish in-flight handlers
before it kills what is left.  No child outlives :meth:`WorkerProcesses.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from lunamail.config import Settings

log = logging.getLogger("lunamail.runtime.supervisor")

DATA_DIR_ENV = "LUNAMAIL_DATA_DIR"
CONFIG_ENV = "LUNAMAIL_CONFIG"
PARENT_ENV = "LUNAMAIL_SUPERVISOR_PID"  # set for each child: the pid it watches


def worker_command(concurrency: int | None = None) -> list[str]:
    """``lunamail worker`` with this interpreter: the ``lunamail`` script may not be on PATH."""
    cmd = [sys.executable, "-m", "lunamail", "worker"]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    return cmd


def child_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment with absolute paths, so a child loads the same settings.

    ``Settings.load()`` finds the config file from ``LUNAMAIL_CONFIG`` or else from the data
    folder.  Both are made absolute, so a child started elsewhere (or a relative path read
    again) still finds the parent's folder and file.
    """
    env = dict(os.environ if base is None else base)
    env[DATA_DIR_ENV] = str(Path(settings.data_dir).resolve())
    if env.get(CONFIG_ENV):
        env[CONFIG_ENV] = str(Path(env[CONFIG_ENV]).resolve())
    return env


def watch_parent(
    on_orphaned: Callable[[], None],
    *,
    env: Mapping[str, str] | None = None,
    interval: float = 1.0,
) -> threading.Thread | None:
    """In a child of :class:`WorkerProcesses`: call ``on_orphaned`` once, when the parent
    that started it is gone (killed with SIGKILL, say, so it could not stop its children);
    the worker then stops gracefully instead of running on alone.  Returns the watching
    thread, or None when this process was not started by a supervisor."""
    text = (os.environ if env is None else env).get(PARENT_ENV, "")
    if not text.isdigit():
        return None
    parent = int(text)

    def watch() -> None:
        pause = threading.Event()
        while os.getppid() == parent:
            pause.wait(interval)
        log.warning("the supervising process %d is gone; stopping", parent)
        on_orphaned()

    thread = threading.Thread(target=watch, name="lunamail-parent-watch", daemon=True)
    thread.start()
    return thread


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code} ({signal.Signals(-code).name})"
    return f"exit code {code}"


class WorkerProcesses:
    """``count`` ``lunamail worker`` children, kept running until ``stop`` is set.

    Children inherit stdout/stderr, so their log lines show in the parent's output.  They
    run in a process group of their own: a terminal's Ctrl-C then reaches only the parent,
    which sends each child one SIGTERM.  (A worker takes a second SIGINT as "exit now", so
    a Ctrl-C to the whole group followed by our signal must not be another SIGINT; a
    repeated SIGTERM, as from a service manager that signals the whole service and then
    from us, only stops it gracefully.)
    """

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        concurrency: int | None = None,
        env: Mapping[str, str] | None = None,
        restart_delay: float = 1.0,
        max_restart_delay: float = 30.0,
        healthy_after: float = 60.0,
        stop_timeout: float = 60.0,
        poll_interval: float = 0.1,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.count = count
        self.command = worker_command(concurrency)
        self.env = child_env(settings, env)
        self.restart_delay = restart_delay
        self.max_restart_delay = max(max_restart_delay, restart_delay)
        self.healthy_after = healthy_after  # a child that lived this long resets the back-off
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # slot -> its current child
        self._running = False

    @property
    def pids(self) -> list[int]:
        """PIDs of the children running now."""
        return sorted(p.pid for p in self._procs.values() if p.poll() is None)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the children running until ``stop`` is set, then stop them.

        Also when this coroutine is cancelled or fails: the children are always ended
        (SIGTERM, then SIGKILL after ``stop_timeout``, or at once if cancelled again).
        """
        if self._running:
            raise RuntimeError("WorkerProcesses.run is already running")
        self._running = True
        slots = [asyncio.create_task(self._keep(i, stop)) for i in range(self.count)]
        try:
            await asyncio.gather(*slots)
        finally:
            try:
                for task in slots:
                    task.cancel()
                await asyncio.wait(slots)
                await self._terminate()
            finally:
                self._kill()  # no await: runs even when the graceful stop was cancelled
                self._running = False

    def force(self) -> None:
        """Make stopping children leave at once: a stopping worker takes SIGINT as "exit
        now" (the queue redelivers what it had in flight)."""
        for proc in self._procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)

    # ------------------------------------------------------------ internals

    async def _keep(self, slot: int, stop: asyncio.Event) -> None:
        """One slot: start a child, wait for it, restart it after a back-off if it died."""
        loop = asyncio.get_running_loop()
        delay = self.restart_delay
        while not stop.is_set():
            started = loop.time()
            try:
                proc = self._spawn(slot)
            except OSError as e:  # e.g. out of processes or file descriptors: try again later
                log.warning("could not start a worker process (%s); retrying in %.0f s", e, delay)
            else:
                while proc.poll() is None and not stop.is_set():
                    await self._sleep(stop, self.poll_interval)
                if proc.returncode is None or stop.is_set():
                    return  # stopping: _terminate ends it (or it already stopped on its own)
                if loop.time() - started >= self.healthy_after:
                    delay = self.restart_delay
                log.warning(
                    "worker process %d exited unexpectedly with %s; restarting in %.0f s",
                    proc.pid, _exit_text(proc.returncode), delay,
                )
            await self._sleep(stop, delay)
            delay = min(delay * 2, self.max_restart_delay)

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.command,
            env={**self.env, PARENT_ENV: str(os.getpid())},
            stdin=subprocess.DEVNULL,
            process_group=0 if os.name == "posix" else None,
        )
        self._procs[slot] = proc
        log.info("started worker process %d", proc.pid)
        return proc

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def _terminate(self) -> None:
        """SIGTERM to every child, then wait up to ``stop_timeout`` for them to exit."""
        live = [p for p in self._procs.values() if p.poll() is None]
        if not live:
            return
        log.info("stopping %d worker process(es)", len(live))
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout
        while any(p.poll() is None for p in live) and loop.time() < deadline:
            await asyncio.sleep(self.poll_interval)
        for proc in live:
            if proc.returncode not in (None, 0):
                log.warning("worker process %d stopped with %s", proc.pid, _exit_text(proc.returncode))

    def _kill(self) -> None:
        """SIGKILL and reap every child still running (the last resort; never leaves one)."""
        for proc in self._procs.values():
            if proc.poll() is None:
                log.warning("worker process %d did not stop; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._procs.clear()
