"""``lunamail serve``: the HTTP API and the local workers in one process.

Both run on one asyncio loop: uvicorn's server coroutine next to the
runtime's worker coroutine.  This module owns the signals, so the first
SIGINT/SIGTERM stops both gracefully (requests and handlers in flight
finish) and a second one makes the web server stop waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import typer
import uvicorn

from lunamail.entrypoints.cli.common import err_console
from lunamail.entrypoints.cli.context import get_app
from lunamail.entrypoints.http.app import create_app
from lunamail.entrypoints.http.routes_tracking import TrackingFront
from lunamail.runtime.bootstrap import System

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
) -> None:
    """Run the API (and the workers) until ``stop`` is set or a signal arrives.

    ``stop`` lets tests and embedders end it without signals.  When the web server
    exits on its own (e.g. the port is taken) the workers are stopped too.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    app = create_app(system)
    # The tracking front also in front of FastAPI's own per-request layers (see TrackingFront).
    config = uvicorn.Config(
        TrackingFront(app, state=app.state), host=host, port=port, log_level=log_level,
        lifespan="off", access_log=False,
    )
    server = _Server(config)
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if len(signals) > 1:
            server.force_exit = True  # second signal: stop waiting for open connections
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
    if workers:
        tasks.append(asyncio.create_task(system.runtime().run(stop)))
    try:
        await asyncio.gather(*tasks)
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


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    no_workers: bool = typer.Option(False, "--no-workers", help="Only the API (run `lunamail worker` elsewhere)."),
) -> None:
    """Run the HTTP API and the workers until Ctrl-C / SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    system = get_app()
    err_console.print(
        f"lunamail serve: http://{host}:{port} (docs at /docs), "
        f"{'workers on' if not no_workers else 'no workers'}, data in {system.settings.data_dir}"
    )
    with asyncio.Runner(loop_factory=_fast_loop()) as runner:
        runner.run(serve_all(system, host=host, port=port, workers=not no_workers))
    err_console.print("lunamail serve stopped")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve")(serve)
