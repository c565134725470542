"""The signed upload flow and CSV imports over HTTP: declare, upload, start, watch.

Runs on the real files blob adapter and SQLite; the workers (a router with the
audience import handler) run in this process until the import is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from lunamail.domain.audience import ImportChunk
from lunamail.entrypoints.http.app import create_app
from lunamail.entrypoints.http.routes_imports import UPLOAD_EXPIRES
from lunamail.ports.clock import FakeClock
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Router
from lunamail.services.accounts import api as accounts
from lunamail.services.audience import handlers as audience_handlers

from .test_http_fixtures import assert_error

CSV = b"email,name\nann@example.com,Ann\nbob@example.com,Bob\nnot-an-email,Nobody\n"


class Env:
    def __init__(self, system: System, client: TestClient, clock: FakeClock, key: str, other: str) -> None:
        self.system, self.client, self.clock = system, client, clock
        self.a = {"Authorization": f"Bearer {key}"}
        self.b = {"Authorization": f"Bearer {other}"}


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    # The clock starts at the real time so a URL signed by either clock expires when it advances.
    clock = FakeClock(start=time.time())
    router = Router({ImportChunk: (audience_handlers.import_chunk,)})
    system = bootstrap_in(tmp_path / "data", clock=clock, router=router)
    accounts.create_account(system.deps, "Alpha", account_id="alpha")
    accounts.create_account(system.deps, "Beta", account_id="beta")
    key = accounts.create_api_key(system.deps, "alpha").secret
    other = accounts.create_api_key(system.deps, "beta").secret
    client = TestClient(create_app(system), raise_server_exceptions=False)
    with client:
        yield Env(system, client, clock, key, other)
    system.close()


def _declare(env: Env) -> tuple[dict[str, object], str, dict[str, str]]:
    lid = env.client.post("/v1/lists", headers=env.a, json={"name": "Imported"}).json()["id"]
    resp = env.client.post("/v1/imports", headers=env.a, json={"list": lid, "mode": "subscribe"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "awaiting_upload"
    url = urlsplit(body["upload"]["url"])
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert {"expires", "sig"} <= set(params)
    return body, url.path, params


def test_tampered_signature_is_403(env: Env) -> None:
    _, path, params = _declare(env)
    bad_sig = {**params, "sig": ("0" if params["sig"][0] != "0" else "1") + params["sig"][1:]}
    assert_error(env.client.put(f"{path}?{urlencode(bad_sig)}", content=CSV), 403, "forbidden")
    later = {**params, "expires": str(int(params["expires"]) + 3600)}
    assert_error(env.client.put(f"{path}?{urlencode(later)}", content=CSV), 403, "forbidden")
    other_key = path.replace("/uploads/alpha/", "/uploads/beta/")
    assert_error(env.client.put(f"{other_key}?{urlencode(params)}", content=CSV), 403, "forbidden")
    assert_error(env.client.put(path, content=CSV), 422, "invalid_input")  # no signature at all


def test_expired_url_is_403(env: Env) -> None:
    _, path, params = _declare(env)
    env.clock.advance(UPLOAD_EXPIRES + 60)
    assert_error(env.client.put(f"{path}?{urlencode(params)}", content=CSV), 403, "forbidden")


def test_upload_start_and_finish_an_import(env: Env) -> None:
    declared, path, params = _declare(env)
    import_id = declared["id"]
    # Starting before the upload is refused.
    assert_error(env.client.post(f"/v1/imports/{import_id}/start", headers=env.a), 409, "conflict")

    put = env.client.put(f"{path}?{urlencode(params)}", content=CSV, headers={"Content-Type": "text/csv"})
    assert put.status_code == 200, put.text
    assert put.json()["size_bytes"] == len(CSV)
    key = path.removeprefix("/uploads/")
    assert env.system.blobs.get(key) == CSV
    # One PUT per URL.
    assert_error(env.client.put(f"{path}?{urlencode(params)}", content=b"x"), 409, "conflict")
    assert env.client.get(f"/v1/imports/{import_id}", headers=env.a).json()["status"] == "uploaded"

    # Beta can neither see nor start Alpha's import.
    assert_error(env.client.get(f"/v1/imports/{import_id}", headers=env.b), 404, "not_found")
    assert_error(env.client.post(f"/v1/imports/{import_id}/start", headers=env.b), 404, "not_found")

    started = env.client.post(f"/v1/imports/{import_id}/start", headers=env.a)
    assert started.status_code == 200, started.text
    assert started.json()["id"] == import_id and started.json()["import_id"]
    again = env.client.post(f"/v1/imports/{import_id}/start", headers=env.a).json()
    assert again["import_id"] == started.json()["import_id"]  # starting twice is a no-op

    def done() -> bool:
        status = env.client.get(f"/v1/imports/{import_id}", headers=env.a).json()["status"]
        return status not in ("running", "uploaded", "awaiting_upload")

    assert env.system.run_until(done, timeout=30), "the import did not finish"
    final = env.client.get(f"/v1/imports/{import_id}", headers=env.a).json()
    assert final["imported"] == 2 and final["rejected"] == 1, final
    subs = env.client.get(f"/v1/lists/{final['list']}/subscribers", headers=env.a).json()["items"]
    assert sorted(s["email"] for s in subs) == ["ann@example.com", "bob@example.com"]
    assert final["error_report_url"] == f"/v1/imports/{import_id}/errors"
    report = env.client.get(final["error_report_url"], headers=env.a)
    assert report.status_code == 200 and b"not-an-email" in report.content
    assert_error(env.client.get(final["error_report_url"], headers=env.b), 404, "not_found")


def test_import_for_unknown_list_is_404(env: Env) -> None:
    assert_error(env.client.post("/v1/imports", headers=env.a, json={"list": "nope"}), 404, "not_found")
    err = assert_error(
        env.client.post("/v1/imports", headers=env.a, json={"list": "x", "mode": "explode"}),
        422,
        "invalid_input",
    )
    assert "body.mode" in err["details"]["fields"]
