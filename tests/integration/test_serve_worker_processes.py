"""``serve_all(worker_processes=1)`` over a real socket: the API in this process, the
handlers in a real ``lunamail worker`` child on the same SQLite files.  The child is
found through the presence files workers write in the data folder, killed with SIGKILL
to see it restarted, and checked gone after the server stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lunamail.entrypoints.cli.main import app
from lunamail.entrypoints.cli.server_cmds import auto_worker_processes, serve_all
from lunamail.lib import tokens
from lunamail.lib.tracklinks import TrackingLinks
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.presence import workers_running
from lunamail.services.reports import api as reports
from tests.support.motoserver import free_port

WAIT = 30.0  # bound on every wait (a failure, never a measurement)
ACCOUNT = "default"
CAMPAIGN = "camp1"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet, e.g. an orphan under a lazy init, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust the signal check
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        threading.Event().wait(0.05)


@dataclass
class Served:
    system: System
    base: str
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event
    thread: threading.Thread
    failure: list[BaseException]
    seen: set[int] = field(default_factory=set)  # every child pid observed

    def children(self) -> list[int]:
        pids = workers_running(self.system.settings)
        self.seen.update(pids)
        return pids

    def open_pixel(self, email: str) -> None:
        """Fetch the open pixel of ``email``: the HTTP side publishes an ``Opened`` event,
        and only the reports handler (in a worker) turns it into a counter."""
        key = self.system.deps.secrets.key(ACCOUNT, tokens.TRACK)
        url = TrackingLinks(self.base, key, ACCOUNT, CAMPAIGN).pixel_url(email, time.time() - 3600)
        got = httpx.get(url, headers={"User-Agent": CHROME}, timeout=WAIT)
        assert got.status_code == 200 and got.headers["content-type"] == "image/gif", got.text

    def opens(self) -> int:
        opened = reports.campaign_report(self.system.deps, ACCOUNT, CAMPAIGN)["opened"]
        return int(opened["total"]) + int(opened["machine"])

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=WAIT + 70)  # the supervisor waits up to 60 s, then kills
        assert not self.thread.is_alive(), "server did not stop"
        assert not self.failure, self.failure


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    for name in [k for k in os.environ if k.startswith("LUNAMAIL_")]:
        monkeypatch.delenv(name)  # the child loads its settings from the environment
    system = bootstrap_in(tmp_path / "data")
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_all(
                system, port=port, stop=stop, log_level="warning", worker_processes=1))
        except BaseException as exc:  # surfaced by Served.stop
            failure.append(exc)

    thread = threading.Thread(target=run, name="lunamail-serve", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    s = Served(system, base, loop, stop, thread, failure)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=WAIT).status_code == 200
            except httpx.TransportError:
                return not thread.is_alive()  # stop waiting; reported below
        wait_for(up, "the server to come up")
        assert thread.is_alive(), f"server did not come up: {failure}"
        wait_for(lambda: len(s.children()) == 1, "the worker process to start")
        yield s
    finally:
        try:
            s.stop()
        finally:
            if thread.is_alive():  # never leave a child of a failed test behind
                for pid in s.seen:
                    if _alive(pid):
                        os.kill(pid, signal.SIGKILL)
            else:
                loop.close()
            system.close()
        # whatever the test did, no worker process outlives the server
        assert not [pid for pid in s.seen if _alive(pid)]


def test_work_from_the_http_side_is_handled_in_the_child_process(served: Served) -> None:
    [child] = served.children()
    assert child != os.getpid()
    served.open_pixel("ann@example.com")
    wait_for(lambda: served.opens() == 1, "the child's reports handler to count the open")


def test_a_killed_child_is_restarted_and_work_still_gets_handled(served: Served) -> None:
    [first] = served.children()
    os.kill(first, signal.SIGKILL)
    # the supervisor reaps it (so the pid is gone, not a zombie) and starts another
    wait_for(lambda: not _alive(first), "the killed worker to die")
    wait_for(lambda: len(served.children()) == 1 and served.children() != [first],
             "the killed worker reaped and a new worker process")
    [second] = served.children()
    assert second not in (first, os.getpid())
    served.open_pixel("bob@example.com")
    wait_for(lambda: served.opens() == 1, "the restarted worker to handle the open")
    assert _alive(second)


def test_stop_leaves_no_child_running(served: Served, tmp_path: Path) -> None:
    [child] = served.children()
    served.open_pixel("cy@example.com")
    wait_for(lambda: served.opens() == 1, "the open to be handled")
    served.stop()
    assert not _alive(child)
    # it stopped gracefully: a worker removes its presence file only on a clean exit
    assert not (tmp_path / "data" / "workers" / f"{child}.pid").exists()
    assert workers_running(served.system.settings) == []


def test_serve_help_lists_worker_processes() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--worker-processes" in result.output
    assert (auto_worker_processes(1), auto_worker_processes(2), auto_worker_processes(8)) == (0, 1, 1)
    bad = CliRunner().invoke(app, ["serve", "--worker-processes", "-1"])
    assert bad.exit_code == 2


_SUPERVISOR = """
import asyncio
from lunamail.config import Settings
from lunamail.runtime.supervisor import WorkerProcesses

asyncio.run(WorkerProcesses(Settings.load(), 1).run(asyncio.Event()))
"""


def test_a_worker_stops_when_its_supervisor_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("LUNAMAIL_")]:
        monkeypatch.delenv(name)
    data = tmp_path / "data"
    system = bootstrap_in(data)
    env = {**os.environ, "LUNAMAIL_DATA_DIR": str(data)}
    parent = subprocess.Popen([sys.executable, "-c", _SUPERVISOR], env=env)
    children: list[int] = []
    try:
        def started() -> bool:
            children[:] = workers_running(system.settings)
            return len(children) == 1
        wait_for(started, "the supervised worker to start")
        parent.send_signal(signal.SIGKILL)  # no chance to stop its children itself
        parent.wait(WAIT)
        wait_for(lambda: not _alive(children[0]), "the orphaned worker to stop")
        # gracefully: a worker removes its presence file only on a clean exit
        assert workers_running(system.settings) == []
        assert not (data / "workers" / f"{children[0]}.pid").exists()
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        system.close()


def test_a_memory_store_keeps_the_workers_in_process(tmp_path: Path) -> None:
    """A worker process could not see a store that lives in this process's memory."""
    with (bootstrap_in(tmp_path / "data", settings_overrides={"store": "memory"}) as system,
          pytest.raises(ValueError, match="memory store")):
        asyncio.run(serve_all(system, port=free_port(), worker_processes=1))
    env = {"LUNAMAIL_DATA_DIR": str(tmp_path / "cli"), "LUNAMAIL_STORE": "memory", "COLUMNS": "200"}
    refused = CliRunner().invoke(app, ["serve", "--worker-processes", "1"], env=env)
    assert refused.exit_code != 0
    assert "memory" in refused.output
