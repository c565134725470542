"""Properties of the edge protocol (uvicorn's httptools protocol with the limits of
``entrypoints/http/edge.py``) over an in-memory transport, the tracking routes over a real
SQLite file: any split of the same bytes gives the same answers (the head counting and the
timers never mistake pipelined or split requests for an oversize head), and no input makes
it raise."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http.edge import EdgeLimits, edge_protocol
from lunamail.entrypoints.http.routes_tracking import create_tracking_app
from tests.integration.test_tracking_fixtures import CHROME, EMAIL, make_tracking, path_of


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: Any = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


_store, _tr = make_tracking(Path(__import__("tempfile").mkdtemp()))
_published: list[Message] = []


def _publish(messages: Sequence[Message | Later]) -> None:
    _published.extend(m.message if isinstance(m, Later) else m for m in messages)


_app = create_tracking_app(_tr.deps, _publish)
_config = uvicorn.Config(_app, log_level="critical", lifespan="off", access_log=False, ws="none")
# A head cap below the size of a few pipelined requests: only a single head may count.
_PROTOCOL = edge_protocol(EdgeLimits(max_head_bytes=700))
_links = _tr.links()
_sent = _tr.clock.now() - 3600
_PIXEL = path_of(_links.pixel_url(EMAIL, _sent))
_CLICK = path_of(_links.rewriter(EMAIL, _sent)("https://example.com/x", 0))
_REQUESTS = [
    f"GET {_PIXEL} HTTP/1.1\r\nHost: t\r\nUser-Agent: {CHROME}\r\n\r\n".encode(),
    f"HEAD {_CLICK} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
    f"GET {_CLICK} HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8\r\nX-Forwarded-For: 17.0.0.9\r\n\r\n".encode(),
    b"GET /o/forged.gif HTTP/1.1\r\nHost: t\r\n\r\n",
]


def _feed(chunks: Sequence[bytes]) -> bytes:
    """Feed ``chunks`` to one connection; what was written once every answer is out."""

    async def run() -> bytes:
        state = ServerState()
        protocol = _PROTOCOL(config=_config, server_state=state, app_state={})
        transport = MemoryTransport()
        protocol.connection_made(transport)
        for chunk in chunks:
            protocol.data_received(chunk)
            for _ in range(500):  # let uvicorn's tasks (and the pipeline) finish
                await asyncio.sleep(0.001)
                if not state.tasks:
                    break
        protocol.connection_lost(None)
        return bytes(transport.written)

    return asyncio.run(run())


def _without_dates(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"date: "))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.lists(st.sampled_from(range(len(_REQUESTS))), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=8))
def test_any_split_gives_the_same_answers(order: list[int], cuts: list[int]) -> None:
    data = b"".join(_REQUESTS[i] for i in order)
    whole = _feed([data])
    points = sorted({c % len(data) for c in cuts} - {0})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    split = _feed(pieces)
    assert _without_dates(split) == _without_dates(whole)
    assert whole.count(b"HTTP/1.1 ") == len(order)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from([b"", _REQUESTS[0], b"GET /o/", b"GET /c/x HTTP/1.1\r\n"]),
       junk=st.binary(max_size=300))
def test_no_input_makes_it_raise(prefix: bytes, junk: bytes) -> None:
    written = _feed([prefix + junk])  # raising here fails the test
    if prefix == _REQUESTS[0]:
        # the pixel's answer, or (junk in the same read, as uvicorn does) a 400 for the read
        assert written.startswith((b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 400 Bad Request\r\n"))
    if written.startswith(b"HTTP/1.1 400 "):
        assert b'{"error":{"code":"bad_request"' in written


def test_a_head_over_the_cap_is_431_however_it_is_split() -> None:
    head = b"GET /o/x.gif HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * 800 + b"\r\n\r\n"
    for size in (1, 7, 64, len(head)):
        written = _feed([head[i:i + size] for i in range(0, len(head), size)])
        assert written.startswith(b"HTTP/1.1 431 "), (size, written[:80])
        assert b'"code":"header_too_large"' in written
