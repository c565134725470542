"""A campaign's report: counters, per-minute series, and a live Server-Sent Events stream.

The report is a projection the reports service keeps from events, so reading it
is a couple of item reads.  The stream polls it (every ``POLL_INTERVAL``) rather
than subscribing to the bus: the API process may not run the workers, and a
poll of one small item works the same on SQLite and DynamoDB.  Each event
carries the report plus ``campaign_status``, the campaign's own state, which
is authoritative (the report only learns of a failure or a pause through events).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Hashable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from lunamail.app import campaigns as campaign_cases
from lunamail.app import reports as report_cases
from lunamail.app.base import Actor, Env
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import Cursor, decode_cursor, page
from lunamail.entrypoints.http.schemas import (
    MinuteCounts,
    Page,
    ReportOut,
    error_responses,
    report_wire,
)

router = APIRouter(
    prefix="/campaigns/{campaign_id}/report",
    tags=["reports"],
    route_class=ErrorRoute,
    responses=error_responses(404),
)

FINAL = frozenset({"sent", "cancelled", "failed"})
POLL_INTERVAL = 0.2  # s between cheap version reads: an event reaches the client well within 1 s
STATUS_INTERVAL = 1.0  # s between reads of the campaign item (it holds the bodies: not cheap)
HEARTBEAT_INTERVAL = 15.0  # s of silence before a comment line keeps proxies from closing
FINAL_GRACE = 2.0  # s to wait for the report to catch up with a campaign that has finished
RETRY_MS = 2000  # how soon an EventSource reconnects after a dropped connection
GONE = report_cases.GONE  # the campaign_status of a campaign deleted while watched

_streams = [0]  # open streams in this process
_streams_lock = threading.Lock()


def open_streams() -> int:
    """Streams being served by this process (for tests and metrics)."""
    with _streams_lock:
        return _streams[0]


def _count_stream(delta: int) -> None:
    with _streams_lock:
        _streams[0] += delta


def _report(env: Env, actor: Actor, campaign: str, status: str) -> dict[str, Any] | None:
    """The report in its wire form (``ReportOut``), as GET sends it; None once deleted."""
    report = report_cases.live_report(env, actor, campaign)
    return None if report is None else report_wire({**report, "campaign_status": status})


def _epoch(at: datetime) -> float:
    """A query time as epoch seconds (a time without an offset is taken as UTC)."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event (the JSON is a single line, so one ``data:`` field)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def report_events(
    request: Request, env: Env, actor: Actor, campaign: str, status: str
) -> AsyncIterator[bytes]:
    """``report`` events while the report changes, a heartbeat comment when quiet, and once
    the campaign is final a last ``report`` then ``end``.  Stops when the client leaves."""
    loop = asyncio.get_running_loop()
    seen: Hashable = object()  # (version, status) of the last report read
    sent: dict[str, Any] | None = None
    next_status = loop.time() + STATUS_INTERVAL
    quiet_since = loop.time()
    final_since: float | None = None
    _count_stream(1)
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        while not await request.is_disconnected():
            now = loop.time()
            if now >= next_status:
                status = await run_in_threadpool(report_cases.campaign_status, env, actor, campaign)
                next_status = now + STATUS_INTERVAL
            key = (await run_in_threadpool(report_cases.report_version, env, actor, campaign), status)
            if key != seen:
                report = await run_in_threadpool(_report, env, actor, campaign, status)
                seen = key
                if report is None:
                    status = GONE
                elif report != sent:
                    yield sse("report", report)
                    sent, quiet_since = report, now
            if status in FINAL or status == GONE:
                final_since = now if final_since is None else final_since
                caught_up = sent is not None and sent.get("status") == status
                if caught_up or status == GONE or now - final_since >= FINAL_GRACE:
                    yield sse("end", {"campaign": campaign, "status": status})
                    return
                next_status = now  # finished: re-read both each tick until they agree
            if now - quiet_since >= HEARTBEAT_INTERVAL:
                yield b": heartbeat\n\n"
                quiet_since = now
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        _count_stream(-1)


@router.get("", response_model=ReportOut, summary="Counters, status and progress of a campaign's send")
def get_report(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    status = str(campaign_cases.get(ctx.env, actor, campaign_id).status)  # 404 for other accounts
    report = report_cases.campaign_report(ctx.env, actor, campaign_id)
    return report_wire({**report, "campaign_status": status})


@router.get("/timeseries", response_model=Page[MinuteCounts], summary="Per-minute counters, oldest first")
def get_timeseries(
    campaign_id: str,
    ctx: Ctx,
    actor: Acting,
    limit: Annotated[int, Query(ge=1, le=1000, description="Minutes to return.")] = 1000,
    since: Annotated[
        datetime | None, Query(description="From this minute on (RFC 3339, e.g. 2030-06-01T09:00:00Z).")
    ] = None,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = f"timeseries:{campaign_id}"
    inner = decode_cursor(ctx.deps, actor.account, scope, cursor)
    start = float(inner) if inner is not None else (None if since is None else max(0.0, _epoch(since)))
    rows = report_cases.timeseries(ctx.env, actor, campaign_id, limit=limit, since=start)  # 404 if unknown
    nxt = str(int(rows[-1]["minute"]) + 60) if len(rows) >= limit else None  # the minute after
    return page(ctx.deps, actor.account, scope, rows, nxt)


@router.get(
    "/stream",
    summary="The report, live, as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`report` events, then `end`."}},
)
async def stream_report(campaign_id: str, request: Request, ctx: Ctx, actor: Acting) -> StreamingResponse:
    """``event: report`` with the report as JSON whenever it changes (the first at once),
    ``: heartbeat`` comments while nothing changes, and ``event: end`` when the campaign
    is sent, cancelled or failed."""
    status = str((await run_in_threadpool(campaign_cases.get, ctx.env, actor, campaign_id)).status)  # 404
    return StreamingResponse(
        report_events(request, ctx.env, actor, campaign_id, status),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
