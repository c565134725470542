"""``lunamail serve``: the HTTP API and the workers, from one command.

The API is uvicorn's server coroutine on this process's asyncio loop.  The workers
run either next to it on the same loop (``worker_processes=0``) or, on a machine with
several cores, in ``worker_processes`` child ``lunamail worker`` processes on the same
data folder (:mod:`lunamail.runtime.supervisor`): one process uses about one core
because of the GIL, so on two cores this takes ~1.6-2x as many tracking events from
HTTP into the reports (docs/benchmarks.md).  HTTP is uvicorn's httptools protocol with
the edge limits of :mod:`lunamail.entrypoints.http.edge` (head and body timeouts, head,
body and connection caps); pixels and clicks are answered by the ``TrackingFront``
ASGI layer before FastAPI's routing.  A memory store cannot be shared, so then
the workers stay in this process.  This module owns the signals, so the first SIGINT/SIGTERM stops
everything gracefully (requests and handlers in flight finish) and a second one makes
the web server stop waiting and the worker processes exit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator

import typer
import uvicorn

from lunamail.entrypoints.cli.common import err_console, fail
from lunamail.entrypoints.cli.context import get_app
from lunamail.entrypoints.http.app import create_app
from lunamail.entrypoints.http.edge import edge_protocol, limits_from
from lunamail.entrypoints.http.routes_tracking import TrackingFront
from lunamail.lib.redact import install_log_redaction
from lunamail.runtime.bootstrap import System
from lunamail.runtime.supervisor import WorkerProcesses

log = logging.getLogger("lunamail.serve")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (``serve_all`` decides when to stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_all(
    system: System,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: bool = True,
    stop: asyncio.Event | None = None,
    log_level: str = "info",
    worker_processes: int = 0,
) -> None:
    """Run the API (and the workers) until ``stop`` is set or a signal arrives.

    With ``workers`` the handlers run in this process when ``worker_processes`` is 0,
    else in that many child processes (started, restarted and stopped here).
    ``stop`` lets tests and embedders end it without signals.  When the web server
    exits on its own (e.g. the port is taken) the workers are stopped too.
    """
    if worker_processes < 0:
        raise ValueError("worker_processes must be 0 or more")
    if worker_processes and workers and system.settings.store == "memory":
        raise ValueError("worker processes cannot share a memory store")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    app = create_app(system)
    # The tracking front also in front of FastAPI's own per-request layers (see TrackingFront).
    # No WebSocket routes: an Upgrade header is just a header.
    config = uvicorn.Config(
        TrackingFront(app, state=app.state), host=host, port=port, log_level=log_level,
        lifespan="off", access_log=False, ws="none",
        http=edge_protocol(limits_from(system.settings)),
    )
    server = _Server(config)
    children = WorkerProcesses(system.settings, worker_processes) if workers and worker_processes else None
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if len(signals) > 1:
            server.force_exit = True  # second signal: stop waiting for open connections
            if children is not None:
                children.force()  # ... and for the worker processes' in-flight handlers
        stop.set()

    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, int(sig))
                installed.append(sig)

    async def web() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits this way when it cannot bind
            log.error("the HTTP server could not start on %s:%d", host, port)
        finally:
            stop.set()

    async def stopper() -> None:
        await stop.wait()
        server.should_exit = True

    tasks = [asyncio.create_task(web()), asyncio.create_task(stopper())]
    if children is not None:
        tasks.append(asyncio.create_task(children.run(stop)))
    elif workers:
        tasks.append(asyncio.create_task(system.runtime().run(stop)))
    try:
        await asyncio.gather(*tasks)
    finally:
        # When one task failed (or this was cancelled) the others may still run: stop them
        # and let them finish, so no worker process outlives this call.  The signal handlers
        # stay until then, so a second Ctrl-C still hurries the stop along.
        stop.set()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]); the stdlib loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def auto_worker_processes(cpus: int | None = None) -> int:
    """``--worker-processes auto``: one child when there is a second core to run it on;
    on one core a child would only compete with the API, so the workers stay in process."""
    if cpus is None:
        # The CPUs this process may run on (a container or taskset may allow fewer than
        # the machine has); the machine's count where that is not known.
        affinity = getattr(os, "sched_getaffinity", None)
        cpus = len(affinity(0)) if affinity is not None else os.cpu_count()
    return 1 if (cpus or 1) >= 2 else 0


def parse_worker_processes(value: str) -> int:
    """``--worker-processes``: ``auto`` or a count of 0 or more."""
    text = value.strip().lower()
    if text == "auto":
        return auto_worker_processes()
    try:
        n = int(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not 'auto' or a whole number") from None
    if n < 0:
        raise typer.BadParameter("must be 'auto' or 0 or more")
    return n


def _check_worker_processes(value: str) -> str:
    parse_worker_processes(value)  # raises during parsing, so the error names the option
    return value


def _where(workers: bool, processes: int) -> str:
    if not workers:
        return "no workers"
    if not processes:
        return "workers in this process"
    return f"workers in {processes} process{'es' if processes > 1 else ''}"


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    no_workers: bool = typer.Option(False, "--no-workers", help="Only the API (run `lunamail worker` elsewhere)."),
    worker_processes: str = typer.Option(
        "auto", "--worker-processes", metavar="N|auto", callback=_check_worker_processes,
        help="Run the workers in N child processes (0: in this process). "
        "auto: 1 when this process may use 2+ CPUs and the store is not in memory, else 0.",
    ),
) -> None:
    """Run the HTTP API and the workers until Ctrl-C / SIGTERM."""
    processes = parse_worker_processes(worker_processes)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # no password or key reaches the log
    system = get_app()
    if processes and not no_workers and system.settings.store == "memory":
        # A memory store lives in this process: a worker process would count into its own.
        if worker_processes.strip().lower() != "auto":
            fail("--worker-processes needs a store other processes can open; "
                 "store = memory lives in this process (use --worker-processes 0)")
        processes = 0
    err_console.print(
        f"lunamail serve: http://{host}:{port} (docs at /docs), "
        f"{_where(not no_workers, processes)}, data in {system.settings.data_dir}"
    )
    with asyncio.Runner(loop_factory=_fast_loop()) as runner:
        runner.run(serve_all(system, host=host, port=port, workers=not no_workers,
                             worker_processes=processes))
    err_console.print("lunamail serve stopped")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve")(serve)
