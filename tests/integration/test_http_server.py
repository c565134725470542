"""End to end over a real socket: ``serve_all`` (uvicorn + workers on one loop) on a free
port of 127.0.0.1, driven with a real HTTP client, stopped by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from tests.support.live_server import live_serve


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    system = bootstrap_in(tmp_path / "data")
    accounts.create_account(system.deps, "Default", account_id="default")
    key = accounts.create_api_key(system.deps, "default", "e2e").secret
    try:
        with live_serve(system) as base:
            yield base, key
    finally:
        system.close()


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
