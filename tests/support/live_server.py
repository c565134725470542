"""``lunamail serve`` for tests: ``serve_all`` (uvicorn + the workers on one loop) on a free
port of 127.0.0.1 in a thread, stopped by the test that started it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from lunamail.entrypoints.cli.server_cmds import serve_all
from lunamail.runtime.bootstrap import System
from tests.support.motoserver import free_port


@contextmanager
def live_serve(system: System, *, port: int | None = None, **options: Any) -> Iterator[str]:
    """Serve ``system`` (on ``port``, default a free one) and yield its base URL; raises if
    it does not come up or stop."""
    port = port or free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                serve_all(system, port=port, stop=stop, log_level="warning", **options)
            )
        except BaseException as exc:  # re-raised below
            failure.append(exc)

    thread = threading.Thread(target=run, name="lunamail-serve", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    pause = threading.Event()
    with httpx.Client(base_url=base, timeout=5.0) as probe:
        for _ in range(500):  # wait for the socket to accept; bounded, not timed
            try:
                if probe.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pause.wait(0.02)
        else:
            raise RuntimeError(f"server did not come up: {failure}")
    try:
        yield base
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
        if thread.is_alive():
            raise RuntimeError("server did not stop")
        if failure:
            raise RuntimeError(f"server failed: {failure}")
