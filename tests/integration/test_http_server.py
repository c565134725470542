"""End to end over a real socket: ``serve_all`` (uvicorn + workers on one loop) on a free
port of 127.0.0.1, driven with a real HTTP client, stopped by the test."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lunamail.entrypoints.cli.server_cmds import serve_all
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    system = bootstrap_in(tmp_path / "data")
    accounts.create_account(system.deps, "Default", account_id="default")
    key = accounts.create_api_key(system.deps, "default", "e2e").secret
    port = _free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_all(system, port=port, stop=stop, log_level="warning"))
        except BaseException as exc:  # surfaced by the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name="lunamail-serve", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=5.0) as probe:
        for _ in range(500):  # wait for the socket to accept; bounded, not timed
            try:
                if probe.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                stop_wait = threading.Event()
                stop_wait.wait(0.02)
        else:
            pytest.fail(f"server did not come up: {failure}")
    try:
        yield base, key
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "server did not stop"
        loop.close()
        system.close()
        assert not failure, failure


def test_real_server_round_trip(server: tuple[str, str]) -> None:
    base, key = server
    with httpx.Client(base_url=base, timeout=5.0) as http:
        assert http.get("/v1/lists").status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        created = http.post("/v1/lists", headers=auth, json={"name": "Over the wire"})
        assert created.status_code == 201, created.text
        lid = created.json()["id"]
        sub = http.post(f"/v1/lists/{lid}/subscribers", headers=auth, json={"email": "wire@example.com"})
        assert sub.status_code == 201
        got = http.get(f"/v1/lists/{lid}", headers=auth).json()
        assert got["counts"]["subscribed"] == 1
        missing = http.get("/v1/lists/none", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
