"""Reports over HTTP: the report and its time series in process, and the live SSE stream
against a real uvicorn server on a free port of 127.0.0.1 with the workers running in a
background thread (the server and the workers are stopped at teardown)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.entrypoints.http import routes_reports
from lunamail.entrypoints.http.app import create_app
from lunamail.ports.deps import Deps
from lunamail.runtime.bootstrap import System
from lunamail.services.accounts import api as accounts
from lunamail.services.reports import api as reports

from .test_http_campaigns_fixtures import HTML, CampaignApi, capi, make_campaign_system
from .test_http_fixtures import assert_error

__all__ = ["capi"]  # the fixture, re-exported so pytest finds it here

READERS = ["ann@example.org", "bob@example.org", "cy@example.org"]
WAIT = 60.0  # bound on any wait for the server or a stream (a failure, never a measurement)


def _pause(seconds: float) -> None:
    threading.Event().wait(seconds)


# ---------------------------------------------------------------- in process


def test_report_and_timeseries_after_a_send(capi: CampaignApi) -> None:
    capi.audience(capi.a, "Readers", READERS)
    cid = capi.draft(capi.a, ["Readers"])["id"]
    before = capi.client.get(f"/v1/campaigns/{cid}/report", headers=capi.a)
    assert before.status_code == 200, before.text
    assert before.json()["sent"] == 0 and before.json()["campaign_status"] == "draft"

    assert capi.client.post(f"/v1/campaigns/{cid}/send", headers=capi.a).status_code == 202
    deps = capi.system.deps
    assert capi.system.run_until(
        lambda: reports.campaign_report(deps, "alpha", cid)["status"] == "sent", timeout=WAIT
    )
    after = capi.client.get(f"/v1/campaigns/{cid}/report", headers=capi.a).json()
    assert (after["planned"], after["sent"], after["failed"]) == (3, 3, 0)
    assert after["progress"] == 1.0 and after["campaign_status"] == "sent"

    series = capi.client.get(f"/v1/campaigns/{cid}/report/timeseries", headers=capi.a)
    assert series.status_code == 200, series.text
    rows = series.json()["items"]
    assert sum(int(row.get("sent", 0)) for row in rows) == 3
    paged: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1}
    for _ in range(len(rows) + 1):  # minute by minute, with the cursor
        got = capi.client.get(f"/v1/campaigns/{cid}/report/timeseries", headers=capi.a, params=params)
        assert got.status_code == 200, got.text
        paged += got.json()["items"]
        if got.json()["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": got.json()["next_cursor"]}
    assert paged == rows
    # times in RFC 3339, both ways: a minute of the series is a valid ``since``
    first = datetime.fromisoformat(rows[0]["minute"])
    assert first.utcoffset() is not None and first.second == 0
    again = capi.client.get(f"/v1/campaigns/{cid}/report/timeseries", headers=capi.a,
                            params={"since": rows[0]["minute"]})
    assert again.json()["items"] == rows
    later = (datetime.fromisoformat(rows[-1]["minute"]) + timedelta(minutes=1)).isoformat()
    assert capi.client.get(f"/v1/campaigns/{cid}/report/timeseries", headers=capi.a,
                           params={"since": later}).json()["items"] == []
    assert after["send_rate_per_second"] >= 0 and "send_rate" not in after
    assert datetime.fromisoformat(after["started_at"]).utcoffset() is not None
    assert_error(capi.client.get(f"/v1/campaigns/{cid}/report/timeseries", headers=capi.a,
                                 params={"limit": 0}), 422, "invalid_input")
    assert_error(capi.client.get("/v1/campaigns/nope/report", headers=capi.a), 404, "not_found")


# ---------------------------------------------------------------- over a real socket


@dataclass
class Live:
    system: System
    mailer: MemoryMailer
    base: str
    key: str
    http: httpx.Client

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, json: Any = None) -> httpx.Response:
        return self.http.post(path, headers=self.auth, json=json)

    def ready_campaign(self) -> str:
        """A list of READERS and a draft to them that passes the checks."""
        created = self.post("/v1/lists", {"name": "Readers"})
        assert created.status_code == 201, created.text
        for email in READERS:
            assert self.post(f"/v1/lists/{created.json()['id']}/subscribers", {"email": email}).status_code == 201
        camp = self.post("/v1/campaigns", {
            "name": "Live", "subject": "Hi", "from_email": "news@example.com",
            "html": HTML, "lists": ["Readers"],
        })  # fmt: skip
        assert camp.status_code == 201, camp.text
        return str(camp.json()["id"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[Live]:
    mailer = MemoryMailer()
    system = make_campaign_system(tmp_path, mailer)
    key = accounts.create_api_key(system.deps, "alpha", "sse").secret
    port = _free_port()
    config = uvicorn.Config(
        create_app(system), host="127.0.0.1", port=port, log_level="warning",
        lifespan="off", access_log=False, timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def work() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(system.runtime(concurrency=2).run(stop))

    working = threading.Thread(target=work, name="test-workers", daemon=True)
    serving.start()
    working.start()
    for _ in range(int(WAIT / 0.02)):
        if server.started:
            break
        _pause(0.02)
    assert server.started, "the server did not come up"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
            yield Live(system, mailer, f"http://127.0.0.1:{port}", key, http)
    finally:
        server.should_exit = True
        serving.join(timeout=WAIT)
        loop.call_soon_threadsafe(stop.set)
        working.join(timeout=WAIT)
        alive = [t.name for t in (serving, working) if t.is_alive()]
        if not alive:
            loop.close()
        system.close()
        assert not alive, f"did not stop: {alive}"


@dataclass
class Reader:
    """Reads one SSE stream in a thread; ``events`` are (event, data) pairs and comments."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    status: int = 0
    content_type: str = ""
    first: threading.Event = field(default_factory=threading.Event)
    comments: int = 0
    error: list[BaseException] = field(default_factory=list)
    stop_after_comment: bool = False
    stop_after_first: bool = False

    def run(self, live: Live, campaign: str) -> threading.Thread:
        thread = threading.Thread(target=self._read, args=(live, campaign), daemon=True)
        thread.start()
        return thread

    def _read(self, live: Live, campaign: str) -> None:
        try:
            path = f"/v1/campaigns/{campaign}/report/stream"
            with live.http.stream("GET", path, headers=live.auth) as resp:
                self.status, self.content_type = resp.status_code, resp.headers.get("content-type", "")
                name, data = "message", ""
                for line in resp.iter_lines():
                    if line.startswith(":"):
                        self.comments += 1
                        if self.stop_after_comment:
                            return
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line == "" and data:
                        self.events.append((name, orjson.loads(data)))
                        name, data = "message", ""
                        self.first.set()
                        if self.stop_after_first:
                            return
        except BaseException as exc:
            self.error.append(exc)
        finally:
            self.first.set()


def _reports(reader: Reader) -> list[dict[str, Any]]:
    return [data for name, data in reader.events if name == "report"]


def test_stream_pushes_changes_until_sent(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = reports.report_version

    def counted(deps: Deps, account: str, campaign: str) -> Any:
        calls.append(campaign)
        return real(deps, account, campaign)

    monkeypatch.setattr(reports, "report_version", counted)  # the stream polls the cheap version

    cid = live.ready_campaign()
    reader = Reader()
    thread = reader.run(live, cid)
    assert reader.first.wait(WAIT) and not reader.error, reader.error
    sent = live.post(f"/v1/campaigns/{cid}/send")
    assert sent.status_code == 202, sent.text
    thread.join(WAIT)
    assert not thread.is_alive(), "the stream did not end when the campaign was sent"
    assert not reader.error, reader.error

    assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
    seen = _reports(reader)
    assert seen[0]["sent"] == 0 and seen[0]["campaign_status"] == "draft"
    assert any(r["sent"] == len(READERS) for r in seen), seen  # a changed report was pushed
    assert seen[-1]["status"] == "sent" and seen[-1]["campaign_status"] == "sent"
    assert reader.events[-1] == ("end", {"campaign": cid, "status": "sent"})
    assert all(a != b for a, b in itertools.pairwise(seen))  # only changes are pushed
    assert calls and set(calls) == {cid}


def test_stream_ends_with_cancel(live: Live) -> None:
    cid = live.ready_campaign()
    at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    scheduled = live.post(f"/v1/campaigns/{cid}/schedule", {"at": at})
    assert scheduled.status_code == 200, scheduled.text
    reader = Reader()
    thread = reader.run(live, cid)
    assert reader.first.wait(WAIT) and not reader.error, reader.error
    assert live.post(f"/v1/campaigns/{cid}/cancel").status_code == 200
    thread.join(WAIT)
    assert not thread.is_alive() and not reader.error, reader.error
    assert _reports(reader)[0]["campaign_status"] == "scheduled"
    assert reader.events[-1] == ("end", {"campaign": cid, "status": "cancelled"})
    assert live.mailer.sent == []


def test_stream_stops_when_the_client_leaves(live: Live) -> None:
    cid = live.ready_campaign()  # a draft: its stream would never end by itself
    reader = Reader(stop_after_first=True)
    thread = reader.run(live, cid)
    thread.join(WAIT)
    assert not reader.error and _reports(reader), reader.error
    for _ in range(int(WAIT / 0.05)):  # the server notices the closed connection
        if routes_reports.open_streams() == 0:
            break
        _pause(0.05)
    assert routes_reports.open_streams() == 0


def test_quiet_stream_sends_heartbeats(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_reports, "HEARTBEAT_INTERVAL", 0.05)
    cid = live.ready_campaign()
    reader = Reader(stop_after_comment=True)
    thread = reader.run(live, cid)
    thread.join(WAIT)
    assert not thread.is_alive() and not reader.error, reader.error
    assert reader.comments == 1 and len(_reports(reader)) == 1  # nothing changed: a comment


def test_stream_needs_a_key_and_the_own_account(live: Live) -> None:
    cid = live.ready_campaign()
    resp = live.http.get(f"/v1/campaigns/{cid}/report/stream")
    assert_error(resp, 401, "unauthorized")
    other = accounts.create_api_key(live.system.deps, "beta", "sse").secret
    resp = live.http.get(f"/v1/campaigns/{cid}/report/stream", headers={"Authorization": f"Bearer {other}"})
    assert_error(resp, 404, "not_found")
